"""Gumbel-softmax (concrete) relaxations and their temperature schedules.

``gumbel_softmax(logits, tau=τ)`` draws ``y = softmax((logits + g) / τ)`` with
``g ~ Gumbel(0, 1)``: a reparameterised sample of a relaxed one-hot variable. Its
gradient is an *unbiased* estimate of the gradient of the relaxed objective
``E_g[f(y)]``, which approaches the discrete objective as ``τ -> 0`` (Jang et al., 2017;
Maddison et al., 2017). With ``hard=True`` the forward value is the one-hot argmax of
``y`` (an exact sample of Categorical(softmax(logits))) and the gradient is that of the
soft ``y`` (straight-through Gumbel).

``gumbel_sigmoid`` is the two-class case for independent bits (binary concrete, with
logistic noise ``log u - log(1 - u)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from speechrep.errors import ConfigError
from speechrep.estimators.straight_through import straight_through

__all__ = ["sample_gumbel", "gumbel_softmax", "gumbel_sigmoid", "TemperatureSchedule"]

# Keeps log(-log(u)) finite for u at the ends of the float32 range.
_TINY = 1e-10


def sample_gumbel(
    shape: torch.Size | tuple[int, ...],
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Standard Gumbel(0, 1) noise, float32, of the given shape."""
    u = torch.rand(shape, generator=generator, device=device)
    minus_log_u = (-torch.log(u.clamp_min(_TINY))).clamp_min(_TINY)
    return -torch.log(minus_log_u)


def gumbel_softmax(
    logits: torch.Tensor,
    *,
    tau: float = 1.0,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Relaxed (or straight-through hard) categorical sample over the last axis.

    Parameters
    ----------
    logits : (..., K) unnormalised log-probabilities.
    tau : temperature > 0; small values give nearly one-hot samples with high-variance
        gradients.
    hard : return the one-hot argmax in the forward pass, soft gradient in the backward.
    generator : random generator for the noise.

    Returns
    -------
    (..., K) tensor, rows summing to 1 (float32 computation, dtype of ``logits``).
    """
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    g = sample_gumbel(logits.shape, generator=generator, device=logits.device)
    y = torch.softmax((logits.float() + g) / tau, dim=-1)
    if hard:
        idx = y.argmax(dim=-1, keepdim=True)
        y = straight_through(torch.zeros_like(y).scatter_(-1, idx, 1.0), y)
    return y.to(logits.dtype)


def gumbel_sigmoid(
    logits: torch.Tensor,
    *,
    tau: float = 1.0,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Relaxed Bernoulli(sigmoid(logits)) sample per element (binary concrete).

    Parameters
    ----------
    logits : (...) log-odds of each bit being 1.
    tau : temperature > 0.
    hard : forward value thresholded to {0, 1}, soft gradient.
    generator : random generator for the noise.

    Returns
    -------
    (...) tensor in (0, 1), or {0, 1} with ``hard``.
    """
    if tau <= 0:
        raise ValueError(f"temperature must be > 0, got {tau}")
    u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp(_TINY, 1 - 1e-7)
    noise = torch.log(u) - torch.log1p(-u)  # Logistic(0, 1) = difference of two Gumbels
    y = torch.sigmoid((logits.float() + noise) / tau)
    if hard:
        y = straight_through((y > 0.5).float(), y)
    return y.to(logits.dtype)


@dataclass
class TemperatureSchedule:
    """Temperature as a function of the training step.

    ``constant``: ``start`` throughout. ``exponential``: ``start * exp(-rate * step)``
    with ``rate`` chosen so that ``end`` is reached at ``steps``, then held.
    ``linear`` / ``cosine``: from ``start`` to ``end`` over ``steps``, then held.

    Example
    -------
    >>> round(TemperatureSchedule(kind="exponential", start=2.0, end=0.5, steps=100)(50), 6)
    1.0
    """

    kind: Literal["constant", "exponential", "linear", "cosine"] = "constant"
    start: float = 1.0
    end: float = 0.5
    steps: int = 10000

    def __post_init__(self) -> None:
        if self.start <= 0 or self.end <= 0:
            raise ConfigError(f"temperatures must be > 0, got start={self.start}, end={self.end}", field="tau")
        if self.kind not in ("constant", "exponential", "linear", "cosine"):
            raise ConfigError(f"unknown schedule {self.kind!r} (known: constant, exponential, linear, cosine)", field="tau.kind")
        if self.steps < 1:
            raise ConfigError(f"schedule steps must be >= 1, got {self.steps}", field="tau.steps")

    def __call__(self, step: int) -> float:
        if self.kind == "constant":
            return self.start
        frac = min(max(step, 0), self.steps) / self.steps
        if self.kind == "exponential":
            return self.start * math.exp(frac * math.log(self.end / self.start))
        if self.kind == "linear":
            return self.start + frac * (self.end - self.start)
        return self.end + 0.5 * (self.start - self.end) * (1 + math.cos(math.pi * frac))
