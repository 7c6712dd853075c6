"""Frame matching at conversion time: each frame replaced by the mean of its nearest target frames."""

from __future__ import annotations

from typing import Literal

import torch

from speechrep.errors import ConfigError

__all__ = ["METRICS", "match_frames"]

#: Distances :func:`match_frames` compares frames by.
METRICS = ("euclidean", "cosine")
#: Most distances computed at once (64 MB of float32): long sources against minutes of
#: target frames are matched in blocks of frames rather than in one huge matrix.
_BLOCK_ELEMENTS = 16 * 2**20


def match_frames(frames: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, k: int, *,
                 metric: Literal["euclidean", "cosine"] = "euclidean") -> torch.Tensor:
    """k-nearest-neighbour frame matching (as in kNN-VC, Baas et al. 2023).

    ``frames`` ``(T, D)`` are compared with ``keys`` ``(N, D)`` by ``metric``: Euclidean
    distance, or cosine distance ``1 - cos`` (kNN-VC's choice on self-supervised features,
    whose norm varies with loudness more than with the sound); each frame is replaced by
    the mean of the ``values`` ``(N, D')`` whose keys are its ``k`` nearest (all ``N`` when
    fewer). Returns ``(T, D')``.
    """
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}", field="match_k")
    if metric not in METRICS:
        raise ConfigError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})", field="metric")
    if keys.shape[0] != values.shape[0] or keys.shape[0] == 0:
        raise ValueError(f"keys {tuple(keys.shape)} and values {tuple(values.shape)} need the same number (> 0) of rows")
    k = min(k, keys.shape[0])
    if metric == "cosine":
        frames, keys = torch.nn.functional.normalize(frames, dim=-1), torch.nn.functional.normalize(keys, dim=-1)
    block = max(1, _BLOCK_ELEMENTS // keys.shape[0])
    out = []
    for part in frames.split(block):
        if metric == "cosine":  # the largest cosine similarities are the smallest cosine distances
            idx = (part @ keys.T).topk(k, dim=-1).indices  # (block, k)
        else:
            idx = torch.cdist(part, keys).topk(k, dim=-1, largest=False).indices
        out.append(values[idx].mean(1))
    return torch.cat(out) if out else values.new_zeros((0, values.shape[1]))
