"""The log-mel spectrogram shared by voice conversion, vocoders and VC scoring.

Voice-conversion models predict this representation, vocoders invert it, and the scorers
(speaker verification, phone recogniser) read it, so it is defined exactly once here:
16 kHz audio, 1024-point FFT with a 1024-sample Hann window, 10 ms hop (160 samples),
80 Slaney mel bands from 0 to 8 kHz on the *magnitude* spectrum, natural log with a floor
of 1e-5. Frame ``i`` is centred on sample ``i * hop_length`` (the signal is reflect-padded by
``n_fft // 2`` on both sides), so a wave of ``n`` samples gives ``1 + n // hop_length`` frames.

Two implementations with one filterbank: :func:`log_mel` (numpy, for files and scoring)
and :class:`LogMel` (torch, inside models during training); they agree to ~1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["MelSpec", "VC_MEL", "mel_filterbank", "stft_magnitude", "log_mel", "num_frames", "LogMel", "warp_frequency"]


@dataclass(frozen=True)
class MelSpec:
    """Parameters of a log-mel spectrogram.

    Attributes
    ----------
    sample_rate : Hz of the audio it describes.
    n_fft, win_length, hop_length : STFT size, Hann window length and hop, in samples.
    n_mels, fmin, fmax : mel bands (Slaney scale and area normalisation) and their range in Hz.
    log_floor : magnitudes below this are clipped before the natural log.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0
    log_floor: float = 1e-5

    @property
    def frame_shift(self) -> float:
        """Hop in seconds."""
        return self.hop_length / self.sample_rate

    @property
    def n_freqs(self) -> int:
        """Number of linear-frequency STFT bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def log_silence(self) -> float:
        """Log-mel value of digital silence, ``log(log_floor)``."""
        return float(np.log(self.log_floor))


VC_MEL = MelSpec()
"""The one log-mel definition used by VC models, vocoders and VC scorers."""


@lru_cache(maxsize=8)
def _filterbank(spec: MelSpec) -> np.ndarray:
    import librosa

    fb = librosa.filters.mel(
        sr=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, norm="slaney", htk=False
    )
    fb = fb.astype(np.float32)
    fb.setflags(write=False)
    return fb


def mel_filterbank(spec: MelSpec = VC_MEL) -> np.ndarray:
    """Mel filterbank of ``spec``.

    Returns
    -------
    np.ndarray
        ``(n_mels, n_fft // 2 + 1)`` float32, read-only.
    """
    return _filterbank(spec)


def num_frames(num_samples: int, spec: MelSpec = VC_MEL) -> int:
    """Frames of a wave of ``num_samples`` samples (centred frames)."""
    return 1 + num_samples // spec.hop_length


def stft_magnitude(wave: np.ndarray, spec: MelSpec = VC_MEL) -> np.ndarray:
    """Magnitude STFT with the framing of ``spec``.

    Parameters
    ----------
    wave : ``(num_samples,)`` float.

    Returns
    -------
    np.ndarray
        ``(num_frames, n_fft // 2 + 1)`` float32.
    """
    import librosa

    stft = librosa.stft(
        np.asarray(wave, dtype=np.float32),
        n_fft=spec.n_fft,
        hop_length=spec.hop_length,
        win_length=spec.win_length,
        window="hann",
        center=True,
        pad_mode="reflect",
    )
    return np.abs(stft).T.astype(np.float32)


def log_mel(wave: np.ndarray, spec: MelSpec = VC_MEL) -> np.ndarray:
    """Log-mel spectrogram of a mono wave at ``spec.sample_rate``.

    Parameters
    ----------
    wave : ``(num_samples,)`` float, at least 2 samples.

    Returns
    -------
    np.ndarray
        ``(1 + num_samples // hop_length, n_mels)`` float32.
    """
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"log_mel expects a 1-D wave, got shape {wave.shape}")
    mag = stft_magnitude(wave, spec)  # (T, F)
    mel = mag @ mel_filterbank(spec).T  # (T, n_mels)
    return np.log(np.maximum(mel, spec.log_floor)).astype(np.float32)


class LogMel(torch.nn.Module):
    """Torch version of :func:`log_mel` for batches (no trainable parameters).

    ``forward(wave)`` maps ``(batch, num_samples)`` to ``(batch, num_frames, n_mels)``.
    Use :meth:`frame_lengths` to turn sample lengths into frame lengths.

    ``forward(wave, warp=alpha)`` with factors ``alpha`` ``(batch,)`` first stretches each
    utterance's magnitude spectrum along frequency, ``|S'(f)| = |S(f / alpha)|`` (linear
    interpolation between STFT bins; past the Nyquist frequency the last bin is repeated):
    formants and harmonics move up by ``alpha`` > 1 and down by ``alpha`` < 1, as with a
    shorter or longer vocal tract (vocal-tract length perturbation).
    """

    def __init__(self, spec: MelSpec = VC_MEL):
        super().__init__()
        self.spec = spec
        self.register_buffer("fb", torch.from_numpy(np.array(mel_filterbank(spec))), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.win_length, periodic=True), persistent=False)

    def forward(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102  (on the class)
        s = self.spec
        stft = torch.stft(
            wave.float(),
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, F, T)
        mag = stft.abs().transpose(1, 2)  # (B, T, F)
        if warp is not None:
            mag = warp_frequency(mag, warp)
        return torch.log(torch.clamp(mag @ self.fb.T, min=s.log_floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per utterance for sample lengths ``(batch,)`` int64."""
        return 1 + lengths // self.spec.hop_length


def warp_frequency(mag: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """Magnitude spectra ``(B, T, F)`` stretched along frequency by ``warp`` ``(B,)``:
    bin ``g`` of the output reads bin ``g / warp`` of the input (linearly interpolated,
    the last bin repeated past the end)."""
    n = mag.shape[-1]
    pos = (torch.arange(n, device=mag.device, dtype=mag.dtype)[None, :] / warp.to(mag.dtype)[:, None]).clamp(max=n - 1)
    lo = pos.floor().long()  # (B, F)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(mag.dtype))[:, None, :]  # (B, 1, F)
    index = lambda i: i[:, None, :].expand(-1, mag.shape[1], -1)  # noqa: E731
    return torch.gather(mag, 2, index(lo)) * (1 - frac) + torch.gather(mag, 2, index(hi)) * frac
