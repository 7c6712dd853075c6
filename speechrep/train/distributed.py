"""Process groups for ``torchrun``: rank/world size from the environment, gloo on CPU,
nccl on GPU. A plain ``python -m speechrep train`` is a world of one (no process group).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from speechrep.errors import ConfigError

__all__ = ["DistInfo", "init_distributed", "resolve_device", "cleanup", "all_reduce_sum", "all_gather_object"]


@dataclass
class DistInfo:
    """Where this process sits: rank among ``world_size``, GPU ``local_rank``, device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  #: None when not distributed

    @property
    def is_main(self) -> bool:
        """Rank 0 writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def resolve_device(
    name: str, *, local_rank: int = 0, field: str = "train.device", source: str | None = None
) -> torch.device:
    """The torch device ``name`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) stands for here.

    ``auto`` is CUDA when there is a GPU, else the CPU; plain ``cuda`` is GPU ``local_rank``.

    Raises
    ------
    ConfigError
        An unknown device, or one this machine or this torch build does not have; named
        as ``field`` (the config key or the command-line option that gave it) of
        ``source`` (the config file, if any).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    choices = "auto, cpu, cuda or cuda:N"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} not available: not a device torch knows ({choices})", path=source,
                          field=field) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} not available: this machine or torch build has no CUDA GPU (use cpu)",
                              path=source, field=field)
        if device.index is None:
            device = torch.device("cuda", local_rank)
        if device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r} not available: {torch.cuda.device_count()} CUDA GPU(s) here",
                              path=source, field=field)
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} not available ({choices})", path=source, field=field)
    return device


def init_distributed(device: str = "auto", *, source: str | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if there is one and pick this rank's device.

    ``source``: the config file that gave ``device``, named in errors.

    ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables come from
    ``torchrun`` (one node or many, e.g. under Slurm).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local_rank, source=source)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = None
    if world > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def cleanup(info: DistInfo) -> None:
    """Leave the process group (if this module joined one)."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``values`` over ranks (``values`` itself when not distributed)."""
    if info.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (small JSON-like objects only)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out
