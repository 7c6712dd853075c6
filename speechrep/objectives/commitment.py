"""The auxiliary loss of a vector quantiser (VQ-VAE, van den Oord et al., 2017)."""

from __future__ import annotations

import torch

__all__ = ["commitment_loss"]


def commitment_loss(z: torch.Tensor, q: torch.Tensor, valid: torch.Tensor, *, beta: float,
                    codebook_loss: bool) -> torch.Tensor:
    """``beta ||z - sg(q)||^2`` (commitment: trains the encoder) plus, with ``codebook_loss``,
    ``||sg(z) - q||^2`` (trains the codes; left out when they follow EMA updates instead).

    Parameters
    ----------
    z : (N, G, d) encoder vectors (per group of a product codebook).
    q : (N, G, d) the codes chosen for them.
    valid : (N,) bool, the rows that count.
    beta : weight of the commitment term.
    codebook_loss : add the codebook term.

    Returns
    -------
    0-dim loss: squared errors averaged over the valid rows and all G x d values.
    """
    w = valid.float()[:, None, None]
    denom = w.sum().clamp_min(1.0) * z.shape[1] * z.shape[2]
    loss = beta * (((z - q.detach()) ** 2) * w).sum() / denom
    if codebook_loss:
        loss = loss + (((z.detach() - q) ** 2) * w).sum() / denom
    return loss
