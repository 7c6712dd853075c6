"""Voice-conversion models: a content code from the source, a speaker code from the target.

Every family has the same three parts and the same conversion interface:

- ``content_encoder``: normalised log-mel ``(B, T, n_mels)`` -> content code ``(B, T, content_dim)``
- ``speaker_encoder``: normalised log-mel (+ valid lengths) -> speaker code ``(B, speaker_dim)``,
  pooled over time, so any target utterance (also of an unseen speaker) gives one
- ``decoder``: content code + speaker code -> normalised log-mel, the speaker entering
  every block through adaptive instance normalisation (:mod:`speechrep.models.vc_modules`)

and they differ in what keeps speaker information out of the content code, each in a
module of its own:

``vc_adain`` (Chou, Yeh and Lee, 2019; :mod:`speechrep.models.vc_adain`)
    instance normalisation without affine parameters in the content encoder removes the
    per-utterance channel statistics, where the speaker mostly lives; zero-shot.
``vc_adversarial`` (Chou, Yeh, Lee and Lee, 2018; :mod:`speechrep.models.vc_adversarial`)
    a speaker classifier reads the content code through a gradient-reversal layer: it
    learns to recognise the speaker while the encoder learns to defeat it, in one loss.
``vc_vq`` (van den Oord et al., 2017; :mod:`speechrep.models.vc_vq`)
    the content code is quantised by a discrete bottleneck of :mod:`speechrep.models.bottlenecks`
    (a vector quantiser by default): a few hundred units leave little room for the speaker.

Training reconstructs the log-mel of a crop from its own content and speaker codes
(L1 on the normalised log-mel). All families work on the log-mel of
:mod:`speechrep.features.logmel`; a vocoder turns their output into audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.features.logmel import VC_MEL, MelSpec
from speechrep.models.frontend import LogMel
from speechrep.models.frozen import FrozenModels, FrozenSpec
from speechrep.models.pitch import PitchFeatures, convert_f0, log_f0_stats
from speechrep.models.speaker import TDNNSpeakerEncoder, frame_mask
from speechrep.models.vc_modules import AdaINDecoder, ContentEncoder
from speechrep.objectives.adversarial import frozen_call
from speechrep.objectives.reconstruction import masked_error
from speechrep.objectives.speaker_consistency import feature_distance, judge_features, speaker_consistency

__all__ = [
    "VCConfig",
    "VoiceConversionModel",
    "normalise_mel",
    "denormalise_mel",
    "others_mean",
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
    num_speakers : training speakers; needed by the adversarial classifier (filled in by
        the Trainer when left at 0).
    min_speaker_frames : shortest target utterance (frames of 10 ms) the speaker encoder accepts.
    pitch : what the decoder reads of the source's F0 (:mod:`speechrep.models.pitch`), besides
        the content code. ``none``; ``contour``: log F0 standardised over the voiced frames of
        the utterance, and voicing (Qian et al., 2020; the pitch level and range must come
        from the speaker code); ``excitation``: the log-mel of a pulse train at the F0 track,
        and voicing, so that the decoder is told where the harmonics fall and learns the
        envelope around them (source-filter). In training the track is the crop's own; in
        conversion, the source's track mapped to the target's log-F0 median and spread
        (median absolute deviation). Conversion then needs the source wave (and, for
        ``excitation``, the target's F0 statistics: :meth:`VoiceConversionModel.pitch_stats`).
    speaker_from : which utterances give the speaker code an utterance is reconstructed
        with in training. ``self``: its own crop; ``others``: the mean code of the other
        crops of the same speaker in the batch (its own where it has none; the share of
        crops that had others is logged as ``spk/others``), as in conversion, where the
        code comes from other utterances. The decoder can then take the voice only from
        what all of a speaker's utterances share, not from details of this crop that the
        speaker code could carry. Needs speaker labels and
        several crops per speaker in a batch (``data.speakers_per_batch``).
    speaker_loss_weight : weight of a speaker-consistency loss (0: off): a speaker-verification
        model trained separately (``speaker_loss_model``, the experiment directory of a
        ``speaker_tdnn`` run), frozen, reads each reconstruction and its real crop, and the
        loss is the mean absolute difference between the two's pooled statistics (mean and
        spread over frames) of each of its frame layers, plus 1 - the cosine of their
        embeddings (:mod:`speechrep.objectives.speaker_consistency`): a perceptual loss in the
        features a speaker model relies on, which the L1 loss on log-mels smooths away. The
        judge is loaded when training starts and is not part of the checkpoint; it should not
        be the model that scores the conversions.
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
    num_speakers: int = 0
    min_speaker_frames: int = 30
    pitch: Literal["none", "contour", "excitation"] = "none"
    speaker_from: Literal["self", "others"] = "self"
    speaker_loss_weight: float = 0.0
    speaker_loss_model: str | None = None
    speaker_loss_on: Literal["reconstruction", "conversion"] = "reconstruction"
    speaker_loss_features: Literal["layers", "embedding"] = "layers"
    speaker_loss_content_weight: float = 0.0
    content_norm: Literal["auto", "instance", "batch"] = "auto"

    #: deleted options that checkpoints saved before hold (:func:`speechrep.models.registry.drop_retired`)
    retired_options: ClassVar[dict[str, Any]] = {
        "content_downsample": 1, "conversion_weight": 0.0, "speaker_class_weight": 0.0, "detail_weight": 0.0,
        "warp": 0.0, "warp_by": None, "gan_weight": 0.0, "gan_channels": None, "speaker_encoder": "tdnn",
    }


def _check_config(family: str, cfg: VCConfig, *, needs_speakers: bool) -> None:
    """Raise ConfigError naming the first ``model.args`` field of ``cfg`` that is out of range."""
    if cfg.kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be odd, got {cfg.kernel_size}", field="model.args.kernel_size")
    if cfg.speaker_from not in ("self", "others"):
        raise ConfigError(f"speaker_from must be self or others, got {cfg.speaker_from!r}", field="model.args.speaker_from")
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
    if cfg.content_norm not in ("auto", "instance", "batch"):
        raise ConfigError(f"content_norm must be auto, instance or batch, got {cfg.content_norm!r}",
                          field="model.args.content_norm")
    if cfg.pitch not in ("none", "contour", "excitation"):
        raise ConfigError(f"unknown pitch input {cfg.pitch!r} (none, contour, excitation)", field="model.args.pitch")
    if needs_speakers and cfg.num_speakers < 1:
        raise ConfigError(f"{family} needs num_speakers >= 1", field="model.args.num_speakers")


def others_mean(codes: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row of ``codes`` ``(B, D)`` replaced by the mean of the other rows with its label
    (kept where there is none), and the share of rows that had others."""
    same = (labels[:, None] == labels[None, :]).to(codes.dtype)
    same = same - torch.eye(len(labels), dtype=codes.dtype, device=codes.device)  # (B, B): others of the label
    count = same.sum(1, keepdim=True)
    mean = same @ codes / count.clamp(min=1)
    has = count > 0
    return torch.where(has, mean, codes), has.to(codes.dtype).mean()


