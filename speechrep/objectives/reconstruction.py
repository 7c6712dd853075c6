"""Reconstruction scores: the negative squared error between a decoded and a true frame.

Used as a critic score, ``s(code, x) = -||decode(code) - x||^2 / F``; maximising it over
positive pairs only is a plain autoencoder's mean squared error.
"""

from __future__ import annotations

import torch

__all__ = ["reconstruction_score", "pairwise_reconstruction_scores"]


def reconstruction_score(decoded: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Row-wise ``-mean((decoded - target)^2)``.

    Parameters
    ----------
    decoded, target : (M, F) frames.

    Returns
    -------
    (M,) scores.
    """
    return -(decoded.float() - target.float()).pow(2).mean(dim=-1)


def pairwise_reconstruction_scores(decoded: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``-mean((decoded_i - target_j)^2)`` for every pair, without an (M, N, F) tensor.

    Parameters
    ----------
    decoded : (M, F) frames decoded from M codes.
    targets : (N, F) candidate frames.

    Returns
    -------
    (M, N) scores.
    """
    decoded, targets = decoded.float(), targets.float()
    sq = decoded.pow(2).sum(-1, keepdim=True) - 2 * decoded @ targets.T + targets.pow(2).sum(-1)
    return -sq.clamp_min(0) / decoded.shape[-1]
