"""Griffin-Lim vocoder: mel inversion by non-negative least squares, then phase recovery.

1. Mel to linear magnitude: for every frame solve ``min_S ||F S - M||^2`` subject to
   ``S >= 0`` (``F`` the mel filterbank, ``M = exp(log-mel)``), starting from the clipped
   pseudo-inverse solution and refining it with projected gradient steps of size ``1/L``
   (``L = ||F||_2^2``, the Lipschitz constant of the gradient).
2. Phase: fast Griffin-Lim (Perraudin, Balazs and Søndergaard, 2013): alternate projections
   onto consistent STFTs and onto the target magnitude, with momentum.
"""

from __future__ import annotations

import numpy as np

from speechrep.vocoder.base import Vocoder, check_mel
from speechrep.vocoder.mel import VC_MEL, MelSpec, mel_filterbank

__all__ = ["GriffinLim", "mel_to_linear", "griffin_lim"]


def mel_to_linear(mel_magnitude: np.ndarray, spec: MelSpec = VC_MEL, *, n_iter: int = 100) -> np.ndarray:
    """Non-negative least-squares inversion of the mel filterbank.

    Parameters
    ----------
    mel_magnitude : ``(num_frames, n_mels)`` non-negative mel magnitudes (not logs).
    n_iter : projected-gradient refinements after the pseudo-inverse start.

    Returns
    -------
    np.ndarray
        ``(num_frames, n_fft // 2 + 1)`` float32 non-negative linear magnitudes.
    """
    fb = mel_filterbank(spec).astype(np.float64)  # (M, F)
    target = np.asarray(mel_magnitude, dtype=np.float64).T  # (M, T)
    s = np.maximum(np.linalg.pinv(fb) @ target, 0.0)  # (F, T)
    step = 1.0 / np.linalg.norm(fb, 2) ** 2
    gram, rhs = fb.T @ fb, fb.T @ target  # gradient = gram @ s - rhs
    for _ in range(n_iter):
        s = np.maximum(s - step * (gram @ s - rhs), 0.0)
    return s.T.astype(np.float32)


def griffin_lim(
    magnitude: np.ndarray,
    spec: MelSpec = VC_MEL,
    *,
    n_iter: int = 60,
    momentum: float = 0.99,
    seed: int = 0,
) -> np.ndarray:
    """Fast Griffin-Lim phase reconstruction.

    Parameters
    ----------
    magnitude : ``(num_frames, n_fft // 2 + 1)`` linear STFT magnitudes framed as in ``spec``.
    n_iter : projection iterations.
    momentum : the fast Griffin-Lim extrapolation factor (0 gives classic Griffin-Lim).
    seed : seed of the random initial phase.

    Returns
    -------
    np.ndarray
        ``((num_frames - 1) * hop_length,)`` float32.
    """
    import librosa

    mag = np.asarray(magnitude, dtype=np.float32).T  # (F, T)
    length = (mag.shape[1] - 1) * spec.hop_length
    stft_kw = dict(n_fft=spec.n_fft, hop_length=spec.hop_length, win_length=spec.win_length, window="hann", center=True)
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(mag.shape)).astype(np.complex64)
    previous = np.zeros_like(angles)
    for _ in range(n_iter):
        wave = librosa.istft(mag * angles, length=length, **stft_kw)
        rebuilt = librosa.stft(wave, pad_mode="reflect", **stft_kw)
        # momentum extrapolates along the last update before projecting onto the magnitude again
        angles = rebuilt - (momentum / (1.0 + momentum)) * previous
        angles /= np.maximum(np.abs(angles), 1e-16)
        previous = rebuilt
    return librosa.istft(mag * angles, length=length, **stft_kw).astype(np.float32)


class GriffinLim(Vocoder):
    """Training-free vocoder: :func:`mel_to_linear` then :func:`griffin_lim`.

    Parameters
    ----------
    spec : the log-mel definition to invert.
    n_iter : Griffin-Lim iterations.
    nnls_iter : projected-gradient steps of the mel inversion.
    """

    def __init__(self, spec: MelSpec = VC_MEL, *, n_iter: int = 60, nnls_iter: int = 100):
        self.spec = spec
        self.n_iter = n_iter
        self.nnls_iter = nnls_iter

    def mel_to_wave(self, mel: np.ndarray) -> np.ndarray:  # noqa: D102  (see Vocoder)
        mel = check_mel(mel, self.spec)
        linear = mel_to_linear(np.exp(mel), self.spec, n_iter=self.nnls_iter)
        wave = griffin_lim(linear, self.spec, n_iter=self.n_iter)
        return np.clip(wave, -1.0, 1.0)
