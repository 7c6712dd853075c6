"""Cosine-softmax classification losses of embeddings (speaker verification)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["cosine_softmax_loss"]


def cosine_softmax_loss(cosine: torch.Tensor, labels: torch.Tensor, *, scale: float,
                        margin: float | None = None) -> torch.Tensor:
    """Cross-entropy of the scaled cosines between embeddings and class weights.

    With ``margin`` (additive angular margin, AAM softmax; Deng et al., 2019) the true class's
    angle is widened, ``cos(theta + margin)``, so that an embedding must lie closer to its own
    class than the plain softmax asks; without it the logits are ``scale * cosine``.

    Parameters
    ----------
    cosine : (B, S) cosines between B embeddings and S class weights.
    labels : (B,) int64 true classes.
    scale : logit scale.
    margin : angular margin in radians (None: plain cosine softmax).
    """
    if margin is not None:
        target = F.one_hot(labels, cosine.shape[1]).bool()
        theta = torch.acos(cosine.clamp(-1 + 1e-6, 1 - 1e-6))
        cosine = torch.where(target, torch.cos(theta + margin), cosine)
    return F.cross_entropy(cosine * scale, labels)
