"""Reconstruction losses and scores.

:func:`masked_error` is the loss of models that decode whole sequences (VQ-VAE, voice
conversion): the mean error over the valid frames. The scores are the negative squared
error between a decoded and a true frame, used as a critic score,
``s(code, x) = -||decode(code) - x||^2 / F``; maximising it over positive pairs only is a
plain autoencoder's mean squared error.
"""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["masked_error", "reconstruction_score", "pairwise_reconstruction_scores"]


def masked_error(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, *,
    kind: Literal["l1", "mse"] = "l1", per_utterance: bool = False,
) -> torch.Tensor:
    """Mean absolute (``l1``) or squared (``mse``) error of ``(B, T, F)`` frames over the valid ones.

    Parameters
    ----------
    pred, target : (B, T, F) decoded and true frames.
    mask : (B, T, 1), 1 on valid frames (None: all frames count).
    kind : ``l1`` or ``mse``.
    per_utterance : return the mean of each utterance ``(B,)`` (e.g. the cost of REINFORCE)
        instead of the mean over all valid frames of the batch (0-dim).
    """
    diff = pred - target
    err = diff.abs() if kind == "l1" else diff.square()
    dims = (1, 2) if per_utterance else tuple(range(err.dim()))
    if mask is None:
        return err.mean(dims)
    return (err * mask).sum(dims) / (mask.sum(dims) * pred.shape[2]).clamp(min=1.0)


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
