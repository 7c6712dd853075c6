"""Learning-rate schedule: linear warmup, then cosine decay to ``min_lr_ratio * lr``.

The schedule is a pure function of the step, so resuming needs only the step count.
"""

from __future__ import annotations

import math

__all__ = ["lr_at"]


def lr_at(step: int, *, lr: float, warmup_steps: int, max_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    Warmup rises linearly from ``lr / warmup_steps`` at step 0 to ``lr`` at
    ``warmup_steps - 1``; the cosine then falls from ``lr`` to ``min_lr_ratio * lr`` at
    ``max_steps``.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    floor = min_lr_ratio * lr
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
