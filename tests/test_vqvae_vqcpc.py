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
    # relative to feature frame 0: unit j is centred between feature frames 2j and 2j + 1
    assert model.frame_shift == pytest.approx(0.02) and model.frame_offset == pytest.approx(0.005)
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


def test_speaker_adversary_reverses_its_gradient_into_the_encoder():
    torch.manual_seed(0)
    args = {**ARGS, "speaker_adv_weight": 0.5}
    model, cfg = build_model("vqcpc", args, input_dim=10, num_speakers=3)
    assert cfg.num_speakers == 3 and model.speaker_adversary is not None
    batch = {"feats": torch.randn(2, 30, 10), "speaker": torch.tensor([0, 2]), "lengths": torch.tensor([30, 30])}
    assert {"adv/ce", "adv/acc"} <= set(model.codes(batch)[1])

    class NoQuantizer(torch.nn.Module):  # isolates the adversary's term of the loss
        def forward(self, z):
            return z, {"loss": z.new_zeros(())}

    model.bottleneck = NoQuantizer()
    _, extra = model.codes(batch)
    enc = list(model.encoder.parameters())
    adv = list(model.speaker_adversary.parameters())
    # the same cross-entropy without the reversal: the adversary's gradient is the plain
    # one, the encoder's is -0.5 times it
    logits = model.speaker_adversary(model.encoder(batch["feats"]))
    plain = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["speaker"].repeat_interleave(30))
    torch.testing.assert_close(extra["adv/ce"], plain.detach())
    got = torch.autograd.grad(extra["loss"], enc + adv)
    want = torch.autograd.grad(plain, enc + adv)
    for g, w in zip(got[: len(enc)], want[: len(enc)]):
        torch.testing.assert_close(g, -0.5 * w, rtol=1e-4, atol=1e-7)
    for g, w in zip(got[len(enc):], want[len(enc):]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)
    # off in eval mode and by default
    model.eval()
    assert "adv/ce" not in model.codes(batch)[1]
    assert build_model("vqcpc", ARGS, input_dim=10, num_speakers=3)[0].speaker_adversary is None
    with pytest.raises(ConfigError, match="num_speakers"):
        build_model("vqcpc", args, input_dim=10)
    with pytest.raises(ConfigError, match="speaker_adv_weight"):
        build_model("vqcpc", {**ARGS, "speaker_adv_weight": -1.0}, input_dim=10, num_speakers=3)
    model.train()
    with pytest.raises(ConfigError, match="speaker labels"):
        model.codes({"feats": batch["feats"]})
