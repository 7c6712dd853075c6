"""Mel filter banks: Kaldi's (``mel-computations.cc``) and librosa's (slaney/htk).

Filters are stored dense, ``(num_bins, num_fft_bins)``, but each row is non-zero on one
contiguous run of FFT bins only; :func:`apply_filters` visits only that run, which makes
the mel projection a few operations per FFT bin instead of a full matrix product.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
from numba import njit

from speechrep.errors import ConfigError
from speechrep.features.framing import FLOAT_EPS, extract_frames, log_floor_

__all__ = [
    "kaldi_mel_scale",
    "kaldi_inverse_mel_scale",
    "kaldi_mel_banks",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filters",
    "apply_filters",
    "power_spectrum",
    "stft",
    "melspectrogram",
]


def kaldi_mel_scale(freq: np.ndarray | float) -> np.ndarray | float:
    """Kaldi's mel scale, ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def kaldi_inverse_mel_scale(mel: np.ndarray | float) -> np.ndarray | float:
    """Inverse of :func:`kaldi_mel_scale`."""
    return 700.0 * (np.exp(np.asarray(mel, dtype=np.float64) / 1127.0) - 1.0)


def resolve_band(low_freq: float, high_freq: float, sample_frequency: float) -> tuple[float, float]:
    """Kaldi's band edges: ``high_freq <= 0`` means ``nyquist + high_freq``; checked."""
    nyquist = 0.5 * sample_frequency
    high = high_freq if high_freq > 0.0 else nyquist + high_freq
    if low_freq < 0.0 or low_freq >= nyquist:
        raise ConfigError(f"low_freq {low_freq} must be in [0, nyquist={nyquist})", field="low_freq")
    if high <= 0.0 or high > nyquist or high <= low_freq:
        raise ConfigError(
            f"high_freq {high_freq} gives {high} Hz, which must lie in (low_freq={low_freq}, nyquist={nyquist}]",
            field="high_freq",
        )
    return float(low_freq), float(high)


