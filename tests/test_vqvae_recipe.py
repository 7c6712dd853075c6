"""egs/synth/vqvae and egs/synth/vqcpc end to end with --quick: corpus, training, units,
phone-discovery evaluation (and the bottleneck ablation for VQ-VAE)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechrep.data.ctm import frame_labels, read_ctm
from speechrep.eval.units import contingency_table, unit_quality
from speechrep.train.logging import read_history
from speechrep.units import load_unit_file

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(synth_tiny_db) -> Path:
    """The tiny synthetic corpus (generated once per session, tests/conftest.py)."""
    return synth_tiny_db


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(extra)
    return env


def _run_recipe(name: str, exp: Path, db: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(ROOT / f"egs/synth/{name}/run.sh"), "--quick", "--exp", str(exp), *args],
                          capture_output=True, text=True, env=_env(DB=str(db), **env))


def _pnmi(units: dict[str, np.ndarray], db: Path, shift: float, offset: float) -> float:
    ali = read_ctm(db / "ali/test/phones.ctm")
    labels = {u: frame_labels(ali[u], num_frames=len(x), frame_shift=shift, frame_offset=offset) for u, x in units.items()}
    return unit_quality(contingency_table(labels, units)[0])["pnmi"]


def _check_units_beat_shuffled(exp: Path, name: str, db: Path) -> dict:
    units_dir = exp / name / "units_test"
    utts = (db / "data/test/utt2spk").read_text().split()[::2]
    units = load_unit_file(units_dir / "units.txt", known_utts=utts)
    report = json.loads((exp / "eval" / f"{name}_units.json").read_text())
    shift, offset = float((units_dir / "frame_shift").read_text()), float((units_dir / "frame_offset").read_text())
    assert report["units"]["pnmi"] == pytest.approx(_pnmi(units, db, shift, offset))
    # baseline: the same units with frames shuffled over the test set (alignment destroyed)
    rng = np.random.default_rng(0)
    flat = rng.permutation(np.concatenate(list(units.values())))
    cuts = np.cumsum([len(x) for x in units.values()])[:-1]
    shuffled = dict(zip(units, np.split(flat, cuts)))
    assert report["units"]["pnmi"] > _pnmi(shuffled, db, shift, offset) + 0.05
    return report


def _losses(exp: Path) -> list[float]:
    return [r["loss"] for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]


def test_vqvae_recipe_quick(tmp_path, corpus):
    exp = tmp_path / "exp"
    r = _run_recipe("vqvae", exp, corpus)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for part in ("0", "3:vqvae", "4:vqvae", "4:vqvae@unseen", "5:vqvae", "5:vqvae@unseen", "7"):  # lib.sh numbering
        assert f"Stage {part}:" in r.stdout
    # the voice families never trained on (test_unseen_spk), evaluated like the test set
    unseen = json.loads((exp / "eval" / "vqvae_units@unseen.json").read_text())
    assert unseen["inputs"]["units"]["path"].endswith("units_test_unseen_spk/units.txt") and unseen["units"]["pnmi"] > 0
    losses = _losses(exp / "vqvae")
    assert np.mean(losses[-3:]) < 0.8 * losses[0]
    report = _check_units_beat_shuffled(exp, "vqvae", corpus)
    assert report["codebook"]["codebook_size"] == 16 and report["bitrate"]["bitrate"] > 0
    rows = json.loads((exp / "ablation/ablation.json").read_text())
    assert [(row["kind"], row["bits"], row["num_codes"]) for row in rows] == [("onehot", 2, 4), ("binary", 2, 4), ("vq", 2, 4)]
    assert all(row["pnmi"] is not None for row in rows)
    assert "| onehot_2bit | onehot | 2 | 4 |" in (exp / "ablation/ablation.md").read_text()
    again = _run_recipe("vqvae", exp, corpus)
    assert again.returncode == 0 and again.stdout.count("done before; skipped") == 7


def test_vqcpc_recipe_quick(tmp_path, request):
    corpus = request.getfixturevalue("corpus")
    exp = tmp_path / "exp"
    r = _run_recipe("vqcpc", exp, corpus)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    losses = _losses(exp / "vqcpc")
    assert np.mean(losses[-3:]) < losses[0] - 0.5  # InfoNCE summed over 4 steps starts at 4 ln 17
    report = _check_units_beat_shuffled(exp, "vqcpc", corpus)
    assert report["codebook"]["codebook_size"] == 16
    # duration-penalised units of the same model: fewer unit changes, lower bitrate, still above chance;
    # the other penalty redoes the units and their evaluation (not the training), no --force needed
    seg = _run_recipe("vqcpc", exp, corpus, SEGMENT_PENALTY="2")
    assert seg.returncode == 0, seg.stdout[-2000:] + seg.stderr[-2000:]
    assert "Stage 3:vqcpc: Train vqcpc" in seg.stdout and "done before; skipped" in seg.stdout.split("Stage 4")[0]
    assert "Stage 4:vqcpc: Units" in seg.stdout and "Stage 5:vqcpc: Evaluate" in seg.stdout
    assert seg.stdout.count("done before; skipped") == 3  # corpus, features, training
    assert "Stage 5:vqcpc@unseen: Evaluate" in seg.stdout
    segmented = _check_units_beat_shuffled(exp, "vqcpc", corpus)
    assert segmented["bitrate"]["bitrate"] < report["bitrate"]["bitrate"]
