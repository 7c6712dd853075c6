"""REINFORCE (score-function) estimator: the loss as the reward, the network as the policy.

For a discrete sample ``z ~ p_θ`` and a downstream cost ``c(z)`` (the training loss, a
negative reward), ``∇_θ E[c] = E[(c(z) - b) ∇_θ log p_θ(z)]`` for any baseline ``b`` that
does not depend on ``z``. The baseline does not change the expectation; it lowers the
variance. Two baselines: an exponential moving average of past costs, and a learned
regressor from a context vector to the expected cost (trained by mean squared error).

The surrogate loss returned by :meth:`Reinforce.loss` is a scalar whose autograd gradient
w.r.t. the policy parameters is this estimate (plus, for the learned baseline, the
regression loss of the baseline's own parameters).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.errors import ConfigError

__all__ = ["reinforce_surrogate", "MovingAverageBaseline", "LearnedBaseline", "Reinforce"]

BaselineKind = Literal["none", "moving_average", "learned"]


def reinforce_surrogate(log_prob: torch.Tensor, cost: torch.Tensor, baseline: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Scalar whose gradient is the mean REINFORCE estimate of ``∇ E[cost]``.

    Parameters
    ----------
    log_prob : (B,) log-probability of each drawn sample under the policy (with grad).
    cost : (B,) cost of each sample (no gradient is taken through it).
    baseline : scalar or (B,) baseline, detached here.

    Returns
    -------
    0-dim tensor ``mean((cost - baseline) * log_prob)`` with cost and baseline detached.
    """
    advantage = (cost - baseline).detach()
    return (advantage * log_prob).mean()


class MovingAverageBaseline(nn.Module):
    """Exponential moving average of the mean cost of past batches.

    The value used for a batch is the one before that batch's update, so it does not
    depend on the batch's samples and the estimate stays unbiased.
    """

    def __init__(self, *, decay: float = 0.9):
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"baseline decay must be in [0, 1), got {decay}", field="decay")
        self.decay = decay
        self.register_buffer("value", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, cost: torch.Tensor) -> torch.Tensor:
        """Return the baseline for ``cost`` (B,) and, in training mode, update it."""
        b = self.value.clone()
        if self.training:
            m = cost.detach().float().mean()
            with torch.no_grad():
                if bool(self.initialised):
                    self.value.mul_(self.decay).add_((1 - self.decay) * m)
                else:  # first batch: start at its mean instead of biasing towards 0
                    self.value.copy_(m)
                    self.initialised.fill_(True)
        return b


class LearnedBaseline(nn.Module):
    """Linear regressor ``context (B, D) -> expected cost (B,)``."""

    def __init__(self, context_dim: int):
        super().__init__()
        self.proj = nn.Linear(context_dim, 1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """(B, D) detached context -> (B,) predicted cost."""
        return self.proj(context.detach().float()).squeeze(-1)


class Reinforce(nn.Module):
    """Draw discrete samples and turn their cost into a REINFORCE surrogate loss.

    Parameters
    ----------
    baseline : ``"none"``, ``"moving_average"`` or ``"learned"``.
    decay : decay of the moving-average baseline.
    context_dim : input size of the learned baseline (required for ``"learned"``).

    Example
    -------
    >>> est = Reinforce(baseline="moving_average")
    >>> z, logp = est.sample_categorical(logits)        # (B, K) one-hot, (B,)
    >>> loss = est.loss(logp, cost_of(z))                # backward() gives the estimate
    """

    def __init__(self, *, baseline: BaselineKind = "moving_average", decay: float = 0.9, context_dim: int | None = None):
        super().__init__()
        self.kind = baseline
        if baseline == "moving_average":
            self.baseline: nn.Module | None = MovingAverageBaseline(decay=decay)
        elif baseline == "learned":
            if context_dim is None:
                raise ConfigError("a learned baseline needs context_dim", field="baseline")
            self.baseline = LearnedBaseline(context_dim)
        elif baseline == "none":
            self.baseline = None
        else:
            raise ConfigError(f"unknown baseline {baseline!r} (known: none, moving_average, learned)", field="baseline")

    @staticmethod
    def sample_categorical(logits: torch.Tensor, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample one category per row.

        Parameters
        ----------
        logits : (..., K).

        Returns
        -------
        onehot : (..., K) sample, no gradient.
        log_prob : (...) log-probability of the sample, differentiable in ``logits``.
        """
        logp = torch.log_softmax(logits.float(), dim=-1)
        flat = logp.detach().exp().reshape(-1, logits.shape[-1])
        idx = torch.multinomial(flat, 1, generator=generator).reshape(logits.shape[:-1])
        onehot = F.one_hot(idx, logits.shape[-1]).to(logits.dtype)
        return onehot, logp.gather(-1, idx.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def sample_bernoulli(logits: torch.Tensor, *, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample independent bits.

        Parameters
        ----------
        logits : (..., N) log-odds.

        Returns
        -------
        bits : (..., N) in {0, 1}, no gradient.
        log_prob : (...) joint log-probability of the N bits, differentiable in ``logits``.
        """
        x = logits.float()
        u = torch.rand(x.shape, generator=generator, device=x.device)
        bits = (u < torch.sigmoid(x.detach())).float()
        # log p(b) = b log σ(x) + (1 - b) log σ(-x), stable for large |x|
        log_prob = -F.binary_cross_entropy_with_logits(x, bits, reduction="none").sum(-1)
        return bits.to(logits.dtype), log_prob

    def loss(self, log_prob: torch.Tensor, cost: torch.Tensor, *, context: torch.Tensor | None = None) -> torch.Tensor:
        """Surrogate loss for a batch of samples.

        Parameters
        ----------
        log_prob : (B,) log-probabilities of the samples (from ``sample_*``).
        cost : (B,) their costs (the downstream loss per sample).
        context : (B, D) input of the learned baseline.

        Returns
        -------
        0-dim tensor: REINFORCE term plus, for a learned baseline, its regression loss.
        """
        cost = cost.detach().float()
        if self.baseline is None:
            return reinforce_surrogate(log_prob, cost)
        if isinstance(self.baseline, LearnedBaseline):
            if context is None:
                raise ValueError("a learned baseline needs the context tensor")
            pred = self.baseline(context)
            return reinforce_surrogate(log_prob, cost, pred) + F.mse_loss(pred, cost)
        return reinforce_surrogate(log_prob, cost, self.baseline(cost))
