"""Discrete bottlenecks: nearest code, EMA math, restarts, k-means init, AMP, interface."""

import math

import pytest
import torch

from speechrep.errors import CheckpointError, ConfigError
from speechrep.estimators import TemperatureSchedule
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.bottlenecks.base import BottleneckOutput, usage_stats
from speechrep.models.bottlenecks.estimated import BinaryBottleneck, OneHotBottleneck
from speechrep.models.bottlenecks.gumbel import GumbelVectorQuantizer
from speechrep.models.bottlenecks.kmeans import kmeans
from speechrep.models.bottlenecks.vq import VectorQuantizer

pytestmark = pytest.mark.usefixtures("torch_one_thread")

KINDS = [
    dict(kind="vq", num_codes=8, code_dim=6),
    dict(kind="vq", num_codes=4, code_dim=6, groups=2, cosine=True),
    dict(kind="vq", num_codes=8, code_dim=6, ema=False),
    dict(kind="onehot", num_codes=8, estimator="st"),
    dict(kind="onehot", num_codes=8, estimator="gumbel"),
    dict(kind="onehot", num_codes=8, estimator="reinforce"),
    dict(kind="binary", num_bits=3, estimator="st"),
    dict(kind="binary", num_bits=3, estimator="gumbel_st"),
    dict(kind="gumbel", num_codes=8, code_dim=6, groups=2),
]


def _ids(kw):
    return "-".join(str(v) for v in kw.values())


def _clusters(n: int, dim: int, k: int, *, seed: int = 0, spread: float = 0.05):
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(k, dim, generator=g)
    lab = torch.randint(k, (n,), generator=g)
    return centres[lab] + spread * torch.randn(n, dim, generator=g), centres, lab


def _fixed_vq(codes: torch.Tensor, **kw) -> VectorQuantizer:
    kw = {"kmeans_init": False, "restart_every": 0, **kw}
    vq = VectorQuantizer(codes.shape[1], codes.shape[0], **kw)
    vq.codebook.data[0] = codes
    if vq.ema:
        vq.ema_sum[0] = codes
    return vq


# --------------------------------------------------------------------------- vector quantizer


def test_quantization_picks_the_nearest_code():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(16, 5, generator=g)
    vq = _fixed_vq(codes).eval()
    x = torch.randn(2, 30, 5, generator=g)
    out = vq(x)
    brute = torch.cdist(x.reshape(-1, 5), codes).argmin(-1).reshape(2, 30)
    assert torch.equal(out.indices, brute)
    assert torch.allclose(out.quantized, codes[brute], atol=1e-6)
    assert out.loss.item() == pytest.approx(0.25 * ((x - codes[brute]) ** 2).mean().item(), rel=1e-5)
    # the per-unit costs used for segmentation are the squared distances
    torch.testing.assert_close(vq.unit_costs(x), torch.cdist(x, codes[None].expand(2, -1, -1)).square(), atol=1e-4, rtol=1e-4)


def test_unit_costs_of_cosine_codebooks_and_unsupported_bottlenecks():
    g = torch.Generator().manual_seed(2)
    vq = VectorQuantizer(4, 6, cosine=True, kmeans_init=False, restart_every=0).eval()
    x = torch.randn(2, 9, 4, generator=g)
    costs = vq.unit_costs(x)
    # unit vectors: ||z - e||^2 = 2 - 2 cos
    cos = torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(vq.codebook[0], dim=-1).T
    torch.testing.assert_close(costs, 2 - 2 * cos, atol=1e-5, rtol=0)
    assert torch.equal(costs.argmin(-1), vq(x).indices)
    with pytest.raises(ConfigError, match="product codebook"):
        VectorQuantizer(4, 5, groups=2, kmeans_init=False).unit_costs(x)
    with pytest.raises(ConfigError, match="no per-unit costs"):
        OneHotBottleneck(4, 8).unit_costs(x)


