"""Batched F0 tracking in torch, framed like :class:`speechrep.models.frontend.LogMel`.

A YIN-style tracker (de Cheveigné and Kawahara, 2002): for each frame, the difference
function ``d(tau) = 2 (r(0) - r(tau))`` from the autocorrelation ``r`` (computed with an
FFT and corrected for the shrinking overlap), its cumulative-mean normalisation
``d'(tau)``, and the first local minimum of ``d'`` below a threshold as the period,
refined by parabolic interpolation. Frames without such a minimum, or too quiet, are
unvoiced. It runs inside a model's forward pass on training crops, where a numpy
tracker per utterance would stall the loop, and it is the tracker of the evaluation's
log-F0 metrics too (:func:`estimate_f0`, one utterance, numpy in and out): one F0 for
the whole library.

:class:`PitchFeatures` turns a track into the pitch input of a voice-conversion decoder:
the contour (log F0 standardised over the voiced frames of each utterance, without the
voice's level and range) or the log-mel of a pulse train at the F0 (where the harmonics
fall), each with the voicing flag.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechrep.models.speaker import frame_mask
from speechrep.features.logmel import MelSpec
from speechrep.models.frontend import LogMel

__all__ = ["PitchTracker", "estimate_f0", "PitchFeatures", "normalised_log_f0", "log_f0_stats", "convert_f0", "harmonic_excitation"]


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


def estimate_f0(wave: np.ndarray, *, sample_rate: int = 16000, hop_length: int = 160,
                fmin: float = 60.0, fmax: float = 500.0) -> np.ndarray:
    """F0 track of one utterance by :class:`PitchTracker`, one value per frame centred at ``i * hop_length``.

    Parameters
    ----------
    wave : (samples,) waveform.

    Returns
    -------
    np.ndarray
        ``(1 + samples // hop_length,)`` float64 in Hz, NaN where unvoiced (all NaN for
        a wave shorter than half an analysis frame).
    """
    tracker = PitchTracker(sample_rate=sample_rate, hop_length=hop_length, fmin=fmin, fmax=fmax)
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    frames = 1 + len(wave) // hop_length
    if len(wave) <= tracker.frame_length // 2:  # too short to reflect-pad a centred frame
        return np.full(frames, np.nan)
    with torch.no_grad():
        f0 = tracker(torch.from_numpy(wave)[None])[0].double().numpy()
    return np.where(f0 > 0, f0, np.nan)


def _voiced(f0: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """Voiced frames ``(B, T)`` bool among the first ``lengths`` of each utterance."""
    mask = frame_mask(lengths, f0.shape[1], device=f0.device)
    voiced = f0 > 0
    return voiced if mask is None else voiced & mask[..., 0].bool()


def log_f0_stats(f0: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Location and spread of log F0 over the voiced frames: ``(B, T)`` Hz -> ``(B, 2)``.

    Median and 1.4826 x the median absolute deviation (the standard deviation of a normal
    distribution, but not dragged by the octave errors of a tracker). The spread is floored
    at 0.05 (about a semitone), so that a monotone voice keeps a flat contour; an utterance
    without voiced frames gets location 0.
    """
    voiced = _voiced(f0, lengths)
    logf = torch.where(voiced, torch.log(f0.clamp(min=1.0)), torch.full_like(f0, float("nan")))
    centre = torch.nanmedian(logf, dim=1).values
    spread = 1.4826 * torch.nanmedian((logf - centre[:, None]).abs(), dim=1).values
    none = ~voiced.any(1)
    centre = torch.where(none, torch.zeros_like(centre), centre)
    spread = torch.where(none, torch.zeros_like(spread), spread)
    return torch.stack([centre, spread.clamp(min=0.05)], dim=-1)


