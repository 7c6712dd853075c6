"""Speaker-verification encoder: a small x-vector TDNN on the VC log-mel.

Frame layers are dilated 1-D convolutions (a time-delay neural network, Snyder et al.
2018); statistics pooling (mean and standard deviation over the valid frames) turns an
utterance of any length into one vector, and an affine layer gives the embedding. Trained
as a speaker classifier with softmax or additive angular margin (AAM, Deng et al. 2019)
cross-entropy; the embedding, not the classifier, is used for verification (cosine).

It is independent of the voice-conversion models (a scorer must not share their bias),
but its pooled encoder :class:`TDNNSpeakerEncoder` is also the speaker encoder of the VC
models. Registered as model ``speaker_tdnn``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.models.registry import register_model
from speechrep.features.logmel import VC_MEL
from speechrep.models.frontend import LogMel
from speechrep.objectives.angular_margin import cosine_softmax_loss

__all__ = [
    "TDNNSpeakerEncoder",
    "SpeakerVerifierConfig",
    "SpeakerVerifier",
    "build_speaker_verifier",
    "frame_mask",
    "masked_mean_var",
    "check_speaker_labels",
]

# (kernel, dilation) of the x-vector frame layers: receptive field 15 frames
_TDNN_LAYERS = ((5, 1), (3, 2), (3, 3), (1, 1))


def frame_mask(lengths: torch.Tensor | None, num_frames: int, *, device: torch.device) -> torch.Tensor | None:
    """``(batch, num_frames, 1)`` float mask of valid frames, or None when all are valid."""
    if lengths is None:
        return None
    steps = torch.arange(num_frames, device=device)
    return (steps[None, :] < lengths.to(device)[:, None]).float().unsqueeze(-1)


def masked_mean_var(x: torch.Tensor, lengths: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (biased) variance over time of ``x`` ``(B, T, D)``, counting the first ``lengths`` frames.

    Returns two ``(B, 1, D)`` tensors.
    """
    mask = frame_mask(lengths, x.shape[1], device=x.device)
    if mask is None:
        return x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
    n = mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, 1, 1)
    mean = (x * mask).sum(1, keepdim=True) / n
    return mean, ((x - mean).square() * mask).sum(1, keepdim=True) / n


def check_speaker_labels(speaker: torch.Tensor, num_speakers: int) -> None:
    """Raise ConfigError when batch speaker indices do not fit ``num_speakers`` classes."""
    if num_speakers < 1:
        raise ConfigError("num_speakers must be set (>= 1) to train with speaker labels", field="model.args.num_speakers")
    if speaker.numel() and (int(speaker.min()) < 0 or int(speaker.max()) >= num_speakers):
        raise ConfigError(
            f"batch has speaker index {int(speaker.max())} (or unknown speaker -1) but num_speakers={num_speakers}",
            field="model.args.num_speakers",
        )


