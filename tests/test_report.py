"""The HTML report renders in headless Chromium with every image and audio file loading."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrep.report import ReportInputs, build_report
from tests.browser import chromium, screenshot, selfcheck

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-output"


def _inputs(tmp_path: Path) -> ReportInputs:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "mfcc.json").write_text(json.dumps({"abx": {"within": 12.5, "across": 20.1}}))
    hist = tmp_path / "train_history.jsonl"
    hist.write_text("".join(json.dumps({"step": s, "loss": 3.0 / (s + 1)}) + "\n" for s in range(20)))
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "ali.png")
    plt.close(fig)
    t = np.arange(8000) / 16000
    for name in ("src", "conv"):
        sf.write(tmp_path / f"{name}.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    return ReportInputs(
        title="test report",
        results={"mfcc": tmp_path / "mfcc.json", "cpc": {"abx": {"within": 8.0, "across": 11.0}, "units": {"pnmi": 0.4}}},
        baseline="mfcc",
        vc_results={"adain": {"target_speaker_acc": 0.95, "per": 0.2}},
        histories={"cpc": hist},
        alignment_png=tmp_path / "ali.png",
        audio=[{"label": "pair 1", "files": {"source": tmp_path / "src.wav", "converted": tmp_path / "conv.wav"}}],
        stage_times=[("0", "corpus", 12.0), ("1", "features", 3.5)],
    )


def test_report_content(tmp_path):
    page = build_report(_inputs(tmp_path), tmp_path / "report")
    text = page.read_text()
    assert "<table class=\"results\">" in text and "20.1" in text and 'class="baseline"' in text
    assert "img/loss.png" in text and "img/alignment.png" in text and text.count("<audio") == 2
    assert "http://" not in text and "https://" not in text  # no network assets
    for ref in ("img/loss.png", "img/alignment.png"):
        assert (page.parent / ref).is_file()


@pytest.mark.skipif(chromium() is None, reason="chromium not installed (tools/setup.sh --dev installs it)")
def test_report_renders_in_chromium(tmp_path):
    page = build_report(_inputs(tmp_path), tmp_path / "report")
    status, message = selfcheck(page)
    assert status == "ok", message
    assert "2 images and 2 audio files loaded" in message
    shot = screenshot(page, ARTIFACTS / "report_screenshot.png")
    assert shot.stat().st_size > 10_000
    # the check can fail: a missing asset is reported as broken
    next((page.parent / "audio").iterdir()).unlink()
    status, message = selfcheck(page)
    assert status == "broken" and "audio:" in message


def test_alignment_plot(tmp_path):
    from speechrep.report.plots import plot_alignment

    wave = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    out = plot_alignment(
        wave, 16000, [(0.0, 0.3, "pau"), (0.3, 0.6, "ah"), (0.6, 1.0, "pau")], [1, 1, 2, 2, 2, 3] * 8,
        tmp_path / "ali.png", unit_frame_shift=0.02,
    )
    import matplotlib.image as mpimg

    img = mpimg.imread(out)
    assert img.shape[0] > 200 and img.shape[1] > 800


def test_pipeline_collect(tmp_path):
    from speechrep.report.pipeline import build_pipeline_report, collect

    exp = tmp_path / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "eval" / "baseline.json").write_text(json.dumps({"baselines": {"mfcc": {"abx": {"across": 20.0}}, "fbank": {}}}))
    (exp / "eval" / "cpc.json").write_text(json.dumps({"abx": {"across": 11.0}}))
    (exp / "eval" / "vc.json").write_text(json.dumps({"families": {"adain": {"speaker": {"target_acc": 0.9}}}}))
    (exp / "cpc").mkdir()
    (exp / "cpc" / "train_history.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n')
    (exp / "stage_times.tsv").write_text("0\tcorpus\t3.5\n")
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600), 16000)
    (tmp_path / "pairs.tsv").write_text(f"label\tsource\tconverted\np1\t{wav}\ta.wav\n")
    inputs = collect(exp, audio_tsv=tmp_path / "pairs.tsv")
    assert set(inputs.results) == {"mfcc", "fbank", "cpc"} and inputs.baseline == "mfcc"
    assert inputs.vc_results == {"adain": {"speaker.target_acc": 0.9}}
    assert list(inputs.histories) == ["cpc"] and inputs.stage_times == [("0", "corpus", 3.5)]
    assert inputs.audio[0]["files"]["converted"] == wav
    page, summary = build_pipeline_report(exp)
    assert page == exp / "report" / "index.html" and "speaker.target_acc" in page.read_text()
    assert "<td>0.9</td>" in page.read_text()  # the VC score itself, not only its column
    # the terminal summary: the same tables, columns without any value left out
    lines = summary.splitlines()
    assert lines[0] == "Phone discovery (* = mfcc, the reference line)"
    assert lines[1].split() == ["system", "ABX", "across", "(%)"]
    assert [ln.split() for ln in lines[2:5]] == [["mfcc", "*", "20"], ["fbank", "—"], ["cpc", "11"]]
    assert lines[6:] == ["Voice conversion", "system  speaker.target_acc", "adain                  0.9"]
    (tmp_path / "bad.tsv").write_text("label\tsource\np1\tmissing.wav\n")
    from speechrep.errors import DataError

    with pytest.raises(DataError, match="missing.wav"):
        collect(exp, audio_tsv=tmp_path / "bad.tsv")
