"""Adversarial objectives: gradient reversal, frozen judges and the speaker adversary.

One optimiser plays both sides of these games: a judge (critic, classifier) minimises a
loss while what it judges is trained against it, either through :func:`grad_reverse`
(one loss, the gradient flipped on its way back) or through :func:`frozen_call` (the
judge's weights detached for the other player's loss).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

__all__ = ["grad_reverse", "frozen_call", "speaker_adversary_loss"]


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward; the gradient times ``-scale`` backward (Ganin and Lempitsky, 2015).

    One optimiser then plays both sides of an adversarial game: the module after it
    minimises a loss that the modules before it maximise.
    """
    return _GradReverse.apply(x, scale)


def frozen_call(module: torch.nn.Module, *args: torch.Tensor) -> torch.Tensor:
    """``module(*args)`` with its parameters detached: gradients reach the inputs only.

    One player of an adversarial game judging the other (a generator's loss through the
    discriminator) without the judge learning from that loss.
    """
    params = {name: p.detach() for name, p in module.named_parameters()}
    return torch.func.functional_call(module, params, args)


def speaker_adversary_loss(
    classifier: Callable[[torch.Tensor], torch.Tensor], codes: torch.Tensor, speakers: torch.Tensor, *, scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of a speaker classifier that reads ``codes`` through :func:`grad_reverse`.

    The classifier learns to name the speaker by minimising the loss; the reversed gradient
    (times ``scale``) trains whatever made ``codes`` to defeat it (speaker-invariant codes,
    Ganin and Lempitsky, 2015).

    Parameters
    ----------
    classifier : ``codes (B, T, D)`` -> logits ``(B, S)`` (one per utterance) or ``(B, T, S)``
        (one per frame).
    codes : (B, T, D) codes the speaker should not be recoverable from.
    speakers : (B,) int64 speaker of each utterance, in ``[0, S)``.
    scale : factor of the reversed gradient.

    Returns
    -------
    The 0-dim cross-entropy (mean over utterances or frames) and the classifier's accuracy
    (detached).
    """
    logits = classifier(grad_reverse(codes, scale))
    labels = speakers.reshape(-1, *([1] * (logits.dim() - 2))).expand(logits.shape[:-1])  # (B,) or (B, T)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1))
    return ce, (logits.argmax(-1) == labels).float().mean().detach()
