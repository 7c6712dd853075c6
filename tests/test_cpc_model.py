"""CPC model: shapes, prediction heads, training signal, bottleneck hook, config errors."""

import pytest
import torch

from speechrep.errors import ConfigError
from speechrep.models.context import build_context
from speechrep.models.cpc import CPC, CPCConfig
from speechrep.models.encoders import FeatureEncoder, WaveEncoder, strided_conv_btc
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny(**kw):
    base = dict(dim=16, context_dim=16, num_steps=3, num_negatives=4, predictor_heads=2, predictor_ff_dim=32, feat_layers=2)
    base.update(kw)
    return CPCConfig(**base)


def test_wave_encoder_gives_10ms_frames():
    enc = WaveEncoder(8)
    assert enc.hop == 160 and enc.frame_shift == 0.01
    assert enc(torch.randn(2, 20480)).shape == (2, 128, 8)
    with pytest.raises(ValueError, match="batch, samples"):
        enc(torch.randn(20480))


@pytest.mark.parametrize(
    "c_in,c_out,kernel,stride,pad,frames",
    [(1, 16, 10, 5, 3, 2048), (1, 4, 10, 5, 3, 7), (16, 16, 8, 4, 2, 512), (16, 16, 4, 2, 1, 257), (3, 5, 8, 4, 2, 13), (2, 3, 6, 2, 1, 11)],
)
def test_strided_conv_as_matrix_product_equals_conv1d(c_in, c_out, kernel, stride, pad, frames):
    # float64, so the only differences are summation order: values and all gradients to 1e-10
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(c_in, c_out, kernel, stride=stride, padding=pad).double()
    x = torch.randn(2, frames, c_in, dtype=torch.float64, requires_grad=True)
    ref = conv(x.transpose(1, 2)).transpose(1, 2)
    out = strided_conv_btc(x, conv)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    g = torch.randn_like(ref)
    want = torch.autograd.grad((ref * g).sum(), [x, conv.weight, conv.bias])
    got = torch.autograd.grad((out * g).sum(), [x, conv.weight, conv.bias])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_strided_conv_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="kernel = m \\* stride"):
        strided_conv_btc(torch.randn(1, 20, 2), torch.nn.Conv1d(2, 2, 5, stride=2))
    with pytest.raises(ValueError, match="shorter than the kernel"):
        strided_conv_btc(torch.randn(1, 3, 2), torch.nn.Conv1d(2, 2, 8, stride=4))


