"""VQ-VAE model: shapes, every bottleneck kind by config, loss falls, bf16, bad input."""

import math

import pytest
import torch

from speechrep.errors import ConfigError
from speechrep.models.vqvae import VQVAE, VQVAEConfig
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TINY = {"hidden": 16, "encoder_layers": 1, "decoder_layers": 1, "speaker_dim": 4}


def _model(bottleneck: dict, **args) -> VQVAE:
    torch.manual_seed(0)
    model, _ = build_model("vqvae", {**TINY, "bottleneck": bottleneck, **args}, num_speakers=2)
    return model


def _batch(seconds: float = 0.25) -> dict[str, torch.Tensor]:
    n = int(16000 * seconds)
    t = torch.arange(n) / 16000
    g = torch.Generator().manual_seed(0)
    wave = torch.stack([0.5 * torch.sin(2 * math.pi * 220 * t), 0.3 * torch.sin(2 * math.pi * 470 * t)])
    wave = wave + 0.01 * torch.randn(wave.shape, generator=g)
    return {"wave": wave, "speaker": torch.tensor([0, 1]), "lengths": torch.tensor([n, n - 800])}


@pytest.mark.parametrize(
    "bottleneck",
    [
        {"kind": "vq", "num_codes": 8, "code_dim": 8},
        {"kind": "vq", "num_codes": 4, "code_dim": 8, "groups": 2, "cosine": True, "ema": False},
        {"kind": "onehot", "num_codes": 8},
        {"kind": "onehot", "num_codes": 8, "estimator": "reinforce"},
        {"kind": "binary", "num_bits": 3, "estimator": "gumbel_st"},
        {"kind": "gumbel", "num_codes": 8, "code_dim": 8},
    ],
    ids=lambda b: "-".join(map(str, b.values())),
)
def test_forward_backward_and_units_for_each_bottleneck(bottleneck):
    model = _model(bottleneck)
    batch = _batch()
    out = model(batch)
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    assert all(v.dim() == 0 for v in out.values())
    assert {"loss/recon", "loss/bottleneck", "vq/perplexity", "vq/used_codes"} <= set(out)
    out["loss"].backward()
    grad = model.encoder[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0  # the encoder learns through the bottleneck
    model.on_step_end(1)
    model.eval()
    frames = 1 + 4000 // 160  # centred log-mel frames of 0.25 s
    units, lengths = model.units(batch)
    assert units.shape == (2, math.ceil(frames / 2)) and lengths.tolist() == [math.ceil(frames / 2), math.ceil((frames - 5) / 2)]
    assert units.min() >= 0 and units.max() < model.bottleneck.num_codes
    assert model.encode(batch).shape == (2, units.shape[1], model.bottleneck.output_dim)


def test_loss_falls_on_a_tiny_batch():
    model = _model({"kind": "vq", "num_codes": 8, "code_dim": 8})
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(30):
        opt.zero_grad()
        out = model(batch)
        out["loss"].backward()
        opt.step()
        model.on_step_end(step + 1)
        losses.append(out["loss/recon"].item())
    assert min(losses[-5:]) < 0.8 * losses[0], (losses[0], losses[-5:])  # normalised log-mel: starts near 1


def test_frame_geometry_and_feature_input():
    model = _model({"kind": "vq", "num_codes": 4, "code_dim": 4}, stride=4)
    assert model.frame_shift == pytest.approx(0.04) and model.frame_offset == pytest.approx(0.015)
    torch.manual_seed(0)
    feats_model, _ = build_model("vqvae", {**TINY, "bottleneck": {"kind": "binary", "num_bits": 2}}, input_dim=5, num_speakers=3)
    x = torch.randn(2, 9, 5)
    batch = {"feats": x, "speaker": torch.tensor([2, 0]), "lengths": torch.tensor([9, 7])}
    out = feats_model(batch)
    assert torch.isfinite(out["loss"])
    feats_model.eval()
    units, lengths = feats_model.units(batch)
    assert units.shape == (2, 5) and lengths.tolist() == [5, 4] and units.max() < 4
    with pytest.raises(ConfigError, match="reads 'feats'"):
        feats_model({"wave": torch.zeros(2, 100), "speaker": torch.tensor([0, 0])})


def test_no_nan_under_bf16_autocast():
    model = _model({"kind": "vq", "num_codes": 8, "code_dim": 8})
    batch = _batch()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(batch)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and all(torch.isfinite(v) for v in out.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_configs_and_speakers():
    with pytest.raises(ConfigError, match="codebook size must be >= 2"):
        _model({"kind": "vq", "num_codes": 1})
    with pytest.raises(ConfigError, match=r"model\.args\.bottleneck\.kinds"):
        _model({"kinds": "vq"})
    with pytest.raises(ConfigError, match="one of vq, onehot, binary, gumbel"):
        _model({"kind": "tree"})
    with pytest.raises(ConfigError, match=r"model\.args\.stride"):
        VQVAEConfig(stride=0)
    model = _model({"kind": "onehot", "num_codes": 4})
    batch = _batch()
    batch["speaker"] = torch.tensor([0, 5])
    with pytest.raises(ConfigError, match="num_speakers"):
        model(batch)
