"""Trainer data: crops of wave/feats data dirs, the seeded sampler, sharding, short utterances.

Also holds the tiny data-dir and config writers the other ``test_train_*`` files use.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from speechrep.errors import DataError
from speechrep.train.data import CropDataset, load_corpus, read_speakers, valid_batches
from speechrep.train.sampler import CropSampler

SPEAKERS = ("spkA", "spkB", "spkC")


def write_wave_dir(root: Path, *, lengths=(4800, 4000, 3200), speakers=SPEAKERS, utt2dur: bool = False) -> Path:
    """Data dir of len(speakers) x len(lengths) 16 kHz wavs: a sine per speaker plus noise."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    d = root / "data_wave"
    (root / "wav").mkdir(parents=True, exist_ok=True)
    d.mkdir(parents=True, exist_ok=True)
    wav, u2s, dur = [], [], []
    for s, spk in enumerate(speakers):
        for j, n in enumerate(lengths):
            utt = f"{spk}-u{j}"
            t = np.arange(n) / 16000
            x = 0.5 * np.sin(2 * np.pi * (200 + 100 * s) * t) + 0.01 * rng.standard_normal(n)
            sf.write(root / "wav" / f"{utt}.wav", x.astype(np.float32), 16000, subtype="PCM_16")
            wav.append(f"{utt} {root / 'wav' / f'{utt}.wav'}\n")
            u2s.append(f"{utt} {spk}\n")
            dur.append(f"{utt} {n / 16000}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    if utt2dur:
        (d / "utt2dur").write_text("".join(dur))
    return d


def write_feats_dir(root: Path, *, lengths=(50, 40, 30), dim: int = 4, speakers=SPEAKERS) -> Path:
    """Data dir with feats.scp of smooth random (frames, dim) matrices."""
    import kaldiio

    rng = np.random.default_rng(1)
    d = root / "data_feats"
    d.mkdir(parents=True, exist_ok=True)
    wav, u2s, feats = [], [], {}
    for spk in speakers:
        for j, n in enumerate(lengths):
            utt = f"{spk}-u{j}"
            x = np.cumsum(rng.standard_normal((n, dim)), axis=0) * 0.1  # correlated over time
            feats[utt] = x.astype(np.float32)
            wav.append(f"{utt} /nonexistent/{utt}.wav\n")
            u2s.append(f"{utt} {spk}\n")
    with kaldiio.WriteHelper(f"ark,scp:{d / 'feats.ark'},{d / 'feats.scp'}") as w:
        for utt in sorted(feats):
            w(utt, feats[utt])
    (d / "wav.scp").write_text("".join(wav))
    (d / "utt2spk").write_text("".join(u2s))
    return d


def write_config(path: Path, *, exp_dir: Path, data_dir: Path, input: str = "feats", crop: int | None = None,
                 **sections) -> Path:
    """Tiny toy-model experiment config; ``sections`` update ``data``/``model``/``optim``/``train``."""
    cfg = {
        "exp_dir": str(exp_dir),
        "data": {"train": str(data_dir), "input": input, "crop": crop or (16 if input == "feats" else 1600),
                 "batch_size": 4},
        "model": {"name": "toy", "args": {"hidden": 4}},
        "optim": {"lr": 0.02, "warmup_steps": 2, "max_steps": 20, "grad_clip": 1.0},
        "train": {"seed": 0, "log_every": 1, "valid_every": 5, "ckpt_every": 5, "keep_last": 2,
                  "device": "cpu", "num_threads": 1, "progress": False, "tensorboard": False},
    }
    for key, value in sections.items():
        cfg[key].update(value)
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_wave_corpus_in_memory_and_on_disk_give_the_same_crops(tmp_path):
    d = write_wave_dir(tmp_path, utt2dur=True)
    spk = read_speakers([d])
    assert spk == list(SPEAKERS)
    mem = load_corpus(d, input="wave", crop=1600, speakers=spk)
    disk = load_corpus(d, input="wave", crop=1600, speakers=spk, memory_budget_mb=0.01)
    assert mem.data is not None and disk.data is None
    assert mem.data.shape == (3 * (4800 + 4000 + 3200),) and mem.offsets[-1] == len(mem.data)
    np.testing.assert_array_equal(mem.lengths, disk.lengths)
    spec = (np.array([0, 4, 8]), np.array([0, 100, 1600]))
    a = CropDataset(mem, input="wave", crop=1600)[spec]
    b = CropDataset(disk, input="wave", crop=1600)[spec]
    assert a["wave"].shape == (3, 1600) and a["wave"].dtype == torch.float32
    torch.testing.assert_close(a["wave"], b["wave"], rtol=0, atol=0)
    assert a["speaker"].tolist() == [0, 1, 2] and a["lengths"].tolist() == [1600] * 3


def test_feats_corpus_and_dim(tmp_path):
    d = write_feats_dir(tmp_path)
    c = load_corpus(d, input="feats", crop=16, speakers=list(SPEAKERS))
    assert c.dim == 4 and c.data.shape == (3 * 120, 4)
    batch = CropDataset(c, input="feats", crop=16)[(np.array([1, 2]), np.array([3, 0]))]
    assert batch["feats"].shape == (2, 16, 4)
    import kaldiio

    ref = kaldiio.load_scp(str(d / "feats.scp"))["spkA-u1"]
    np.testing.assert_array_equal(batch["feats"][0].numpy(), ref[3:19])


def test_short_utterances_skip_or_pad(tmp_path):
    d = write_feats_dir(tmp_path, lengths=(50, 10))
    skip = load_corpus(d, input="feats", crop=16, speakers=list(SPEAKERS), short="skip")
    pad = load_corpus(d, input="feats", crop=16, speakers=list(SPEAKERS), short="pad")
    assert skip.num_short == pad.num_short == 3
    assert len(skip.utts) == 3 and len(pad.utts) == 6
    i = pad.utts.index("spkA-u1")
    batch = CropDataset(pad, input="feats", crop=16)[(np.array([i]), np.array([0]))]
    assert batch["lengths"].tolist() == [10]
    assert torch.all(batch["feats"][0, 10:] == 0) and torch.any(batch["feats"][0, :10] != 0)
    with pytest.raises(DataError, match="data.crop=100"):
        load_corpus(d, input="feats", crop=100, speakers=list(SPEAKERS))


def test_missing_data_dir_and_feats(tmp_path):
    with pytest.raises(DataError, match="nope.*data.train.*not found"):
        load_corpus(tmp_path / "nope", input="wave", crop=10, speakers=[])
    d = write_wave_dir(tmp_path)
    with pytest.raises(DataError, match="feats.scp"):
        load_corpus(d, input="feats", crop=10, speakers=list(SPEAKERS))


def _stream(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_is_seeded_resumable_and_sharded():
    lengths = np.array([100, 50, 70, 30, 90, 60, 40])
    spk = np.array([0, 0, 1, 1, 2, 2, 2])
    kw = dict(crop=20, batch_size=2, seed=3)
    full = _stream(CropSampler(lengths, spk, **kw), 10)
    again = _stream(CropSampler(lengths, spk, **kw), 10)
    resumed = _stream(CropSampler(lengths, spk, start=6, **kw), 4)
    for (i1, s1), (i2, s2) in zip(full, again):
        np.testing.assert_array_equal(i1, i2) and np.testing.assert_array_equal(s1, s2)
    for (i1, s1), (i2, s2) in zip(full[6:], resumed):
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(s1, s2)
    other = _stream(CropSampler(lengths, spk, crop=20, batch_size=2, seed=4), 10)
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(full, other))
    # every epoch visits each utterance once; crops stay inside the utterance
    idx = np.concatenate([b[0] for b in full])[:14]
    assert sorted(idx[:7]) == list(range(7)) and sorted(idx[7:]) == list(range(7))
    for i, s in full:
        assert np.all(s >= 0) and np.all(s + 20 <= lengths[i])
    # 2 ranks with batch 2 together see what 1 rank with batch 4 sees
    r0 = _stream(CropSampler(lengths, spk, rank=0, world_size=2, **kw), 5)
    r1 = _stream(CropSampler(lengths, spk, rank=1, world_size=2, **kw), 5)
    big = _stream(CropSampler(lengths, spk, crop=20, batch_size=4, seed=3), 5)
    for a, b, c in zip(r0, r1, big):
        np.testing.assert_array_equal(np.concatenate([a[0], b[0]]), c[0])
        np.testing.assert_array_equal(np.concatenate([a[1], b[1]]), c[1])


def test_speakers_per_batch():
    lengths = np.full(9, 50)
    spk = np.repeat([0, 1, 2], 3)
    for idx, _ in _stream(CropSampler(lengths, spk, crop=20, batch_size=4, seed=0, speakers_per_batch=2), 5):
        groups = spk[idx].reshape(2, 2)
        assert len(set(groups[:, 0])) == 2 and np.all(groups == groups[:, :1])


def test_valid_batches_cover_every_utterance_once(tmp_path):
    c = load_corpus(write_feats_dir(tmp_path), input="feats", crop=16, speakers=list(SPEAKERS))
    specs = valid_batches(c, crop=16, batch_size=4, seed=0)
    # the 9th utterance joins the batch before it: a batch of one has nothing to contrast with
    # (DIM's global objective refuses it; on the many-voice corpus the dev set stopped a DIM run)
    assert [len(s[0]) for s in specs] == [4, 5]
    assert sorted(np.concatenate([s[0] for s in specs]).tolist()) == list(range(9))
    again = valid_batches(c, crop=16, batch_size=4, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(specs, again))
    assert len(valid_batches(c, crop=16, batch_size=4, seed=0, max_batches=2)) == 2


def test_segments_cut_recordings_in_memory_and_per_crop(tmp_path):
    import soundfile as sf

    rec = (np.arange(16000) % 1000 / 1000 - 0.5).astype(np.float32)
    sf.write(tmp_path / "rec.wav", rec, 16000, subtype="FLOAT")
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec {tmp_path / 'rec.wav'}\n")
    (d / "segments").write_text("s1-a rec 0.0 0.5\ns1-b rec 0.5 1.0\n")
    (d / "utt2spk").write_text("s1-a s1\ns1-b s1\n")
    spec = (np.array([1, 0]), np.array([100, 0]))
    for budget in (100.0, 0.0):
        c = load_corpus(d, input="wave", crop=4000, speakers=["s1"], memory_budget_mb=budget)
        assert (c.data is None) == (budget == 0.0)
        assert c.lengths.tolist() == [8000, 8000]
        wave = CropDataset(c, input="wave", crop=4000)[spec]["wave"].numpy()
        np.testing.assert_array_equal(wave[0], rec[8100:12100])
        np.testing.assert_array_equal(wave[1], rec[:4000])
    with pytest.raises(DataError, match=r"utt2spk: speaker 's1' is not in the experiment's speaker list"):
        load_corpus(d, input="wave", crop=4000, speakers=["s2"])