@functools.lru_cache(maxsize=32)
def kaldi_mel_banks(
    num_bins: int, padded_window_size: int, *, sample_frequency: float = 16000.0, low_freq: float = 20.0, high_freq: float = 0.0
) -> np.ndarray:
    """Kaldi's triangular mel filters (no VTLN warping).

    Parameters
    ----------
    num_bins : number of mel bins.
    padded_window_size : FFT size.
    sample_frequency : Hz.
    low_freq, high_freq : band edges in Hz; ``high_freq <= 0`` is an offset from Nyquist.

    Returns
    -------
    np.ndarray
        ``(num_bins, padded_window_size // 2 + 1)`` float32, read-only. Triangles are equally
        spaced on Kaldi's mel scale and weight FFT bins by their mel distance; the Nyquist bin
        gets weight zero, as in Kaldi.
    """
    if num_bins < 3:
        raise ConfigError(f"num_mel_bins must be at least 3, got {num_bins}", field="num_mel_bins")
    low, high = resolve_band(low_freq, high_freq, sample_frequency)
    mel_low, mel_high = kaldi_mel_scale(low), kaldi_mel_scale(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    n_fft_bins = padded_window_size // 2
    mel = kaldi_mel_scale(np.arange(n_fft_bins) * (sample_frequency / padded_window_size))
    left = mel_low + np.arange(num_bins)[:, None] * delta
    center, right = left + delta, left + 2.0 * delta
    rising = (mel - left) / (center - left)
    falling = (right - mel) / (right - center)
    weights = np.where(mel <= center, rising, falling)
    weights = np.where((mel > left) & (mel < right), weights, 0.0)
    if np.any(weights.sum(axis=1) == 0.0):
        raise ConfigError(
            f"{num_bins} mel bins are too many for an FFT of {padded_window_size} points (some bins are empty)",
            field="num_mel_bins",
        )
    out = np.zeros((num_bins, n_fft_bins + 1), np.float32)
    out[:, :n_fft_bins] = weights
    out.flags.writeable = False
    return out


def hz_to_mel(freq: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """librosa's mel scale: HTK ``2595 log10(1 + f/700)`` or Slaney's (linear below 1 kHz)."""
    f = np.asarray(freq, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    mel = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mel)


def mel_to_hz(mel: np.ndarray | float, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=32)
def mel_filters(
    *, sample_rate: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0, fmax: float | None = None, htk: bool = False, norm: str | None = "slaney"
) -> np.ndarray:
    """librosa-compatible mel filters (``librosa.filters.mel``).

    Parameters
    ----------
    sample_rate : Hz.
    n_fft : FFT size.
    n_mels : number of filters.
    fmin, fmax : band in Hz (``fmax=None``: Nyquist).
    htk : HTK mel scale instead of Slaney's.
    norm : ``"slaney"`` (each triangle has unit area in Hz) or None (peak 1).

    Returns
    -------
    np.ndarray
        ``(n_mels, n_fft // 2 + 1)`` float32, read-only.
    """
    if norm not in ("slaney", None):
        raise ConfigError(f"norm must be 'slaney' or None, got {norm!r}", field="norm")
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


def _support(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[first, last)`` non-zero FFT bins of each filter (empty rows: ``[0, 0)``)."""
    nz = filters != 0.0
    any_nz = nz.any(axis=1)
    first = np.where(any_nz, nz.argmax(axis=1), 0)
    last = np.where(any_nz, filters.shape[1] - nz[:, ::-1].argmax(axis=1), 0)
    return first.astype(np.int64), last.astype(np.int64)


@njit(cache=True)
def _power_kernel(spec, use_power, out):
    n, k = spec.shape
    for f in range(n):
        for j in range(k):
            re = spec[f, j].real
            im = spec[f, j].imag
            p = re * re + im * im
            out[f, j] = p if use_power else np.sqrt(p)


@njit(cache=True)
def _mel_kernel(spec, use_power, weights, first, last, offset, out):
    # power (or magnitude) of the FFT bins, then each filter over its support only
    n, k = spec.shape
    nb = weights.shape[0]
    p = np.empty(k, np.float32)
    for f in range(n):
        for j in range(k):
            re = spec[f, j].real
            im = spec[f, j].imag
            v = re * re + im * im
            p[j] = v if use_power else np.sqrt(v)
        for b in range(nb):
            acc = np.float32(0.0)
            for j in range(first[b], last[b]):
                acc += weights[b, j] * p[j]
            out[f, offset + b] = acc


def apply_filters(
    spec: np.ndarray, filters: np.ndarray, *, use_power: bool = True, use_log: bool = False, floor: float = FLOAT_EPS, offset: int = 0, out: np.ndarray | None = None
) -> np.ndarray:
    """Mel energies of a complex spectrum: ``log(max(filters @ |spec|^p, floor))``.

    Parameters
    ----------
    spec : ``(num_frames, num_fft_bins)`` complex64, the rfft of the frames.
    filters : ``(num_bins, num_fft_bins)`` float32, each row non-zero on one run of bins.
    use_power : power spectrum (True) or magnitude (False).
    use_log : take ``log(max(x, floor))``.
    offset : first output column to write (Kaldi puts the energy in column 0).
    out : ``(num_frames, >= offset + num_bins)`` float32 to fill, or None for a new one.

    Returns
    -------
    np.ndarray
        ``out``, ``(num_frames, offset + num_bins)`` float32 by default.
    """
    if out is None:
        out = np.empty((spec.shape[0], offset + filters.shape[0]), np.float32)
    filters = np.ascontiguousarray(filters, np.float32)
    first, last = _support(filters)
    _mel_kernel(spec, bool(use_power), filters, first, last, int(offset), out)
    if use_log:
        log_floor_(out[:, offset : offset + filters.shape[0]], floor)
    return out


def power_spectrum(spec: np.ndarray, *, use_power: bool = True, use_log: bool = False, floor: float = FLOAT_EPS) -> np.ndarray:
    """``|spec|^2`` (or ``|spec|``, optionally ``log(max(., floor))``) as float32.

    ``spec`` is ``(num_frames, num_fft_bins)`` complex64; so is the shape of the result.
    """
    out = np.empty(spec.shape, np.float32)
    _power_kernel(spec, bool(use_power), out)
    if use_log:
        log_floor_(out, floor)
    return out


def stft(
    y: np.ndarray,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
) -> np.ndarray:
    """Complex STFT with librosa's conventions (``librosa.stft``), frames first.

    Parameters
    ----------
    y : ``(num_samples,)`` waveform.
    n_fft, hop_length, win_length, window, center, pad_mode : as in ``librosa.stft``
        (periodic ``scipy.signal.get_window`` window centred in ``n_fft``).

    Returns
    -------
    np.ndarray
        ``(num_frames, n_fft // 2 + 1)`` complex64.
    """
    y = np.ascontiguousarray(y, np.float32)
    if y.ndim != 1:
        raise ConfigError(f"expected a 1-D waveform, got shape {y.shape}", field="y")
    win = _centred_window(window, win_length or n_fft, n_fft)
    if center:
        y = np.ascontiguousarray(np.pad(y, n_fft // 2, mode=pad_mode), np.float32)
    if y.shape[0] < n_fft:
        raise ConfigError(f"signal of {y.shape[0]} samples is shorter than n_fft={n_fft}", field="n_fft")
    frames, _ = extract_frames(
        y, frame_length=n_fft, frame_shift=hop_length, padded_length=n_fft, window=win,
        remove_dc_offset=False, preemphasis_coefficient=0.0,
    )
    return scipy.fft.rfft(frames, axis=1)


@functools.lru_cache(maxsize=8)
def _centred_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    import scipy.signal  # slow to import; only the librosa-style STFT needs it

    win = scipy.signal.get_window(window, win_length, fftbins=True)
    left = (n_fft - win_length) // 2
    win = np.pad(win, (left, n_fft - win_length - left)).astype(np.float32)
    win.flags.writeable = False
    return win


def melspectrogram(
    y: np.ndarray,
    *,
    sr: float = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    win_length: int | None = None,
    window: str = "hann",
    center: bool = True,
    pad_mode: str = "constant",
    power: float = 2.0,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> np.ndarray:
    """Mel power spectrogram with librosa's conventions (``librosa.feature.melspectrogram``).

    Parameters
    ----------
    y : ``(num_samples,)`` waveform.
    sr, n_fft, hop_length, win_length, window, center, pad_mode : as in :func:`stft`.
    power : 2.0 (power) or 1.0 (magnitude).
    n_mels, fmin, fmax, htk, norm : as in :func:`mel_filters`.

    Returns
    -------
    np.ndarray
        ``(num_frames, n_mels)`` float32: librosa's output transposed (frames first, like
        every feature in this package).
    """
    if power not in (1.0, 2.0):
        raise ConfigError(f"power must be 1.0 or 2.0, got {power}", field="power")
    spec = stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window, center=center, pad_mode=pad_mode)
    filters = mel_filters(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    return apply_filters(spec, filters, use_power=power == 2.0)
