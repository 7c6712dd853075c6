"""The interface every discrete bottleneck implements, and what they share.

See :mod:`speechrep.models.bottlenecks` for the fields of :class:`BottleneckOutput`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from speechrep.errors import ConfigError

__all__ = ["Estimator", "BottleneckOutput", "Bottleneck", "usage_stats", "check_codes", "valid_rows"]

Estimator = Literal["st", "gumbel", "gumbel_st", "reinforce"]


@dataclass
class BottleneckOutput:
    """Result of a bottleneck (see the module docstring for the fields)."""

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    stats: dict[str, torch.Tensor]
    log_prob: torch.Tensor | None = None
    """(batch,) log-probability of the sampled units of each utterance (REINFORCE only)."""


def usage_stats(indices: torch.Tensor, num_codes: int) -> dict[str, torch.Tensor]:
    """Perplexity and number of distinct codes of a set of unit indices.

    Parameters
    ----------
    indices : (N, G) int64, per-group code indices of N valid frames.
    num_codes : codes per group.

    Returns
    -------
    dict with 0-dim float tensors ``perplexity`` and ``used_codes`` (both averaged over
    groups); for N = 0 both are 0.
    """
    if indices.numel() == 0:
        zero = torch.zeros((), device=indices.device)
        return {"perplexity": zero, "used_codes": zero.clone()}
    g = indices.shape[1]
    offsets = torch.arange(g, device=indices.device) * num_codes
    counts = torch.bincount((indices + offsets).reshape(-1), minlength=g * num_codes).reshape(g, num_codes).float()
    p = counts / counts.sum(-1, keepdim=True)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)  # (G,)
    return {"perplexity": entropy.exp().mean(), "used_codes": (counts > 0).float().sum(-1).mean()}


def check_codes(num_codes: int, *, name: str = "num_codes") -> None:
    if num_codes < 2:
        raise ConfigError(f"codebook size must be >= 2 (one code carries no information), got {num_codes}", field=name)

def valid_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, ...) -> (N, ...) rows of the valid frames."""
    flat = x.reshape(-1, *x.shape[2:])
    return flat if mask is None else flat[mask.reshape(-1)]


class Bottleneck(nn.Module):
    """Common interface of all discrete bottlenecks.

    Attributes
    ----------
    input_dim, output_dim : feature sizes in and out.
    num_codes : size of the unit inventory named by ``indices``.
    """

    input_dim: int
    output_dim: int
    num_codes: int

    @property
    def bits(self) -> float:
        """Bits per frame, log2(num_codes)."""
        return math.log2(self.num_codes)

    @property
    def needs_cost(self) -> bool:
        """Whether the model must add :meth:`policy_loss` (REINFORCE estimators)."""
        return False

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> BottleneckOutput:  # pragma: no cover
        """Quantize (batch, time, input_dim) frames; ``mask`` (batch, time) marks valid ones."""
        raise NotImplementedError

    def policy_loss(self, out: BottleneckOutput, cost: torch.Tensor) -> torch.Tensor:
        """REINFORCE surrogate for per-utterance ``cost`` (batch,); 0 for other estimators."""
        return cost.new_zeros(())

    def on_step_end(self, step: int) -> None:
        """Per-step maintenance (temperature schedules, dead-code restarts)."""

    def unit_costs(self, x: torch.Tensor) -> torch.Tensor:
        """Cost of naming each frame of ``x`` (B, T, input_dim) by each unit: (B, T, num_codes)
        float32, lowest for the unit :meth:`forward` picks (used to segment units,
        :func:`speechrep.units.segment_units`)."""
        raise ConfigError(
            f"{type(self).__name__} has no per-unit costs to segment with (use a vq bottleneck with groups 1)",
            field="model.args.bottleneck.kind",
        )