class VoiceConversionModel(FrozenModels, nn.Module):
    """What every voice-conversion family shares (see the module docstring); each family
    (:mod:`speechrep.models.vc_adain`, ``vc_adversarial``, ``vc_vq``) is a subclass that fills
    in the hooks :meth:`_build_family`, :meth:`_quantise` and :meth:`_adversary`.

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

    family: str = ""
    #: ``content_norm: auto`` means instance norm for this family
    instance_norm_by_default: bool = False
    #: the family trains on speaker labels (``num_speakers`` must be set)
    needs_speaker_labels: bool = False

    def __init__(self, cfg: VCConfig, spec: MelSpec = VC_MEL):
        super().__init__()
        _check_config(self.family, cfg, needs_speakers=self.needs_speaker_labels)
        self.cfg = cfg
        self.spec = spec
        self.frame_shift = spec.frame_shift
        self.mel = LogMel(spec)
        instance_norm = cfg.content_norm == "instance" or (cfg.content_norm == "auto" and self.instance_norm_by_default)
        self.content_encoder = ContentEncoder(spec.n_mels, channels=cfg.channels, blocks=cfg.blocks,
                                              kernel_size=cfg.kernel_size, content_dim=cfg.content_dim,
                                              instance_norm=instance_norm)
        self.speaker_encoder = TDNNSpeakerEncoder(spec.n_mels, channels=cfg.channels, embedding_dim=cfg.speaker_dim)
        # the family's modules come before the decoder, in the order of the checkpoints'
        # parameters (and of the optimiser states saved with them)
        code_dim = self._build_family(cfg)
        self.pitch = None if cfg.pitch == "none" else PitchFeatures(cfg.pitch, spec=spec, mel_scale=normalise_mel)
        self.decoder = AdaINDecoder(spec.n_mels, in_dim=code_dim + (0 if self.pitch is None else self.pitch.channels),
                                    channels=cfg.channels, blocks=cfg.blocks, kernel_size=cfg.kernel_size,
                                    speaker_dim=cfg.speaker_dim)

    # -- the family hooks ----------------------------------------------------------------
    def _build_family(self, cfg: VCConfig) -> int:
        """Build the family's own modules; return the size of the code the decoder reads."""
        return cfg.content_dim

    def _quantise(self, content: torch.Tensor, mask: torch.Tensor | None,
                  out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The code the decoder reads of content codes ``(B, T, content_dim)`` in training, and
        its auxiliary loss (``mask`` ``(B, T, 1)``: valid frames; logged values go to ``out``)."""
        return content, content.new_zeros(())

    def _adversary(self, content: torch.Tensor, lengths: torch.Tensor | None, speakers: torch.Tensor | None,
                   out: dict[str, torch.Tensor]) -> torch.Tensor:
        """A two-player term on the content code, in the training loss only (none by default)."""
        return content.new_zeros(())

    # -- the conversion interface --------------------------------------------------------
    def speaker_code(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker codes ``(B, speaker_dim)`` of log-mels ``(B, T, n_mels)`` (valid ``lengths`` frames).

        Raises
        ------
        SpeechrepError
            An utterance is shorter than ``min_speaker_frames``.
        """
        shortest = int(lengths.min()) if lengths is not None else mel.shape[1]
        minimum = self.cfg.min_speaker_frames
        if shortest < minimum:
            raise SpeechrepError(
                f"target of {shortest} frames ({shortest * self.spec.frame_shift:.2f} s) is shorter than the speaker "
                f"encoder's minimum of {minimum} frames ({minimum * self.spec.frame_shift:.2f} s)", field="target"
            )
        return self.speaker_encoder(normalise_mel(mel), lengths)

    def content_code(self, mel: torch.Tensor) -> torch.Tensor:
        """Content code ``(B, T, D)`` of log-mels ``(B, T, n_mels)`` (the quantised code for ``vc_vq``)."""
        return self.content_encoder(normalise_mel(mel))

    def units(self, mel: torch.Tensor) -> torch.Tensor:
        """Discrete content units ``(B, T)`` int64 of log-mels (``vc_vq`` only)."""
        raise SpeechrepError(f"a {self.family} model has no discrete units", field="model.name")

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

    def _decoder_input(self, content: torch.Tensor, pitch: torch.Tensor | None) -> torch.Tensor:
        """Content codes ``(B, T, D)``, with the pitch channels when used."""
        if self.pitch is None:
            return content
        expected = (content.shape[0], content.shape[1], self.pitch.channels)
        if pitch is None or tuple(pitch.shape) != expected:
            got = None if pitch is None else tuple(pitch.shape)
            raise SpeechrepError(f"this model's decoder reads the source pitch (model.args.pitch): expected {expected} "
                                 f"from pitch_features(source wave), got {got}", field="pitch")
        return torch.cat([content, pitch.to(content.dtype)], dim=-1)

    def convert(self, source_mel: torch.Tensor, speaker: torch.Tensor, *, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mel ``(B, T, n_mels)`` of the source content spoken with speaker codes ``(B, speaker_dim)``.

        ``pitch``: :meth:`pitch_features` of the source wave, required when ``model.args.pitch`` is on.
        """
        return denormalise_mel(self.decoder(self._decoder_input(self.content_code(source_mel), pitch), speaker))

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
        """Content code ``(B, frames, content_dim)`` of ``batch["wave"]`` (for ``speechrep extract``)."""
        return self.content_code(self.mel(batch["wave"]))

    def frozen_models(self) -> dict[str, FrozenSpec]:
        """The speaker-consistency loss's judge, when that loss is on."""
        from speechrep.models.speaker import SpeakerVerifier

        if self.cfg.speaker_loss_weight > 0:
            return {"judge": FrozenSpec(str(self.cfg.speaker_loss_model), "model.args.speaker_loss_model", SpeakerVerifier)}
        return {}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        if "wave" not in batch:
            raise ConfigError("voice-conversion models train on waves: set data.input to 'wave'", field="data.input")
        with torch.no_grad():
            mel = self.mel(batch["wave"])  # (B, T, n_mels)
        lengths = self.mel.frame_lengths(batch["lengths"]) if "lengths" in batch else None
        x = normalise_mel(mel)
        out: dict[str, torch.Tensor] = {}
        mask = frame_mask(lengths, x.shape[1], device=x.device)  # (B, T, 1) or None
        content, extra = self._quantise(self.content_encoder(x), mask, out)  # (B, T, code_dim)
        speaker = self.speaker_encoder(x, lengths)
        if self.cfg.speaker_from == "others":
            speaker, out["spk/others"] = others_mean(speaker, batch["speaker"])
        game = self._adversary(content, lengths, batch.get("speaker"), out)
        pitch = f0 = None
        if self.pitch is not None:
            f0 = self.pitch.track(batch["wave"], batch.get("lengths"))  # (f0, frames), tracked once for both uses
            pitch = self._pitch_input(*f0, None)
        recon = self.decoder(self._decoder_input(content, pitch), speaker)
        rec = masked_error(recon, x, mask, kind="l1")
        out["loss/recon"] = rec.detach()
        if self.cfg.speaker_loss_weight > 0 and self.training:
            judge = self.frozen("judge", x.device)
            if self.cfg.speaker_loss_on == "reconstruction":
                consistency = speaker_consistency(judge, denormalise_mel(recon), mel, lengths,
                                                  layers=self.cfg.speaker_loss_features == "layers")
            else:
                consistency, conv_input, conv_speaker = self._conversion_consistency(
                    judge, content, speaker, mel, lengths, batch["speaker"], f0)
                if self.cfg.speaker_loss_content_weight > 0:
                    # decoded again from the detached code, so that this term trains the decoder only
                    kept = self._content_distance(self.decoder(conv_input.detach(), conv_speaker), content)
                    extra = extra + self.cfg.speaker_loss_content_weight * kept
                    out["loss/speaker_content"] = kept.detach()
            extra = extra + self.cfg.speaker_loss_weight * consistency
            out["loss/speaker"] = consistency.detach()
        # the two-player terms (the adversary) train but do not score a checkpoint: in
        # evaluation their value says how well one player does against the other, not the model
        out["loss"] = rec + extra + game if self.training else rec + extra
        return out

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
        decoder_input, target = self._decoder_input(content, pitch), speaker[other].detach()
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
        content encoder frozen) and ``content`` (B, T, D), the source's code (detached)."""
        return (frozen_call(self.content_encoder, converted) - content.detach()).abs().mean()
