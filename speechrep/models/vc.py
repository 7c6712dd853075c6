"""Voice-conversion models: a content code from the source, a speaker code from the target.

Every family has the same three parts and the same conversion interface:

- ``content_encoder``: normalised log-mel ``(B, T, n_mels)`` -> content code ``(B, T, content_dim)``
- ``speaker_encoder``: normalised log-mel (+ valid lengths) -> speaker code ``(B, speaker_dim)``,
  pooled over time, so any target utterance (also of an unseen speaker) gives one; or
  ``None`` when ``speaker_encoder: table`` learns one vector per training speaker instead
- ``decoder``: content code + speaker code -> normalised log-mel, the speaker entering
  every block through adaptive instance normalisation (AdaIN: instance-normalise, then
  scale and shift by affine functions of the speaker code)

and they differ in what keeps speaker information out of the content code:

``vc_adain`` (Chou, Yeh and Lee, 2019)
    instance normalisation without affine parameters in the content encoder removes the
    per-utterance channel statistics, where the speaker mostly lives; zero-shot.
``vc_adversarial`` (Chou, Yeh, Lee and Lee, 2018)
    a speaker classifier reads the content code through a gradient-reversal layer: it
    learns to recognise the speaker while the encoder learns to defeat it, in one loss.
``vc_vq`` (van den Oord et al., 2017)
    the content code is quantised by a discrete bottleneck of :mod:`speechrep.models.bottlenecks`
    (a vector quantiser by default): a few hundred units leave little room for the speaker.

Training reconstructs the log-mel of a crop from its own content and speaker codes
(L1 on the normalised log-mel). All families work on the log-mel of
:mod:`speechrep.features.logmel`; a vocoder turns their output into audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.pitch import PitchFeatures, convert_f0, log_f0_stats
from speechrep.models.speaker import TDNNSpeakerEncoder, check_speaker_labels, frame_mask
from speechrep.objectives.mi import frozen_call, grad_reverse, lsgan_losses
from speechrep.models.frozen import FrozenModels, FrozenSpec
from speechrep.models.registry import register_model
from speechrep.features.logmel import VC_MEL, MelSpec
from speechrep.models.frontend import LogMel

__all__ = [
    "VCConfig",
    "VCAdaINConfig",
    "VCAdversarialConfig",
    "VCVQConfig",
    "VoiceConversionModel",
    "ContentEncoder",
    "AdaINDecoder",
    "grad_reverse",
    "build_vc_adain",
    "build_vc_adversarial",
    "build_vc_vq",
    "normalise_mel",
    "denormalise_mel",
    "MEL_MEAN",
    "MEL_STD",
]

# Fixed affine normalisation of the VC log-mel (speech at ordinary levels lies around
# -5 +- 2.5 in natural-log magnitude), so the models see inputs and targets near N(0, 1).
MEL_MEAN = -5.0
MEL_STD = 2.5


def normalise_mel(mel: torch.Tensor) -> torch.Tensor:
    """Log-mel -> model scale."""
    return (mel - MEL_MEAN) / MEL_STD


def denormalise_mel(x: torch.Tensor) -> torch.Tensor:
    """Model scale -> log-mel."""
    return x * MEL_STD + MEL_MEAN


@dataclass
class VCConfig:
    """Options shared by the voice-conversion families.

    Attributes
    ----------
    channels : width of the convolutional blocks.
    blocks : residual blocks in the content encoder and in the decoder.
    kernel_size : temporal kernel of the blocks (odd).
    content_dim : size of the content code per frame (a narrow bottleneck).
    speaker_dim : size of the speaker code.
    speaker_encoder : ``"tdnn"`` (time-pooled encoder of any utterance: converts to unseen
        speakers) or ``"table"`` (one learnt vector per training speaker; cannot encode a
        target utterance).
    num_speakers : training speakers; needed by ``table`` and by the adversarial
        classifier (filled in by the Trainer when left at 0).
    min_speaker_frames : shortest target utterance (frames of 10 ms) the speaker encoder accepts.
    content_downsample : the content code keeps one frame per this many (the mean of each
        window; the decoder repeats it back): a bottleneck in time as well as in width, so
        that the code has room for phones but not for the frame-by-frame detail of a voice.
    conversion_weight : weight of two losses on conversions made during training (0: off):
        each utterance's content is decoded with the speaker code of another utterance of
        the batch, and (1 - cosine) between that target code and the speaker encoder's code
        of the result, plus the distance between the content codes of the result and of the
        source, are added. They train the decoder to impose the target voice even where the
        content code still carries some of the source's. Needs ``speaker_encoder: tdnn``.
        With a pitch input, the conversion reads the source's F0 mapped to the other
        utterance's log-F0 statistics (``excitation``), as in conversion proper.
    speaker_class_weight : weight of a speaker-classification loss (0: off): a linear layer
        over the training speakers reads the speaker code and its cross-entropy trains the
        speaker encoder to tell voices apart (a d-vector), not only to help reconstruction.
        With ``conversion_weight`` the conversion's speaker term adds the cross-entropy of
        this classifier, frozen, on the speaker code of the converted log-mel against the
        other utterance's speaker: the decoder is trained to be recognised as the target
        by a discriminative speaker model of its own. Needs ``speaker_encoder: tdnn``.
    detail_weight : weight of an L1 loss on the differences between neighbouring mel bins
        of the output and of the target (0: off). The frame-wise L1 alone is met by
        flattened spectra that average over what the codes leave open; the bin-to-bin
        slopes keep formant peaks and harmonics, where much of a voice lives.
    pitch : what the decoder reads of the source's F0 (:mod:`speechrep.models.pitch`), besides
        the content code. ``none``; ``contour``: log F0 standardised over the voiced frames of
        the utterance, and voicing (Qian et al., 2020; the pitch level and range must come
        from the speaker code); ``excitation``: the log-mel of a pulse train at the F0 track,
        and voicing, so that the decoder is told where the harmonics fall and learns the
        envelope around them (source-filter). In training the track is the crop's own; in
        conversion, the source's track mapped to the target's log-F0 median and spread
        (median absolute deviation). Conversion then needs the source wave (and, for
        ``excitation``, the target's F0 statistics: :meth:`VoiceConversionModel.pitch_stats`).
    warp : vocal-tract length perturbation in training (0: off): the spectrum of each
        training crop is stretched along frequency by a factor drawn uniformly from
        ``[1 - warp, 1 + warp]`` (:class:`~speechrep.models.frontend.LogMel` ``warp``; with a
        pitch input its F0 is scaled by the same factor, as the harmonics move with it).
        Formants move as with a shorter or longer vocal tract, so the speaker encoder and
        the decoder learn from a continuum of voices instead of the few of the corpus.
        The warped voices have no speaker label: not with ``speaker_encoder: table`` or
        ``speaker_class_weight``.
    warp_by : ``crop``: a factor per crop; ``speaker``: one factor per speaker of the batch,
        shared by all its crops, so that each speaker of a batch becomes one new voice (a
        warped copy of itself) that its other crops, its speaker code and the judge of
        ``speaker_loss_on: conversion`` agree on; works with ``speaker_from: others``.
    speaker_from : which utterances give the speaker code an utterance is reconstructed
        with in training. ``self``: its own crop; ``others``: the mean code of the other
        crops of the same speaker in the batch (its own where it has none; the share of
        crops that had others is logged as ``spk/others``), as in conversion, where the
        code comes from other utterances. The decoder can then take the voice only from
        what all of a speaker's utterances share, not from details of this crop that the
        speaker code could carry. Needs ``speaker_encoder: tdnn``, speaker labels and
        several crops per speaker in a batch (``data.speakers_per_batch``).
    gan_weight : weight of an adversarial loss on the decoder's log-mel (0: off): a patch
        critic (2-D convolutions across mel bins and frames, ``gan_channels`` wide) learns to
        tell training log-mels from reconstructions (least-squares GAN), and the decoder is
        trained to be taken for real. An L1 loss alone is met by spectra smoothed across the
        bins, where the fine detail of a voice lives; the critic penalises that smoothing.
        The critic's terms are in the training loss only, not in the validation loss that
        picks the best checkpoint.
    gan_channels : width of that critic.
    speaker_loss_weight : weight of a speaker-consistency loss (0: off): a speaker-verification
        model trained separately (``speaker_loss_model``, the experiment directory of a
        ``speaker_tdnn`` run), frozen, reads each reconstruction and its real crop, and the
        loss is the mean absolute difference between the two's pooled statistics (mean and
        spread over frames) of each of its frame layers, plus 1 - the cosine of their
        embeddings: a perceptual loss in the features a speaker model relies on, which the
        L1 loss on log-mels smooths away. The judge is loaded when training starts and is not
        part of the checkpoint; it should not be the model that scores the conversions.
    speaker_loss_model : that speaker model's experiment directory.
    speaker_loss_on : what the judge compares. ``reconstruction``: each reconstruction with
        its real crop; ``conversion``: each crop's content decoded with the speaker code (and,
        with ``excitation`` pitch input, the F0 level and range) of a crop of another speaker
        in the batch, compared with the mean of the judge's features over that speaker's real
        crops in the batch (the loss then trains the decoder only; the speaker code is detached).
    speaker_loss_features : ``layers``: the pooled statistics of every frame layer and the
        embedding, as above; ``embedding``: the embedding's cosine alone, which leaves out the
        lower layers' statistics, where the phones of a crop weigh more than its voice (a
        conversion says other words than the target's crops).
    speaker_loss_content_weight : with ``speaker_loss_on: conversion``, weight of a content
        term on those same conversions (0: off): the L1 distance between the content code of
        each conversion (content encoder frozen) and that of its source crop (detached), on a
        second decoding from the detached code, so that the term trains the decoder only. The
        speaker term pulls a conversion towards the target's crops, which say other words; this
        one holds it to the source's phones, so that the decoder moves the voice, not the content.
    content_norm : normalisation in the content encoder's blocks. ``instance``: instance norm
        without affine parameters in every block and on the output code, so that per-utterance
        channel means and scales (much of a voice) cannot pass through; ``batch``: batch norm,
        the code left unnormalised; ``auto``: ``instance`` for ``vc_adain``, ``batch`` for the
        other families. With ``vc_vq`` the quantiser then reads instance-normalised frames.
    """

    channels: int = 256
    blocks: int = 4
    kernel_size: int = 5
    content_dim: int = 16
    speaker_dim: int = 128
    speaker_encoder: Literal["tdnn", "table"] = "tdnn"
    num_speakers: int = 0
    min_speaker_frames: int = 30
    content_downsample: int = 1
    conversion_weight: float = 0.0
    speaker_class_weight: float = 0.0
    detail_weight: float = 0.0
    pitch: Literal["none", "contour", "excitation"] = "none"
    warp: float = 0.0
    warp_by: Literal["crop", "speaker"] = "crop"
    speaker_from: Literal["self", "others"] = "self"
    gan_weight: float = 0.0
    gan_channels: int = 32
    speaker_loss_weight: float = 0.0
    speaker_loss_model: str | None = None
    speaker_loss_on: Literal["reconstruction", "conversion"] = "reconstruction"
    speaker_loss_features: Literal["layers", "embedding"] = "layers"
    speaker_loss_content_weight: float = 0.0
    content_norm: Literal["auto", "instance", "batch"] = "auto"


def masked_l1(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean absolute difference of ``(B, T, F)`` tensors over the frames where ``mask`` ``(B, T, 1)`` is 1 (all if None)."""
    err = (x - y).abs()
    if mask is None:
        return err.mean()
    return (err * mask).sum() / (mask.sum() * x.shape[2]).clamp(min=1.0)


