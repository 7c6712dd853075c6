"""Speaker invariance as config lines (issue 36, item 3): the speaker adversary and ``utt_norm``
of every CPC / VQ-CPC / DIM / autoencoder model, within-speaker negatives by default."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from speechrep.config import to_dict
from speechrep.errors import ConfigError
from speechrep.models.cpc import CPCConfig
from speechrep.models.registry import build_model

ROOT = Path(__file__).resolve().parents[1]
SMALL = {
    "cpc": {"dim": 8, "context": "gru", "context_dim": 6, "num_steps": 2, "num_negatives": 4},
    "vqcpc": {"dim": 8, "context": "gru", "context_dim": 6, "num_steps": 2, "num_negatives": 4,
              "bottleneck": {"kind": "vq", "num_codes": 8, "code_dim": 8}},
    "dim": {"dim": 8, "code_dim": 4, "critic_dim": 8, "max_frames": 16},
    "autoencoder": {"dim": 8, "code_dim": 4, "critic_dim": 8},
}
BATCH = {"feats": torch.randn(3, 12, 5, generator=torch.Generator().manual_seed(0)), "speaker": torch.tensor([0, 2, 1]),
         "lengths": torch.tensor([12, 12, 9])}


def _build(name, **args):
    return build_model(name, {**SMALL[name], **args}, input_dim=5, num_speakers=3)


def _forward(model, name, batch, *, adversary=True):
    """The model's outputs on ``batch`` with the same random draws every call (negatives, frames)."""
    saved = model.speaker_adversary
    if not adversary:
        model.speaker_adversary = None
    torch.manual_seed(1)
    try:
        if name in ("cpc", "vqcpc"):
            neg = torch.randint(0, 3 * 12, (3, 10, 4))
            return model(batch, neg_idx=neg)
        return model(batch)
    finally:
        model.speaker_adversary = saved


@pytest.mark.parametrize("name, layer", [("cpc", "context"), ("cpc", "encoder"), ("dim", "context"),
                                         ("dim", "encoder"), ("autoencoder", "context")])
def test_the_adversary_reverses_its_gradient_into_the_model_and_trains_itself_plainly(name, layer):
    torch.manual_seed(0)
    model, cfg = _build(name, speaker_adversary={"weight": 0.5, "layer": layer, "hidden": 7})
    assert cfg.num_speakers == 3 and model.speaker_adversary is not None
    out = _forward(model, name, BATCH)
    assert {"adv/ce", "adv/acc"} <= set(out) and 0.0 <= float(out["adv/acc"]) <= 1.0
    base = _forward(model, name, BATCH, adversary=False)
    # the same cross-entropy without the reversal
    rep = model.encode(BATCH, layer=layer)
    logits = model.speaker_adversary(rep)
    plain = F.cross_entropy(logits.flatten(0, 1), BATCH["speaker"].repeat_interleave(rep.shape[1]))
    torch.testing.assert_close(out["adv/ce"], plain.detach())
    torch.testing.assert_close(out["loss"] - base["loss"], plain, rtol=1e-5, atol=1e-6)
    enc = list(model.encoder.parameters())
    adv = list(model.speaker_adversary.parameters())
    with_adv = torch.autograd.grad(out["loss"], enc + adv, allow_unused=True)
    without = torch.autograd.grad(base["loss"], enc, allow_unused=True)
    want = torch.autograd.grad(plain, enc + adv)
    for g, g0, w in zip(with_adv, without, want):
        g0 = torch.zeros_like(w) if g0 is None else g0
        torch.testing.assert_close(g - g0, -0.5 * w, rtol=1e-3, atol=1e-6)  # the encoder: -weight x the plain gradient
    for g, w in zip(with_adv[len(enc):], want[len(enc):]):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-7)  # the classifier: the plain gradient
    assert any(float(w.abs().max()) > 0 for w in want[: len(enc)])


@pytest.mark.parametrize("name", sorted(SMALL))
def test_weight_zero_is_no_adversary_and_eval_mode_skips_it(name):
    torch.manual_seed(0)
    off, _ = _build(name)
    assert off.speaker_adversary is None and "adv/acc" not in _forward(off, name, BATCH)
    on, _ = _build(name, speaker_adversary={"weight": 0.1})
    assert "adv/acc" in _forward(on, name, BATCH)
    on.eval()
    assert "adv/acc" not in _forward(on, name, BATCH)


def test_the_adversary_needs_speakers():
    with pytest.raises(ConfigError, match="num_speakers >= 2") as err:
        build_model("cpc", {**SMALL["cpc"], "speaker_adversary": {"weight": 0.1}}, input_dim=5)
    assert err.value.field == "model.args.num_speakers"
    model, _ = _build("cpc", speaker_adversary={"weight": 0.1})
    with pytest.raises(ConfigError, match="speaker labels"):
        _forward(model, "cpc", {"feats": BATCH["feats"]})


@pytest.mark.parametrize("block, field", [({"weight": 0.1, "layers": "context"}, "model.args.speaker_adversary.layers"),
                                          ({"weight": -0.1}, "model.args.speaker_adversary.weight"),
                                          ({"weight": 0.1, "hidden": 0}, "model.args.speaker_adversary.hidden"),
                                          ({"weight": 0.1, "layer": "decoder"}, "model.args.speaker_adversary.layer")])
