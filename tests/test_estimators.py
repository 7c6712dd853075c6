"""Gradient estimators: toy problems with known optima and gradients against exact values.

Tolerances for Monte Carlo comparisons are stated as multiples of the standard error of
the mean estimate, computed from the per-sample estimates themselves.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F

from speechrep.errors import ConfigError
from speechrep.estimators import (
    Reinforce,
    TemperatureSchedule,
    gumbel_sigmoid,
    gumbel_softmax,
    st_binary,
    st_onehot,
    straight_through,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

N_MC = 100_000  # Monte Carlo samples for the expectation checks
Z_TOL = 5.0  # allowed deviation in standard errors


def _per_sample_grads(logits_row: torch.Tensor, n: int, objective) -> torch.Tensor:
    """Gradient of ``objective(rows).sum()`` w.r.t. each of ``n`` copies of ``logits_row``."""
    rows = logits_row.detach().expand(n, -1).clone().requires_grad_(True)
    objective(rows).sum().backward()
    return rows.grad


def _assert_unbiased(per_sample: torch.Tensor, exact: torch.Tensor) -> None:
    mean = per_sample.mean(0)
    se = per_sample.std(0) / per_sample.shape[0] ** 0.5
    # floor on the SE so a zero-variance coordinate still allows float rounding
    assert torch.all((mean - exact).abs() <= Z_TOL * se + 1e-4), (mean, exact, se)


# --------------------------------------------------------------------------- Gumbel


def test_hard_gumbel_samples_follow_the_softmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.tensor([0.5, -1.0, 1.5, 0.0])
    y = gumbel_softmax(logits.expand(N_MC, -1), tau=0.7, hard=True, generator=g)
    assert torch.all((y == 0) | (y == 1)) and torch.all(y.sum(-1) == 1)
    freq = y.mean(0)
    p = torch.softmax(logits, -1)
    se = (p * (1 - p) / N_MC).sqrt()
    assert torch.all((freq - p).abs() <= Z_TOL * se)


def _relaxed_objective_two_classes(logits: torch.Tensor, tau: float, f) -> torch.Tensor:
    """E_g[f(softmax((l + g) / tau)[1])] for K=2 by midpoint quadrature over the logistic noise."""
    m = 400_000
    u = (torch.arange(m, dtype=torch.float64) + 0.5) / m
    noise = torch.log(u) - torch.log1p(-u)  # g1 - g0 ~ Logistic(0, 1)
    y1 = torch.sigmoid((logits[1] - logits[0] + noise) / tau)
    return f(y1).mean()


@pytest.mark.parametrize("hard", [False, True])
def test_gumbel_softmax_gradient_is_unbiased_for_the_relaxed_objective(hard):
    tau = 0.8
    f = lambda y1: (y1 - 0.2) ** 2  # noqa: E731  nonlinear, so the check is not trivial
    logits = torch.tensor([0.3, -0.4], dtype=torch.float64, requires_grad=True)
    _relaxed_objective_two_classes(logits, tau, f).backward()
    exact = logits.grad.float()
    g = torch.Generator().manual_seed(1)
    per = _per_sample_grads(logits.float(), N_MC, lambda r: f(gumbel_softmax(r, tau=tau, generator=g)[:, 1]))
    if hard:
        # straight-through Gumbel is biased for the relaxed objective: show the bias is real
        per_hard = _per_sample_grads(
            logits.float(), N_MC, lambda r: f(gumbel_softmax(r, tau=tau, hard=True, generator=g)[:, 1])
        )
        assert (per_hard.mean(0) - exact).abs().max() > 10 * (per_hard.std(0) / N_MC**0.5).max()
    else:
        _assert_unbiased(per, exact)


def test_gumbel_sigmoid_gradient_is_unbiased_for_the_relaxed_objective():
    tau = 0.6
    f = lambda y: torch.sin(3 * y)  # noqa: E731
    a = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    # binary concrete with log-odds a == two-class Gumbel-softmax with logits (0, a)
    _relaxed_objective_two_classes(torch.cat([a.new_zeros(1), a]), tau, f).backward()
    g = torch.Generator().manual_seed(2)
    per = _per_sample_grads(a.float(), N_MC, lambda r: f(gumbel_sigmoid(r, tau=tau, generator=g))[:, 0])
    _assert_unbiased(per, a.grad.float())


def test_gumbel_sigmoid_hard_gives_bits_with_sigmoid_probability():
    g = torch.Generator().manual_seed(3)
    a = torch.tensor([-1.0, 0.0, 2.0])
    y = gumbel_sigmoid(a.expand(N_MC, -1), tau=0.5, hard=True, generator=g)
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    p = torch.sigmoid(a)
    assert torch.all((y.mean(0) - p).abs() <= Z_TOL * (p * (1 - p) / N_MC).sqrt())


def test_temperature_schedules():
    for kind in ("exponential", "linear", "cosine"):
        s = TemperatureSchedule(kind=kind, start=2.0, end=0.5, steps=100)
        vals = [s(t) for t in range(0, 151, 10)]
        assert vals[0] == pytest.approx(2.0) and vals[10] == pytest.approx(0.5) and vals[-1] == pytest.approx(0.5)
        assert all(b <= a + 1e-12 for a, b in zip(vals, vals[1:]))
    assert TemperatureSchedule(kind="exponential", start=2.0, end=0.5, steps=100)(50) == pytest.approx(1.0)
    assert TemperatureSchedule(kind="constant", start=1.3)(10**6) == 1.3
    with pytest.raises(ConfigError, match="temperatures must be > 0"):
        TemperatureSchedule(start=0.0)
    with pytest.raises(ConfigError, match="unknown schedule"):
        TemperatureSchedule(kind="step")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        gumbel_softmax(torch.zeros(3), tau=0.0)


# --------------------------------------------------------------------------- straight-through


def test_straight_through_value_and_gradient():
    soft = torch.tensor([0.2, 0.7], requires_grad=True)
    out = straight_through(torch.tensor([0.0, 1.0]), soft)
    assert out.tolist() == [0.0, 1.0]
    (out * torch.tensor([3.0, -2.0])).sum().backward()
    assert soft.grad.tolist() == [3.0, -2.0]


def test_st_identity_passes_the_gradient_unchanged():
    logits = torch.tensor([[0.1, 2.0, -1.0]], requires_grad=True)
    z = st_onehot(logits, mode="identity")
    assert z.tolist() == [[0.0, 1.0, 0.0]]
    w = torch.tensor([[1.0, -4.0, 0.5]])
    (z * w).sum().backward()
    assert torch.equal(logits.grad, w)
    b_logits = torch.tensor([-0.3, 0.4], requires_grad=True)
    b = st_binary(b_logits, mode="identity")
    assert b.tolist() == [0.0, 1.0]
    (b * torch.tensor([2.0, 5.0])).sum().backward()
    assert b_logits.grad.tolist() == [2.0, 5.0]


def test_stochastic_st_is_exact_for_linear_costs_and_biased_otherwise():
    """The documented property: exact gradient of E[c·z] for every sample when the cost is
    linear in the one-hot z; a measurable bias for a nonlinear cost."""
    c = torch.tensor([1.0, -2.0, 0.5])
    logits = torch.tensor([0.2, -0.1, 0.6], requires_grad=True)
    (torch.softmax(logits, -1) * c).sum().backward()
    exact = logits.grad.clone()
    g = torch.Generator().manual_seed(4)
    per = _per_sample_grads(logits, 2000, lambda r: (st_onehot(r, stochastic=True, generator=g) * c).sum(-1))
    assert torch.allclose(per, exact.expand_as(per), atol=1e-6)

    # nonlinear cost f(z) = (c·z)^2: exact gradient by enumeration of the 3 outcomes
    logits.grad = None
    (torch.softmax(logits, -1) * c**2).sum().backward()
    exact_nl = logits.grad.clone()
    per_nl = _per_sample_grads(logits, N_MC, lambda r: ((st_onehot(r, stochastic=True, generator=g) * c).sum(-1)) ** 2)
    bias = (per_nl.mean(0) - exact_nl).abs().max()
    assert bias > 10 * (per_nl.std(0) / N_MC**0.5).max()


def test_stochastic_st_binary_is_exact_for_linear_costs():
    w = torch.tensor([0.5, -1.5, 2.0])
    a = torch.tensor([0.3, -0.8, 1.1], requires_grad=True)
    (torch.sigmoid(a) * w).sum().backward()
    g = torch.Generator().manual_seed(5)
    per = _per_sample_grads(a, 1000, lambda r: (st_binary(r, stochastic=True, generator=g) * w).sum(-1))
    assert torch.allclose(per, a.grad.expand_as(per), atol=1e-6)


# --------------------------------------------------------------------------- REINFORCE


@pytest.mark.parametrize("baseline", ["none", "moving_average", "learned"])
def test_reinforce_categorical_gradient_is_unbiased(baseline):
    cost = torch.tensor([1.0, 3.0, -0.5])
    logits = torch.tensor([0.4, -0.2, 0.1], requires_grad=True)
    (torch.softmax(logits, -1) * cost).sum().backward()
    exact = logits.grad.clone()
    est = Reinforce(baseline=baseline, context_dim=2)
    if baseline == "moving_average":
        est.baseline(torch.full((4,), 1.2))  # warm the average with unrelated costs
    g = torch.Generator().manual_seed(6)
    ctx = torch.randn(N_MC, 2, generator=g)

    def objective(rows):
        z, logp = est.sample_categorical(rows, generator=g)
        # loss() averages over the batch; rescale so each row gets its own estimate
        return est.loss(logp, (z * cost).sum(-1), context=ctx) * rows.shape[0]

    per = _per_sample_grads(logits, N_MC, objective)
    _assert_unbiased(per, exact)


def test_reinforce_bernoulli_gradient_is_unbiased_and_baseline_lowers_variance():
    def f(b):
        return (b[..., 0] + 2 * b[..., 1] - b[..., 2] - 1.0) ** 2 + 3.0

    a = torch.tensor([0.3, -0.5, 0.9], requires_grad=True)
    p = torch.sigmoid(a)
    exact_obj = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=3):
        b = torch.tensor(bits)
        exact_obj = exact_obj + torch.prod(torch.where(b > 0, p, 1 - p)) * f(b)
    exact_obj.backward()
    g = torch.Generator().manual_seed(7)
    variances = {}
    for kind in ("none", "moving_average"):
        est = Reinforce(baseline=kind, decay=0.0)
        if kind == "moving_average":
            est.baseline(torch.full((1,), 4.0))

        def objective(rows):
            b, logp = est.sample_bernoulli(rows, generator=g)
            return est.loss(logp, f(b)) * rows.shape[0]

        per = _per_sample_grads(a, N_MC, objective)
        _assert_unbiased(per, a.grad)
        variances[kind] = per.var(0).sum().item()
    assert variances["moving_average"] < 0.5 * variances["none"]


def test_moving_average_baseline_update_math():
    est = Reinforce(baseline="moving_average", decay=0.9)
    b0 = est.baseline(torch.tensor([2.0, 4.0]))  # first batch initialises to its mean
    assert b0.item() == 0.0 and est.baseline.value.item() == pytest.approx(3.0)
    b1 = est.baseline(torch.tensor([13.0]))
    assert b1.item() == pytest.approx(3.0) and est.baseline.value.item() == pytest.approx(0.9 * 3 + 0.1 * 13)
    est.eval()
    est.baseline(torch.tensor([100.0]))
    assert est.baseline.value.item() == pytest.approx(4.0)


def test_reinforce_bad_options():
    with pytest.raises(ConfigError, match="context_dim"):
        Reinforce(baseline="learned")
    with pytest.raises(ConfigError, match="unknown baseline"):
        Reinforce(baseline="average")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="decay"):
        Reinforce(baseline="moving_average", decay=1.0)


# --------------------------------------------------------------------------- toy optima

COSTS = torch.tensor([0.8, 0.2, 1.0, 0.5])  # best choice: index 1
TARGET_BITS = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])


def _categorical_step(kind: str, logits: torch.Tensor, est: Reinforce, g: torch.Generator) -> torch.Tensor:
    rows = logits.expand(64, -1)
    if kind.startswith("reinforce"):
        z, logp = est.sample_categorical(rows, generator=g)
        return est.loss(logp, (z * COSTS).sum(-1), context=torch.ones(64, 1))
    if kind == "gumbel_soft":
        z = gumbel_softmax(rows, tau=0.5, generator=g)
    elif kind == "gumbel_st":
        z = gumbel_softmax(rows, tau=0.5, hard=True, generator=g)
    else:
        z = st_onehot(rows, stochastic=True, generator=g)
    return (z * COSTS).sum(-1).mean()


@pytest.mark.parametrize("kind", ["reinforce_ma", "reinforce_learned", "gumbel_soft", "gumbel_st", "st"])
def test_categorical_choice_reaches_the_optimum(kind):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(8)
    logits = torch.zeros(4, requires_grad=True)
    est = Reinforce(baseline="learned" if kind == "reinforce_learned" else "moving_average", context_dim=1)
    opt = torch.optim.Adam([logits, *est.parameters()], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        _categorical_step(kind, logits, est, g).backward()
        opt.step()
    p = torch.softmax(logits.detach(), -1)
    assert p.argmax().item() == 1 and p[1] > 0.9, p


def _bits_cost(b: torch.Tensor) -> torch.Tensor:
    return (b - TARGET_BITS).abs().sum(-1) ** 2  # nonlinear in the bits; optimum: TARGET_BITS


@pytest.mark.parametrize("kind", ["reinforce", "gumbel_st", "st"])
def test_binary_choice_reaches_the_optimum(kind):
    g = torch.Generator().manual_seed(9)
    logits = torch.zeros(5, requires_grad=True)
    est = Reinforce(baseline="moving_average")
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        rows = logits.expand(64, -1)
        if kind == "reinforce":
            b, logp = est.sample_bernoulli(rows, generator=g)
            loss = est.loss(logp, _bits_cost(b))
        elif kind == "gumbel_st":
            loss = _bits_cost(gumbel_sigmoid(rows, tau=0.5, hard=True, generator=g)).mean()
        else:
            loss = _bits_cost(st_binary(rows, stochastic=True, generator=g)).mean()
        loss.backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert torch.equal((p > 0.5).float(), TARGET_BITS)
    assert torch.prod(torch.where(TARGET_BITS > 0, p, 1 - p)) > 0.8, p


def test_onehot_log_prob_matches_distribution():
    logits = torch.tensor([[0.1, 1.0, -0.5]])
    z, logp = Reinforce.sample_categorical(logits, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(logp, (F.log_softmax(logits, -1) * z).sum(-1))
