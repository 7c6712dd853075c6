"""Checkpoints: atomic layout, keep-last-N + best, corrupt and incompatible files, no
unpickling, the registry's errors."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from speechrep.errors import CheckpointError, ConfigError
from speechrep.models import registry
from speechrep.train.checkpoint import (
    find_checkpoint,
    list_checkpoints,
    load_model,
    load_optimizer,
    load_weights,
    prune_checkpoints,
    read_state,
    save_checkpoint,
    write_best,
)
from speechrep.models.registry import build_model
from speechrep.train.toy import ToyConfig, ToyModel


def _toy(hidden=4, **kw):
    torch.manual_seed(0)
    return ToyModel(ToyConfig(hidden=hidden, num_speakers=3, **kw), input_dim=4)


def _save(root, step, module, optimizer=None):
    optimizer = optimizer or torch.optim.AdamW(module.parameters())
    state = {"model": {"name": "toy", "args": {"hidden": module.cfg.hidden, "num_speakers": 3}, "input_dim": 4}}
    return save_checkpoint(root, step, module=module, optimizer=optimizer, state=state)


def _stepped():
    m = _toy()
    opt = torch.optim.AdamW(m.parameters(), lr=0.1, betas=(0.8, 0.9))
    batch = {"feats": torch.randn(2, 8, 4), "speaker": torch.tensor([0, 2]), "lengths": torch.tensor([8, 8])}
    m(batch)["loss"].backward()
    opt.step()
    return m, opt


def test_roundtrip_model_and_optimizer(tmp_path):
    m, opt = _stepped()
    ckpt = _save(tmp_path, 7, m, opt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.safetensors", "optim.safetensors", "state.json"]
    state = read_state(ckpt)
    assert state["step"] == 7 and set(state["files"]) == {"model.safetensors", "optim.safetensors"}
    m2 = _toy()
    with torch.no_grad():
        for p in m2.parameters():
            p.zero_()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1.0)
    load_weights(m2, ckpt)
    load_optimizer(opt2, ckpt, state=state)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v, rtol=0, atol=0)
    a, b = opt.state_dict(), opt2.state_dict()
    assert b["param_groups"][0]["lr"] == 0.1 and tuple(b["param_groups"][0]["betas"]) == (0.8, 0.9)
    for pid in a["state"]:
        for name, v in a["state"][pid].items():
            torch.testing.assert_close(b["state"][pid][name], v, rtol=0, atol=0)
    module, name, cfg = load_model(tmp_path / "step_7")
    assert name == "toy" and cfg.hidden == 4 and isinstance(module, ToyModel)


def test_keep_last_n_and_best_survive_pruning(tmp_path):
    m = _toy()
    for step in (5, 10, 15, 20):
        _save(tmp_path, step, m)
    write_best(tmp_path, 5, 0.1)
    (tmp_path / ".step_25.abc.tmp").mkdir()  # what a killed save leaves: ignored, then removed
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10, 15, 20]
    removed = prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in removed] == ["step_10"]
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 15, 20]
    assert not (tmp_path / ".step_25.abc.tmp").exists()
    assert find_checkpoint(tmp_path, which="best").name == "step_5"
    assert find_checkpoint(tmp_path, which="last").name == "step_20"
    (tmp_path / "best.json").unlink()
    assert find_checkpoint(tmp_path, which="best").name == "step_20"  # no validation: the last one
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        find_checkpoint(tmp_path / "empty")


def test_truncated_or_corrupt_files_name_the_file(tmp_path):
    ckpt = _save(tmp_path, 1, _toy())
    weights = ckpt / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match=r"step_1/model\.safetensors: corrupt or truncated"):
        load_model(ckpt)
    # without the recorded hash, safetensors itself rejects the truncated file
    state = json.loads((ckpt / "state.json").read_text())
    del state["files"]
    (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: corrupt or truncated safetensors"):
        load_model(ckpt)
    (ckpt / "state.json").write_text(json.dumps(state)[:50])
    with pytest.raises(CheckpointError, match=r"step_1/state\.json: corrupt or truncated JSON"):
        load_model(ckpt)


class _Boom:
    def __reduce__(self):
        return (open, ("PWNED", "w"))


def test_pickle_in_place_of_weights_is_never_executed(tmp_path, monkeypatch):
    ckpt = _save(tmp_path, 1, _toy())
    state = json.loads((ckpt / "state.json").read_text())
    del state["files"]
    (ckpt / "state.json").write_text(json.dumps(state))
    (ckpt / "model.safetensors").write_bytes(pickle.dumps({"encoder.weight": _Boom()}))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(ckpt)
    assert not (tmp_path / "PWNED").exists()


def test_wrong_architecture_names_first_bad_tensor(tmp_path):
    ckpt = _save(tmp_path, 1, _toy(hidden=4))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: wrong architecture: tensor 'encoder\.weight' has "
                                              r"shape \(4, 4\), the model expects \(6, 4\)"):
        load_weights(_toy(hidden=6), ckpt)
    bigger = _toy()
    bigger.extra = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"tensor 'extra\.weight' is missing"):
        load_weights(bigger, ckpt)
    smaller = _toy()
    del smaller.speaker
    with pytest.raises(CheckpointError, match=r"unexpected tensor 'speaker\.(weight|bias)'"):
        load_weights(smaller, ckpt)


def test_registry_errors(monkeypatch):
    with pytest.raises(ConfigError, match=r"model\.name: unknown model 'cpcc' \(known models: .*cpc.*toy"):
        registry.get_model_entry("cpcc")
    monkeypatch.setitem(registry.MODEL_MODULES, "ghost", "speechrep.models.ghost_model_xyz")
    with pytest.raises(ConfigError, match=r"'ghost' is provided by speechrep\.models\.ghost_model_xyz, which is not"):
        registry.get_model_entry("ghost")
    monkeypatch.setitem(registry.MODEL_MODULES, "orphan", "speechrep.train.schedule")
    with pytest.raises(ConfigError, match="does not register model 'orphan'"):
        registry.get_model_entry("orphan")
    module, cfg = build_model("toy", {"hidden": 3}, input_dim=5, num_speakers=4)
    assert cfg.num_speakers == 4 and module.encoder.weight.shape == (3, 5)
    assert build_model("toy", {"num_speakers": 2}, num_speakers=4)[1].num_speakers == 2  # explicit value wins
