"""Trainer end to end on the toy model: loss falls, wave and feats input, config and data
errors, AMP, gradient accumulation, exact resume of a killed run, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from speechrep.errors import ConfigError, DataError
from speechrep.train.checkpoint import list_checkpoints, load_model, read_best
from speechrep.train.logging import read_history
from speechrep.train.trainer import train
from tests.test_train_data import write_config, write_feats_dir, write_wave_dir

REPO = Path(__file__).resolve().parents[1]


def _losses(exp_dir: Path, split: str = "train", key: str = "loss") -> list[float]:
    return [r[key] for r in read_history(exp_dir / "train_history.jsonl") if r["split"] == split]


@pytest.mark.parametrize("input", ["feats", "wave"])
def test_loss_falls_and_run_files(tmp_path, input):
    d = write_feats_dir(tmp_path) if input == "feats" else write_wave_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, input=input,
                       data={"valid": str(d)}, train={"tensorboard": True})
    exp = train(cfg)
    train_loss, valid_loss = _losses(exp), _losses(exp, "valid")
    assert len(train_loss) == 20 and len(valid_loss) == 4
    assert sum(train_loss[-5:]) / 5 < 0.7 * train_loss[0]
    assert valid_loss[-1] < valid_loss[0]
    log_text = (exp / "log" / "train.log").read_text()
    assert log_text.count("train:") >= 20
    assert "9 utterances of 3 speakers, in memory; 0 shorter than the crop (skipped)" in log_text
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))
    assert (exp / "speakers.txt").read_text().split() == ["spkA", "spkB", "spkC"]
    resolved = yaml.safe_load((exp / "config.yaml").read_text())
    assert resolved["model"]["args"]["num_speakers"] == 3 and resolved["optim"]["accum_steps"] == 1
    module, name, mcfg = load_model(exp, which="best")
    assert name == "toy" and mcfg.num_speakers == 3 and not module.training
    assert load_model(exp, which="last")[0].steps_done == 20  # on_step_end(step) was called
    best = read_best(exp / "checkpoints")
    assert best["valid_loss"] == min(valid_loss)


def test_config_typo_names_key_and_file(tmp_path):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, optim={"lrr": 0.1})
    with pytest.raises(ConfigError, match=r"c\.yaml.*optim\.lrr"):
        train(cfg)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, model={"args": {"hiden": 3}})
    with pytest.raises(ConfigError, match=r"c\.yaml.*model\.args\.hiden"):
        train(cfg)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, model={"name": "nosuch"})
    with pytest.raises(ConfigError, match=r"unknown model 'nosuch'.*toy"):
        train(cfg)
    with pytest.raises(ConfigError, match=r"optim\.warmup_steps"):
        train(cfg, overrides=["model.name=toy", "optim.warmup_steps=100"])
    assert not (tmp_path / "exp").exists()


def test_missing_data_dir(tmp_path):
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=tmp_path / "nope")
    with pytest.raises(DataError, match=r"nope: data\.train: data directory not found"):
        train(cfg)
    d = write_feats_dir(tmp_path)
    with pytest.raises(DataError, match=r"dev: data\.valid"):
        train(cfg, overrides=[f"data.train={d}", f"data.valid={tmp_path / 'dev'}"])


def test_existing_run_needs_resume_and_same_model(tmp_path):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, optim={"max_steps": 2})
    train(cfg)
    with pytest.raises(ConfigError, match=r"exp: exp_dir: already holds checkpoints.*--resume"):
        train(cfg)
    with pytest.raises(ConfigError, match=r"config\.yaml: model: model section differs"):
        train(cfg, overrides=["model.args.hidden=5"], resume=True)


def test_fp16_needs_cuda_and_bf16_runs_on_cpu(tmp_path):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, optim={"max_steps": 8})
    with pytest.raises(ConfigError, match=r"optim\.amp.*CUDA"):
        train(cfg, overrides=["optim.amp=fp16"])
    fp32 = _losses(train(cfg))
    bf16 = _losses(train(cfg, overrides=["optim.amp=bf16", f"exp_dir={tmp_path / 'bf16'}"]))
    assert all(torch.isfinite(torch.tensor(bf16)))
    assert bf16 != fp32  # autocast was active: bf16 rounding changes the numbers
    assert bf16 == pytest.approx(fp32, rel=0.1)  # ... but not the training
    assert sum(bf16[-3:]) < 3 * bf16[0]


def test_accumulation_2x1_equals_1x2(tmp_path):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "a", data_dir=d, optim={"max_steps": 3})
    a = train(cfg, overrides=["data.batch_size=1", "optim.accum_steps=2"])
    b = train(cfg, overrides=["data.batch_size=2", f"exp_dir={tmp_path / 'b'}"])
    # the same crops, the same mean gradient (its norm is logged before clipping)
    assert _losses(a) == pytest.approx(_losses(b), rel=1e-6)
    assert _losses(a, key="grad_norm") == pytest.approx(_losses(b, key="grad_norm"), rel=1e-5)
    wa, wb = load_model(a, which="last")[0].state_dict(), load_model(b, which="last")[0].state_dict()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_worker_processes_give_the_same_batches(tmp_path):
    d = write_wave_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "a", data_dir=d, input="wave", optim={"max_steps": 4})
    a = train(cfg)
    b = train(cfg, overrides=["data.num_workers=1", f"exp_dir={tmp_path / 'b'}"])
    c = train(cfg, overrides=["data.memory_budget_mb=0.01", f"exp_dir={tmp_path / 'c'}"])  # read per crop
    assert _losses(a) == _losses(b) == _losses(c)


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def test_resume_after_sigkill_reproduces_the_loss_curve(tmp_path):
    d = write_feats_dir(tmp_path)
    common = dict(data_dir=d, data={"valid": str(d)}, model={"args": {"hidden": 4, "dropout": 0.2, "sleep": 0.1}},
                  optim={"max_steps": 12}, train={"ckpt_every": 3, "valid_every": 3})
    ref = train(write_config(tmp_path / "ref.yaml", exp_dir=tmp_path / "ref", **common))
    cfg = write_config(tmp_path / "run.yaml", exp_dir=tmp_path / "run", **common)
    history = tmp_path / "run" / "train_history.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "speechrep", "train", str(cfg)], env=_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if history.exists() and any(r["step"] >= 7 for r in read_history(history)):
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert not (tmp_path / "run" / "train_summary.json").exists()
    killed_at = max(r["step"] for r in read_history(history))
    assert 7 <= killed_at < 12
    assert list_checkpoints(tmp_path / "run" / "checkpoints")[-1][0] <= killed_at
    train(cfg, resume=True)
    assert [r["step"] for r in read_history(history) if r["split"] == "train"] == list(range(1, 13))
    # exact equality: CPU, deterministic algorithms, restored RNG and sampler state
    assert _losses(tmp_path / "run") == _losses(ref)
    assert _losses(tmp_path / "run", "valid") == _losses(ref, "valid")
    assert (json.loads((tmp_path / "run" / "train_summary.json").read_text())["weights_sha256"]
            == json.loads((ref / "train_summary.json").read_text())["weights_sha256"])


def test_cli_train_and_error_exit(tmp_path, capsys):
    from speechrep.cli import main

    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d)
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg), "--set", "optim.max_steps=2", "--set", "optim.warmup_steps=1"])
    assert e.value.code in (0, None)
    assert f"trained: {tmp_path / 'exp'}" in capsys.readouterr().out
    assert [r["step"] for r in read_history(tmp_path / "exp" / "train_history.jsonl")] == [1, 2]
    with pytest.raises(SystemExit) as e:
        main(["train", str(cfg), "--set", "optim.max_stepz=2"])
    assert e.value.code == 1
    assert "error:" in capsys.readouterr().err
