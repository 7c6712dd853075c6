"""VQ-CPC: CPC with the vector quantizer before the context network."""

import pytest
import torch

import speechrep.models.vqcpc  # noqa: F401  registers vqcpc
from speechrep.errors import ConfigError
from speechrep.models.vqcpc import conv_frame_offset
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARGS = {
    "dim": 16,
    "context": "gru",
    "context_dim": 16,
    "num_steps": 2,
    "num_negatives": 4,
    "negatives": "sequence",
    "bottleneck": {"kind": "vq", "num_codes": 8, "code_dim": 16},
}


def test_vqcpc_trains_through_the_quantizer_and_gives_units():
    torch.manual_seed(0)
    model, _ = build_model("vqcpc", ARGS)
    wave = 0.1 * torch.randn(2, 3200)
    batch = {"wave": wave, "speaker": torch.tensor([0, 1]), "lengths": torch.tensor([3200, 2000])}
    out = model(batch)
    assert torch.isfinite(out["loss"]) and {"vq/perplexity", "vq/used_codes", "loss/bottleneck"} <= set(out)
    out["loss"].backward()
    first_conv = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv1d))
    assert first_conv.weight.grad.abs().sum() > 0  # straight-through reaches the encoder
    model.on_step_end(1)
    model.eval()
    units, lengths = model.units(batch)
    assert units.shape == (2, 20) and lengths.tolist() == [20, 12]
    assert units.max() < model.bottleneck.num_codes == 8
    # CPC_audio encoder: frame j centred on sample 160 j + 79
    assert model.frame_shift == pytest.approx(0.01) and model.frame_offset == pytest.approx(79 / 16000)


def test_vqcpc_on_features_with_stride_two_gives_20ms_units():
    torch.manual_seed(0)
    model, _ = build_model("vqcpc", {**ARGS, "feat_stride": 2}, input_dim=10)
    batch = {"feats": torch.randn(2, 41, 10), "speaker": torch.tensor([0, 1]), "lengths": torch.tensor([41, 30])}
    assert torch.isfinite(model(batch)["loss"])
    model.eval()
    units, lengths = model.units(batch)
    assert units.shape == (2, 20) and lengths.tolist() == [20, 15]
    # unit j is centred between feature frames 2j and 2j + 1; frame 0 of Kaldi features at 12.5 ms
    assert model.frame_shift == pytest.approx(0.02) and model.frame_offset == pytest.approx(0.0125 + 0.005)
    with pytest.raises(ConfigError, match="feat_stride"):
        build_model("vqcpc", {**ARGS, "feat_stride": 4}, input_dim=10)


def test_conv_frame_offset():
    stack = torch.nn.Sequential(torch.nn.Conv1d(1, 1, 3, padding=1), torch.nn.Conv1d(1, 1, 2, stride=2))
    assert conv_frame_offset(stack) == 0.5  # codes of 2 frames: centre between them


def test_vqcpc_bad_configs():
    with pytest.raises(ConfigError, match="code_dim 8 must equal dim 16"):
        build_model("vqcpc", {**ARGS, "bottleneck": {"kind": "vq", "code_dim": 8}})
    with pytest.raises(ConfigError, match="kind vq or gumbel"):
        build_model("vqcpc", {**ARGS, "bottleneck": {"kind": "onehot", "code_dim": 16}})
    with pytest.raises(ConfigError, match="codebook size must be >= 2"):
        build_model("vqcpc", {**ARGS, "bottleneck": {"kind": "vq", "num_codes": 1, "code_dim": 16}})


def test_units_and_unit_costs_are_the_quantizers_view_of_the_encoder_frames():
    torch.manual_seed(0)
    model, _ = build_model("vqcpc", ARGS)
    batch = {"wave": 0.1 * torch.randn(2, 3200), "speaker": torch.tensor([0, 1])}
    assert torch.isfinite(model(batch)["loss"])
    model.eval()
    units, lengths = model.units(batch)
    assert lengths.tolist() == [20, 20]  # no lengths in the batch: every frame is valid
    expected = model.bottleneck.quantizer(model.encoder(batch["wave"])).indices
    assert torch.equal(units, expected)
    # segmentation costs: squared distances of the frames to the codes, least for the unit
    costs, cost_lengths = model.unit_costs({**batch, "lengths": torch.tensor([3200, 2000])})
    assert costs.shape == (2, 20, 8) and cost_lengths.tolist() == [20, 12]
    z = model.encoder(batch["wave"])
    torch.testing.assert_close(costs[:1], torch.cdist(z[:1], model.bottleneck.quantizer.codebook[0][None]).square(),
                               atol=1e-3, rtol=1e-4)
    assert torch.equal(costs[:1].argmin(-1), units[:1])