def speaker_consistency(judge: nn.Module, fake: torch.Tensor, real: torch.Tensor,
                        lengths: torch.Tensor | None = None, *, layers: bool = True) -> torch.Tensor:
    """Speaker-consistency loss of log-mels ``fake`` against ``real`` ``(B, T, n_mels)`` in the
    eyes of a speaker model ``judge`` (a :class:`~speechrep.models.speaker.SpeakerVerifier`):
    the mean absolute difference of the pooled statistics of each of its frame layers,
    averaged over layers (unless ``layers`` is False), plus the mean of 1 - cosine of the
    embeddings. 0 when ``fake`` equals ``real``; gradients reach ``fake`` only."""
    fake_stats, fake_emb = judge_features(judge, fake, lengths)
    with torch.no_grad():
        real_stats, real_emb = judge_features(judge, real, lengths)
    return feature_distance(fake_stats, fake_emb, real_stats, real_emb, layers=layers)


def judge_features(judge: nn.Module, mel: torch.Tensor, lengths: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A speaker model's pooled layer statistics and embedding of log-mels ``(B, T, n_mels)``."""
    return judge.encoder.layer_statistics(judge.mean_normalised(mel, lengths), lengths)


def feature_distance(stats: list[torch.Tensor], emb: torch.Tensor, ref_stats: list[torch.Tensor],
                     ref_emb: torch.Tensor, *, layers: bool = True) -> torch.Tensor:
    """Mean absolute difference of pooled layer statistics (averaged over layers; left out
    when ``layers`` is False) plus the mean of 1 - cosine of the embeddings."""
    distance = (1 - F.cosine_similarity(emb, ref_emb, dim=-1)).mean()
    if layers:
        distance = distance + torch.stack([(f - r).abs().mean() for f, r in zip(stats, ref_stats)]).mean()
    return distance


def others_mean(codes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``codes`` ``(B, D)`` replaced by the mean of the other rows with its label
    (kept where there is none), and the share of rows that had others."""
    same = (labels[:, None] == labels[None, :]).to(codes.dtype)
    same = same - torch.eye(len(labels), dtype=codes.dtype, device=codes.device)  # (B, B): others of the label
    count = same.sum(1, keepdim=True)
    mean = same @ codes / count.clamp(min=1)
    has = count > 0
    return torch.where(has, mean, codes), has.to(codes.dtype).mean()


def match_frames(frames: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    """k-nearest-neighbour frame matching (as in kNN-VC, Baas et al. 2023).

    ``frames`` ``(T, D)`` are compared with ``keys`` ``(N, D)`` by Euclidean distance; each
    frame is replaced by the mean of the ``values`` ``(N, D')`` whose keys are its ``k``
    nearest (all ``N`` when fewer). Returns ``(T, D')``.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", field="match_k")
    if keys.shape[0] != values.shape[0] or keys.shape[0] == 0:
        raise ValueError(f"keys {tuple(keys.shape)} and values {tuple(values.shape)} need the same number (> 0) of rows")
    idx = torch.cdist(frames, keys).topk(min(k, keys.shape[0]), dim=-1, largest=False).indices  # (T, k)
    return values[idx].mean(1)


def pool_time(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Means of windows of ``factor`` frames: ``(B, T, D)`` -> ``(B, ceil(T / factor), D)``.

    A last, shorter window averages the frames it has.
    """
    if factor == 1:
        return x
    B, T, D = x.shape
    n = -(-T // factor)
    padded = F.pad(x, (0, 0, 0, n * factor - T)).view(B, n, factor, D).sum(2)
    counts = torch.full((n, 1), float(factor), dtype=x.dtype, device=x.device)
    counts[-1] = T - (n - 1) * factor
    return padded / counts


def repeat_time(code: torch.Tensor, factor: int, frames: int) -> torch.Tensor:
    """Each code frame repeated ``factor`` times, cut to ``frames``: the inverse of :func:`pool_time`'s rate."""
    return code if factor == 1 else code.repeat_interleave(factor, dim=1)[:, :frames]


@dataclass
class VCAdaINConfig(VCConfig):
    """``vc_adain``: instance-normalised content encoder."""


@dataclass
class VCAdversarialConfig(VCConfig):
    """``vc_adversarial``: adds the speaker classifier on the content code.

    Attributes
    ----------
    adv_weight : weight of the classifier's cross-entropy (and of its reversed gradient), in
        the training loss only: the validation loss that picks the best checkpoint leaves it
        out, as a better encoder raises it.
    classifier_channels : width of the classifier.
    """

    adv_weight: float = 0.1
    classifier_channels: int = 128


@dataclass
class VCVQConfig(VCConfig):
    """``vc_vq``: content code quantised by a discrete bottleneck.

    Attributes
    ----------
    bottleneck : the discrete layer (:class:`speechrep.models.bottlenecks.BottleneckConfig`;
        a 256-code vector quantiser by default). REINFORCE gives the decoder no gradient
        and is not accepted.
    """

    content_dim: int = 64
    bottleneck: BottleneckConfig = field(default_factory=lambda: BottleneckConfig(num_codes=256, code_dim=64))


class _ConvBlock(nn.Module):
    """Residual ``conv -> norm -> ReLU`` on ``(B, C, T)``; the norm may be conditioned."""

    def __init__(self, channels: int, kernel_size: int, norm: nn.Module):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm = norm

    def forward(self, x: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.norm(self.conv(x), *cond))


class ContentEncoder(nn.Module):
    """Normalised log-mel ``(B, T, n_mels)`` -> content code ``(B, T, content_dim)``.

    With ``instance_norm`` every block (and the output) is instance-normalised without
    affine parameters, so per-utterance channel means and scales cannot pass through.
    """

    def __init__(self, n_mels: int, cfg: VCConfig, *, instance_norm: bool):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm1d(c, affine=False) if instance_norm else nn.BatchNorm1d(c)

        self.conv_in = nn.Conv1d(n_mels, cfg.channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.ModuleList(_ConvBlock(cfg.channels, cfg.kernel_size, norm(cfg.channels)) for _ in range(cfg.blocks))
        self.conv_out = nn.Conv1d(cfg.channels, cfg.content_dim, 1)
        self.out_norm = nn.InstanceNorm1d(cfg.content_dim, affine=False) if instance_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x.transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            h = block(h)
        return self.out_norm(self.conv_out(h)).transpose(1, 2)  # (B, T, content_dim)


class _AdaIN(nn.Module):
    """Instance norm whose scale and shift are affine functions of the speaker code."""

    def __init__(self, channels: int, speaker_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False)
        self.affine = nn.Linear(speaker_dim, 2 * channels)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(speaker).unsqueeze(-1).chunk(2, dim=1)  # (B, C, 1) each
        return self.norm(x) * (1 + gamma) + beta


class AdaINDecoder(nn.Module):
    """Content ``(B, T, in_dim)`` + speaker ``(B, speaker_dim)`` -> normalised log-mel ``(B, T, n_mels)``."""

    def __init__(self, n_mels: int, cfg: VCConfig, *, in_dim: int):
        super().__init__()
        self.conv_in = nn.Conv1d(in_dim, cfg.channels, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.blocks = nn.ModuleList(
            _ConvBlock(cfg.channels, cfg.kernel_size, _AdaIN(cfg.channels, cfg.speaker_dim)) for _ in range(cfg.blocks)
        )
        self.conv_out = nn.Conv1d(cfg.channels, n_mels, 1)

    def forward(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(content.transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            h = block(h, speaker)
        return self.conv_out(h).transpose(1, 2)  # (B, T, n_mels)


class _MelCritic(nn.Module):
    """Patch critic of normalised log-mels ``(B, T, n_mels)`` -> scores ``(B, 1, n_mels / 4, T / 4)``."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(channels, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(1, 2)[:, None])


class _SpeakerClassifier(nn.Module):
    """Content code ``(B, T, content_dim)`` (+ lengths) -> speaker logits ``(B, num_speakers)``."""

    def __init__(self, content_dim: int, channels: int, num_speakers: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(content_dim, channels, 5, padding=2), nn.ReLU(), nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU()
        )
        self.out = nn.Linear(channels, num_speakers)

    def forward(self, content: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        h = self.net(content.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        mask = frame_mask(lengths, h.shape[1], device=h.device)
        pooled = h.mean(1) if mask is None else (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.out(pooled)


class VoiceConversionModel(FrozenModels, nn.Module):
    """One voice-conversion model of any family (see the module docstring).

    Training: ``forward(batch)`` with ``batch["wave"]`` ``(B, samples)`` at 16 kHz,
    ``batch["speaker"]`` ``(B,)`` and optional ``batch["lengths"]``; returns ``loss``,
    ``loss/recon`` and family-specific terms. Conversion: :meth:`speaker_code` of the
    target log-mel(s), then :meth:`convert` of the source log-mel.

    Attributes
    ----------
    family : ``"vc_adain"``, ``"vc_adversarial"`` or ``"vc_vq"``.
    spec : the log-mel definition (output rate ``spec.sample_rate``).
    frame_shift : seconds per content-code frame (for ``speechrep extract`` and units).
    """

    def __init__(self, family: str, cfg: VCConfig, spec: MelSpec = VC_MEL):
        super().__init__()
        if cfg.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd, got {cfg.kernel_size}", field="model.args.kernel_size")
        if cfg.conversion_weight < 0 or (cfg.conversion_weight > 0 and cfg.speaker_encoder != "tdnn"):
            raise ConfigError(f"conversion_weight must be >= 0 and needs speaker_encoder: tdnn, got "
                              f"{cfg.conversion_weight} with {cfg.speaker_encoder}", field="model.args.conversion_weight")
        if cfg.speaker_class_weight < 0 or (cfg.speaker_class_weight > 0 and cfg.speaker_encoder != "tdnn"):
            raise ConfigError(f"speaker_class_weight must be >= 0 and needs speaker_encoder: tdnn, got "
                              f"{cfg.speaker_class_weight} with {cfg.speaker_encoder}", field="model.args.speaker_class_weight")
        if cfg.detail_weight < 0:
            raise ConfigError(f"detail_weight must be >= 0, got {cfg.detail_weight}", field="model.args.detail_weight")
        if not 0 <= cfg.warp < 0.5 or (cfg.warp > 0 and (cfg.speaker_encoder != "tdnn" or cfg.speaker_class_weight > 0)):
            raise ConfigError(f"warp must be in [0, 0.5) and, above 0, needs speaker_encoder: tdnn without "
                              f"speaker_class_weight (warped voices have no label), got {cfg.warp}", field="model.args.warp")
        if cfg.warp_by not in ("crop", "speaker"):
            raise ConfigError(f"warp_by must be crop or speaker, got {cfg.warp_by!r}", field="model.args.warp_by")
        if cfg.speaker_from not in ("self", "others") or (cfg.speaker_from == "others" and (
                cfg.speaker_encoder != "tdnn" or (cfg.warp > 0 and cfg.warp_by == "crop"))):
            raise ConfigError(f"speaker_from must be self or others; others needs speaker_encoder: tdnn and no warp "
                              f"by crop (a crop warped on its own is another voice), got {cfg.speaker_from!r}",
                              field="model.args.speaker_from")
        if cfg.gan_weight < 0 or cfg.gan_channels < 1:
            raise ConfigError(f"gan_weight must be >= 0 and gan_channels >= 1, got {cfg.gan_weight} and "
                              f"{cfg.gan_channels}", field="model.args.gan_weight")
        if cfg.speaker_loss_weight < 0 or (cfg.speaker_loss_weight > 0 and not cfg.speaker_loss_model):
            raise ConfigError(f"speaker_loss_weight must be >= 0 and, above 0, needs speaker_loss_model (a speaker_tdnn "
                              f"experiment), got {cfg.speaker_loss_weight}", field="model.args.speaker_loss_weight")
        if cfg.speaker_loss_on not in ("reconstruction", "conversion"):
            raise ConfigError(f"speaker_loss_on must be reconstruction or conversion, got {cfg.speaker_loss_on!r}",
                              field="model.args.speaker_loss_on")
        if cfg.speaker_loss_content_weight < 0 or (cfg.speaker_loss_content_weight > 0 and (
                cfg.speaker_loss_weight == 0 or cfg.speaker_loss_on != "conversion")):
            raise ConfigError("speaker_loss_content_weight must be >= 0 and, above 0, needs speaker_loss_weight > 0 "
                              f"with speaker_loss_on: conversion, got {cfg.speaker_loss_content_weight}",
                              field="model.args.speaker_loss_content_weight")
        if cfg.speaker_loss_features not in ("layers", "embedding"):
            raise ConfigError(f"speaker_loss_features must be layers or embedding, got {cfg.speaker_loss_features!r}",
                              field="model.args.speaker_loss_features")
        if cfg.content_downsample < 1:
            raise ConfigError(f"content_downsample must be >= 1, got {cfg.content_downsample}",
                              field="model.args.content_downsample")
        if cfg.content_norm not in ("auto", "instance", "batch"):
            raise ConfigError(f"content_norm must be auto, instance or batch, got {cfg.content_norm!r}",
                              field="model.args.content_norm")
        needs_speakers = cfg.speaker_encoder == "table" or family == "vc_adversarial" or cfg.speaker_class_weight > 0
        if needs_speakers and cfg.num_speakers < 1:
            raise ConfigError(f"{family} with speaker_encoder={cfg.speaker_encoder} "
                              f"(speaker_class_weight {cfg.speaker_class_weight}) needs num_speakers >= 1",
                              field="model.args.num_speakers")
        self.family = family
        self.cfg = cfg
        self.spec = spec
        self.frame_shift = spec.frame_shift * cfg.content_downsample
        self.mel = LogMel(spec)
        instance_norm = cfg.content_norm == "instance" or (cfg.content_norm == "auto" and family == "vc_adain")
        self.content_encoder = ContentEncoder(spec.n_mels, cfg, instance_norm=instance_norm)
        self.speaker_encoder: TDNNSpeakerEncoder | None = None
        self.speaker_table: nn.Embedding | None = None
        if cfg.speaker_encoder == "tdnn":
            self.speaker_encoder = TDNNSpeakerEncoder(spec.n_mels, channels=cfg.channels, embedding_dim=cfg.speaker_dim)
        else:
            self.speaker_table = nn.Embedding(cfg.num_speakers, cfg.speaker_dim)
        self.speaker_head = nn.Linear(cfg.speaker_dim, cfg.num_speakers) if cfg.speaker_class_weight > 0 else None
        self.classifier = None
        self.quantizer = None
        code_dim = cfg.content_dim
        if isinstance(cfg, VCAdversarialConfig):
            self.classifier = _SpeakerClassifier(cfg.content_dim, cfg.classifier_channels, cfg.num_speakers)
        if isinstance(cfg, VCVQConfig):
            if cfg.bottleneck.estimator == "reinforce":
                raise ConfigError("REINFORCE passes no gradient to the decoder; use st or gumbel",
                                  field="model.args.bottleneck.estimator")
            self.quantizer = build_bottleneck(cfg.bottleneck, cfg.content_dim)
            code_dim = self.quantizer.output_dim
        if cfg.pitch not in ("none", "contour", "excitation"):
            raise ConfigError(f"unknown pitch input {cfg.pitch!r} (none, contour, excitation)", field="model.args.pitch")
        self.pitch = None if cfg.pitch == "none" else PitchFeatures(cfg.pitch, spec=spec, mel_scale=normalise_mel)
        self.decoder = AdaINDecoder(spec.n_mels, cfg, in_dim=code_dim + (0 if self.pitch is None else self.pitch.channels))
        self.critic = _MelCritic(cfg.gan_channels) if cfg.gan_weight > 0 else None

    # -- the conversion interface --------------------------------------------------------
    @property
    def has_speaker_encoder(self) -> bool:
        """Whether target utterances can be encoded (False for ``speaker_encoder: table``)."""
        return self.speaker_encoder is not None

    def require_speaker_encoder(self) -> None:
        """Raise SpeechrepError unless target utterances can be encoded."""
        if self.speaker_encoder is None:
            raise SpeechrepError(
                f"this {self.family} model has no speaker encoder (speaker_encoder: table): "
                "it cannot take a target utterance", field="model.args.speaker_encoder"
            )

    def speaker_code(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker codes ``(B, speaker_dim)`` of log-mels ``(B, T, n_mels)`` (valid ``lengths`` frames).

        Raises
        ------
        SpeechrepError
            The model has no speaker encoder, or an utterance is shorter than ``min_speaker_frames``.
        """
        self.require_speaker_encoder()
        shortest = int(lengths.min()) if lengths is not None else mel.shape[1]
        minimum = self.cfg.min_speaker_frames
        if shortest < minimum:
            raise SpeechrepError(
                f"target of {shortest} frames ({shortest * self.spec.frame_shift:.2f} s) is shorter than the speaker "
                f"encoder's minimum of {minimum} frames ({minimum * self.spec.frame_shift:.2f} s)", field="target"
            )
        return self.speaker_encoder(normalise_mel(mel), lengths)

    def _content(self, x: torch.Tensor) -> torch.Tensor:
        """Content encoder + temporal pooling: ``(B, T, n_mels)`` -> ``(B, T', content_dim)``."""
        return pool_time(self.content_encoder(x), self.cfg.content_downsample)

    def content_code(self, mel: torch.Tensor) -> torch.Tensor:
        """Content code ``(B, T', D)`` of log-mels ``(B, T, n_mels)`` (the quantised code for ``vc_vq``).

        ``T' = ceil(T / content_downsample)``.
        """
        content = self._content(normalise_mel(mel))
        if self.quantizer is not None:
            content = self.quantizer(content).quantized
        return content

    def units(self, mel: torch.Tensor) -> torch.Tensor:
        """Discrete content units ``(B, T)`` int64 of log-mels (``vc_vq`` only)."""
        if self.quantizer is None:
            raise SpeechrepError(f"a {self.family} model has no discrete units", field="model.name")
        return self.quantizer(self._content(normalise_mel(mel))).indices

    def pitch_stats(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor | None:
        """Log-F0 median and spread ``(B, 2)`` (:func:`~speechrep.models.pitch.log_f0_stats`) of waves ``(B, samples)``; None without pitch input."""
        if self.pitch is None:
            return None
        return log_f0_stats(*self.pitch.track(wave, lengths))

    def pitch_features(
        self, wave: torch.Tensor, lengths: torch.Tensor | None = None, *, target: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Decoder pitch input ``(B, frames, C)`` of source waves ``(B, samples)``; None without pitch input.

        ``target``: :meth:`pitch_stats` of the target voice, to which an ``excitation``
        model maps the source's F0 (required there for conversion; ignored by ``contour``).
        """
        if self.pitch is None:
            return None
        return self._pitch_input(*self.pitch.track(wave, lengths), target)

    def _pitch_input(self, f0: torch.Tensor, frames: torch.Tensor | None, target: torch.Tensor | None) -> torch.Tensor:
        """Decoder pitch input of F0 tracks ``(B, T)``, mapped to ``target`` statistics (``excitation`` only)."""
        if target is not None and self.pitch.mode == "excitation":
            f0 = convert_f0(f0, target.to(f0.dtype), frames)
        return self.pitch(f0, frames)

    def _decoder_input(self, content: torch.Tensor, frames: int, pitch: torch.Tensor | None) -> torch.Tensor:
        """Content codes ``(B, T', D)`` repeated to ``frames``, with the pitch channels when used."""
        code = repeat_time(content, self.cfg.content_downsample, frames)
        if self.pitch is None:
            return code
        expected = (code.shape[0], frames, self.pitch.channels)
        if pitch is None or tuple(pitch.shape) != expected:
            got = None if pitch is None else tuple(pitch.shape)
            raise SpeechrepError(f"this model's decoder reads the source pitch (model.args.pitch): expected {expected} "
                                 f"from pitch_features(source wave), got {got}", field="pitch")
        return torch.cat([code, pitch.to(code.dtype)], dim=-1)

    def convert(self, source_mel: torch.Tensor, speaker: torch.Tensor, *, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``(B, T, n_mels)`` of the source content spoken with speaker codes ``(B, speaker_dim)``.

        ``pitch``: :meth:`pitch_features` of the source wave, required when ``model.args.pitch`` is on.
        """
        code = self._decoder_input(self.content_code(source_mel), source_mel.shape[1], pitch)
        return denormalise_mel(self.decoder(code, speaker))

    def reconstruct(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``(B, T, n_mels)`` of waves ``(B, samples)`` converted to their own voice.

        Each wave's content code is decoded with its own speaker code and pitch: the model's
        output for speech it has the real recording of, frame-aligned with the wave (the input
        of a vocoder trained on the model's outputs, ``gta_model``). ``lengths``: valid samples.
        """
        mel = self.mel(wave)
        frames = None if lengths is None else self.mel.frame_lengths(lengths)
        speaker = self.speaker_code(mel, frames)
        return self.convert(mel, speaker, pitch=self.pitch_features(wave, lengths))

    # -- training ------------------------------------------------------------------------
    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Content code ``(B, frames', content_dim)`` of ``batch["wave"]`` (for ``speechrep extract``)."""
        return self.content_code(self.mel(batch["wave"]))

    def frozen_models(self) -> dict[str, FrozenSpec]:
        """The speaker-consistency loss's judge, when that loss is on."""
        from speechrep.models.speaker import SpeakerVerifier

        if self.cfg.speaker_loss_weight > 0:
            return {"judge": FrozenSpec(str(self.cfg.speaker_loss_model), "model.args.speaker_loss_model", SpeakerVerifier)}
        return {}

    def on_step_end(self, step: int) -> None:
        """Let the bottleneck restart dead codes and anneal temperatures."""
        if self.quantizer is not None:
            self.quantizer.on_step_end(step)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        if "wave" not in batch:
            raise ConfigError("voice-conversion models train on waves: set data.input to 'wave'", field="data.input")
        warp = None
        if self.training and self.cfg.warp > 0:
            warp = self._warp_factors(batch)  # (B,)
        with torch.no_grad():
            mel = self.mel(batch["wave"], warp=warp)  # (B, T, n_mels)
        lengths = self.mel.frame_lengths(batch["lengths"]) if "lengths" in batch else None
        x = normalise_mel(mel)
        out: dict[str, torch.Tensor] = {}
        mask = frame_mask(lengths, x.shape[1], device=x.device)  # (B, T, 1) or None
        factor = self.cfg.content_downsample
        content = self._content(x)  # (B, T', content_dim)
        # a code frame is valid when its window starts inside the utterance
        code_lengths = None if lengths is None else -(-lengths // factor)
        code_mask = frame_mask(code_lengths, content.shape[1], device=x.device)  # (B, T', 1) or None
        extra = game = x.new_zeros(())
        if self.quantizer is not None:
            vq = self.quantizer(content, mask=None if code_mask is None else code_mask[..., 0].bool())
            content = vq.quantized  # (B, T, code_dim)
            extra = extra + vq.loss
            out.update({f"vq/{k}": v.detach() for k, v in vq.stats.items() if v.dim() == 0})
        if self.speaker_table is not None:
            check_speaker_labels(batch["speaker"], self.cfg.num_speakers)
            speaker = self.speaker_table(batch["speaker"])
        else:
            speaker = self.speaker_encoder(x, lengths)
        if self.cfg.speaker_from == "others":
            speaker, out["spk/others"] = others_mean(speaker, batch["speaker"])
        if self.speaker_head is not None:
            check_speaker_labels(batch["speaker"], self.cfg.num_speakers)
            spk_logits = self.speaker_head(speaker)
            spk_ce = F.cross_entropy(spk_logits, batch["speaker"])
            extra = extra + self.cfg.speaker_class_weight * spk_ce
            out["spk/ce"] = spk_ce.detach()
            out["spk/acc"] = (spk_logits.argmax(-1) == batch["speaker"]).float().mean()
        if self.classifier is not None:
            check_speaker_labels(batch["speaker"], self.cfg.num_speakers)
            logits = self.classifier(grad_reverse(content, self.cfg.adv_weight), code_lengths)
            # the classifier minimises this; the reversed gradient makes the encoder maximise it
            adv = F.cross_entropy(logits, batch["speaker"])
            game = game + self.cfg.adv_weight * adv
            out["adv/ce"] = adv.detach()
            out["adv/acc"] = (logits.argmax(-1) == batch["speaker"]).float().mean()
        convert = self.cfg.conversion_weight > 0 and x.shape[0] > 1
        pitch = conv_pitch = None
        if self.pitch is not None:
            f0, frames = self.pitch.track(batch["wave"], batch.get("lengths"))  # tracked once for both inputs
            if warp is not None:
                f0 = f0 * warp[:, None]  # the harmonics moved with the spectrum
            pitch = conv_pitch = self._pitch_input(f0, frames, None)
            if convert and self.pitch.mode == "excitation":  # the source's F0 at the next utterance's level and range
                conv_pitch = self._pitch_input(f0, frames, log_f0_stats(f0, frames).roll(1, dims=0))
        decoder_input = self._decoder_input(content, x.shape[1], pitch)
        recon = self.decoder(decoder_input, speaker)
        rec = masked_l1(recon, x, mask)
        out["loss/recon"] = rec.detach()
        if self.critic is not None:
            keep = 1.0 if mask is None else mask  # padded frames: zero in both
            critic_loss, generator_loss, _ = lsgan_losses(self.critic, x * keep, recon * keep)
            game = game + critic_loss + self.cfg.gan_weight * generator_loss
            out["gan/critic"], out["gan/decoder"] = critic_loss.detach(), generator_loss.detach()
        if self.cfg.speaker_loss_weight > 0 and self.training:
            judge = self.frozen("judge", x.device)
            if self.cfg.speaker_loss_on == "reconstruction":
                consistency = speaker_consistency(judge, denormalise_mel(recon), mel, lengths,
                                                  layers=self.cfg.speaker_loss_features == "layers")
            else:
                consistency, conv_input, conv_speaker = self._conversion_consistency(
                    judge, content, speaker, mel, lengths, batch["speaker"], None if self.pitch is None else (f0, frames))
                if self.cfg.speaker_loss_content_weight > 0:
                    # decoded again from the detached code, so that this term trains the decoder only
                    kept = self._content_distance(self.decoder(conv_input.detach(), conv_speaker), content)
                    extra = extra + self.cfg.speaker_loss_content_weight * kept
                    out["loss/speaker_content"] = kept.detach()
            extra = extra + self.cfg.speaker_loss_weight * consistency
            out["loss/speaker"] = consistency.detach()
        if self.cfg.detail_weight > 0:
            detail = masked_l1(recon.diff(dim=-1), x.diff(dim=-1), mask)
            extra = extra + self.cfg.detail_weight * detail
            out["loss/detail"] = detail.detach()
        if convert:
            conv_input = self._decoder_input(content, x.shape[1], conv_pitch)
            labels = batch["speaker"].roll(1, dims=0) if self.speaker_head is not None else None
            extra = extra + self.cfg.conversion_weight * self._conversion_losses(conv_input, content, speaker, lengths, out, labels)
        # the two-player terms (speaker classifier, critic) train but do not score a checkpoint: in
        # evaluation their value says how well one player does against the other, not the model
        out["loss"] = rec + extra + game if self.training else rec + extra
        return out

    def _warp_factors(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Frequency-warp factors ``(B,)`` drawn from ``[1 - warp, 1 + warp]``: one per crop, or
        one per speaker label of the batch (``warp_by: speaker``)."""
        wave = batch["wave"]
        if self.cfg.warp_by == "speaker":
            labels, index = torch.unique(batch["speaker"], return_inverse=True)
            draws = torch.rand(len(labels), device=wave.device)[index.to(wave.device)]
        else:
            draws = torch.rand(wave.shape[0], device=wave.device)
        return 1 + self.cfg.warp * (2 * draws - 1)

    def _conversion_consistency(
        self, judge: nn.Module, content: torch.Tensor, speaker: torch.Tensor, mel: torch.Tensor,
        lengths: torch.Tensor | None, labels: torch.Tensor, f0: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Speaker consistency of conversions (``speaker_loss_on: conversion``): crop i decoded
        with the code of crop ``other[i]``, of another speaker where the batch has one, against
        the mean judge features of the real crops of that speaker. Returns the loss and what
        the conversions were decoded from: the decoder input and the (detached) speaker codes."""
        lab = labels.tolist()
        B = len(lab)
        # the nearest following crop of another speaker (itself if none)
        other = torch.tensor([next(((i + k) % B for k in range(1, B) if lab[(i + k) % B] != lab[i]), i)
                              for i in range(B)], device=labels.device)
        pitch = None
        if f0 is not None:
            stats = log_f0_stats(*f0) if self.pitch.mode == "excitation" else None
            pitch = self._pitch_input(f0[0], f0[1], None if stats is None else stats[other])
        decoder_input, target = self._decoder_input(content, mel.shape[1], pitch), speaker[other].detach()
        fake = denormalise_mel(self.decoder(decoder_input, target))
        with torch.no_grad():
            real_stats, real_emb = judge_features(judge, mel, lengths)
            same = (labels[other][:, None] == labels[None, :]).to(mel.dtype)  # (B, B): crops of the target speaker
            same = same / same.sum(1, keepdim=True)
            target_stats, target_emb = [same @ r for r in real_stats], same @ real_emb
        fake_stats, fake_emb = judge_features(judge, fake, lengths)
        return feature_distance(fake_stats, fake_emb, target_stats, target_emb,
                                layers=self.cfg.speaker_loss_features == "layers"), decoder_input, target

    def _content_distance(self, converted: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        """Mean absolute difference between the content code of ``converted`` (normalised log-mels,
        content encoder frozen) and ``content`` (B, T', D), the source's code (detached)."""
        code = pool_time(frozen_call(self.content_encoder, converted), self.cfg.content_downsample)
        return (code - content.detach()).abs().mean()

    def _conversion_losses(
        self, decoder_input: torch.Tensor, content: torch.Tensor, speaker: torch.Tensor, lengths: torch.Tensor | None,
        out: dict[str, torch.Tensor], labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Speaker and content losses of each utterance converted to the next one's speaker code.

        ``decoder_input`` (B, T, D) repeated content codes (with the pitch input for the
        conversion), ``content`` (B, T', D) the codes, ``speaker`` (B, speaker_dim) codes,
        ``labels`` (B,) the target speakers for the speaker classifier (None: no classifier
        term). The targets are detached and the encoders and the classifier judge the
        conversion with frozen weights: the losses train the decoder only, so the judges
        cannot satisfy them by learning to ignore what the decoder got wrong.
        """
        target = speaker.roll(1, dims=0).detach()
        converted = self.decoder(decoder_input, target)  # normalised log-mel (B, T, n_mels)
        spk = frozen_call(self.speaker_encoder, converted, lengths)
        speaker_loss = (1 - F.cosine_similarity(spk, target, dim=-1)).mean()
        if labels is not None and self.speaker_head is not None:
            class_loss = F.cross_entropy(frozen_call(self.speaker_head, spk), labels)
            out["conv/speaker_ce"] = class_loss.detach()
            speaker_loss = speaker_loss + class_loss
        content_loss = self._content_distance(converted, content)
        out["conv/speaker"], out["conv/content"] = speaker_loss.detach(), content_loss.detach()
        return speaker_loss + content_loss


@register_model("vc_adain", config=VCAdaINConfig)
def build_vc_adain(cfg: VCAdaINConfig, *, input_dim: int | None = None) -> VoiceConversionModel:
    """Registry builder of ``vc_adain`` (reads waves; ``input_dim`` unused)."""
    return VoiceConversionModel("vc_adain", cfg)


@register_model("vc_adversarial", config=VCAdversarialConfig)
def build_vc_adversarial(cfg: VCAdversarialConfig, *, input_dim: int | None = None) -> VoiceConversionModel:
    """Registry builder of ``vc_adversarial``."""
    return VoiceConversionModel("vc_adversarial", cfg)


@register_model("vc_vq", config=VCVQConfig)
def build_vc_vq(cfg: VCVQConfig, *, input_dim: int | None = None) -> VoiceConversionModel:
    """Registry builder of ``vc_vq``."""
    return VoiceConversionModel("vc_vq", cfg)