def normalised_log_f0(f0: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Per-utterance standardised log F0 and voicing: ``(B, T)`` Hz -> ``(B, T, 2)``.

    Channel 0 is ``(log f0 - m) / s`` with the :func:`log_f0_stats` ``m, s`` of the voiced
    frames among the first ``lengths`` of each utterance (0 where unvoiced); channel 1 is 1
    where voiced. An utterance with fewer than two voiced frames gets zeros in channel 0.
    """
    voiced = _voiced(f0, lengths)
    stats = log_f0_stats(f0, lengths)
    z = (torch.log(f0.clamp(min=1.0)) - stats[:, :1]) / stats[:, 1:]
    enough = voiced.sum(1, keepdim=True) >= 2
    z = torch.where(voiced & enough, z, torch.zeros_like(z))
    return torch.stack([z, voiced.to(f0.dtype)], dim=-1)


def convert_f0(f0: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Map each utterance's log F0 to a target voice's statistics; unvoiced frames stay 0.

    ``f0`` ``(B, T)`` Hz, ``target`` ``(B, 2)`` log-F0 location and spread
    (:func:`log_f0_stats` of the target's speech): ``log f0' = (log f0 - m) / s * s_t + m_t``
    with the source's own ``m, s`` (the classic linear transform of voice conversion).
    """
    voiced = _voiced(f0, lengths)
    src = log_f0_stats(f0, lengths)
    z = (torch.log(f0.clamp(min=1.0)) - src[:, :1]) / src[:, 1:]
    out = torch.exp(z * target[:, 1:] + target[:, :1])
    return torch.where(voiced, out, torch.zeros_like(out))


def harmonic_excitation(f0: torch.Tensor, *, hop_length: int, sample_rate: int) -> torch.Tensor:
    """Pulse train following an F0 track: ``(B, T)`` Hz (0 = unvoiced) -> ``(B, (T - 1) * hop_length)``.

    F0 is interpolated linearly between frame centres ``i * hop_length``; a unit pulse is
    placed each time the running phase completes a period, and unvoiced stretches are
    silent. Its spectrum is a flat comb at the harmonics of F0: what a source-filter
    decoder shapes with the voice's spectral envelope.
    """
    B, T = f0.shape
    samples = (T - 1) * hop_length
    if samples <= 0:
        return f0.new_zeros(B, 0)
    per_sample = F.interpolate(f0[:, None], size=samples + 1, mode="linear", align_corners=True)[:, 0, :samples]
    voiced = (f0 > 0).repeat_interleave(hop_length, dim=1)[:, :samples]
    # a voiced frame next to an unvoiced one interpolates towards 0 Hz: use its own value instead
    nearest = f0.repeat_interleave(hop_length, dim=1)[:, :samples]
    per_sample = torch.where(voiced & (per_sample > 0.5 * nearest), per_sample, nearest)
    phase = torch.cumsum(per_sample.double() / sample_rate, dim=1)
    pulses = torch.diff(torch.floor(phase), dim=1, prepend=torch.zeros_like(phase[:, :1])) > 0
    return (pulses & voiced).to(f0.dtype)


class PitchFeatures(nn.Module):
    """Decoder pitch input of a voice-conversion model, from F0 tracks.

    ``mode="contour"``: :func:`normalised_log_f0` ``(B, T, 2)``, the contour without the
    voice's level and range. ``mode="excitation"``: the log-mel (of ``spec``, normalised
    with ``mel_scale``) of the :func:`harmonic_excitation` of the F0 track, and the voicing
    flag, ``(B, T, n_mels + 1)``: where the harmonics of the voice fall, explicitly.
    """

    def __init__(self, mode: str, *, spec: MelSpec,
                 mel_scale: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        if mode not in ("contour", "excitation"):
            raise ValueError(f"unknown pitch mode {mode!r} (contour, excitation)")
        self.mode = mode
        self.spec = spec
        self.tracker = PitchTracker(sample_rate=spec.sample_rate, hop_length=spec.hop_length)
        self.mel = LogMel(spec) if mode == "excitation" else None
        self.mel_scale = mel_scale

    @property
    def channels(self) -> int:
        """Channels of the features."""
        return 2 if self.mode == "contour" else self.spec.n_mels + 1

    @torch.no_grad()
    def track(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """F0 ``(B, T)`` of waves ``(B, samples)`` (0 past the sample ``lengths``) and the frame lengths."""
        f0 = self.tracker(wave)
        frames = None if lengths is None else 1 + lengths // self.tracker.hop_length
        return torch.where(_voiced(f0, frames), f0, torch.zeros_like(f0)), frames

    @torch.no_grad()
    def forward(self, f0: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Features ``(B, T, channels)`` of F0 tracks ``(B, T)`` (valid frame ``lengths``)."""
        if self.mode == "contour":
            return normalised_log_f0(f0, lengths)
        exc = harmonic_excitation(f0, hop_length=self.spec.hop_length, sample_rate=self.spec.sample_rate)
        # silence after the end: a track of a few frames still gets one log-mel frame per F0 frame
        exc = F.pad(exc, (0, max(0, self.spec.n_fft // 2 + 1 - exc.shape[1])))
        mel = self.mel(exc)[:, : f0.shape[1]]
        if self.mel_scale is not None:
            mel = self.mel_scale(mel)
        return torch.cat([mel, (f0 > 0).to(mel.dtype)[..., None]], dim=-1)