def test_cosine_and_product_codebooks_pick_the_nearest_code_per_group():
    g = torch.Generator().manual_seed(1)
    vq = VectorQuantizer(4, 5, groups=2, cosine=True, kmeans_init=False, restart_every=0).eval()
    x = torch.randn(3, 7, 4, generator=g)
    out = vq(x)
    codes = torch.nn.functional.normalize(vq.codebook, dim=-1)  # (2, 5, 2)
    parts = torch.nn.functional.normalize(x.reshape(-1, 2, 2), dim=-1)
    best = torch.stack([(parts[:, gi] @ codes[gi].T).argmax(-1) for gi in range(2)], -1)  # max cosine
    assert torch.equal(out.indices.reshape(-1), best[:, 0] + 5 * best[:, 1])
    assert vq.num_codes == 25 and vq.bits == pytest.approx(math.log2(25))
    assert torch.allclose(out.quantized.reshape(-1, 2, 2).norm(dim=-1), torch.ones(21, 2), atol=1e-5)


def test_straight_through_gradient_reaches_the_input():
    vq = _fixed_vq(torch.eye(3)).eval()
    x = torch.tensor([[[0.9, 0.2, 0.0], [0.1, 0.1, 0.8]]], requires_grad=True)
    out = vq(x)
    w = torch.randn(1, 2, 3)
    (out.quantized * w).sum().backward()
    assert torch.allclose(x.grad, w)


def test_ema_update_hand_example():
    # codes 0 and 10 (1-D), decay 0.5, no smoothing; batch [1, 3, 9] -> codes 0, 0, 1
    vq = _fixed_vq(torch.tensor([[0.0], [10.0]]), decay=0.5, epsilon=0.0).train()
    vq(torch.tensor([[[1.0], [3.0], [9.0]]]))
    # N = 0.5*[1, 1] + 0.5*[2, 1] = [1.5, 1];  m = 0.5*[0, 10] + 0.5*[4, 9] = [2, 9.5]
    assert torch.allclose(vq.ema_count[0], torch.tensor([1.5, 1.0]))
    assert torch.allclose(vq.ema_sum[0, :, 0], torch.tensor([2.0, 9.5]))
    assert torch.allclose(vq.codebook[0, :, 0], torch.tensor([2.0 / 1.5, 9.5]))


def test_ema_laplace_smoothing_keeps_unused_codes_finite():
    vq = _fixed_vq(torch.tensor([[0.0], [10.0]]), decay=0.0, epsilon=0.1)
    vq.ema_update(torch.tensor([[4.0, 0.0]]), torch.tensor([[[8.0], [0.0]]]))
    # smoothed N = (N_k + eps) / (N + K eps) * N = [4.1, 0.1] / 4.2 * 4
    smoothed = torch.tensor([4.1, 0.1]) / 4.2 * 4
    assert torch.allclose(vq.codebook[0, :, 0], torch.tensor([8.0, 0.0]) / smoothed)
    assert torch.isfinite(vq.codebook).all()


def test_padding_frames_do_not_move_the_codebook_or_stats():
    vq = _fixed_vq(torch.tensor([[0.0], [10.0]]), decay=0.5, epsilon=0.0).train()
    x = torch.tensor([[[1.0], [3.0], [9.0], [1e6]]])
    out = vq(x, mask=torch.tensor([[True, True, True, False]]))
    assert torch.allclose(vq.codebook[0, :, 0], torch.tensor([2.0 / 1.5, 9.5]))
    assert out.stats["used_codes"].item() == 2


def test_dead_codes_get_restarted_from_recent_encoder_outputs():
    codes = torch.cat([torch.zeros(1, 4), 100 + torch.randn(7, 4)])  # only code 0 is near the data
    vq = _fixed_vq(codes, restart_every=5)
    x, _, _ = _clusters(64, 4, 4, seed=2, spread=0.3)
    vq.train()
    for step in range(1, 5):
        out = vq(x.reshape(4, 16, 4))
        vq.on_step_end(step)
    assert out.stats["used_codes"].item() == 1
    vq.on_step_end(5)  # restart_every=5 -> 7 dead codes re-seeded
    assert vq.last_restarted == 7
    new = vq.codebook[0, 1:]
    assert (torch.cdist(new, x, compute_mode="donot_use_mm_for_euclid_dist").min(-1).values < 1e-5).all()  # each new code is an encoder output
    out = vq(x.reshape(4, 16, 4))
    assert out.stats["used_codes"].item() > 2 and out.stats["restarted"].item() == 7
    assert vq.usage.sum() == 64  # one batch of 64 frames counted since the restart
    vq.restart_dead_codes()
    assert vq.usage.sum() == 0  # each check starts a new counting window


