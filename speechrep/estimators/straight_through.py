"""Straight-through estimators: a discrete forward pass with a surrogate backward pass.

The forward value is the discrete choice (one-hot argmax, a bit, a sampled category);
the backward pass uses the gradient of a continuous surrogate instead of the true
(zero almost everywhere) derivative:

- ``"identity"``: the gradient reaches the logits unchanged (Bengio et al., 2013).
- ``"softmax"`` / ``"sigmoid"``: the gradient flows through ``softmax(logits)`` /
  ``sigmoid(logits)``, the expected value of the discrete choice.

Straight-through is a *biased* estimator of the gradient of ``E[f(z)]``. The property it
has, and that the tests check: with stochastic sampling and a downstream function ``f``
that is *linear* in ``z``, the softmax/sigmoid-adjusted estimate equals the exact
gradient for every sample; the bias grows with the curvature of ``f``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["straight_through", "st_onehot", "st_binary"]

SurrogateMode = Literal["identity", "softmax", "sigmoid"]


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Value of ``hard`` with the gradient of ``soft``.

    Parameters
    ----------
    hard : (...) tensor, the forward value (no gradient needed).
    soft : (...) tensor of the same shape whose gradient is passed back.

    Returns
    -------
    (...) tensor equal to ``hard`` whose gradient w.r.t. its inputs is that of ``soft``.
    """
    return soft + (hard - soft).detach()


def st_onehot(
    logits: torch.Tensor,
    *,
    mode: Literal["identity", "softmax"] = "softmax",
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One-hot choice over the last axis with a straight-through gradient.

    Parameters
    ----------
    logits : (..., K) unnormalised scores.
    mode : surrogate of the backward pass, ``"identity"`` (gradient to the logits as is)
        or ``"softmax"`` (through ``softmax(logits)``).
    stochastic : sample the category from ``softmax(logits)`` instead of taking the argmax.
    generator : random generator for the sample.

    Returns
    -------
    (..., K) one-hot tensor (dtype of ``logits``).
    """
    if stochastic:
        probs = torch.softmax(logits.float(), dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        idx = torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
    else:
        idx = logits.argmax(dim=-1)
    hard = F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
    return straight_through(hard, _surrogate(logits, mode, dim=-1))


def st_binary(
    logits: torch.Tensor,
    *,
    mode: Literal["identity", "sigmoid"] = "sigmoid",
    stochastic: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bits in {0, 1} from logits with a straight-through gradient.

    Parameters
    ----------
    logits : (...) tensor; bit ``i`` is 1 when ``logits[i] > 0`` (or, with
        ``stochastic``, with probability ``sigmoid(logits[i])``).
    mode : ``"identity"`` or ``"sigmoid"`` surrogate.
    stochastic : sample each bit from Bernoulli(sigmoid(logits)).
    generator : random generator for the sample.

    Returns
    -------
    (...) tensor of 0/1 values (dtype of ``logits``).
    """
    if stochastic:
        p = torch.sigmoid(logits.float())
        u = torch.rand(p.shape, generator=generator, device=p.device)
        hard = (u < p).to(logits.dtype)
    else:
        hard = (logits > 0).to(logits.dtype)
    return straight_through(hard, _surrogate(logits, mode))


def _surrogate(logits: torch.Tensor, mode: str, dim: int = -1) -> torch.Tensor:
    if mode == "identity":
        return logits
    if mode == "softmax":
        return torch.softmax(logits, dim=dim)
    if mode == "sigmoid":
        return torch.sigmoid(logits)
    raise ValueError(f"unknown straight-through mode {mode!r} (known: identity, softmax, sigmoid)")
