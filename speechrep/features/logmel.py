"""The log-mel spectrogram shared by voice conversion, vocoders and VC scoring (numpy).

Voice-conversion models predict this representation, vocoders invert it, and the scorers
(speaker verification, phone recogniser) read it, so it is defined exactly once:
16 kHz audio, 1024-point FFT with a 1024-sample Hann window, 10 ms hop (160 samples),
80 Slaney mel bands from 0 to 8 kHz on the *magnitude* spectrum, natural log with a floor
of 1e-5. Frame ``i`` is centred on sample ``i * hop_length`` (the signal is reflect-padded by
``n_fft // 2`` on both sides), so a wave of ``n`` samples gives ``1 + n // hop_length`` frames.

The filterbank and STFT are the librosa-compatible ones of :mod:`speechrep.features.mel`;
the torch front end of the models (:class:`speechrep.models.frontend.LogMel`) uses the same
filterbank, and the two agree to ~1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speechrep.features.mel import mel_filters, stft

__all__ = ["MelSpec", "VC_MEL", "mel_filterbank", "stft_magnitude", "log_mel", "num_frames"]


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


def mel_filterbank(spec: MelSpec = VC_MEL) -> np.ndarray:
    """Mel filterbank of ``spec`` (Slaney scale and norm, as ``librosa.filters.mel``).

    Returns
    -------
    np.ndarray
        ``(n_mels, n_fft // 2 + 1)`` float32, read-only.
    """
    return mel_filters(sample_rate=spec.sample_rate, n_fft=spec.n_fft, n_mels=spec.n_mels, fmin=spec.fmin, fmax=spec.fmax, norm="slaney")


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
    spectrum = stft(wave, n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.win_length, window="hann",
                    center=True, pad_mode="reflect")
    return np.abs(spectrum).astype(np.float32)


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
    mel = stft_magnitude(wave, spec) @ mel_filterbank(spec).T  # (T, n_mels)
    return np.log(np.maximum(mel, spec.log_floor)).astype(np.float32)
