"""Batched F0 tracking in torch, framed like :class:`speechrep.vocoder.mel.LogMel`.

A YIN-style tracker (de Cheveigné and Kawahara, 2002): for each frame, the difference
function ``d(tau) = 2 (r(0) - r(tau))`` from the autocorrelation ``r`` (computed with an
FFT and corrected for the shrinking overlap), its cumulative-mean normalisation
``d'(tau)``, and the first local minimum of ``d'`` below a threshold as the period,
refined by parabolic interpolation. Frames without such a minimum, or too quiet, are
unvoiced. It runs inside a model's forward pass on training crops, where a numpy
tracker per utterance would stall the loop; the evaluation's F0 metrics use pYIN.

:class:`PitchFeatures` turns the track into the two decoder inputs of a voice-conversion
model: log F0 normalised over the voiced frames of each utterance (so that the contour,
not the voice's pitch level or range, is passed on) and the voicing flag.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from speechrep.models.speaker import frame_mask

__all__ = ["PitchTracker", "PitchFeatures", "normalised_log_f0"]


class PitchTracker(nn.Module):
    """F0 of waves ``(B, samples)`` -> ``(B, 1 + samples // hop_length)`` in Hz, 0 where unvoiced.

    Frames are centred at ``i * hop_length`` (reflect padding), as in ``LogMel``.

    Parameters
    ----------
    sample_rate : Hz of the input.
    frame_length : samples per analysis frame (must hold two periods of ``fmin``).
    hop_length : samples between frame centres.
    fmin, fmax : search range in Hz.
    threshold : largest normalised difference ``d'`` accepted as a period.
    silence_db : frames whose energy is this far below the loudest frame of the utterance are unvoiced.
    floor_db : frames below this mean power (dB re full scale 1.0) are unvoiced, whatever the utterance.
    """

    def __init__(self, *, sample_rate: int = 16000, frame_length: int = 1024, hop_length: int = 160,
                 fmin: float = 60.0, fmax: float = 500.0, threshold: float = 0.35, silence_db: float = 40.0,
                 floor_db: float = -80.0):
        super().__init__()
        self.sample_rate = sample_rate
        self.frame_length = frame_length
        self.hop_length = hop_length
        self.min_lag = max(2, int(math.floor(sample_rate / fmax)))
        self.max_lag = int(math.ceil(sample_rate / fmin))
        if 2 * self.max_lag > frame_length:
            raise ValueError(f"frame_length {frame_length} is shorter than two periods of fmin {fmin} Hz")
        self.threshold = threshold
        self.silence_db = silence_db
        self.floor_db = floor_db

    def difference(self, frames: torch.Tensor) -> torch.Tensor:
        """Cumulative-mean normalised difference ``d'`` of frames ``(..., N)`` -> ``(..., max_lag + 2)``."""
        n = frames.shape[-1]
        frames = frames - frames.mean(-1, keepdim=True)
        spec = torch.fft.rfft(frames, n=2 * n)
        acf = torch.fft.irfft(spec.abs().square(), n=2 * n)[..., : self.max_lag + 2]
        lags = torch.arange(self.max_lag + 2, device=frames.device, dtype=frames.dtype)
        acf = acf * (n / (n - lags))  # the product at lag tau sums n - tau terms
        d = 2 * (acf[..., :1] - acf)
        cum = torch.cumsum(d[..., 1:], dim=-1) / lags[1:]
        return torch.cat([torch.ones_like(d[..., :1]), d[..., 1:] / cum.clamp(min=1e-12)], dim=-1)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # noqa: D102  (documented on the class)
        if wave.dim() != 2:
            raise ValueError(f"wave must be (batch, samples), got shape {tuple(wave.shape)}")
        pad = self.frame_length // 2
        x = F.pad(wave.float()[:, None], (pad, pad), mode="reflect")[:, 0]
        frames = x.unfold(-1, self.frame_length, self.hop_length)  # (B, T, N)
        frames = frames[:, : 1 + wave.shape[1] // self.hop_length]
        dn = self.difference(frames)  # (B, T, L)
        lo, hi = self.min_lag, self.max_lag
        mid = dn[..., lo:hi + 1]
        below = mid < self.threshold
        local_min = (mid <= dn[..., lo - 1:hi]) & (mid <= dn[..., lo + 1:hi + 2])
        cand = below & local_min
        voiced = cand.any(-1)
        first = cand.float().argmax(-1)  # first candidate lag (index into mid)
        tau = first + lo
        # parabolic interpolation of d' around the chosen lag
        a = dn.gather(-1, (tau - 1)[..., None])[..., 0]
        b = dn.gather(-1, tau[..., None])[..., 0]
        c = dn.gather(-1, (tau + 1)[..., None])[..., 0]
        denom = a - 2 * b + c
        shift = torch.where(denom > 1e-12, 0.5 * (a - c) / denom.clamp(min=1e-12), torch.zeros_like(denom))
        period = tau.to(dn.dtype) + shift.clamp(-0.5, 0.5)
        energy = frames.square().mean(-1)
        loud = 10 * torch.log10(energy.clamp(min=1e-10))
        loud = (loud >= loud.amax(-1, keepdim=True) - self.silence_db) & (loud > self.floor_db)
        voiced = voiced & loud
        return torch.where(voiced, self.sample_rate / period, torch.zeros_like(period))


def normalised_log_f0(f0: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Per-utterance standardised log F0 and voicing: ``(B, T)`` Hz -> ``(B, T, 2)``.

    Channel 0 is ``(log f0 - mean) / std`` over the voiced frames among the first
    ``lengths`` of each utterance (0 where unvoiced); channel 1 is 1 where voiced. An
    utterance with fewer than two voiced frames gets zeros in channel 0; the standard deviation
    is floored at 0.05 (about a semitone), so that a monotone voice keeps a flat contour.
    """
    mask = frame_mask(lengths, f0.shape[1], device=f0.device)
    voiced = f0 > 0
    if mask is not None:
        voiced = voiced & mask[..., 0].bool()
    v = voiced.to(f0.dtype)
    logf = torch.log(f0.clamp(min=1.0)) * v
    count = v.sum(1, keepdim=True)
    mean = logf.sum(1, keepdim=True) / count.clamp(min=1.0)
    var = ((logf - mean) * v).square().sum(1, keepdim=True) / count.clamp(min=1.0)
    std = var.sqrt().clamp(min=0.05)  # a monotone voice: no jitter blown up to unit variance
    z = torch.where(voiced & (count >= 2), (logf - mean) / std, torch.zeros_like(logf))
    return torch.stack([z, v], dim=-1)


class PitchFeatures(nn.Module):
    """Waves ``(B, samples)`` (+ sample lengths) -> normalised log F0 and voicing ``(B, T, 2)``."""

    def __init__(self, *, sample_rate: int = 16000, hop_length: int = 160):
        super().__init__()
        self.tracker = PitchTracker(sample_rate=sample_rate, hop_length=hop_length)

    @torch.no_grad()
    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102
        frames = None if lengths is None else 1 + lengths // self.tracker.hop_length
        return normalised_log_f0(self.tracker(wave), frames)