def test_wave_encoder_equals_its_convolution_stack():
    # the encoder's (B, T, C) matrix-product path computes the (B, C, T) conv/norm/ReLU stack
    torch.manual_seed(0)
    enc = WaveEncoder(8).double()
    wave = torch.randn(2, 3200, dtype=torch.float64)
    out, ref = enc(wave), enc.convs(wave.unsqueeze(1)).transpose(1, 2)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-10)
    g = torch.randn_like(ref)
    params = list(enc.parameters())
    for a, b in zip(torch.autograd.grad((out * g).sum(), params), torch.autograd.grad((ref * g).sum(), params), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


def test_feature_encoder_keeps_frame_rate():
    assert FeatureEncoder(20, 8, num_layers=2)(torch.randn(3, 17, 20)).shape == (3, 17, 8)


def test_feature_encoder_stride_two_halves_the_frame_rate_and_moves_the_centres():
    enc = FeatureEncoder(20, 8, num_layers=2, frame_shift=0.01, frame_offset=0.0125, stride=2)
    assert enc(torch.randn(3, 17, 20)).shape == (3, 8, 8)
    assert enc.frame_shift == pytest.approx(0.02) and enc.frame_offset == pytest.approx(0.0175)
    # first layer: output frame j reads input frames 2j-1 .. 2j+2, so an impulse at input
    # frame 10 reaches frames 4 and 5; the kernel-3 second layer spreads that by one frame
    torch.manual_seed(0)
    enc = FeatureEncoder(1, 4, num_layers=2, stride=2).double()
    enc.input_norm = torch.nn.Identity()
    base = torch.zeros(1, 24, 1, dtype=torch.float64)
    bump = base.clone()
    bump[0, 10, 0] = 1.0
    changed = (enc(bump) - enc(base)).abs().sum(-1)[0] > 0
    assert changed.nonzero().flatten().tolist() == [3, 4, 5, 6]
    with pytest.raises(ValueError, match="stride"):
        FeatureEncoder(20, 8, stride=3)


@pytest.mark.parametrize("kind", ["gru", "lstm", "transformer"])
def test_context_networks_are_causal(kind):
    torch.manual_seed(0)
    net = build_context(kind, 8, 12, num_layers=1)
    x = torch.randn(1, 10, 8)
    y = net(x)
    x2 = x.clone()
    x2[:, 6:] += 1.0  # change the future only
    y2 = net(x2)
    assert y.shape == (1, 10, 12)
    assert torch.allclose(y[:, :6], y2[:, :6], atol=1e-6)
    assert not torch.allclose(y[:, 6:], y2[:, 6:])


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_recurrent_context_runs_in_float32_under_cpu_autocast(kind):
    # CPU autocast sends LSTMs to bf16, which oneDNN cannot run without native bf16
    # support ("could not create a primitive descriptor"); the context runs in float32
    torch.manual_seed(0)
    net = build_context(kind, 8, 12, num_layers=1)
    x = torch.randn(2, 10, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = net(x)
    assert y.dtype == torch.float32 and y.equal(net(x))


def test_waveform_cpc_with_lstm_trains_under_bf16_autocast():
    torch.manual_seed(0)
    model = CPC(tiny(context="lstm", predictor="transformer", dim=32, context_dim=32))
    batch = {"wave": torch.randn(2, 3200), "speaker": torch.tensor([0, 1])}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("predictor", ["linear", "transformer"])
def test_batched_heads_equal_one_head_at_a_time(predictor):
    torch.manual_seed(0)
    model = CPC(tiny(predictor=predictor))
    c = torch.randn(2, 9, 16)
    all_heads = model.predictor(c)
    assert all_heads.shape == (2, 9, 3, 16)
    for k in range(3):
        assert torch.allclose(all_heads[:, :, k], model.predictor.heads(c, slice(k, k + 1))[:, :, 0], atol=1e-5)


def test_transformer_predictor_is_causal_and_recompute_gives_same_gradients():
    torch.manual_seed(0)
    model = CPC(tiny(predictor="transformer"))
    p = model.predictor
    c = torch.randn(2, 9, 16, requires_grad=True)
    c2 = c.detach().clone()
    c2[:, 5:] += 1
    assert torch.allclose(p(c)[:, :5], p(c2)[:, :5], atol=1e-6)
    grads = []
    for recompute in (True, False):
        p.recompute = recompute
        grads.append(torch.autograd.grad(p(c).square().sum(), [c, p.w_ff1, p.rel_bias]))
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("negatives", ["sequence", "speaker", "batch"])
def test_forward_reports_loss_accuracy_per_step_and_monitors(negatives):
    model = CPC(tiny(negatives=negatives, predictor="transformer"))
    out = model({"wave": torch.randn(4, 3200), "speaker": torch.tensor([0, 0, 1, 1])})
    assert out["loss"].dim() == 0 and out["loss"].requires_grad
    assert {f"acc/k{k}" for k in (1, 2, 3)} <= set(out)
    assert {"collapse/var", "collapse/eff_rank", "collapse/acc_vs_chance"} <= set(out)
    assert all(v.dim() == 0 for v in out.values())
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())


def test_forward_with_given_negatives_matches_reference_loss():
    from speechrep.objectives.infonce import infonce_loss_reference, sample_negatives

    torch.manual_seed(0)
    model = CPC(tiny(negatives="batch"), input_dim=10)
    batch = {"feats": torch.randn(3, 20, 10)}
    neg = sample_negatives(3, 20, 17, 4, mode="batch")
    out = model(batch, neg_idx=neg)
    z, _ = model.codes(batch)
    c = model.context(z)[:, :17]
    ref = infonce_loss_reference([model.predictor.heads(c, slice(k, k + 1))[:, :, 0] for k in range(3)], z, neg)[0]
    assert float(out["loss"].detach()) == pytest.approx(float(ref.detach()), abs=1e-5)


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = CPC(tiny(negatives="batch", context="gru"), input_dim=10)
    batch = {"feats": torch.randn(4, 24, 10).cumsum(1)}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.8 * losses[0]


#: every (critic, estimator) pair a CPC config may name; the separable critic needs negatives
COMBINATIONS = [("separable", e) for e in ("jsd", "dv", "infonce")] + [("reconstruction", e) for e in ("jsd", "dv", "infonce", "positive")]


@pytest.mark.parametrize("critic,estimator", COMBINATIONS)
def test_every_critic_and_estimator_trains(critic, estimator):
    torch.manual_seed(0)
    model = CPC(tiny(negatives="batch", context="gru", critic=critic, estimator=estimator), input_dim=10)
    batch = {"feats": torch.randn(4, 24, 10).cumsum(1) * 0.3}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert f"loss/{estimator}" in out
    # an absolute fall: the DV bound starts near 0, the others at a few nats
    assert losses[-1] < losses[0] - 0.5


def test_reconstruction_critic_scores_the_negative_squared_distance():
    from speechrep.models.critics import PredictionDistanceCritic

    g = torch.Generator().manual_seed(0)
    p, z = torch.randn(5, 6, generator=g), torch.randn(7, 6, generator=g)
    a, b = PredictionDistanceCritic().pair(p, z)
    expect = -torch.cdist(p, z).pow(2) / 6
    assert torch.allclose(a @ b.T / a.shape[-1], expect, atol=1e-5)


def test_positive_estimator_with_reconstruction_critic_is_the_prediction_error():
    # the former ``objective: positive_only``: mean squared error of each step, summed over steps
    torch.manual_seed(0)
    model = CPC(tiny(negatives="batch", critic="reconstruction", estimator="positive"), input_dim=10)
    batch = {"feats": torch.randn(2, 12, 10)}
    out = model(batch)
    z, _ = model.codes(batch)
    pred = model.predictor(model.context(z)[:, :9])  # (B, W, K, D)
    mse = sum(torch.nn.functional.mse_loss(pred[:, :, k], z[:, k + 1 : k + 10]) for k in range(3))
    assert float(out["loss"].detach()) == pytest.approx(float(mse.detach()), rel=1e-4)


def test_encode_layers_and_frame_shift():
    model = CPC(tiny(context_dim=12, predictor="linear"))
    batch = {"wave": torch.randn(1, 1600)}
    assert model.encode(batch, layer="encoder").shape == (1, 10, 16)
    assert model.encode(batch, layer="context").shape == (1, 10, 12)
    assert model.frame_shift == 0.01
    with pytest.raises(ConfigError, match="layer"):
        model.encode(batch, layer="decoder")


class _Halve(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))
        self.steps = []

    def forward(self, z):
        return z * self.scale, {"loss": self.scale.square(), "vq/perplexity": torch.tensor(3.0)}

    def on_step_end(self, step):
        self.steps.append(step)


