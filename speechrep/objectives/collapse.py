"""Monitors for the trivial solution: an encoder that maps every input to one code.

Three numbers, logged during training under ``collapse/...``:

- ``collapse/var``: per-dimension variance of the L2-normalised codes, averaged over
  dimensions and multiplied by D. Scale-free: about 1 for codes spread evenly over the
  sphere, 0 when every frame has the same direction.
- ``collapse/eff_rank``: effective rank of the code matrix, ``exp(H(s / sum s))`` with
  ``s`` its singular values (RankMe). Between 1 (all codes on one line) and D.
- ``collapse/acc_vs_chance``: contrastive accuracy divided by the chance level
  ``1 / (1 + N)``; about 1 or below means the positives cannot be told from negatives.
"""

from __future__ import annotations

import torch

__all__ = ["normalised_variance", "effective_rank", "collapse_monitors"]


def normalised_variance(codes: torch.Tensor) -> torch.Tensor:
    """D times the mean per-dimension variance of the L2-normalised codes.

    Parameters
    ----------
    codes : (N, D) frames x dimensions (leading dims are flattened).

    Returns
    -------
    0-dim tensor, 0 for identical directions, about 1 for isotropic codes.
    """
    codes = codes.reshape(-1, codes.shape[-1]).float()
    unit = torch.nn.functional.normalize(codes, dim=-1)
    return unit.var(dim=0, unbiased=False).sum()


def effective_rank(codes: torch.Tensor, *, eps: float = 1e-12) -> torch.Tensor:
    """Effective rank ``exp(-sum p log p)`` with ``p = s / sum(s)``, s the singular values.

    Parameters
    ----------
    codes : (N, D) frames x dimensions (leading dims are flattened).

    Returns
    -------
    0-dim tensor in [1, min(N, D)]; 1 for rank-one (collapsed) codes.
    """
    codes = codes.reshape(-1, codes.shape[-1]).float()
    s = torch.linalg.svdvals(codes)
    p = s / s.sum().clamp_min(eps)
    entropy = -(p * torch.log(p.clamp_min(eps))).sum()
    return entropy.exp()


@torch.no_grad()
def collapse_monitors(
    codes: torch.Tensor, *, accuracy: torch.Tensor | None = None, num_candidates: int | None = None
) -> dict[str, torch.Tensor]:
    """The ``collapse/...`` scalars of a batch of codes.

    Parameters
    ----------
    codes : (..., D) codes; gradients are not tracked.
    accuracy : mean contrastive accuracy of the batch (optional).
    num_candidates : candidates per prediction (1 + N negatives), for the chance level.

    Returns
    -------
    dict with ``collapse/var``, ``collapse/eff_rank`` and, when ``accuracy`` is given,
    ``collapse/acc_vs_chance``.
    """
    codes = codes.detach()
    out = {"collapse/var": normalised_variance(codes), "collapse/eff_rank": effective_rank(codes)}
    if accuracy is not None:
        if not num_candidates or num_candidates < 2:
            raise ValueError("the chance level needs at least 2 candidates per prediction")
        out["collapse/acc_vs_chance"] = accuracy.detach().float() * num_candidates
    return out
