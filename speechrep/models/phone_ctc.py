"""A small CTC phone recogniser on the VC log-mel, used to score converted speech.

A convolution over the per-utterance mean-normalised log-mel, then residual blocks of
dilated convolutions (dilations 1, 2, 4, repeated; about 0.3 s of context per block
triple), then a linear layer over the phone inventory plus the CTC blank (index 0). A
purely convolutional network trains several times faster on CPU than a recurrent one of
the same size, since the frames of an utterance are computed in parallel. Greedy
decoding (best path, repeats merged, blanks removed) is enough for scoring: the phone
error rate of converted speech is compared with that of resynthesised speech, both
decoded the same way. Registered as model ``phone_ctc``; trained by ``speechrep train``
on whole utterances with their phone sequences (``data.phones``,
``egs/synth/vc/conf/phone_ctc.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from speechrep.errors import ConfigError
from speechrep.models.speaker import frame_mask
from speechrep.models.registry import register_model
from speechrep.features.logmel import VC_MEL
from speechrep.models.frontend import LogMel

__all__ = ["PhoneCTCConfig", "PhoneRecognizer", "build_phone_ctc", "greedy_ctc_decode"]


@dataclass
class PhoneCTCConfig:
    """Phone recogniser (``model.args`` of a ``phone_ctc`` model).

    Attributes
    ----------
    phones : the phone inventory (output ``i + 1`` is ``phones[i]``; 0 is the blank).
    channels : convolution width.
    layers : residual dilated-convolution blocks (dilation ``2 ** (i % 3)``, kernel 5).
    dropout : dropout inside the blocks and before the output.
    """

    phones: list[str] = field(default_factory=list)
    channels: int = 256
    layers: int = 6
    dropout: float = 0.1


def greedy_ctc_decode(log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best-path CTC decoding.

    Parameters
    ----------
    log_probs : ``(batch, frames, vocab)`` with the blank at index 0.
    lengths : ``(batch,)`` valid frames (None: all).

    Returns
    -------
    list of label sequences (blank-free, repeats merged), one per utterance.
    """
    best = log_probs.argmax(-1).cpu()  # (B, T)
    out = []
    for b in range(best.shape[0]):
        n = best.shape[1] if lengths is None else int(lengths[b])
        seq, prev = [], 0
        for label in best[b, :n].tolist():
            if label != prev and label != 0:
                seq.append(label)
            prev = label
        out.append(seq)
    return out


class _DilatedBlock(nn.Module):
    """Residual ``conv -> ReLU -> BatchNorm -> dropout`` on ``(B, C, T)``."""

    def __init__(self, channels: int, dilation: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 5, dilation=dilation, padding=2 * dilation)
        self.norm = nn.BatchNorm1d(channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.norm(F.relu(self.conv(x))))


class PhoneRecognizer(nn.Module):
    """CTC phone recogniser.

    ``forward(batch)`` reads ``batch["wave"]`` ``(B, samples)``, ``batch["lengths"]``
    ``(B,)`` samples, ``batch["phones"]`` ``(B, U)`` int64 phone indices (``-1`` padding) and
    ``batch["phone_lengths"]`` ``(B,)``; returns ``loss`` (CTC, mean over utterances).
    """

    def __init__(self, cfg: PhoneCTCConfig):
        super().__init__()
        if not cfg.phones:
            raise ConfigError("the phone inventory is empty", field="model.args.phones")
        if len(set(cfg.phones)) != len(cfg.phones):
            raise ConfigError("the phone inventory has duplicates", field="model.args.phones")
        self.cfg = cfg
        self.spec = VC_MEL
        self.frame_shift = VC_MEL.frame_shift
        self.mel = LogMel(VC_MEL)
        c = cfg.channels
        self.front = nn.Sequential(nn.Conv1d(VC_MEL.n_mels, c, 5, padding=2), nn.ReLU(), nn.BatchNorm1d(c))
        self.blocks = nn.Sequential(*(_DilatedBlock(c, 2 ** (i % 3), cfg.dropout) for i in range(cfg.layers)))
        self.out = nn.Linear(c, len(cfg.phones) + 1)

    def log_probs(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Frame log-posteriors ``(B, T, len(phones) + 1)`` of log-mels ``(B, T, n_mels)``."""
        mask = frame_mask(lengths, mel.shape[1], device=mel.device)
        if mask is None:
            mel = mel - mel.mean(1, keepdim=True)
        else:
            mel = (mel - (mel * mask).sum(1, keepdim=True) / mask.sum(1, keepdim=True).clamp(min=1.0)) * mask
        h = self.blocks(self.front(mel.transpose(1, 2))).transpose(1, 2)  # (B, T, C)
        return F.log_softmax(self.out(F.dropout(h, self.cfg.dropout, self.training)), dim=-1)

    @torch.no_grad()
    def recognize(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[str]]:
        """Greedy phone sequences of log-mels ``(B, T, n_mels)``."""
        return [[self.cfg.phones[i - 1] for i in seq] for seq in greedy_ctc_decode(self.log_probs(mel, lengths), lengths)]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        if "phones" not in batch or "wave" not in batch:
            raise ConfigError("the phone recogniser trains on waves with phone sequences (batch keys wave, phones)",
                              field="data.input")
        mel = self.mel(batch["wave"])
        frames = self.mel.frame_lengths(batch["lengths"]) if "lengths" in batch else torch.full(
            (mel.shape[0],), mel.shape[1], dtype=torch.long)
        lp = self.log_probs(mel, frames)  # (B, T, V)
        targets = batch["phones"].clamp(min=0) + 1  # inventory index -> output index
        loss = F.ctc_loss(lp.transpose(0, 1), targets, frames, batch["phone_lengths"], blank=0,
                          reduction="mean", zero_infinity=True)
        return {"loss": loss}


@register_model("phone_ctc", config=PhoneCTCConfig)
def build_phone_ctc(cfg: PhoneCTCConfig, *, input_dim: int | None = None) -> PhoneRecognizer:
    """Registry builder of ``phone_ctc`` (reads waves; ``input_dim`` unused)."""
    return PhoneRecognizer(cfg)