def test_bottleneck_hook_feeds_context_adds_loss_and_logs():
    torch.manual_seed(0)
    bottleneck = _Halve()
    model = CPC(tiny(), input_dim=10, bottleneck=bottleneck)
    batch = {"feats": torch.randn(2, 12, 10), "speaker": torch.tensor([0, 1])}
    out = model(batch)
    assert float(out["vq/perplexity"]) == 3.0 and float(out["loss/bottleneck"]) == 0.25
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss/infonce"]) + 0.25, abs=1e-5)
    assert torch.allclose(model.encode(batch, layer="encoder"), model.encoder(batch["feats"]) * 0.5)
    model.on_step_end(7)
    assert bottleneck.steps == [7]


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="num_steps"):
        CPCConfig(num_steps=0)
    with pytest.raises(ConfigError, match="model.args.estimator.*separable critic needs negatives"):
        CPCConfig(estimator="positive")
    with pytest.raises(ConfigError, match="objective"):  # the former switch: only its old values
        build_model("cpc", {"objective": "contrastive"})
    with pytest.raises(ConfigError, match="predictor_heads"):
        CPCConfig(dim=30, context_dim=30, predictor="transformer", predictor_heads=8)
    with pytest.raises(ConfigError, match="context_dim"):
        CPCConfig(dim=32, context_dim=16, predictor="transformer")
    with pytest.raises(ConfigError, match="data.crop"):
        CPC(tiny())({"wave": torch.randn(2, 480), "speaker": torch.tensor([0, 1])})
    with pytest.raises(ConfigError, match="data.input"):
        CPC(tiny())({"feats": torch.randn(2, 40, 10)})


def test_registry_builds_cpc_and_rejects_unknown_keys():
    model, cfg = build_model("cpc", {"dim": 16, "context_dim": 16, "num_steps": 2}, input_dim=13)
    assert isinstance(model, CPC) and cfg.num_steps == 2 and model.input_key == "feats"
    with pytest.raises(ConfigError, match="model.args.hiden"):
        build_model("cpc", {"hiden": 3})
    with pytest.raises(ConfigError, match="negatives"):
        build_model("cpc", {"negatives": "everywhere"})
