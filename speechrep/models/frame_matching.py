"""Frame matching at conversion time: each converted frame pulled towards its nearest target frames."""

from __future__ import annotations

import torch

from speechrep.errors import ConfigError

__all__ = ["match_frames"]


def match_frames(frames: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    """k-nearest-neighbour frame matching (as in kNN-VC, Baas et al. 2023).

    ``frames`` ``(T, D)`` are compared with ``keys`` ``(N, D)`` by Euclidean distance; each
    frame is replaced by the mean of the ``values`` ``(N, D')`` whose keys are its ``k``
    nearest (all ``N`` when fewer). Returns ``(T, D')``.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", field="match_k")
    if keys.shape[0] != values.shape[0] or keys.shape[0] == 0:
        raise ValueError(f"keys {tuple(keys.shape)} and values {tuple(values.shape)} need the same number (> 0) of rows")
    idx = torch.cdist(frames, keys).topk(min(k, keys.shape[0]), dim=-1, largest=False).indices  # (T, k)
    return values[idx].mean(1)
