"""InfoNCE for Contrastive Predictive Coding.

For every context frame ``t`` and step ``k = 1..K`` a prediction ``p[b, t, k]`` must pick
the true future code ``z[b, t + k]`` out of ``1 + N`` candidates: the positive and ``N``
negatives drawn from the batch. With the score ``s(p, z) = <p, z> / D`` (a mean over
dimensions, as CPC_audio does) the loss of step ``k`` is

    L_k = mean_{b,t} [ log sum_j exp s(p_btk, z_j) - s(p_btk, z_b,t+k) ]

and the total is ``sum_k L_k``. The candidates are scored with ONE matrix product for all
steps and then gathered, so no ``(B, T, K, 1 + N, D)`` tensor is ever built.

Negative indices are flat indices into the ``B * T`` encoder frames of the batch and are
shared by the ``K`` steps (as in CPC_audio): shape ``(B, W, N)`` with ``W = T - K``.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F

from speechrep.objectives.mi import Estimator, estimator_loss

__all__ = [
    "NegativeMode",
    "sample_negatives",
    "infonce_logits",
    "infonce_from_logits",
    "infonce_loss",
    "infonce_loss_reference",
    "predictive_loss",
    "predictive_estimator",
]

NegativeMode = Literal["sequence", "speaker", "batch"]


def sample_negatives(
    batch_size: int,
    num_frames: int,
    window: int,
    num_negatives: int,
    *,
    mode: NegativeMode = "speaker",
    speaker: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Draw negative frames for every anchor of the batch.

    Parameters
    ----------
    batch_size, num_frames : B and T of the encoder output ``(B, T, D)``.
    window : W, number of anchors per sequence (``T - K``).
    num_negatives : N.
    mode : ``"sequence"`` (frames of the anchor's own sequence), ``"speaker"`` (frames of
        any sequence of the batch with the anchor's speaker; ``speaker`` required) or
        ``"batch"`` (frames of any sequence of the batch).
    speaker : (B,) int64 speaker index of each sequence.
    generator : random generator (the global one when None).

    Returns
    -------
    (B, W, N) int64 flat indices into the ``B * T`` frames. A negative of anchor ``t`` is
    never frame ``t`` of its chosen sequence (the time offset is drawn from ``1..T-1``).
    """
    if num_frames < 2:
        raise ValueError(f"need at least 2 frames per sequence to draw negatives, got {num_frames}")
    if mode == "sequence":
        same = torch.eye(batch_size, device=device)
    elif mode == "batch":
        same = torch.ones(batch_size, batch_size, device=device)
    elif mode == "speaker":
        if speaker is None:
            raise ValueError("negatives within speaker need the batch's speaker labels")
        speaker = speaker.to(device)
        same = (speaker[:, None] == speaker[None, :]).float()
    else:
        raise ValueError(f"unknown negative sampling mode {mode!r} (sequence, speaker, batch)")
    count = window * num_negatives
    # row b: a sequence index for each of its W*N negatives, uniform over the allowed rows
    seq = torch.multinomial(same, count, replacement=True, generator=generator)  # (B, W*N)
    offset = torch.randint(1, num_frames, (batch_size, window, num_negatives), generator=generator, device=device)
    anchor = torch.arange(window, device=device).view(1, window, 1)
    time = torch.remainder(anchor + offset, num_frames)  # (B, W, N)
    return seq.view(batch_size, window, num_negatives) * num_frames + time