def test_kmeans_init_from_first_batches_finds_the_clusters():
    x, centres, _ = _clusters(400, 3, 4, seed=3)
    vq = VectorQuantizer(3, 4, kmeans_init=True, kmeans_batches=2, restart_every=0).train()
    before = vq.codebook.clone()
    vq(x[:200].reshape(4, 50, 3))
    assert torch.equal(vq.codebook, before) and not bool(vq.initialised)  # still collecting
    out = vq(x[200:].reshape(4, 50, 3))
    assert bool(vq.initialised)
    # EMA moved codes a little after init; each true centre has a code next to it
    assert (torch.cdist(centres, vq.codebook[0]).min(-1).values < 0.1).all()
    assert out.stats["used_codes"].item() == 4 and out.stats["perplexity"].item() > 3.5


def test_kmeans_function_with_fewer_samples_than_centres():
    c = kmeans(torch.randn(3, 2), 5, generator=torch.Generator().manual_seed(0))
    assert c.shape == (5, 2) and torch.isfinite(c).all()


def test_checkpoint_codebook_mismatch_is_a_clear_error():
    small = VectorQuantizer(4, 8)
    big = VectorQuantizer(4, 16)
    with pytest.raises(CheckpointError, match=r"codebook.*\(1, 16, 4\)"):
        big.load_state_dict(small.state_dict())
    VectorQuantizer(4, 8).load_state_dict(small.state_dict())  # same shape loads


@pytest.mark.parametrize(
    "make",
    [
        lambda: VectorQuantizer(4, 1),
        lambda: OneHotBottleneck(4, 1),
        lambda: GumbelVectorQuantizer(4, 0),
        lambda: BinaryBottleneck(4, 0),
        lambda: build_bottleneck(BottleneckConfig(kind="vq", num_codes=1), 4),
    ],
)
def test_codebook_size_below_two_is_rejected(make):
    with pytest.raises(ConfigError, match=r"num_codes|num_bits"):
        make()


def test_other_bad_options():
    with pytest.raises(ConfigError, match="groups"):
        VectorQuantizer(6, 8, groups=4)
    with pytest.raises(ConfigError, match="estimator"):
        OneHotBottleneck(4, 8, estimator="magic")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="kind"):
        build_bottleneck(BottleneckConfig(kind="tree"), 4)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- binary / one-hot


def test_binary_layer_reaches_all_two_to_the_n_combinations():
    n = 4
    bn = BinaryBottleneck(n, n).eval()
    with torch.no_grad():
        bn.proj.weight.copy_(torch.eye(n))
        bn.proj.bias.zero_()
    signs = torch.tensor([[1.0 if (i >> b) & 1 else -1.0 for b in range(n)] for i in range(2**n)])
    out = bn(signs.unsqueeze(0))
    assert bn.num_codes == 16 and bn.output_dim == n  # N dims name 2^N units
    assert sorted(out.indices[0].tolist()) == list(range(16))
    assert torch.equal(out.quantized[0], (signs > 0).float())
    assert out.stats["used_codes"].item() == 16 and out.stats["perplexity"].item() == pytest.approx(16.0)


def test_onehot_eval_is_the_argmax():
    bn = OneHotBottleneck(5, 7).eval()
    x = torch.randn(2, 3, 5)
    out = bn(x)
    assert torch.equal(out.indices, bn.proj(x).argmax(-1))
    assert torch.equal(out.quantized.argmax(-1), out.indices) and torch.all(out.quantized.sum(-1) == 1)


def test_reinforce_bottleneck_gets_its_gradient_from_the_policy_loss():
    bn = OneHotBottleneck(3, 4, estimator="reinforce").train()
    assert bn.needs_cost
    x = torch.randn(2, 5, 3)
    out = bn(x, mask=torch.tensor([[True] * 5, [True] * 3 + [False] * 2]))
    assert not out.quantized.requires_grad  # no pathwise gradient
    assert out.log_prob.shape == (2,)
    bn.policy_loss(out, torch.tensor([1.0, 2.0])).backward()
    bn.policy_loss(bn(x), torch.tensor([1.0, 5.0])).backward()  # second batch: baseline is set
    assert bn.proj.weight.grad.abs().sum() > 0


def test_gumbel_temperature_follows_the_schedule():
    sched = TemperatureSchedule(kind="linear", start=2.0, end=0.5, steps=10)
    for bn in (GumbelVectorQuantizer(3, 4, code_dim=4, tau=sched), OneHotBottleneck(3, 4, estimator="gumbel_st", tau=sched)):
        assert bn.tau == 2.0
        bn.on_step_end(5)
        assert bn.tau == pytest.approx(1.25)
        assert bn.train()(torch.randn(1, 4, 3)).stats["tau"].item() == pytest.approx(1.25)


