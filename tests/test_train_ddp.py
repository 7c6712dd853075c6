"""DistributedDataParallel: 2 processes with gloo on CPU via torchrun."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from speechrep.train.checkpoint import find_checkpoint, load_model, read_state
from speechrep.train.logging import read_history
from speechrep.train.trainer import train
from tests.test_train_data import write_config, write_feats_dir

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_end_with_identical_weights(tmp_path):
    d = write_feats_dir(tmp_path)
    common = dict(data_dir=d, data={"valid": str(d), "batch_size": 2}, optim={"max_steps": 6},
                  train={"ckpt_every": 3, "valid_every": 3, "valid_max_batches": 1})
    cfg = write_config(tmp_path / "ddp.yaml", exp_dir=tmp_path / "ddp", **common)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "speechrep", "train", str(cfg)]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("trained:") == 1  # rank 0 only
    exp = tmp_path / "ddp"
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["world_size"] == 2
    digests = summary["weights_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    ckpt = find_checkpoint(exp, which="last")
    assert read_state(ckpt)["files"]["model.safetensors"] == digests[0]
    assert hashlib.sha256((ckpt / "model.safetensors").read_bytes()).hexdigest() == digests[0]
    # rank 0 alone writes the history: one line per step
    steps = [r["step"] for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]
    assert steps == list(range(1, 7))
    # one valid batch for two ranks: rank 1 takes part with weight 0 (no hang, finite loss)
    valid = [r for r in read_history(exp / "train_history.jsonl") if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [3, 6] and all(r["loss"] > 0 for r in valid)
    # sharded sampling: 2 ranks x batch 2 follow one process with batch 4
    single = train(write_config(tmp_path / "one.yaml", exp_dir=tmp_path / "one", **common),
                   overrides=["data.batch_size=4"])
    w2 = load_model(exp, which="last")[0].state_dict()
    w1 = load_model(single, which="last")[0].state_dict()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-5)
