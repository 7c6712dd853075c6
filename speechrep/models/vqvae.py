"""VQ-VAE for speech units: log-mel encoder, discrete bottleneck, speaker-conditioned decoder.

    wave --LogMel--> x (B, T, M) 10 ms --encoder, /stride--> h (B, T', H) 20 ms
      --bottleneck (vq | onehot | binary | gumbel)--> q (B, T', Dq), units (B, T')
      --upsample x stride, + speaker embedding--> decoder --> x_hat (B, T, M)
    loss = ||x_hat - norm(x)||^2 (valid frames) + bottleneck loss (+ REINFORCE surrogate)

``norm`` is per-utterance mean and variance normalisation of each mel bin (CMVN), applied
to the encoder input and to the reconstruction target: the level and the channel of a
recording do not name phones, and a normalised target keeps the loss on one scale for
every corpus. The decoder therefore predicts normalised log-mel; multiply by the
utterance's standard deviation and add its mean (:meth:`VQVAE.normalise` returns them)
to get log-mel back.

The decoder is told who speaks, so the codes need not carry speaker identity and are
pushed towards phonetic content (van den Oord et al., 2017; Chorowski et al., 2019).
For waveform input the log-mel is the one of :mod:`speechrep.features.logmel`, so a vocoder
trained on it turns the reconstruction into audio; for feature input (``input_dim``
set) the features are both input and target.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.config import dataclass, field
from speechrep.errors import ConfigError
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.bottlenecks.base import BottleneckOutput
from speechrep.models.speaker import check_speaker_labels, frame_mask
from speechrep.models.registry import register_model
from speechrep.objectives.reconstruction import masked_error
from speechrep.features.logmel import VC_MEL
from speechrep.models.frontend import LogMel

__all__ = ["VQVAEConfig", "VQVAE", "build_vqvae"]


@dataclass
class VQVAEConfig:
    """``model.args`` of ``name: vqvae``."""

    hidden: int = 256  #: channels of the encoder and decoder convolutions
    encoder_layers: int = 2  #: residual conv blocks after downsampling
    decoder_layers: int = 3  #: residual conv blocks of the decoder
    stride: int = 2  #: input frames per code (2 x 10 ms = 20 ms)
    bottleneck: BottleneckConfig = field(default_factory=BottleneckConfig)
    num_speakers: int | None = None  #: filled by the Trainer from the training speakers
    speaker_dim: int = 64  #: size of the learned speaker embedding
    feat_frame_shift: float = 0.01  #: frame shift (s) of the input features / log-mel

    #: deleted options that checkpoints saved before hold (:func:`speechrep.models.registry.drop_retired`)
    retired_options: ClassVar[dict[str, Any]] = {"loss": "mse"}

    def __post_init__(self) -> None:
        for name in ("hidden", "stride", "speaker_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=f"model.args.{name}")
        for name in ("encoder_layers", "decoder_layers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", field=f"model.args.{name}")


class _ResBlock(nn.Module):
    """x + conv(relu(conv(x))) over (B, C, T), same length."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, channels, 3, padding=1), nn.ReLU(), nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class VQVAE(nn.Module):
    """Speech VQ-VAE (see the module docstring).

    Parameters
    ----------
    cfg : :class:`VQVAEConfig`.
    input_dim : feature dimension M for feature input; None for 16 kHz waveform.
    """

    def __init__(self, cfg: VQVAEConfig, *, input_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        if input_dim is None:
            self.input_key = "wave"
            self.logmel: LogMel | None = LogMel(VC_MEL)
            mels = VC_MEL.n_mels
            shift = VC_MEL.frame_shift
        else:
            self.input_key = "feats"
            self.logmel = None
            mels = input_dim
            shift = cfg.feat_frame_shift
        self.num_mels = mels
        self.stride = cfg.stride
        self.frame_shift: float = shift * cfg.stride
        # code j covers input frames j*stride .. j*stride + stride - 1 (log-mel frames are
        # centred on their hop, so for waveform input this is absolute time)
        self.frame_offset: float = (cfg.stride - 1) / 2 * shift
        h = cfg.hidden
        self.encoder = nn.Sequential(
            nn.Conv1d(mels, h, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(h, h, cfg.stride, stride=cfg.stride),  # non-overlapping: T' = T / stride exactly
            *[_ResBlock(h) for _ in range(cfg.encoder_layers)],
            nn.ReLU(),
        )
        self.bottleneck = build_bottleneck(cfg.bottleneck, h)
        num_speakers = cfg.num_speakers or 0
        self.speaker = nn.Embedding(max(num_speakers, 1), cfg.speaker_dim)
        self.decoder_in = nn.Conv1d(self.bottleneck.output_dim + cfg.speaker_dim, h, 3, padding=1)
        self.decoder = nn.Sequential(*[_ResBlock(h) for _ in range(cfg.decoder_layers)], nn.ReLU(), nn.Conv1d(h, mels, 1))

    # ------------------------------------------------------------------ pieces
    def features(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel frames ``(B, T, M)`` and valid frame counts ``(B,)`` of a batch."""
        if self.input_key not in batch:
            raise ConfigError(f"this VQ-VAE reads '{self.input_key}' but the batch has {sorted(batch)}", field="data.input")
        x = batch[self.input_key]
        lengths = batch.get("lengths")
        if self.logmel is not None:
            feats = self.logmel(x)
            lengths = self.logmel.frame_lengths(lengths) if lengths is not None else None
        else:
            feats = x.float()
        if lengths is None:
            lengths = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.int64, device=feats.device)
        return feats, lengths.clamp(max=feats.shape[1]).to(feats.device)

    @staticmethod
    def normalise(feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-utterance mean/variance normalisation over the valid frames.

        Returns
        -------
        normalised : (B, T, M), zero on padding frames.
        mean, std : (B, 1, M).
        """
        mask = frame_mask(lengths, feats.shape[1], device=feats.device)  # (B, T, 1)
        n = mask.sum(1, keepdim=True).clamp_min(1.0)
        mean = (feats * mask).sum(1, keepdim=True) / n
        std = ((((feats - mean) * mask) ** 2).sum(1, keepdim=True) / n).sqrt().clamp_min(1e-3)
        return (feats - mean) / std * mask, mean, std

    def _normalised(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lengths = self.features(batch)
        return self.normalise(feats.float(), lengths)[0], lengths

    def _frames(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder frames (B, T', H) of normalised frames ``x`` (B, T, M) and valid code frames (B,)."""
        pad = (-x.shape[1]) % self.stride
        x = F.pad(x, (0, 0, 0, pad))  # (B, T + pad, M)
        h = self.encoder(x.transpose(1, 2)).transpose(1, 2)  # (B, T', H)
        return h, torch.div(lengths + self.stride - 1, self.stride, rounding_mode="floor")

    def _encode(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[BottleneckOutput, torch.Tensor]:
        """Bottleneck output of normalised frames ``x`` (B, T, M) and valid code frames (B,)."""
        h, code_lengths = self._frames(x, lengths)
        code_mask = torch.arange(h.shape[1], device=h.device)[None, :] < code_lengths[:, None]
        return self.bottleneck(h, mask=code_mask), code_lengths

    def decode(self, quantized: torch.Tensor, speaker: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Log-mel frames from codes.

        Parameters
        ----------
        quantized : (B, T', Dq) bottleneck output.
        speaker : (B,) int64 speaker indices (any speaker: voice conversion).
        num_frames : T, frames to produce (<= T' * stride).

        Returns
        -------
        (B, T, M) normalised log-mel (see :meth:`normalise`).
        """
        up = quantized.repeat_interleave(self.stride, dim=1)[:, :num_frames]  # (B, T, Dq)
        spk = self.speaker(speaker)[:, None, :].expand(-1, up.shape[1], -1).to(up.dtype)
        y = self.decoder_in(torch.cat([up, spk], -1).transpose(1, 2))
        return self.decoder(y).transpose(1, 2)

    # ------------------------------------------------------------------ model contract
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss and logged values of a batch (``wave``/``feats``, ``speaker``, ``lengths``)."""
        speaker = batch["speaker"]
        check_speaker_labels(speaker, self.cfg.num_speakers or 0)
        x, lengths = self._normalised(batch)
        out, _ = self._encode(x, lengths)
        recon = self.decode(out.quantized, speaker, x.shape[1]).float()
        mask = frame_mask(lengths, x.shape[1], device=x.device)  # (B, T, 1)
        per_utt = masked_error(recon, x, mask, kind="mse", per_utterance=True)  # (B,)
        rec = per_utt.mean()
        loss = rec + out.loss.float()
        result = {"loss/recon": rec.detach(), "loss/bottleneck": out.loss.detach().float()}
        if self.bottleneck.needs_cost and self.training:
            loss = loss + self.bottleneck.policy_loss(out, per_utt)
        result.update({f"vq/{k}": v.detach().float() for k, v in out.stats.items()})
        result["loss"] = loss
        return result

    @torch.no_grad()
    def units(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Discrete unit of every code frame.

        Returns
        -------
        indices : (B, T') int64 in ``[0, bottleneck.num_codes)``.
        lengths : (B,) valid code frames.
        """
        out, code_lengths = self._encode(*self._normalised(batch))
        return out.indices, code_lengths

    @torch.no_grad()
    def unit_costs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Cost of every unit for every code frame, (B, T', K) (the bottleneck's
        :meth:`~speechrep.models.bottlenecks.base.Bottleneck.unit_costs`), and valid code frames (B,)."""
        h, code_lengths = self._frames(*self._normalised(batch))
        return self.bottleneck.unit_costs(h), code_lengths

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Bottleneck output ``(B, T', Dq)``: code vectors, one-hot vectors or bits."""
        return self._encode(*self._normalised(batch))[0].quantized

    def on_step_end(self, step: int) -> None:
        """Temperature schedules and dead-code restarts of the bottleneck."""
        self.bottleneck.on_step_end(step)


@register_model("vqvae", config=VQVAEConfig)
def build_vqvae(cfg: VQVAEConfig, *, input_dim: int | None = None) -> VQVAE:
    """Registry builder of ``name: vqvae``."""
    return VQVAE(cfg, input_dim=input_dim)

