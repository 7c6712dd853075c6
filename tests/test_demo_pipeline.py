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

from tests.browser import chromium, screenshot, selfcheck

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs" / "synth" / "all" / "run.sh"
ARTIFACTS = ROOT / "test-output"

pytestmark = pytest.mark.slow


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(RECIPE), "--quick", *args], capture_output=True, text=True, env=_env(), **kwargs)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    exp = tmp_path_factory.mktemp("demo") / "exp"
    r = _run("--exp", str(exp))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return exp


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
    # vc_adain trained with the speaker-consistency loss, judged by its own speaker model
    history = [json.loads(line) for line in (demo / "vc" / "vc_adain" / "train_history.jsonl").read_text().splitlines()]
    assert any("loss/speaker" in rec and "loss/speaker_content" in rec for rec in history)
    assert (demo / "vc" / "judge" / "checkpoints").is_dir()
    times = (demo / "stage_times.tsv").read_text().splitlines()
    assert [t.split("\t")[0] for t in times] == [str(n) for n in range(9)]


def test_rerun_skips_finished_stages(demo):
    r = _run("--exp", str(demo))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("(done before; skipped)") == 9


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (tools/setup.sh --dev installs it)")
def test_report_renders(demo):
    page = demo / "report" / "index.html"
    text = page.read_text()
    for system in ("mfcc", "cpc", "vqvae_units"):
        assert f"<th scope=row>{system}</th>" in text
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
