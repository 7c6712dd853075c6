"""Mutual-information lower bounds for Deep InfoMax, and prior matching.

A critic scores (code, input) pairs; pairs drawn together (positives) should score high,
pairs drawn apart (negatives) low. Each estimator turns the scores into a loss, the
negated lower bound:

- ``jsd``  Jensen-Shannon:      E_P[softplus(-s)] + E_N[softplus(s)]
- ``dv``   Donsker-Varadhan:    -(E_P[s] - log E_N[exp s])
- ``infonce``:                  E_P[log(exp s_p + sum_N exp s_n) - s_p], negatives of
  the same row (code)
- ``positive``: -E_P[s], no negatives. With the reconstruction critic
  (:mod:`speechrep.models.critics`) this is an autoencoder's reconstruction loss.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Literal, get_args

import torch
import torch.nn.functional as F

from speechrep.objectives.adversarial import grad_reverse

__all__ = ["Estimator", "MIEstimator", "estimator_loss", "mi_loss", "positive_loss", "prior_matching_loss"]

MIEstimator = Literal["jsd", "dv", "infonce"]
#: the estimators of a config's ``estimator:`` key (DIM, the autoencoder, CPC, side tasks)
Estimator = Literal["jsd", "dv", "infonce", "positive"]


def positive_loss(positive_scores: torch.Tensor) -> torch.Tensor:
    """``-mean(s)`` over positive pairs only."""
    return -positive_scores.float().mean()


def mi_loss(scores: torch.Tensor, positive: torch.Tensor, *, estimator: MIEstimator = "jsd") -> torch.Tensor:
    """Negated MI lower bound from a score matrix.

    Parameters
    ----------
    scores : (M, N) critic scores of M codes against N candidate inputs.
    positive : (M, N) bool, True where code and input belong together; every row needs
        at least one positive and one negative.
    estimator : ``jsd``, ``dv`` or ``infonce``.

    Returns
    -------
    0-dim loss to minimise.
    """
    scores = scores.float()
    if estimator == "jsd":
        return F.softplus(-scores[positive]).mean() + F.softplus(scores[~positive]).mean()
    if estimator == "dv":
        neg = scores[~positive]
        return -(scores[positive].mean() - (torch.logsumexp(neg, dim=0) - math.log(neg.numel())))
    if estimator == "infonce":
        neg_lse = torch.logsumexp(scores.masked_fill(positive, float("-inf")), dim=1, keepdim=True)  # (M, 1)
        nll = torch.logaddexp(scores, neg_lse.expand_as(scores)) - scores
        return nll[positive].mean()
    raise ValueError(f"unknown MI estimator {estimator!r} (jsd, dv, infonce)")


def _positive_pairs_loss(scores: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    return positive_loss(scores[positive])


def estimator_loss(estimator: Estimator) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``f(scores (M, N), positive (M, N) bool) -> 0-dim`` of an estimator name.

    A model picks its estimator once, at construction; its forward then calls the critic
    for scores and this function for the loss, whatever the pair. ``positive`` reads
    the positive pairs only (:func:`positive_loss`): with the reconstruction critic that
    is an autoencoder; the others are :func:`mi_loss`.
    """
    if estimator == "positive":
        return _positive_pairs_loss
    if estimator in get_args(MIEstimator):
        return partial(mi_loss, estimator=estimator)
    raise ValueError(f"unknown estimator {estimator!r} ({', '.join(get_args(Estimator))})")


def prior_matching_loss(codes: torch.Tensor, discriminator: torch.nn.Module) -> torch.Tensor:
    """Adversarial match of ``sigmoid(codes)`` to a uniform [0, 1] prior.

    The discriminator learns to tell prior samples (label 1) from codes (label 0); the
    codes reach it through :func:`~speechrep.objectives.adversarial.grad_reverse`, so the same loss trains the encoder to
    fool it.

    Parameters
    ----------
    codes : (M, G) codes (pre-sigmoid).
    discriminator : module (M, G) -> (M, 1) logits.
    """
    fake = torch.sigmoid(grad_reverse(codes))
    real = torch.rand_like(fake)
    logit_real, logit_fake = discriminator(real).float(), discriminator(fake).float()
    return F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) + F.binary_cross_entropy_with_logits(
        logit_fake, torch.zeros_like(logit_fake)
    )