def test_a_bad_key_or_value_in_the_block_is_a_one_line_config_error_naming_the_field(block, field):
    with pytest.raises(ConfigError) as err:
        build_model("cpc", {**SMALL["cpc"], "speaker_adversary": block}, input_dim=5, num_speakers=3)
    assert field in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_the_new_options_round_trip_through_the_saved_config(name):
    args = {**SMALL[name], "utt_norm": True, "speaker_adversary": {"weight": 0.25, "layer": "encoder", "hidden": 16}}
    model, cfg = build_model(name, args, input_dim=5, num_speakers=3)
    saved = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    assert saved["utt_norm"] is True and saved["speaker_adversary"] == {"weight": 0.25, "layer": "encoder", "hidden": 16}
    again, cfg2 = build_model(name, saved, input_dim=5)
    assert to_dict(cfg2) == to_dict(cfg)
    assert sorted(again.state_dict()) == sorted(model.state_dict())


def test_vqcpcs_former_speaker_adv_weight_is_the_general_adversary_on_the_encoder():
    _, cfg = _build("vqcpc", speaker_adv_weight=0.5)
    assert to_dict(cfg.speaker_adversary) == {"weight": 0.5, "layer": "encoder", "hidden": 256}
    _, cfg = _build("vqcpc", speaker_adv_weight=0.0)
    assert cfg.speaker_adversary.weight == 0.0
    torch.manual_seed(0)
    model, _ = _build("vqcpc", speaker_adv_weight=0.5)
    assert "adv/acc" in _forward(model, "vqcpc", BATCH)
    with pytest.raises(ConfigError, match="give only speaker_adversary") as err:
        _build("vqcpc", speaker_adv_weight=0.5, speaker_adversary={"weight": 0.1})
    assert err.value.field == "model.args.speaker_adv_weight"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_utt_norm_removes_a_per_utterance_offset_of_the_encoder_output(name):
    torch.manual_seed(0)
    model, _ = _build(name, utt_norm=True)
    model.eval()
    encoder = model.encoder
    shift = torch.randn(3, 1, 8) * 3.0  # a speaker's constant vector, one per utterance

    class Shifted(torch.nn.Module):
        def forward(self, x):
            return encoder(x) + shift

    batch = {"feats": BATCH["feats"]}
    with torch.no_grad():
        clean = model.encode(batch)
        model.encoder = Shifted()
        shifted = model.encode(batch)
        model.cfg.utt_norm = False  # the same model without the normalisation sees the offset
        raw = model.encode(batch)
    torch.testing.assert_close(shifted, clean, rtol=1e-4, atol=1e-4)
    assert (raw - clean).abs().max() > 0.1


def test_utt_norm_counts_the_valid_frames_only():
    torch.manual_seed(0)
    model, _ = _build("cpc", utt_norm=True)
    h, lengths = model.frames(BATCH)
    assert lengths.tolist() == [12, 12, 9]
    raw = model.encoder(BATCH["feats"])[2, :9]
    mean, var = raw.mean(0), raw.var(0, unbiased=False)
    live = var > 1e-4  # ReLU channels that never fire stay 0
    assert live.sum() >= 3
    torch.testing.assert_close(h[2, :9, live], ((raw - mean) / (var + 1e-5).sqrt())[:, live], atol=1e-4, rtol=1e-4)


def test_within_speaker_negatives_are_the_default_of_the_model_and_every_shipped_cpc_config():
    assert CPCConfig().negatives == "speaker"
    configs = [p for p in sorted(ROOT.glob("egs/*/*/conf/*.yaml"))
               if (yaml.safe_load(p.read_text()) or {}).get("model", {}).get("name") == "cpc"]
    assert len(configs) >= 4
    for path in configs:
        args = yaml.safe_load(path.read_text())["model"].get("args") or {}
        assert args.get("negatives", "speaker") == "speaker", path


def test_the_tiny_invariant_config_trains_and_logs_the_adversarys_accuracy(tmp_path):
    from speechrep.train.logging import read_history
    from speechrep.train.trainer import train
    from tests.test_train_data import write_feats_dir

    data = write_feats_dir(tmp_path, lengths=(90, 80, 70), dim=6, speakers=("spkA", "spkB", "spkC", "spkD"))
    exp = train(ROOT / "egs/synth/cpc/conf/tiny_invariant.yaml",
                [f"exp_dir={tmp_path / 'exp'}", f"data.train={data}", f"data.valid={data}", "optim.max_steps=10",
                 "train.log_every=1", "train.valid_every=10", "train.ckpt_every=10"])
    rows = [r for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]
    assert len(rows) == 10 and all(0.0 <= r["adv/acc"] <= 1.0 and r["adv/ce"] > 0 for r in rows)
    resolved = yaml.safe_load((exp / "config.yaml").read_text())["model"]["args"]
    assert resolved["utt_norm"] is True and resolved["num_speakers"] == 4
    assert resolved["speaker_adversary"] == {"weight": 0.1, "layer": "context", "hidden": 32}
