"""k-means initialisation of codebooks."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["kmeans"]


def kmeans(
    x: torch.Tensor, k: int, *, iters: int = 10, cosine: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding.

    Parameters
    ----------
    x : (N, D) float samples.
    k : number of centroids; with N < k samples are reused with small noise.
    iters : Lloyd iterations.
    cosine : cluster unit-normalised vectors by cosine similarity.

    Returns
    -------
    (k, D) float32 centroids (unit norm when ``cosine``).
    """
    x = x.float()
    if cosine:
        x = F.normalize(x, dim=-1)
    n = x.shape[0]
    if n < k:  # too few samples: duplicate them, jittered so the centroids differ
        extra = x[torch.randint(n, (k - n,), generator=generator)]
        x = torch.cat([x, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
        n = k
    # k-means++ seeding: next centre drawn proportionally to squared distance
    centres = x[torch.randint(n, (1,), generator=generator)]
    d2 = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        nxt = x[torch.multinomial(probs, 1, generator=generator)]
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, (torch.cdist(x, nxt).squeeze(1)) ** 2)
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(-1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float().unsqueeze(-1)
        # empty clusters keep their centre
        centres = torch.where(counts > 0, sums / counts.clamp_min(1.0), centres)
        if cosine:
            centres = F.normalize(centres, dim=-1)
    return centres
