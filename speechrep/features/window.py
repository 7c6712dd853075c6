"""Analysis windows of Kaldi's feature extraction (``feature-window.cc``)."""

from __future__ import annotations

import functools

import numpy as np

from speechrep.errors import ConfigError

__all__ = ["WINDOW_TYPES", "feature_window"]

WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "blackman", "sine")


@functools.lru_cache(maxsize=64)
def feature_window(window_type: str, frame_length: int, *, blackman_coeff: float = 0.42) -> np.ndarray:
    """Kaldi's analysis window.

    Parameters
    ----------
    window_type : one of ``povey`` (Hann raised to 0.85, Kaldi's default), ``hamming``,
        ``hanning``, ``rectangular``, ``blackman``, ``sine``.
    frame_length : window length in samples.
    blackman_coeff : ``a0`` of the generalised Blackman window.

    Returns
    -------
    np.ndarray
        ``(frame_length,)`` float32, read-only (cached).

    Notes
    -----
    Kaldi's windows are symmetric (``a = 2 pi / (N - 1)``), unlike the periodic windows of
    librosa/scipy ``fftbins=True``.
    """
    if window_type not in WINDOW_TYPES:
        raise ConfigError(f"unknown window type {window_type!r} (choose from {', '.join(WINDOW_TYPES)})", field="window_type")
    if frame_length < 1:
        raise ConfigError(f"window must have at least one sample, got {frame_length}", field="frame_length")
    i = np.arange(frame_length, dtype=np.float64)
    # N = 1 would divide by zero; Kaldi has the same formula, a one-sample window is 1 there
    a = 2.0 * np.pi / max(frame_length - 1, 1)
    if window_type == "hanning":
        w = 0.5 - 0.5 * np.cos(a * i)
    elif window_type == "sine":
        w = np.sin(0.5 * a * i)
    elif window_type == "hamming":
        w = 0.54 - 0.46 * np.cos(a * i)
    elif window_type == "povey":
        w = (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    elif window_type == "rectangular":
        w = np.ones(frame_length)
    else:  # blackman
        w = blackman_coeff - 0.5 * np.cos(a * i) + (0.5 - blackman_coeff) * np.cos(2.0 * a * i)
    w = w.astype(np.float32)
    w.flags.writeable = False
    return w
