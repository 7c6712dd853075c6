"""torch.distributed helpers that keep a codebook identical in every process.

Each is a no-op (or returns its input) when torch.distributed is not initialised, so the
quantisers call them unconditionally.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["world_size", "rank", "all_reduce_sum", "gather_rows", "broadcast_from_first"]


def world_size() -> int:
    """Processes of the default group; 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """Rank of this process; 0 when torch.distributed is not initialised."""
    return dist.get_rank() if world_size() > 1 else 0


def all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over all processes (``x`` itself in a single process); in place."""
    if world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """(N_r, ...) rows of every process, concatenated in rank order.

    Processes may hold different numbers of rows; in a single process ``x`` is returned.
    """
    world = world_size()
    if world == 1:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    longest = int(max(sizes).item())
    padded = x.new_zeros((longest, *x.shape[1:]))  # all_gather needs equal shapes
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(size.item())] for part, size in zip(parts, sizes)])


def broadcast_from_first(*tensors: torch.Tensor) -> None:
    """Overwrite ``tensors`` in every process with those of rank 0 (no-op in a single process)."""
    if world_size() > 1:
        for t in tensors:
            dist.broadcast(t, src=0)
