"""egs/synth/knnvc/run.sh --quick end to end: pairs, CPC, vocoder, kNN conversion at both layers, the package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

KNNVC = Path(__file__).resolve().parents[1] / "egs" / "synth" / "knnvc"


def _fbank(audio):
    """Filterbank of an audio file, or of a wave at 16 kHz."""
    from speechrep.features import fbank

    wave, sr = (audio, 16000) if isinstance(audio, np.ndarray) else sf.read(audio, dtype="float32")
    return np.asarray(fbank(wave * 32768, sample_frequency=sr, dither=0.0))


@pytest.mark.slow
def test_knnvc_recipe_quick_converts_towards_the_target_and_packages(tmp_path, synth_tiny_db):
    from speechrep.data.pairs import read_input_audio, read_pairs
    from speechrep.features.logmel import log_mel
    from speechrep.train.logging import read_history
    from speechrep.train.pretrained import load_vocoder
    from speechrep.vocoder.neural import NeuralVocoder

    env = {**os.environ, "DB": str(synth_tiny_db), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    exp = tmp_path / "exp"
    for stages in (["--stop-stage", "4"], ["--stage", "6"]):  # stage 5 (the judges' scores) is tested elsewhere
        r = subprocess.run(["bash", str(KNNVC / "run.sh"), "--quick", "--exp", str(exp), *stages],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    train = [h["loss"] for h in read_history(exp / "cpc" / "train_history.jsonl") if h["split"] == "train"]
    assert train[-1] < train[0]
    pairs = {s: read_pairs(exp / f"pairs_{s}.tsv") for s in ("dev", "test")}
    for s, ps in pairs.items():
        assert ps and all(p.source_speaker != p.target_speaker for p in ps)
        for layer in ("encoder", "context"):
            assert sorted(f.stem for f in (exp / "convert" / f"{s}_{layer}").glob("*.wav")) == sorted(p.id for p in ps)
    # the output is made of the target's frames: its filterbank frames lie nearer the target
    # utterances' than the source's, in every pair; both through the recipe's vocoder (a tiny
    # one, 20 steps: its artefacts, not the voice, would set the distance to the originals)
    voc = load_vocoder(exp / "vocoder")
    assert isinstance(voc, NeuralVocoder)

    def copy(path):
        return _fbank(voc.mel_to_wave(log_mel(read_input_audio(path, sample_rate=voc.sample_rate), voc.spec)))

    for p, layer in ((p, layer) for p in pairs["test"] for layer in ("encoder", "context")):
        out = _fbank(exp / "convert" / f"test_{layer}" / f"{p.id}.wav")
        near = {}
        for role, paths in (("target", p.targets), ("source", [p.source])):
            ref = np.concatenate([copy(t) for t in paths])
            d = ((out[:, None, :] - ref[None, :, :]) ** 2).sum(-1)
            near[role] = float(np.sqrt(d.min(1)).mean())
        assert near["target"] < near["source"], (p.id, layer, near)
    # the package converts as the recipe's stage 4 did at its layer (context), k and vocoder
    assert json.loads((exp / "knn_vc" / "knn.json").read_text())["vocoder"] == "vocoder"
    out = tmp_path / "packaged"
    r = subprocess.run([sys.executable, "-m", "speechrep", "convert", "--model", str(exp / "knn_vc"), "--pairs",
                        str(exp / "pairs_test.tsv"), "--out-dir", str(out)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for p in pairs["test"]:
        a, _ = sf.read(out / f"{p.id}.wav")
        b, _ = sf.read(exp / "convert" / "test_context" / f"{p.id}.wav")
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4


def test_shipped_default_model_converts_with_no_training(tmp_path, synth_tiny_db):
    """`speechrep convert --source --target --out` with no --model: the packaged model (<= 30 MB,
    its neural vocoder, a complete model card) converts a pair of the tiny corpus towards the target."""
    from speechrep.convert_knn import DEFAULT_MODEL_DIR, DEFAULT_PITCH_WEIGHT, is_knn_package, resolve_vocoder
    from speechrep.train.checkpoint import load_model

    assert is_knn_package(DEFAULT_MODEL_DIR)
    assert resolve_vocoder(DEFAULT_MODEL_DIR, None) == DEFAULT_MODEL_DIR / "vocoder"
    # it matches with the pitch weight chosen on the dev pairs, as an experiment directory does
    assert json.loads((DEFAULT_MODEL_DIR / "knn.json").read_text())["pitch_weight"] == DEFAULT_PITCH_WEIGHT
    assert load_model(DEFAULT_MODEL_DIR / "vocoder")[1] == "vocoder"
    size = sum(f.stat().st_size for f in DEFAULT_MODEL_DIR.rglob("*") if f.is_file())
    assert size <= 30 * 2**20, size
    card = (DEFAULT_MODEL_DIR / "MODEL_CARD.md").read_text()
    assert "to be filled in" not in card and "egs/synth/knnvc" in card
    wav = dict(line.split(maxsplit=1) for line in (synth_tiny_db / "data" / "train" / "wav.scp").read_text().splitlines())
    src = next(w for u, w in sorted(wav.items()) if u.startswith("awb-"))
    tgts = [w for u, w in sorted(wav.items()) if u.startswith("slt-")]
    out = tmp_path / "c.wav"
    args = ["convert", "--source", src, "--out", str(out)] + [a for t in tgts for a in ("--target", t)]
    r = subprocess.run([sys.executable, "-m", "speechrep", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    conv = _fbank(out)
    near = {}
    for role, paths in (("target", tgts), ("source", [src])):
        ref = np.concatenate([_fbank(t) for t in paths])
        near[role] = float(np.sqrt(((conv[:, None, :] - ref[None, :, :]) ** 2).sum(-1).min(1)).mean())
    assert near["target"] < near["source"], near
