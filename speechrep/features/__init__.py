"""Kaldi-compatible speech features in numpy + numba (no torch).

Public functions take a waveform or a feature matrix and keyword-only options with
Kaldi's (or librosa's) names and defaults, and return float32 ``(num_frames, dim)`` arrays.
Their numba kernels are compiled once and cached on disk; :func:`warmup` compiles (or loads)
them all, so that the first real call in a new process is fast.
"""

from __future__ import annotations

from speechrep.features.cmvn import accumulate_cmvn_stats, apply_cmvn, compute_cmvn_stats
from speechrep.features.deltas import add_deltas
from speechrep.features.kaldi import fbank, mfcc, spectrogram
from speechrep.features.mel import kaldi_mel_banks, mel_filters, melspectrogram
from speechrep.features.stack import stack_frames, subsample_frames
from speechrep.features.window import feature_window

__all__ = [
    "fbank",
    "mfcc",
    "spectrogram",
    "melspectrogram",
    "mel_filters",
    "kaldi_mel_banks",
    "feature_window",
    "compute_cmvn_stats",
    "accumulate_cmvn_stats",
    "apply_cmvn",
    "add_deltas",
    "stack_frames",
    "subsample_frames",
    "warmup",
]


def warmup() -> None:
    """Compile (first time) or load (from numba's cache) every feature kernel."""
    import numpy as np

    wave = np.random.default_rng(0).standard_normal(800).astype(np.float32)
    fbank(wave, dither=1.0)
    mfcc(wave, dither=0.0, use_energy=False)
    spectrogram(wave, dither=0.0)
    melspectrogram(wave, sr=16000, n_fft=256, hop_length=128, n_mels=20)
    add_deltas(fbank(wave, dither=0.0), order=1, window=1)
