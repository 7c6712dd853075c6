"""Griffin-Lim vocoder: mel inversion by non-negative least squares, then phase recovery.

1. Mel to linear magnitude: for every frame solve ``min_S ||F S - M||^2`` subject to
   ``S >= 0`` (``F`` the mel filterbank, ``M = exp(log-mel)``), starting from the clipped
   pseudo-inverse solution and refining it with projected gradient steps of size ``1/L``
   (``L = ||F||_2^2``, the Lipschitz constant of the gradient).
2. Phase: fast Griffin-Lim (Perraudin, Balazs and Søndergaard, 2013): alternate projections
   onto consistent STFTs and onto the target magnitude, with momentum.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from speechrep.vocoder.base import Vocoder, check_mel
from speechrep.features.logmel import VC_MEL, MelSpec, mel_filterbank

__all__ = ["GriffinLim", "mel_to_linear", "griffin_lim"]


@lru_cache(maxsize=4)
def _pinv(spec: MelSpec) -> np.ndarray:
    return np.linalg.pinv(mel_filterbank(spec).astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=4)
def _sparse_filterbank(spec: MelSpec):
    """The mel filterbank and its transpose as sparse float32 matrices (each triangle spans a
    few bins, so products with them cost ~1/40 of the dense ones at 80 x 513), and the
    projected-gradient step 1 / ||F||_2^2."""
    from scipy import sparse

    dense = np.asarray(mel_filterbank(spec), dtype=np.float32)
    fb = sparse.csr_matrix(dense)
    return fb, fb.T.tocsr(), np.float32(1.0 / np.linalg.norm(dense, 2) ** 2)


class _STFT:
    """Centred STFT / inverse STFT pair for a fixed signal length, with its window and
    overlap normalisation computed once (Griffin-Lim calls both many times)."""

    def __init__(self, spec: MelSpec, num_frames: int):
        import librosa

        self.n_fft, self.hop = spec.n_fft, spec.hop_length
        self.length = (num_frames - 1) * spec.hop_length
        self.num_frames = num_frames
        self.window = librosa.filters.get_window("hann", spec.win_length, fftbins=True).astype(np.float32)
        self.window = librosa.util.pad_center(self.window, size=spec.n_fft)
        # overlap-add output: (num_frames - 1) * hop + n_fft samples, plus n_fft of margin
        self.out_len = self.length + 2 * spec.n_fft
        wss = self._overlap_add(np.broadcast_to(self.window**2, (num_frames, self.n_fft)))
        self.norm = np.where(wss > 1e-8, 1.0 / np.maximum(wss, 1e-8), 0.0).astype(np.float32)

    def _overlap_add(self, frames: np.ndarray) -> np.ndarray:
        """``(T, n_fft)`` frames -> ``(out_len,)``, frame t starting at sample t * hop. In
        hop-sized blocks: frame t's block j lands on output block t + j, so one vectorised add
        per block offset (n_fft / hop of them) instead of one per frame."""
        blocks = -(-self.n_fft // self.hop)
        padded = np.zeros((self.num_frames, blocks * self.hop), dtype=np.float32)
        padded[:, : self.n_fft] = frames
        padded = padded.reshape(self.num_frames, blocks, self.hop)
        rows = max(self.num_frames + blocks, -(-self.out_len // self.hop))
        out = np.zeros((rows * self.hop,), dtype=np.float32)
        grid = out.reshape(-1, self.hop)
        for j in range(blocks):
            grid[j : j + self.num_frames] += padded[:, j]
        return out[: self.out_len]

    def forward(self, wave: np.ndarray) -> np.ndarray:
        """``(length,)`` -> ``(F, T)`` complex (reflect padding, as librosa)."""
        half = self.n_fft // 2
        x = np.pad(wave, (half, half + self.n_fft), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(x, self.n_fft)[:: self.hop][: self.num_frames]
        return scipy.fft.rfft(frames * self.window, axis=1).T  # (4x numpy's on float32 frames)

    def inverse(self, stft: np.ndarray) -> np.ndarray:
        """``(F, T)`` complex -> ``(length,)`` by weighted overlap-add."""
        frames = scipy.fft.irfft(stft.T, n=self.n_fft, axis=1).astype(np.float32, copy=False)  # (T, n_fft)
        frames *= self.window
        out = self._overlap_add(frames) * self.norm
        half = self.n_fft // 2
        return out[half : half + self.length]


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
    fb, fb_t, step = _sparse_filterbank(spec)  # (M, F), (F, M)
    target = np.asarray(mel_magnitude, dtype=np.float32).T  # (M, T)
    s = np.maximum(_pinv(spec) @ target, 0.0)  # (F, T)
    for _ in range(n_iter):
        # gradient F^T (F s - M) through the thin, sparse (M, F) filterbank: cheaper than the
        # (F, F) Gram matrix
        s = np.maximum(s - step * (fb_t @ (fb @ s - target)), 0.0)
    return s.T


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
    mag = np.asarray(magnitude, dtype=np.float32).T  # (F, T)
    stft = _STFT(spec, mag.shape[1])
    rng = np.random.default_rng(seed)
    angles = np.exp(2j * np.pi * rng.random(mag.shape)).astype(np.complex64)
    previous = np.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft.forward(stft.inverse(mag * angles))
        # momentum extrapolates along the last update before projecting onto the magnitude again
        angles = rebuilt - np.float32(momentum / (1.0 + momentum)) * previous
        # unit phasors: one reciprocal of the magnitudes and a real-by-complex product (half the
        # time of a complex division)
        scale = np.abs(angles)
        np.reciprocal(np.maximum(scale, np.float32(1e-16), out=scale), out=scale)
        angles *= scale
        previous = rebuilt
    return stft.inverse(mag * angles).astype(np.float32)


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
        from threadpoolctl import threadpool_limits

        mel = check_mel(mel, self.spec)
        # the products are small: BLAS threads cost more in synchronisation than they save
        with threadpool_limits(limits=1, user_api="blas"):
            linear = mel_to_linear(np.exp(mel), self.spec, n_iter=self.nnls_iter)
            wave = griffin_lim(linear, self.spec, n_iter=self.n_iter)
        return np.clip(wave, -1.0, 1.0)
