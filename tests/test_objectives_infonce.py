"""InfoNCE: the batched matmul+gather loss against straightforward references."""

import math

import pytest
import torch

from speechrep.objectives.infonce import (
    infonce_from_logits,
    infonce_loss,
    infonce_loss_reference,
    predictive_estimator,
    predictive_loss,
    sample_negatives,
)

TOL = 1e-5  # absolute tolerance of the parity tests (fp32)


def _inputs(B=3, T=14, K=4, D=8, N=5, mode="batch", seed=0):
    g = torch.Generator().manual_seed(seed)
    W = T - K
    pred = torch.randn(B, W, K, D, generator=g, requires_grad=True)
    z = torch.randn(B, T, D, generator=g, requires_grad=True)
    speaker = torch.tensor([0, 1, 0][:B])
    neg = sample_negatives(B, T, W, N, mode=mode, speaker=speaker, generator=g)
    return pred, z, neg


def _loop_loss(pred, z, neg):
    """Element by element: log-softmax of the positive among 1 + N dot products / D."""
    B, W, K, D = pred.shape
    T = z.shape[1]
    flat = z.reshape(B * T, D)
    per_k = []
    for k in range(K):
        total = 0.0
        for b in range(B):
            for w in range(W):
                p = pred[b, w, k]
                cands = [z[b, w + k + 1]] + [flat[i] for i in neg[b, w].tolist()]
                s = torch.stack([(p * c).sum() / D for c in cands])
                total = total + (torch.logsumexp(s, 0) - s[0])
        per_k.append(total / (B * W))
    return torch.stack(per_k)


@pytest.mark.parametrize("mode", ["sequence", "speaker", "batch"])
def test_fast_loss_equals_reference_loss_and_gradients(mode):
    pred, z, neg = _inputs(mode=mode)
    K = pred.shape[2]
    fast, fast_k, fast_acc = infonce_loss(pred, z, neg, within_sequence=mode == "sequence")
    g_fast = torch.autograd.grad(fast, (pred, z))
    ref, ref_k, ref_acc = infonce_loss_reference([pred[:, :, k] for k in range(K)], z, neg)
    g_ref = torch.autograd.grad(ref, (pred, z))
    assert torch.allclose(fast, ref, atol=TOL, rtol=0)
    assert torch.allclose(fast_k, ref_k, atol=TOL, rtol=0)
    assert torch.equal(fast_acc, ref_acc)
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_reference_equals_elementwise_loop():
    pred, z, neg = _inputs(B=2, T=9, K=3, D=4, N=3)
    ref_k = infonce_loss_reference([pred[:, :, k] for k in range(3)], z, neg)[1]
    assert torch.allclose(ref_k, _loop_loss(pred, z, neg), atol=TOL, rtol=0)


def test_within_sequence_path_equals_batch_path():
    pred, z, neg = _inputs(mode="sequence")
    a = infonce_loss(pred, z, neg, within_sequence=True)[0]
    b = infonce_loss(pred, z, neg, within_sequence=False)[0]
    assert torch.allclose(a, b, atol=TOL, rtol=0)


def test_perfect_predictions_reach_accuracy_one_and_low_loss():
    B, T, K, D, N = 2, 12, 3, 32, 6
    z = torch.nn.functional.one_hot(torch.arange(B * T), D).float().view(B, T, D) * 50  # all frames distinct
    W = T - K
    pred = torch.stack([z[:, k + 1 : k + 1 + W] for k in range(K)], dim=2)
    # negatives from the other sequence, so none is the positive itself
    neg = sample_negatives(B, T, W, N, mode="sequence", generator=torch.Generator().manual_seed(0))
    neg = (neg + T) % (B * T)
    loss, _, acc = infonce_loss(pred, z, neg)
    assert torch.all(acc == 1)
    assert loss < 1e-3
    # random predictions: loss near K * log(1 + N)
    rnd = torch.randn_like(pred) * 1e-3
    assert abs(float(infonce_loss(rnd, z, neg)[0]) - K * math.log(1 + N)) < 0.05


def test_ties_are_not_counted_as_correct():
    pred, z, neg = _inputs()
    _, _, acc = infonce_loss(torch.zeros_like(pred), z, neg)
    assert torch.all(acc == 0)


def test_sample_negatives_respects_mode():
    g = torch.Generator().manual_seed(0)
    B, T, W, N = 4, 20, 15, 30
    speaker = torch.tensor([3, 5, 3, 7])
    for mode in ("sequence", "speaker", "batch"):
        idx = sample_negatives(B, T, W, N, mode=mode, speaker=speaker, generator=g)
        assert idx.shape == (B, W, N) and idx.dtype == torch.int64
        seq, time = idx // T, idx % T
        assert torch.all(time != torch.arange(W).view(1, W, 1))  # never the anchor's own time
        if mode == "sequence":
            assert torch.all(seq == torch.arange(B).view(B, 1, 1))
        elif mode == "speaker":
            assert torch.all(speaker[seq] == speaker.view(B, 1, 1))
            assert set(seq[0].unique().tolist()) == {0, 2}
        else:
            assert set(seq.unique().tolist()) == set(range(B))


def test_sample_negatives_bad_input():
    with pytest.raises(ValueError, match="speaker"):
        sample_negatives(2, 10, 5, 3, mode="speaker")
    with pytest.raises(ValueError, match="unknown"):
        sample_negatives(2, 10, 5, 3, mode="nowhere")


def test_predictive_loss_with_infonce_equals_infonce_and_positive_reads_the_positives():
    from speechrep.objectives.mi import estimator_loss

    logits = torch.randn(3, 5, 2, 7, generator=torch.Generator().manual_seed(0))
    ref, ref_k, ref_acc = infonce_from_logits(logits)
    loss, loss_k, acc = predictive_loss(logits, estimator_loss("infonce"))
    assert torch.allclose(loss_k, ref_k, atol=1e-6) and torch.equal(acc, ref_acc)
    _, pos_k, _ = predictive_loss(logits, estimator_loss("positive"))
    assert torch.allclose(pos_k, -logits[..., 0].mean(dim=(0, 1)))
    assert predictive_estimator("infonce") is infonce_from_logits  # CPC's fast path
    assert torch.equal(predictive_estimator("dv")(logits)[1], predictive_loss(logits, estimator_loss("dv"))[1])


def test_blockwise_backward_equals_reference_gradients(monkeypatch):
    from speechrep.objectives import infonce

    monkeypatch.setattr(infonce._ScoreGather, "BACKWARD_ROWS", 7)  # many uneven blocks
    pred, z, neg = _inputs(mode="batch")
    K = pred.shape[2]
    g_fast = torch.autograd.grad(infonce_loss(pred, z, neg)[0], (pred, z))
    g_ref = torch.autograd.grad(infonce_loss_reference([pred[:, :, k] for k in range(K)], z, neg)[0], (pred, z))
    for a, b in zip(g_fast, g_ref):
        assert torch.allclose(a, b, atol=TOL, rtol=0)
