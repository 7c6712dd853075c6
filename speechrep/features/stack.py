"""Frame stacking (Kaldi ``splice-feats``) and subsampling (``subsample-feats``)."""

from __future__ import annotations

import numpy as np

from speechrep.errors import ConfigError, DataError

__all__ = ["stack_frames", "subsample_frames"]


def _check_feats(feats: np.ndarray) -> np.ndarray:
    x = np.asarray(feats)
    if x.ndim != 2:
        raise DataError(f"expected (num_frames, dim) features, got shape {x.shape}", field="feats")
    return x


def stack_frames(feats: np.ndarray, *, left_context: int = 4, right_context: int = 4) -> np.ndarray:
    """Concatenate each frame with its neighbours (Kaldi ``splice-feats``).

    Parameters
    ----------
    feats : ``(num_frames, dim)``.
    left_context, right_context : neighbours on each side; frames past the ends repeat the
        first/last frame.

    Returns
    -------
    np.ndarray
        ``(num_frames, dim * (1 + left_context + right_context))``, same dtype, blocks ordered
        from ``t - left_context`` to ``t + right_context``.
    """
    x = _check_feats(feats)
    if left_context < 0 or right_context < 0:
        raise ConfigError(f"contexts must be >= 0, got {left_context}, {right_context}", field="left_context/right_context")
    n = x.shape[0]
    if n == 0:
        return np.zeros((0, x.shape[1] * (1 + left_context + right_context)), x.dtype)
    idx = np.clip(np.arange(n)[:, None] + np.arange(-left_context, right_context + 1)[None, :], 0, n - 1)
    return x[idx].reshape(n, -1)


def subsample_frames(feats: np.ndarray, *, n: int = 1, offset: int = 0) -> np.ndarray:
    """Every ``n``-th frame starting at ``offset`` (Kaldi ``subsample-feats --n --offset``).

    Returns ``(ceil((num_frames - offset) / n), dim)``, a copy.
    """
    x = _check_feats(feats)
    if n < 1:
        raise ConfigError(f"must be >= 1, got {n}", field="n")
    if not 0 <= offset < n:
        raise ConfigError(f"must be in [0, n={n}), got {offset}", field="offset")
    return x[offset::n].copy()
