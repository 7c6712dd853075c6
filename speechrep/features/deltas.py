"""Delta features (Kaldi ``add-deltas``)."""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from speechrep.errors import ConfigError, DataError

__all__ = ["delta_windows", "add_deltas"]


@functools.lru_cache(maxsize=16)
def delta_windows(order: int, window: int) -> tuple[np.ndarray, ...]:
    """Kaldi's regression windows: ``order + 1`` float64 arrays of length ``1 + 2 i window``.

    Window 0 is ``[1]``; window 1 is ``j / (2 sum_{k=1}^N k^2)`` for ``j = -N..N``; window i
    is window i-1 convolved with window 1.
    """
    if order < 0:
        raise ConfigError(f"must be >= 0, got {order}", field="order")
    if window < 1:
        raise ConfigError(f"must be >= 1, got {window}", field="window")
    j = np.arange(-window, window + 1, dtype=np.float64)
    first = j / (2.0 * np.sum(j[window + 1 :] ** 2))
    scales = [np.ones(1)]
    for _ in range(order):
        scales.append(np.convolve(scales[-1], first))
    return tuple(scales)


@njit(cache=True)
def _deltas_kernel(x, scales, window, out):
    n, d = x.shape
    order = scales.shape[0] - 1
    max_width = order * window
    for t in range(n):
        for i in range(order + 1):
            half = i * window
            for c in range(d):
                acc = 0.0
                for j in range(-half, half + 1):
                    w = scales[i, max_width + j]
                    if w != 0.0:
                        s = min(max(t + j, 0), n - 1)  # edge frames are replicated
                        acc += w * x[s, c]
                out[t, i * d + c] = acc


def add_deltas(feats: np.ndarray, *, order: int = 2, window: int = 2) -> np.ndarray:
    """Append delta features of orders 1..``order`` (Kaldi ``add-deltas``).

    Parameters
    ----------
    feats : ``(num_frames, dim)``.
    order : highest delta order.
    window : regression half-width ``N`` of the first-order window.

    Returns
    -------
    np.ndarray
        ``(num_frames, dim * (order + 1))`` float32, blocks ``[x, delta, delta-delta, ...]``.
    """
    x = np.ascontiguousarray(feats, dtype=np.float32)
    if x.ndim != 2:
        raise DataError(f"expected (num_frames, dim) features, got shape {x.shape}", field="feats")
    scales = delta_windows(order, window)
    max_width = order * window
    # one (order + 1, 2 * max_width + 1) table, each window centred
    table = np.zeros((order + 1, 2 * max_width + 1))
    for i, s in enumerate(scales):
        half = (s.shape[0] - 1) // 2
        table[i, max_width - half : max_width + half + 1] = s
    out = np.empty((x.shape[0], x.shape[1] * (order + 1)), np.float32)
    _deltas_kernel(x, table, window, out)
    return out