def infonce_logits(pred: torch.Tensor, z: torch.Tensor, neg_idx: torch.Tensor, *, within_sequence: bool = False) -> torch.Tensor:
    """Scores of the positive and the negatives of every prediction.

    Parameters
    ----------
    pred : (B, W, K, D) predictions of steps 1..K from the first W context frames.
    z : (B, T, D) encoder outputs (candidates), ``T >= W + K``.
    neg_idx : (B, W, N) flat frame indices from :func:`sample_negatives`.
    within_sequence : all negatives of row b come from sequence b; scoring each sequence
        against its own frames then costs T instead of B*T columns per prediction.

    Returns
    -------
    (B, W, K, 1 + N) scores ``<p, z> / D``, positive first.
    """
    B, W, K, D = pred.shape
    T = z.shape[1]
    if T < W + K:
        raise ValueError(f"{T} encoder frames cannot hold {W} anchors + {K} steps")
    steps = torch.arange(1, K + 1, device=pred.device)
    pos = (torch.arange(W, device=pred.device)[:, None] + steps).expand(B, W, K)  # time of z_{t+k}
    N = neg_idx.shape[-1]
    if within_sequence:
        scores = torch.einsum("bwkd,bsd->bwks", pred, z)  # (B, W, K, T)
        neg = neg_idx - (torch.arange(B, device=pred.device) * T).view(B, 1, 1)
        idx = torch.cat([pos.unsqueeze(-1), neg.unsqueeze(2).expand(B, W, K, N)], dim=-1)
        return scores.gather(-1, idx) / D
    pos = pos + (torch.arange(B, device=pred.device) * T).view(B, 1, 1)
    idx = torch.cat([pos.unsqueeze(-1), neg_idx.unsqueeze(2).expand(B, W, K, N)], dim=-1)
    logits = _ScoreGather.apply(pred.reshape(B * W * K, D), z.reshape(B * T, D), idx.view(B * W * K, 1 + N))
    return logits.view(B, W, K, 1 + N) / D


class _ScoreGather(torch.autograd.Function):
    """``(a @ b.T).gather(1, idx)`` that keeps a, b, idx (not the product) for backward.

    ``a`` (M, D) predictions, ``b`` (F, D) frames, ``idx`` (M, C) candidate columns. The
    (M, F) score matrix is the largest tensor of the loss; autograd's gather would keep it
    alive until backward.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(a, b, idx)
        return (a @ b.T).gather(1, idx)

    #: rows of the score-matrix gradient materialised at a time in backward
    BACKWARD_ROWS = 2048

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        a, b, idx = ctx.saved_tensors
        a32, b32, grad = a.float(), b.float(), grad.float()
        grad_a = torch.empty_like(a32)
        grad_b = torch.zeros_like(b32)
        # scatter the candidates' gradients back into the score matrix (repeated
        # candidates add up), then the two products of the matmul's backward; by
        # blocks of rows so that the dense gradient never exists whole
        for i in range(0, a.shape[0], _ScoreGather.BACKWARD_ROWS):
            rows = slice(i, i + _ScoreGather.BACKWARD_ROWS)
            g = torch.zeros(idx[rows].shape[0], b.shape[0], dtype=torch.float32, device=a.device)
            g.scatter_add_(1, idx[rows], grad[rows])
            torch.mm(g, b32, out=grad_a[rows])
            grad_b.addmm_(g.T, a32[rows])
        return grad_a.to(a.dtype), grad_b.to(b.dtype), None


@torch.no_grad()
def _step_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """(K,) fraction of ``(B, W, K, 1 + N)`` rows whose positive (first) scores strictly
    above every negative: ties count as wrong, so a collapsed code scores 0, not 1."""
    return (logits[..., 0] > logits[..., 1:].amax(dim=-1)).float().mean(dim=(0, 1))


def infonce_from_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss and accuracy from ``(B, W, K, 1 + N)`` scores with the positive first.

    Returns
    -------
    loss : scalar, ``sum_k mean_{b,w}`` of the cross-entropy.
    loss_k : (K,) per-step losses.
    acc_k : (K,) fraction of predictions whose positive scores strictly above every
        negative (ties count as wrong, so a collapsed code scores 0, not 1).
    """
    logits = logits.float()  # log-sum-exp in fp32 under autocast
    nll = torch.logsumexp(logits, dim=-1) - logits[..., 0]  # (B, W, K)
    loss_k = nll.mean(dim=(0, 1))
    acc_k = _step_accuracy(logits)
    return loss_k.sum(), loss_k, acc_k


