"""egs/synth/cpc, egs/synth/dim and egs/librispeech/cpc end to end with --quick."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from speechrep.train.logging import read_history

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The tiny synthetic corpus with fbank features, built once by the CPC recipe's stages 0-1."""
    exp = tmp_path_factory.mktemp("synth") / "exp"
    db = exp.parent / "db"
    r = _recipe("egs/synth/cpc", exp, db, "--stop-stage", "1")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return db


def _recipe(path: str, exp: Path, db: Path | None, *opts: str, **env: str) -> subprocess.CompletedProcess:
    if db is not None:
        env["DB"] = str(db)
    return subprocess.run(["bash", str(ROOT / path / "run.sh"), "--quick", "--exp", str(exp), *opts],
                          capture_output=True, text=True, env=_env(**env))


def _train_losses(exp: Path) -> list[float]:
    return [r["loss"] for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]


def test_synth_cpc_recipe(tmp_path, corpus):
    exp = tmp_path / "exp"
    r = _recipe("egs/synth/cpc", exp, corpus)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for part in ("0", "1", "2:baseline", "2:baseline@unseen", "3:cpc", "4:cpc", "4:cpc@unseen", "5:cpc", "5:cpc@unseen",
                 "6:table"):  # recipes/lib.sh numbering; @unseen: the voice families never trained on
        assert f"Stage {part}:" in r.stdout
    losses = _train_losses(exp / "cpc")
    assert np.mean(losses[-3:]) < losses[0] - 0.5  # InfoNCE over 4 steps starts near 4 ln 17
    feats = dict(kaldiio.load_scp(str(exp / "cpc/extract_test/feats.scp")))
    inputs = dict(kaldiio.load_scp(str(corpus / "data/test/feats.scp")))
    assert sorted(feats) == sorted(inputs) and all(feats[u].shape == (len(inputs[u]), 32) for u in feats)
    report = json.loads((exp / "eval/cpc.json").read_text())
    assert report["abx"]["across"] < 50  # chance
    unseen = json.loads((exp / "eval/cpc@unseen.json").read_text())
    speakers = set((corpus / "data/test_unseen_spk/utt2spk").read_text().split()[1::2])
    assert unseen["inputs"]["features"]["path"].endswith("extract_test_unseen_spk/feats.scp") and speakers == {"rms"}
    assert unseen["probes"]["phone_probe"]["accuracy"] > unseen["probes"]["phone_probe"]["chance"]
    table = (exp / "eval/table.md").read_text()
    assert "| cpc |" in table and "| mfcc |" in table and "across / mfcc" in table
    assert "| cpc@unseen |" in table and "| mfcc@unseen |" in table
    again = _recipe("egs/synth/cpc", exp, corpus)
    assert again.returncode == 0 and again.stdout.count("done before; skipped") == 10


def test_synth_dim_recipe_dim_and_autoencoder_side_by_side(tmp_path, corpus):
    exp = tmp_path / "exp"
    r = _recipe("egs/synth/dim", exp, corpus)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    for part in ("0", "1", "2:baseline", "3:dim", "3:autoencoder", "4:dim", "4:autoencoder", "5:dim", "6:table"):
        assert f"Stage {part}:" in r.stdout
    for name in ("dim", "autoencoder"):
        losses = _train_losses(exp / name)
        assert np.mean(losses[-3:]) < losses[0]
        probe = json.loads((exp / f"eval/{name}.json").read_text())["probes"]["phone_probe"]
        assert probe["accuracy"] > 1.3 * probe["chance"]
    # the autoencoder run differs from the DIM run by the critic and the estimator only
    import yaml

    cfgs = [yaml.safe_load((exp / name / "config.yaml").read_text()) for name in ("dim", "autoencoder")]
    args = [c["model"]["args"] for c in cfgs]
    assert [(a.pop("critic"), a.pop("estimator")) for a in args] == [("separable", "infonce"), ("reconstruction", "positive")]
    assert cfgs[0]["model"] == cfgs[1]["model"]
    table = (exp / "eval/table.md").read_text()
    for row in ("dim", "autoencoder", "mfcc", "fbank", "dim@unseen", "autoencoder@unseen", "mfcc@unseen"):
        assert f"| {row} |" in table


def test_librispeech_cpc_recipe_on_fixture_tree(tmp_path):
    from tests.fixtures.corpora import write_librispeech

    src = write_librispeech(tmp_path / "src")
    exp = tmp_path / "exp"
    r = _recipe("egs/librispeech/cpc", exp, None, LIBRISPEECH=str(src), SUBSETS="dev-clean,train-clean-100")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Stage 4:cpc:" in r.stdout and "Stage 5: evaluation skipped" in r.stdout
    feats = dict(kaldiio.load_scp(str(exp / "cpc/extract_dev_clean/feats.scp")))
    utts = (exp / "librispeech/data/dev_clean/utt2spk").read_text().split()[::2]
    assert sorted(feats) == sorted(utts) and all(x.shape[1] == 16 for x in feats.values())
    assert float((exp / "cpc/extract_dev_clean/frame_shift").read_text()) == 0.01
    missing = subprocess.run(["bash", str(ROOT / "egs/librispeech/cpc/run.sh"), "--quick", "--exp", str(tmp_path / "x")],
                             capture_output=True, text=True, env={k: v for k, v in _env().items() if k != "LIBRISPEECH"})
    assert missing.returncode != 0 and "LIBRISPEECH" in missing.stderr
