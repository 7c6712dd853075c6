"""MI estimators, prior matching and reconstruction scores against hand-written formulas."""

import math

import pytest
import torch
import torch.nn.functional as F

from speechrep.objectives.adversarial import frozen_call, grad_reverse
from speechrep.objectives.mi import mi_loss, positive_loss, prior_matching_loss
from speechrep.objectives.reconstruction import masked_error, pairwise_reconstruction_scores, reconstruction_score

TOL = 1e-5


def _scores(M=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, M, generator=g) * 2, torch.eye(M, dtype=torch.bool)


def test_jsd_matches_formula():
    s, pos = _scores()
    expect = sum(F.softplus(-s[i, i]) for i in range(5)) / 5 + sum(F.softplus(s[i, j]) for i in range(5) for j in range(5) if i != j) / 20
    assert float(mi_loss(s, pos, estimator="jsd")) == pytest.approx(float(expect), abs=TOL)


def test_dv_matches_formula():
    s, pos = _scores()
    neg = [s[i, j] for i in range(5) for j in range(5) if i != j]
    expect = -(s.diagonal().mean() - math.log(sum(math.exp(float(v)) for v in neg) / len(neg)))
    assert float(mi_loss(s, pos, estimator="dv")) == pytest.approx(float(expect), abs=TOL)


def test_infonce_with_diagonal_positives_is_cross_entropy():
    s, pos = _scores()
    expect = F.cross_entropy(s, torch.arange(5))
    assert float(mi_loss(s, pos, estimator="infonce")) == pytest.approx(float(expect), abs=TOL)


def test_infonce_with_several_positives_per_row():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    pos = torch.tensor([[True, True, False], [False, False, True]])
    row0 = [math.log(math.exp(1.0) + math.exp(0.5)) - 1.0, math.log(math.exp(2.0) + math.exp(0.5)) - 2.0]
    row1 = [math.log(math.exp(3.0) + math.exp(0.0) + math.exp(-1.0)) - 3.0]
    expect = sum(row0 + row1) / 3
    assert float(mi_loss(s, pos, estimator="infonce")) == pytest.approx(expect, abs=TOL)


def test_estimators_reward_separated_scores():
    _, pos = _scores()
    good = torch.where(pos, 5.0, -5.0)
    for est in ("jsd", "dv", "infonce"):
        assert mi_loss(good, pos, estimator=est) < mi_loss(torch.zeros(5, 5), pos, estimator=est)


def test_unknown_estimator():
    s, pos = _scores()
    with pytest.raises(ValueError, match="estimator"):
        mi_loss(s, pos, estimator="mine")


def test_positive_loss():
    assert float(positive_loss(torch.tensor([1.0, 3.0]))) == -2.0


def test_grad_reverse_negates_gradient():
    x = torch.randn(3, requires_grad=True)
    (grad_reverse(x) * 2).sum().backward()
    assert torch.equal(x.grad, torch.full((3,), -2.0))


def test_prior_matching_trains_discriminator_and_fools_it_with_encoder():
    codes = torch.zeros(64, 4, requires_grad=True)
    disc = torch.nn.Linear(4, 1)
    loss = prior_matching_loss(codes, disc)
    loss.backward()
    # a lower discriminator loss would come from lower logits on the codes: the
    # reversed gradient moves the codes the other way (towards looking like the prior)
    w = disc.weight.detach().clone()
    step_codes = codes - 0.1 * codes.grad
    assert loss > 0 and codes.grad.abs().sum() > 0
    assert (torch.sigmoid(step_codes) @ w.T).mean() > (torch.sigmoid(codes.detach()) @ w.T).mean()


def test_reconstruction_scores_match_brute_force():
    g = torch.Generator().manual_seed(0)
    dec, tgt = torch.randn(4, 6, generator=g), torch.randn(3, 6, generator=g)
    brute = -((dec[:, None] - tgt[None]) ** 2).mean(-1)
    assert torch.allclose(pairwise_reconstruction_scores(dec, tgt), brute, atol=TOL)
    assert torch.allclose(reconstruction_score(dec[:3], tgt), brute.diagonal(), atol=TOL)


def test_frozen_call_passes_gradients_to_inputs_only():
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3, requires_grad=True)
    frozen_call(layer, x).sum().backward()
    assert layer.weight.grad is None and layer.bias.grad is None
    frozen_grad = x.grad.clone()
    x.grad = None
    layer(x).sum().backward()
    torch.testing.assert_close(frozen_grad, x.grad)  # same function of the input
    assert layer.weight.grad is not None


def test_masked_error_counts_the_valid_frames_only():
    torch.manual_seed(0)
    x, y = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], dtype=torch.float32)[..., None]
    torch.testing.assert_close(masked_error(x, y, mask), torch.cat([(x - y)[0], (x - y)[1, :2]]).abs().mean())
    torch.testing.assert_close(masked_error(x, y, None), (x - y).abs().mean())
    per_utt = masked_error(x, y, mask, kind="mse", per_utterance=True)
    torch.testing.assert_close(per_utt, torch.stack([(x - y)[0].square().mean(), (x - y)[1, :2].square().mean()]))
    torch.testing.assert_close(masked_error(x, y, None, kind="mse", per_utterance=True), (x - y).square().mean((1, 2)))


def test_estimator_loss_picks_the_estimator_by_name():
    from speechrep.objectives.mi import estimator_loss

    s = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    pos = torch.zeros(4, 6, dtype=torch.bool)
    pos[torch.arange(4), torch.arange(4)] = True
    for est in ("jsd", "dv", "infonce"):
        assert torch.equal(estimator_loss(est)(s, pos), mi_loss(s, pos, estimator=est))
    assert torch.equal(estimator_loss("positive")(s, pos), -s.diagonal().mean())
    with pytest.raises(ValueError, match="unknown estimator 'mine'"):
        estimator_loss("mine")