class TDNNSpeakerEncoder(nn.Module):
    """Utterance embedding from frames: TDNN layers, statistics pooling, affine.

    ``forward(x, lengths=None)``: ``x`` ``(batch, frames, in_dim)``, ``lengths`` ``(batch,)``
    valid frames (None: all) -> ``(batch, embedding_dim)``.

    Parameters
    ----------
    in_dim : input feature dimension.
    channels : width of the frame layers.
    embedding_dim : output size.
    """

    receptive_field = 1 + sum((k - 1) * d for k, d in _TDNN_LAYERS)

    def __init__(self, in_dim: int, *, channels: int = 256, embedding_dim: int = 128):
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for k, d in _TDNN_LAYERS:
            # "same" padding keeps frame i aligned with input frame i, so masks stay valid
            layers += [nn.Conv1d(dim, channels, k, dilation=d, padding=d * (k - 1) // 2), nn.ReLU(), nn.BatchNorm1d(channels)]
            dim = channels
        self.frames = nn.Sequential(*layers)
        self.embed = nn.Linear(2 * channels, embedding_dim)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        h = self.frames(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        return self.embed(_pooled(h, lengths))

    def layer_statistics(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The pooled statistics (mean and standard deviation over frames, ``(batch, 2 channels)``)
        of every frame layer's output, and the embedding ``(batch, embedding_dim)`` (the last
        layer's statistics through the affine layer, as :meth:`forward`)."""
        h = x.transpose(1, 2)
        stats = []
        for layer in self.frames:
            h = layer(h)
            if isinstance(layer, nn.BatchNorm1d):  # the end of a TDNN layer
                stats.append(_pooled(h.transpose(1, 2), lengths))
        return stats, self.embed(stats[-1])


def _pooled(h: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Statistics pooling: mean and standard deviation over the valid frames of ``(B, T, C)`` -> ``(B, 2C)``."""
    mean, var = masked_mean_var(h, lengths)
    return torch.cat([mean[:, 0], torch.sqrt(var[:, 0] + 1e-5)], dim=-1)


@dataclass
class SpeakerVerifierConfig:
    """Speaker-verification model (``model.args`` of a ``speaker_tdnn`` experiment).

    Attributes
    ----------
    num_speakers : training speakers (filled in by the Trainer when left at 0).
    channels, embedding_dim : TDNN width and embedding size.
    loss : ``"aam"`` (additive angular margin softmax) or ``"softmax"``.
    margin, scale : AAM margin (radians) and logit scale.
    min_frames : shortest input (frames of 10 ms) accepted for an embedding.
    """

    num_speakers: int = 0
    channels: int = 256
    embedding_dim: int = 128
    loss: Literal["aam", "softmax"] = "aam"
    margin: float = 0.2
    scale: float = 30.0
    min_frames: int = 30


class SpeakerVerifier(nn.Module):
    """x-vector speaker classifier; :meth:`embed` gives verification embeddings.

    ``forward(batch)`` reads ``batch["wave"]`` ``(B, samples)``, ``batch["speaker"]`` ``(B,)``
    and optionally ``batch["lengths"]``; returns ``loss`` and ``acc``.
    """

    def __init__(self, cfg: SpeakerVerifierConfig):
        super().__init__()
        if cfg.min_frames < 1:
            raise ConfigError("min_frames must be >= 1", field="model.args.min_frames")
        self.cfg = cfg
        self.spec = VC_MEL
        self.frame_shift = VC_MEL.frame_shift
        self.mel = LogMel(VC_MEL)
        self.encoder = TDNNSpeakerEncoder(VC_MEL.n_mels, channels=cfg.channels, embedding_dim=cfg.embedding_dim)
        self.classifier = nn.Parameter(torch.randn(max(cfg.num_speakers, 1), cfg.embedding_dim) * 0.01)

    def embed(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Speaker embeddings ``(batch, embedding_dim)`` of log-mels ``(batch, frames, n_mels)``.

        Raises
        ------
        SpeechrepError
            When the input is shorter than ``min_frames``.
        """
        shortest = int(lengths.min()) if lengths is not None else mel.shape[1]
        if shortest < self.cfg.min_frames:
            raise SpeechrepError(
                f"utterance of {shortest} frames is shorter than the speaker encoder's minimum "
                f"{self.cfg.min_frames} frames ({self.cfg.min_frames * self.frame_shift:.2f} s)",
                field="audio",
            )
        return self.encoder(self.mean_normalised(mel, lengths), lengths)

    @staticmethod
    def mean_normalised(mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Log-mels ``(batch, frames, n_mels)`` less their per-utterance mean over the valid
        frames (padding set to 0): the encoder's input."""
        # per-utterance mean normalisation removes the channel, which is not the speaker
        mask = frame_mask(lengths, mel.shape[1], device=mel.device)
        if mask is None:
            return mel - mel.mean(1, keepdim=True)
        return (mel - (mel * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)) * mask

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        if "wave" not in batch:
            raise ConfigError("the speaker model trains on waves: set data.input to 'wave'", field="data.input")
        speaker = batch["speaker"]
        check_speaker_labels(speaker, self.cfg.num_speakers)
        mel = self.mel(batch["wave"])  # (B, T, n_mels)
        lengths = self.mel.frame_lengths(batch["lengths"]) if "lengths" in batch else None
        emb = F.normalize(self.embed(mel, lengths), dim=-1)
        cosine = emb @ F.normalize(self.classifier, dim=-1).T  # (B, S)
        loss = cosine_softmax_loss(cosine, speaker, scale=self.cfg.scale,
                                   margin=self.cfg.margin if self.cfg.loss == "aam" else None)
        acc = (cosine.argmax(-1) == speaker).float().mean()
        return {"loss": loss, "acc": acc.detach()}


@register_model("speaker_tdnn", config=SpeakerVerifierConfig)
def build_speaker_verifier(cfg: SpeakerVerifierConfig, *, input_dim: int | None = None) -> SpeakerVerifier:
    """Registry builder of ``speaker_tdnn`` (reads waves; ``input_dim`` unused)."""
    return SpeakerVerifier(cfg)