# --------------------------------------------------------------------------- all kinds


def test_usage_stats_hand_examples():
    s = usage_stats(torch.tensor([[0], [0], [1], [1]]), 4)
    assert s["perplexity"].item() == pytest.approx(2.0) and s["used_codes"].item() == 2
    s = usage_stats(torch.tensor([[3, 0], [3, 1]]), 4)  # group 0: one code; group 1: two equally
    assert s["perplexity"].item() == pytest.approx(1.5) and s["used_codes"].item() == 1.5


@pytest.mark.parametrize("kw", KINDS, ids=_ids)
def test_same_interface_and_stats_every_step(kw):
    cfg = BottleneckConfig(**{"kmeans_init": False, **kw})
    bn = build_bottleneck(cfg, 6)
    x = torch.randn(2, 9, 6, requires_grad=True)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    for mode in ("train", "eval"):
        getattr(bn, mode)()
        out = bn(x, mask=mask)
        assert isinstance(out, BottleneckOutput)
        assert out.quantized.shape == (2, 9, bn.output_dim) and out.indices.shape == (2, 9)
        assert out.indices.dtype == torch.int64
        assert 0 <= out.indices.min() and out.indices.max() < bn.num_codes
        assert out.loss.dim() == 0 and {"perplexity", "used_codes"} <= set(out.stats)
        assert all(v.dim() == 0 for v in out.stats.values())
        assert 1.0 <= out.stats["perplexity"].item() <= bn.num_codes
    assert bn.bits == pytest.approx(math.log2(bn.num_codes))
    bn.train()
    out = bn(x, mask=mask)
    (out.quantized.square().mean() + out.loss + bn.policy_loss(out, torch.ones(2))).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    bn.on_step_end(100)


@pytest.mark.parametrize("kw", KINDS, ids=_ids)
def test_no_nan_under_bf16_autocast_on_cpu(kw):
    torch.manual_seed(0)
    cfg = BottleneckConfig(**{"kmeans_init": True, **kw})
    enc = torch.nn.Linear(6, 6)
    bn = build_bottleneck(cfg, 6).train()
    x = 30 * torch.randn(4, 16, 6)  # large activations stress bf16
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        for _ in range(2):
            out = bn(enc(x))
            loss = out.quantized.float().square().mean() + out.loss.float() + bn.policy_loss(out, torch.ones(4))
            loss.backward()
    assert torch.isfinite(out.quantized.float()).all() and torch.isfinite(loss)
    assert all(torch.isfinite(v) for v in out.stats.values())
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters())
    if isinstance(bn, VectorQuantizer):
        assert torch.isfinite(bn.codebook).all()


@pytest.mark.parametrize(
    "kw",
    [
        dict(kind="vq", num_codes=8, code_dim=8),
        dict(kind="vq", num_codes=8, code_dim=8, ema=False),
        dict(kind="onehot", num_codes=8),
        dict(kind="binary", num_bits=3),
        dict(kind="gumbel", num_codes=8, code_dim=8),
    ],
    ids=_ids,
)
def test_autoencoder_through_each_bottleneck_learns_clustered_data(kw):
    """4 clusters, 8 units: reconstruction error falls well below that of the data mean."""
    torch.manual_seed(0)
    x, _, _ = _clusters(128, 8, 4, seed=4, spread=0.1)
    enc = torch.nn.Linear(8, 8)
    bn = build_bottleneck(BottleneckConfig(tau=TemperatureSchedule(start=1.0), **kw), 8)
    dec = torch.nn.Sequential(torch.nn.Linear(bn.output_dim, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8))
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters(), *bn.parameters()], lr=0.03)
    for step in range(100):
        opt.zero_grad()
        out = bn(enc(x).unsqueeze(0))
        rec = ((dec(out.quantized[0]) - x) ** 2).mean()
        (rec + out.loss).backward()
        opt.step()
        bn.on_step_end(step + 1)
    bn.eval()
    final = ((dec(bn(enc(x).unsqueeze(0)).quantized[0]) - x) ** 2).mean().item()
    variance = x.var(0).mean().item()  # error of the best constant output
    assert final < 0.25 * variance, (variance, final)
