"""`speechrep eval ...` end to end on a tiny synthetic corpus; one JSON; bad input exits 1."""

from __future__ import annotations

import hashlib
import json
import math

import kaldiio
import numpy as np
import pytest

from speechrep.cli import main
from speechrep.data.ctm import write_ctm
from speechrep.data.kaldi_dir import write_kaldi_map

PHONES = "abcd"


def _corpus(root, *, n_spk=3, n_utt=4, seed=0):
    """CTM + utt2spk, Kaldi-timed (10 ms, first centre 12.5 ms) features and units that follow the phones."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(PHONES), 8)) * 3
    ali, utt2spk, feats, units = {}, {}, {}, {}
    for s in range(n_spk):
        for u in range(n_utt):
            utt = f"spk{s}-utt{u}"
            t, segs = 0.0, [(0.0, 0.1, "SIL")]
            t = 0.1
            for p in rng.choice(list(PHONES), size=12):
                d = round(float(rng.uniform(0.05, 0.1)), 2)
                segs.append((t, round(t + d, 2), str(p)))
                t = round(t + d, 2)
            segs.append((t, round(t + 0.1, 2), "SIL"))
            ali[utt], utt2spk[utt] = segs, f"spk{s}"
            n = math.ceil((segs[-1][1] - 0.0125) / 0.01)
            centres = 0.0125 + 0.01 * np.arange(n)
            lab = np.full(n, -1)
            for start, end, p in segs:
                lab[(centres >= start) & (centres < end)] = PHONES.index(p) if p in PHONES else -1
            x = rng.normal(size=(n, 8)) + np.where(lab[:, None] >= 0, means[lab], 0.0) + s
            feats[utt] = x.astype(np.float32)
            units[utt] = np.where(lab >= 0, lab, 4)
    (root / "ali").mkdir()
    write_ctm(root / "ali" / "phones.ctm", ali)
    write_kaldi_map(root / "ali" / "utt2spk", utt2spk)
    (root / "feats").mkdir()
    kaldiio.save_ark(str(root / "feats" / "feats.ark"), feats, scp=str(root / "feats" / "feats.scp"))
    (root / "feats" / "frame_shift").write_text("0.01\n")
    (root / "feats" / "frame_offset").write_text("0.0125\n")
    (root / "units.txt").write_text("".join(f"{u} {' '.join(map(str, v))}\n" for u, v in sorted(units.items())))
    return feats, units, ali, utt2spk


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_eval_features_writes_one_json(tmp_path, capsys):
    _corpus(tmp_path)
    out = tmp_path / "res" / "features.json"
    code, stdout, err = _run(
        capsys, "eval", "features", "--feats", str(tmp_path / "feats" / "feats.scp"),
        "--ali", str(tmp_path / "ali" / "phones.ctm"), "--out", str(out), "--threads", "1",
    )
    assert code == 0, err
    assert "ABX within" in stdout and str(out) in stdout
    r = json.loads(out.read_text())
    # phone means dominate the noise: ABX far below chance (50 %), percentages
    assert 0 <= r["abx"]["within"] < 15 and 0 <= r["abx"]["across"] < 15
    assert r["abx"]["distance"] == "cosine" and r["abx"]["num_items_used"] > 50
    assert r["probes"]["phone_probe"]["accuracy"] > r["probes"]["phone_probe"]["chance"] + 0.3
    # the per-speaker offset leaks the speaker
    assert r["probes"]["speaker_probe"]["accuracy"] > r["probes"]["speaker_probe"]["chance"]
    ctm_sha = hashlib.sha1((tmp_path / "ali" / "phones.ctm").read_bytes()).hexdigest()
    assert r["inputs"]["alignment"]["sha1"] == ctm_sha and len(r["inputs"]["features"]["sha1"]) == 40
    assert r["frame_times"] == {"frame_shift": 0.01, "frame_offset": 0.0125}
    assert r["config"]["abx"]["max_size_group"] == 10 and "numpy" in r["versions"]
    assert [p.name for p in out.parent.iterdir()] == ["features.json"]  # no temp files left


def test_eval_units_metrics(tmp_path, capsys):
    _corpus(tmp_path)
    out = tmp_path / "units.json"
    code, stdout, err = _run(
        capsys, "eval", "units", "--units", str(tmp_path / "units.txt"), "--ali", str(tmp_path / "ali" / "phones.ctm"),
        "--frame-shift", "0.01", "--frame-offset", "0.0125", "--codebook-size", "8", "--out", str(out), "--exact",
    )
    assert code == 0, err
    r = json.loads(out.read_text())
    # units are the phones (+ one silence unit): perfect purity, PNMI and boundaries
    assert r["units"]["phone_purity"] == 1.0 and r["units"]["pnmi"] == pytest.approx(1.0)
    assert r["codebook"]["used_codes"] == 5 and r["codebook"]["dead_codes"] == 3
    assert r["segmentation"]["precision"] == 1.0 and r["segmentation"]["recall"] > 0.8
    assert r["abx"]["within"] < 10 and r["abx"]["distance"] == "onehot" and r["abx"]["exact"] is True
    assert r["bitrate"]["bitrate"] > 0 and "bitrate" in stdout


def test_make_items_and_item_file_input(tmp_path, capsys):
    _corpus(tmp_path)
    items = tmp_path / "test.item"
    code, stdout, _ = _run(capsys, "eval", "make-items", str(tmp_path / "ali" / "phones.ctm"), str(items))
    assert code == 0 and "triphone items" in stdout
    assert items.read_text().startswith("#file onset offset #phone prev-phone next-phone speaker\n")
    out = tmp_path / "r.json"
    code, _, err = _run(
        capsys, "eval", "features", "--feats", str(tmp_path / "feats" / "feats.scp"), "--ali",
        str(tmp_path / "ali" / "phones.ctm"), "--items", str(items), "--out", str(out), "--set", "probes.enabled=false",
        "--context", "any",
    )
    assert code == 0, err
    r = json.loads(out.read_text())
    assert "probes" not in r and r["inputs"]["items"]["path"] == str(items)
    assert r["abx"]["context"] == "any" and r["config"]["abx"]["context"] == "any"
    # phone-only ABX on whole-triphone items: the unmatched context phones now weigh in
    # (within-context ABX of the same features is < 15 %, see above)
    assert r["abx"]["within"] > 20


def _expect_error(capsys, tmp_path, *args, match):
    out = tmp_path / "bad.json"
    code, _, err = _run(capsys, "eval", *args, "--out", str(out))
    assert code == 1 and err.startswith("error: ") and match in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_bad_inputs_exit_1_without_output(tmp_path, capsys):
    feats, units, ali, utt2spk = _corpus(tmp_path)
    ctm = str(tmp_path / "ali" / "phones.ctm")
    scp = str(tmp_path / "feats" / "feats.scp")
    # utterance ids differ
    extra = dict(ali, **{"spk9-utt9": ali["spk0-utt0"]})
    write_ctm(tmp_path / "more.ctm", extra)
    write_kaldi_map(tmp_path / "utt2spk", dict(utt2spk, **{"spk9-utt9": "spk9"}))
    _expect_error(capsys, tmp_path, "features", "--feats", scp, "--ali", str(tmp_path / "more.ctm"), match="spk9-utt9")
    # frame shift wrong by a factor 2: counts off by far more than 2 frames
    _expect_error(capsys, tmp_path, "features", "--feats", scp, "--ali", ctm, "--frame-shift", "0.02", match="tolerance 2")
    # NaN features
    bad = dict(feats)
    bad["spk1-utt1"] = bad["spk1-utt1"].copy()
    bad["spk1-utt1"][3, 0] = np.nan
    kaldiio.save_ark(str(tmp_path / "feats" / "nan.ark"), bad, scp=str(tmp_path / "feats" / "nan.scp"))
    _expect_error(capsys, tmp_path, "features", "--feats", str(tmp_path / "feats" / "nan.scp"), "--ali", ctm, match="spk1-utt1")
    # units outside the codebook
    _expect_error(
        capsys, tmp_path, "units", "--units", str(tmp_path / "units.txt"), "--ali", ctm, "--frame-shift", "0.01",
        "--frame-offset", "0.0125", "--codebook-size", "3", match="outside the codebook",
    )
    # empty item set
    (tmp_path / "empty.item").write_text("#file onset offset #phone prev-phone next-phone speaker\n")
    _expect_error(capsys, tmp_path, "features", "--feats", scp, "--ali", ctm, "--items", str(tmp_path / "empty.item"), match="no items")
    # unknown frame offset (no config beside the units)
    _expect_error(capsys, tmp_path, "units", "--units", str(tmp_path / "units.txt"), "--ali", ctm, match="frame")


def test_baseline_on_a_data_dir(tmp_path, capsys):
    from speechrep.data.audio import write_wav

    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    ali, wav_scp, utt2spk = {}, {}, {}
    freqs = {"a": 300, "b": 900, "c": 1800, "d": 3000}
    for s in range(2):
        for u in range(3):
            utt = f"spk{s}-utt{u}"
            segs, t, pieces = [], 0.0, []
            for p in rng.choice(list(freqs), size=8):
                n = 1600
                tt = np.arange(n) / 16000
                pieces.append(np.sin(2 * np.pi * freqs[p] * (1 + 0.1 * s) * tt) + 0.05 * rng.normal(size=n))
                segs.append((round(t, 2), round(t + 0.1, 2), str(p)))
                t += 0.1
            write_wav(data / f"{utt}.wav", (0.3 * np.concatenate(pieces)).astype(np.float32), 16000)
            ali[utt], wav_scp[utt], utt2spk[utt] = segs, str(data / f"{utt}.wav"), f"spk{s}"
    write_kaldi_map(data / "wav.scp", wav_scp)
    write_kaldi_map(data / "utt2spk", utt2spk)
    write_ctm(tmp_path / "phones.ctm", ali)
    out = tmp_path / "baseline.json"
    code, stdout, err = _run(capsys, "eval", "baseline", str(data), "--ali", str(tmp_path / "phones.ctm"), "--out", str(out))
    assert code == 0, err
    r = json.loads(out.read_text())
    assert set(r["baselines"]) == {"mfcc", "fbank"} and "baseline mfcc" in stdout
    for name in ("mfcc", "fbank"):
        # tones per phone: well below chance
        assert r["baselines"][name]["abx"]["within"] < 25
    assert r["frame_times"]["frame_offset"] == 0.0125
    # no alignment (a language without a CTM): the speaker probe alone, on MFCC and fbank
    out = tmp_path / "speakers.json"
    code, _, err = _run(capsys, "eval", "baseline", str(data), "--out", str(out))
    assert code == 0, err
    r = json.loads(out.read_text())
    for name in ("mfcc", "fbank"):
        assert set(r["baselines"][name]) == {"probes"} and set(r["baselines"][name]["probes"]) == {"speaker_probe"}
    assert r["inputs"]["alignment"] is None


def test_speaker_probe_alone_without_alignment(tmp_path, capsys):
    """Speech with no phone alignment (other languages, real speech): --ali left out, the speaker
    probe alone; the speakers must then come from --utt2spk."""
    _corpus(tmp_path)
    scp, utt2spk = str(tmp_path / "feats" / "feats.scp"), str(tmp_path / "ali" / "utt2spk")
    out = tmp_path / "spk.json"
    code, stdout, err = _run(capsys, "eval", "features", "--feats", scp, "--utt2spk", utt2spk, "--out", str(out))
    assert code == 0, err
    r = json.loads(out.read_text())
    assert "abx" not in r and set(r["probes"]) == {"speaker_probe"} and r["inputs"]["alignment"] is None
    # the per-speaker offset of the features: found above chance (3 speakers)
    assert r["probes"]["speaker_probe"]["accuracy"] > r["probes"]["speaker_probe"]["chance"] + 0.3
    code, _, err = _run(capsys, "eval", "units", "--units", str(tmp_path / "units.txt"), "--utt2spk", utt2spk,
                        "--frame-shift", "0.01", "--frame-offset", "0.0125", "--codebook-size", "8",
                        "--out", str(tmp_path / "units.json"))
    assert code == 0, err
    assert set(json.loads((tmp_path / "units.json").read_text())) >= {"probes"}
    assert "units" not in json.loads((tmp_path / "units.json").read_text())
    _expect_error(capsys, tmp_path, "features", "--feats", scp, match="give --utt2spk")
    (tmp_path / "x.item").write_text("#file onset offset #phone prev-phone next-phone speaker\n")
    _expect_error(capsys, tmp_path, "features", "--feats", scp, "--utt2spk", utt2spk, "--items",
                  str(tmp_path / "x.item"), match="give --ali too")
