"""egs/synth/all/run.sh --quick: the whole pipeline end to end, its report in Chromium, and a
run killed during training that resumes to the same model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests import fake_asterisk
from tests.browser import chromium, screenshot, selfcheck

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "synth" / "all" / "run.sh"
ARTIFACTS = ROOT / "test-output"

pytestmark = pytest.mark.slow


#: the demo's real voice: the fake Asterisk pack of tests/fake_asterisk.py (flite + g722), never
#: the one installed on the machine; without flite or g722 the demo leaves the real voice out
_REAL_VOICE: dict[str, str] = {"ASTERISK_SOUNDS": "/nonexistent"}


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return {**env, **_REAL_VOICE}


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPE), "--quick", *args], capture_output=True, text=True, env=_env(), **kwargs)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    if fake_asterisk.available():
        sounds, transcripts = fake_asterisk.make_pack(tmp_path_factory.mktemp("asterisk"))
        _REAL_VOICE.update(ASTERISK_SOUNDS=str(sounds), ASTERISK_TRANSCRIPTS=str(transcripts))
    exp = tmp_path_factory.mktemp("demo") / "exp"
    r = _run("--exp", str(exp))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return exp


def _real_voice() -> bool:
    return _REAL_VOICE["ASTERISK_SOUNDS"] != "/nonexistent"


def _real_aligned() -> bool:  # the demo aligns the real voice with pocketsphinx (speechrep[judges])
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return _real_voice()


def _stage_parts() -> list[str]:
    """STAGE_PARTS with the real voice's stages (when the fake pack could be made) and its
    evaluation as a third set (when it is aligned)."""
    after: dict[str, list[str]] = {}
    if _real_voice():
        after = {"0": ["0:real"], "2:scorers": ["2:real"], "4:vc": ["4:real"], "5:vc": ["5:real"]}
    if _real_aligned():
        for part in ("2:baseline", "4:cpc", "4:vqvae", "5:cpc", "5:vqvae"):
            after[f"{part}@unseen"] = [f"{part}@real"]
    return [p for part in STAGE_PARTS for p in [part, *after.get(part, [])]]


def test_pipeline_outputs_mean_something(demo):
    baseline = json.loads((demo / "eval" / "baseline.json").read_text())["baselines"]
    assert baseline["mfcc"]["abx"]["across"] is not None
    units = json.loads((demo / "eval" / "vqvae_units.json").read_text())
    assert 0 < units["units"]["pnmi"] <= 1 and units["codebook"]["used_codes"] >= 2
    cpc = json.loads((demo / "eval" / "cpc.json").read_text())
    assert cpc["probes"]["phone_probe"]["accuracy"] > cpc["probes"]["phone_probe"]["chance"]
    for model in ("cpc", "vqvae"):
        losses = [json.loads(line) for line in (demo / model / "train_history.jsonl").read_text().splitlines()]
        train = [rec["loss"] for rec in losses if rec.get("split", "train") == "train"]
        assert train[-1] < train[0], model
    vc = json.loads((demo / "vc" / "eval" / "vc.json").read_text())["families"]
    assert list(vc) == ["vc_adain+griffinlim"]
    # the demo's share of the scorers: one phone recogniser, trained by speechrep train
    assert [p.name for p in (demo / "vc" / "phone_ctc").iterdir()] == ["seed0"]
    assert vc["vc_adain+griffinlim"]["per"] >= 0 and "per_by_model" not in vc["vc_adain+griffinlim"]
    # vc_adain trained with the speaker-consistency loss, judged by its own speaker model
    history = [json.loads(line) for line in (demo / "vc" / "vc_adain" / "train_history.jsonl").read_text().splitlines()]
    assert any("loss/speaker" in rec and "loss/speaker_content" in rec for rec in history)
    assert (demo / "vc" / "judge" / "checkpoints").is_dir()
    # seen voices, unseen voice families (and real speech when aligned) side by side
    sets = ["", "@unseen"] + (["@real"] if _real_aligned() else [])
    for tag in sets:
        probe = json.loads((demo / "eval" / f"cpc{tag}.json").read_text())["probes"]["phone_probe"]
        assert probe["accuracy"] > probe["chance"], tag
        assert "mfcc" in json.loads((demo / "eval" / f"baseline{tag}.json").read_text())["baselines"]
        assert (demo / "eval" / f"vqvae_units{tag}.json").is_file()
    times = (demo / "stage_times.tsv").read_text().splitlines()
    assert [t.split("\t")[0] for t in times] == _stage_parts()


@pytest.mark.skipif(not fake_asterisk.available(), reason="needs flite and the PyPI package g722 (the fake real voice)")
def test_real_voice_converted_both_ways(demo):
    """Real -> synthetic and synthetic -> real, by the shipped zero-shot model (its packaged neural
    vocoder) and the demo's AdaIN (Griffin-Lim): scored, in the report, and the zero-shot
    conversions sound more like the target than the source."""
    families = json.loads((demo / "real" / "eval" / "vc.json").read_text())["families"]
    assert sorted(families) == [f"{d}-{s}" for d in ("real2synth", "synth2real") for s in ("knn+neural", "vc_adain+griffinlim")]
    for direction in ("real2synth", "synth2real"):
        scores = families[f"{direction}-knn+neural"]
        judge = "judge." if "judge.target_similarity" in scores else ""  # independent judges when installed
        assert scores[f"{judge}target_similarity"] > scores[f"{judge}source_similarity"], (direction, scores)
    page = (demo / "report" / "index.html").read_text()
    assert "(real -&gt; synthetic)" in page and "(synthetic -&gt; real)" in page
    assert "synth2real-knn+neural" in page


#: the stage parts of the demo, in the order they run (recipes/lib.sh numbering)
STAGE_PARTS = ["0", "1", "2:baseline", "2:baseline@unseen", "2:pairs", "2:scorers", "3:cpc", "3:vqvae", "3:judge",
               "3:vc", "4:cpc", "4:cpc@unseen", "4:vqvae", "4:vqvae@unseen", "4:vc", "5:cpc", "5:cpc@unseen", "5:vqvae",
               "5:vqvae@unseen", "5:vc", "6"]


def test_rerun_skips_finished_stages(demo):
    r = _run("--exp", str(demo))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("(done before; skipped)") == len(_stage_parts())


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (tools/setup.sh --dev installs it)")
def test_report_renders(demo):
    page = demo / "report" / "index.html"
    text = page.read_text()
    for system in ("mfcc", "cpc", "vqvae_units", "mfcc@unseen", "cpc@unseen", "vqvae_units@unseen"):
        assert f"<th scope=row>{system}</th>" in text
    assert text.index("<th scope=row>vqvae_units</th>") < text.index("<th scope=row>fbank@unseen</th>")
    assert "img/loss.png" in text and "img/alignment.png" in text
    assert "<h2>Voice conversion</h2>" in text and text.count("<audio") >= 2
    status, message = selfcheck(page)
    assert status == "ok", message
    screenshot(page, ARTIFACTS / "demo_report.png")


def test_killed_training_resumes_to_the_same_model(demo, tmp_path):
    exp = tmp_path / "exp"
    args = ("--exp", str(exp), "--stage", "3", "--stop-stage", "3")
    env = {**_env(), "DB": str(demo / "db")}
    proc = subprocess.Popen(
        ["bash", str(RECIPE), "--quick", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpts = exp / "cpc" / "checkpoints"
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if ckpts.is_dir() and any(p.name.startswith("step_") for p in ckpts.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (exp / ".done" / "stage_3").exists()
    r = subprocess.run(["bash", str(RECIPE), "--quick", *args], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    resumed = json.loads((exp / "cpc" / "train_summary.json").read_text())
    full = json.loads((demo / "cpc" / "train_summary.json").read_text())
    assert resumed["step"] == full["step"]
    assert resumed["weights_sha256"] == full["weights_sha256"]


# ----------------------------------------------------------------------------- the 15-minute budget
#: Seconds per training step on the idle 2-core CPU box, measured in a fresh-clone demo run
#: (2026-12-07, exp/stage_times.tsv: CPC 82.2 s / 300 steps, VQ-VAE 31.8 s / 600, the judge
#: 36.1 s / 200, vc_adain 162.3 s / 400); the speaker scorer and the phone recogniser ran side by
#: side (67.9 s for both), so theirs are the task recipes' (2 min / 600, 8-9 min / 2000).
STEP_SECONDS = {"cpc": 0.28, "vqvae": 0.06, "vc_adain": 0.41, "speaker_tdnn": 0.2, "phone_ctc": 0.26}
#: Steps each training of the full demo may take.
STEP_BUDGET = {"cpc": 700, "vqvae": 1500, "vc/judge": 200, "vc/speaker": 200, "vc/phone_ctc/seed0": 250,
               "vc/vc_adain": 400}
#: Seconds of the stages without training in that run: corpus 23.1, features 7.4, baseline 21.1,
#: pairs 0.3, extraction 4.5, units 3.4, copy synthesis and conversion 33.3, CPC evaluation
#: 32.7, units evaluation 2.2, VC scores 7.1, report 1.5.
FIXED_SECONDS = 23.1 + 7.4 + 21.1 + 0.3 + 4.5 + 3.4 + 33.3 + 32.7 + 2.2 + 7.1 + 1.5
#: The stages added since (the fresh-clone demo of 47f62aa, 2026-12-07, 13 min 30 s in all): the
#: unseen voice families (features +2.1, baseline 13.7, extraction 4.3 + 3.0, evaluations 47.1 + 1.9)
#: and the real voice as README command 1 runs it (no speechrep[judges]: corpus 1.8, pairs 0.6,
#: conversion 22.5, in-house scores 18.4). With speechrep[judges] installed, the alignment, the
#: real-speech evaluation and the independent judges add about 2 minutes (docs/results/demo.md).
FIXED_SECONDS += 2.1 + 13.7 + 4.3 + 3.0 + 47.1 + 1.9 + 1.8 + 0.6 + 22.5 + 18.4


def _trainings(stdout: str) -> dict[str, tuple[str, int]]:
    """``{exp_dir: (model name, steps)}`` of the trainings a --dry-run prints (exp_dir relative to --exp)."""
    import shlex

    from speechrep.train.config import resolve_config

    out = {}
    for line in stdout.splitlines():
        words = shlex.split(line.split(": ", 1)[1]) if line.startswith(("  run: ", "  job: ")) else []
        if words[:2] == ["speechrep", "train"]:
            config, rest = words[2], words[3:]
        elif words[:1] == ["vc_train_job"]:
            config, rest = words[2], words[3:] + ["--set", f"exp_dir=vc/{words[1]}"]
        else:
            continue
        overrides = [rest[i + 1] for i, w in enumerate(rest) if w == "--set"]
        cfg, _ = resolve_config(RECIPE.parent / config, [*overrides, "data.train=x"])
        out[cfg.exp_dir] = (cfg.model.name, cfg.optim.max_steps)
    return out


def test_full_demo_training_steps_fit_the_15_minute_budget(tmp_path):
    """Counted, not timed: every training of the full demo (--dry-run prints them) stays within
    its step budget, and steps x the measured cost per step plus the other stages stay under
    15 minutes even with the parallel trainings run one after another."""
    r = subprocess.run(["bash", str(RECIPE), "--dry-run", "--exp", str(tmp_path / "exp")], capture_output=True,
                       text=True, env=_env())
    assert r.returncode == 0, r.stderr
    found = _trainings(r.stdout.replace(str(tmp_path / "exp") + "/", ""))
    assert sorted(found) == sorted(STEP_BUDGET)
    for name, (model, steps) in found.items():
        assert steps <= STEP_BUDGET[name], name
    seconds = FIXED_SECONDS + sum(STEP_SECONDS[model] * steps for model, steps in found.values())
    assert seconds <= 15 * 60, seconds
    # and nothing ran
    assert not (tmp_path / "exp" / "db").exists() and "Stage 0:" in r.stdout
