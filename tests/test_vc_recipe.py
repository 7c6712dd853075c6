"""egs/synth/vc/run.sh --quick end to end (its helper commands are tested in test_recipe_tools.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

VC = Path(__file__).resolve().parents[1] / "egs" / "synth" / "vc"


@pytest.mark.slow
def test_vc_recipe_quick_trains_every_family_with_one_judge(tmp_path, synth_tiny_db):
    """`run.sh --quick` with the two families the demo does not run: every family is trained with
    the speaker-consistency loss against one judge (stage 3:judge, trained once); both are
    converted and scored; the phone recognisers train through speechrep train."""
    import os

    from speechrep.train.logging import read_history

    env = {**os.environ, "DB": str(synth_tiny_db), "VC_F0": "false", "FAMILIES": "vc_adversarial vc_vq",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    exp = tmp_path / "exp"
    r = subprocess.run(["bash", str(VC / "run.sh"), "--quick", "--exp", str(exp), "--stop-stage", "5"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for f in ("vc_adversarial", "vc_vq"):
        assert f"speaker_loss_model: {exp}/judge" in (exp / f / "config.yaml").read_text()
        assert "done: step 30" in (exp / "log" / f"vc_train_job_{f}.log").read_text()
        history = read_history(exp / f / "train_history.jsonl")
        assert all("loss/speaker" in h and "loss/speaker_content" in h for h in history if h["split"] == "train")
    assert "Stage 3:judge: Judge" in r.stdout and (exp / "judge" / "checkpoints").is_dir()
    adversarial = read_history(exp / "vc_adversarial" / "train_history.jsonl")
    assert all("adv/ce" in h for h in adversarial)
    # the validation loss leaves out the classifier's term
    valid = [h for h in adversarial if h["split"] == "valid"]
    assert valid and all(abs(h["loss"] - h["loss/recon"]) < 1e-6 for h in valid)
    assert any("vq/perplexity" in h for h in read_history(exp / "vc_vq" / "train_history.jsonl"))
    families = json.loads((exp / "eval" / "vc.json").read_text())["families"]
    assert set(families) == {"vc_adversarial+griffinlim", "vc_vq+griffinlim"}
    assert all(s["pairs"] == 9 and s["per"] >= 0 for s in families.values())
    # the PERs are the mean of the recognisers of CTC_SEEDS ("0 1" with --quick), one per seed,
    # each a speechrep train experiment of conf/phone_ctc.yaml with its seed
    assert sorted(p.name for p in (exp / "phone_ctc").iterdir()) == ["seed0", "seed1"]
    for seed in (0, 1):
        config = (exp / "phone_ctc" / f"seed{seed}" / "config.yaml").read_text()
        assert f"seed: {seed}" in config and "phones.ctm" in config
    for s in families.values():
        assert len(s["per_by_model"]) == 2 and s["per"] == pytest.approx(sum(s["per_by_model"]) / 2)
        assert 0 <= s["source_per"] and len(s["resynth_per_by_model"]) == 2
    assert json.loads((exp / "scores_closed.json").read_text())["families"].keys() == families.keys()
    # a rerun with another number of phone recognisers redoes the scorers' stage and what follows
    r = subprocess.run(["bash", str(VC / "run.sh"), "--quick", "--exp", str(exp), "--stop-stage", "2"],
                       capture_output=True, text=True, env={**env, "CTC_SEEDS": "0"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "options or config changed since the last run of this stage" in r.stdout
    assert sorted(p.name for p in (exp / "phone_ctc").iterdir()) == ["seed0"]
    assert not (exp / ".done" / "stage_3_vc").exists() and (exp / ".done" / "stage_3_vc.started").exists()


@pytest.mark.slow
def test_vocoder_recipe_quick(tmp_path, synth_tiny_db):
    """egs/synth/vocoder/run.sh --quick: the tiny vocoder trains and `speechrep eval resynth`
    scores its copy synthesis beside Griffin-Lim's; a rerun skips every stage."""
    import os

    env = {**os.environ, "DB": str(synth_tiny_db), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    exp = tmp_path / "exp"
    cmd = ["bash", str(VC.parent / "vocoder" / "run.sh"), "--quick", "--exp", str(exp)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert all(f"Stage {part}:" in r.stdout for part in ("0", "3:vocoder", "5"))
    scores = json.loads((exp / "resynth" / "scores.json").read_text())
    assert sorted(scores) == ["griffinlim", "neural"] and all(s["utterances"] == 2 for s in scores.values())
    assert sorted(p.name for p in (exp / "resynth" / "neural").iterdir()) == sorted(
        p.name for p in (exp / "resynth" / "griffinlim").iterdir())
    again = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert again.returncode == 0 and again.stdout.count("done before; skipped") == 3
