"""The CTC phone recogniser trains through ``speechrep train`` (egs/synth/vc/conf/phone_ctc.yaml):
the crop loader carries the phones of each crop as CTC targets (``data.phones``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrep.cli import main
from speechrep.errors import ConfigError, DataError
from speechrep.train.checkpoint import load_model
from speechrep.train.data import CropDataset, attach_phones, load_corpus, read_phone_alignments
from speechrep.train.logging import read_history
from speechrep.train.trainer import train

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "egs" / "synth" / "vc" / "conf" / "phone_ctc.yaml"
SR = 16000


@pytest.fixture
def phone_data(tmp_path) -> tuple[Path, Path]:
    """Two speakers' utterances of 0.4 and 0.3 s and their CTM (phones x and y, one pause)."""
    d = tmp_path / "data"
    d.mkdir()
    t = np.arange(SR) / SR
    for utt, f0, dur in [("A_u1", 120, 0.4), ("B_u2", 220, 0.3)]:
        sf.write(d / f"{utt}.wav", (0.3 * np.sin(2 * np.pi * f0 * t[: int(dur * SR)])).astype(np.float32), SR)
    (d / "wav.scp").write_text(f"A_u1 {d / 'A_u1.wav'}\nB_u2 {d / 'B_u2.wav'}\n")
    (d / "utt2spk").write_text("A_u1 A\nB_u2 B\n")
    (d / "spk2utt").write_text("A A_u1\nB B_u2\n")
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("A_u1 1 0.00 0.20 x\nA_u1 1 0.20 0.20 y\nB_u2 1 0.00 0.10 pau\nB_u2 1 0.10 0.20 y\n")
    return d, ctm


def _overrides(d: Path, ctm: Path, exp: Path, steps: int = 3) -> list[str]:
    return [f"exp_dir={exp}", f"data.train={d}", f"data.phones=[{ctm}]", "data.batch_size=2",
            "model.args.channels=8", "model.args.layers=1", f"optim.max_steps={steps}", "train.log_every=1",
            f"train.valid_every={steps}", f"train.ckpt_every={steps}", "train.progress=false",
            "train.tensorboard=false"]


def test_batches_carry_the_phones_of_each_crop(phone_data):
    d, ctm = phone_data
    corpus = load_corpus(d, input="wave", crop=4800, speakers=["A", "B"], short="pad")
    attach_phones(corpus, read_phone_alignments([ctm]), ["x", "y"], sample_rate=SR)
    ds = CropDataset(corpus, input="wave", crop=4800)
    # A_u1's 0.3 s crops from 0 and from 0.2 s: x (middle 0.1 s) in the first, y (middle 0.3 s) in the second
    b = ds[(np.array([0, 0]), np.array([0, 3200]))]
    assert b["phones"].tolist() == [[0], [1]] and b["phone_lengths"].tolist() == [1, 1]
    # a crop longer than the utterances: whole utterances, the batch cut to the longest, pauses dropped
    corpus = load_corpus(d, input="wave", crop=128000, speakers=["A", "B"], short="pad")
    attach_phones(corpus, read_phone_alignments([ctm]), ["x", "y"], sample_rate=SR)
    b = CropDataset(corpus, input="wave", crop=128000)[(np.array([1, 0]), np.array([0, 0]))]
    assert b["wave"].shape == (2, int(0.4 * SR)) and b["lengths"].tolist() == [int(0.3 * SR), int(0.4 * SR)]
    assert b["phones"].tolist() == [[1, -1], [0, 1]] and b["phone_lengths"].tolist() == [1, 2]


def test_phone_recognizer_trains_through_speechrep_train(phone_data, tmp_path):
    d, ctm = phone_data
    exp = tmp_path / "exp"
    with pytest.raises(SystemExit) as e:
        main(["train", str(CONF), *sum((["--set", o] for o in _overrides(d, ctm, exp)), [])])
    assert e.value.code == 0
    model, name, cfg = load_model(exp)
    assert name == "phone_ctc" and cfg.phones == ["x", "y"]  # the CTM's inventory, the pause left out
    history = [r for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]
    assert [r["step"] for r in history] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in history)
    wave = torch.from_numpy(sf.read(d / "A_u1.wav", dtype="float32")[0])[None]
    assert all(set(seq) <= {"x", "y"} for seq in model.recognize(model.mel(wave)))


def test_phone_recognizer_loss_falls_and_is_reproducible(phone_data, tmp_path):
    d, ctm = phone_data
    weights = []
    for i, state in enumerate((1, 2)):
        torch.manual_seed(state)  # as if another process, or other work before it
        exp = train(CONF, _overrides(d, ctm, tmp_path / f"exp{i}", steps=30) + ["optim.lr=3e-3"])
        weights.append(load_model(exp)[0].state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k
    losses = [r["loss"] for r in read_history(tmp_path / "exp0" / "train_history.jsonl") if r["split"] == "train"]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_phone_targets_bad_input(phone_data, tmp_path):
    d, ctm = phone_data
    partial = tmp_path / "partial.ctm"
    partial.write_text("A_u1 1 0.00 0.20 x\n")
    with pytest.raises(DataError, match="'B_u2'.*no phone alignment"):
        train(CONF, _overrides(d, partial, tmp_path / "e1"))
    with pytest.raises(ConfigError, match="phone 'y'.*not in the model's inventory"):
        train(CONF, _overrides(d, ctm, tmp_path / "e2") + ["model.args.phones=[x]"])
    with pytest.raises(ConfigError, match="data.input: wave"):
        train(CONF, _overrides(d, ctm, tmp_path / "e3") + ["data.input=feats"])
    cpc = ["model.name=cpc", "model.args={}"]
    with pytest.raises(ConfigError, match="no phone inventory"):
        train(CONF, _overrides(d, ctm, tmp_path / "e4") + cpc)