def infonce_loss(
    pred: torch.Tensor, z: torch.Tensor, neg_idx: torch.Tensor, *, within_sequence: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InfoNCE of CPC: :func:`infonce_logits` followed by :func:`infonce_from_logits`.

    Parameters
    ----------
    pred : (B, W, K, D) predictions.
    z : (B, T, D) candidates.
    neg_idx : (B, W, N) flat negative indices.

    Returns
    -------
    (loss, loss_k (K,), acc_k (K,))
    """
    return infonce_from_logits(infonce_logits(pred, z, neg_idx, within_sequence=within_sequence))


def infonce_loss_reference(
    preds: Sequence[torch.Tensor], z: torch.Tensor, neg_idx: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The same loss computed the straightforward way (CPC_audio's formulation).

    For each step separately, the candidates ``(B, 1 + N, W, D)`` are materialised and
    scored with a broadcast multiply and a mean over D. Slow and memory-hungry; kept as
    the reference that tests and ``bench/cpc_step.py`` compare :func:`infonce_loss` with.

    Parameters
    ----------
    preds : K tensors (B, W, D), the predictions of steps 1..K.
    z : (B, T, D) candidates.
    neg_idx : (B, W, N) flat negative indices.
    """
    B, T, D = z.shape
    W, N = neg_idx.shape[1], neg_idx.shape[2]
    negatives = z.reshape(B * T, D)[neg_idx.transpose(1, 2).reshape(-1)].view(B, N, W, D)
    target = torch.zeros(B * W, dtype=torch.long, device=z.device)
    losses, accs = [], []
    for k, pred in enumerate(preds, start=1):
        candidates = torch.cat([z[:, k : k + W].unsqueeze(1), negatives], dim=1)  # (B, 1+N, W, D)
        scores = (pred.unsqueeze(1) * candidates).mean(dim=3)  # (B, 1+N, W)
        scores = scores.permute(0, 2, 1).reshape(B * W, 1 + N).float()
        losses.append(F.cross_entropy(scores, target))
        accs.append((scores[:, 0] > scores[:, 1:].amax(dim=1)).float().mean())
    loss_k = torch.stack(losses)
    return loss_k.sum(), loss_k, torch.stack(accs).detach()


def predictive_loss(
    logits: torch.Tensor, estimate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss and accuracy of every step from ``(B, W, K, 1 + N)`` scores, positive first.

    The general form of :func:`infonce_from_logits`: each step's ``(B * W, 1 + N)`` score
    matrix goes through an estimator of :func:`speechrep.objectives.mi.estimator_loss`
    (``infonce`` gives the same loss; ``positive`` reads the positive column only).

    Returns
    -------
    loss : scalar, ``sum_k`` of the step losses.
    loss_k : (K,) per-step losses.
    acc_k : (K,) fraction of predictions whose positive scores strictly above every negative.
    """
    logits = logits.float()
    B, W, K, C = logits.shape
    positive = torch.zeros(C, dtype=torch.bool, device=logits.device)
    positive[0] = True
    positive = positive.expand(B * W, C)
    loss_k = torch.stack([estimate(logits[:, :, k].reshape(B * W, C), positive) for k in range(K)])
    acc_k = _step_accuracy(logits)
    return loss_k.sum(), loss_k, acc_k


def predictive_estimator(estimator: Estimator) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``logits (B, W, K, 1 + N) -> (loss, loss_k, acc_k)`` of an estimator name, chosen once.

    ``infonce`` is :func:`infonce_from_logits` (one log-sum-exp, no per-step loop, no
    boolean indexing: CPC's training path stays as fast as it was); the others go through
    :func:`predictive_loss`.
    """
    if estimator == "infonce":
        return infonce_from_logits
    return partial(predictive_loss, estimate=estimator_loss(estimator))
