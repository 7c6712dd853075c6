"""make-fbank / make-mfcc / compute-cmvn on data directories: outputs, reruns, bad input."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from speechrep.errors import ConfigError, DataError, SpeechrepError
from speechrep.features import compute_cmvn_stats, fbank
from speechrep.data.make_features import compute_cmvn, make_features
from speechrep.features.options import FbankConfig, feature_config

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechrep", *args], capture_output=True, text=True, cwd=cwd)


def _no_feature_files(out_dir: Path) -> bool:
    return not list(out_dir.glob("*.ark")) and not list(out_dir.glob("*.scp")) and not list(out_dir.glob(".*.tmp"))


def test_make_fbank_writes_kaldi_outputs_reruns_skip_and_cmvn(data_dir, tmp_path):
    out = tmp_path / "fbank"
    feats_scp = make_features(data_dir, out, kind="fbank", config=ROOT / "conf" / "fbank.yaml",
                              overrides=["dither=0"], progress=False)
    assert feats_scp == data_dir / "feats.scp"
    feats = dict(kaldiio.load_scp(str(feats_scp)))
    utts = sorted((data_dir / "utt2spk").read_text().split()[::2])
    assert sorted(feats) == utts
    # features equal the library function on the audio in Kaldi's 16-bit scale
    wav = dict(line.split() for line in (data_dir / "wav.scp").read_text().splitlines())
    for utt in utts:
        wave, _ = sf.read(wav[utt], dtype="float32")
        np.testing.assert_allclose(feats[utt], fbank(wave * 32768, dither=0.0, num_mel_bins=80), atol=1e-4)
    num_frames = dict(line.split() for line in (data_dir / "utt2num_frames").read_text().splitlines())
    assert num_frames == {u: str(feats[u].shape[0]) for u in utts}
    assert (data_dir / "frame_shift").read_text().strip() == "0.01"
    assert (data_dir / "frame_offset").read_text().strip() == "0.0125"
    saved = yaml.safe_load((data_dir / "conf" / "fbank.yaml").read_text())
    assert saved["num_mel_bins"] == 80 and saved["dither"] == 0.0
    assert yaml.safe_load((out / "fbank.yaml").read_text()) == saved
    assert (out / "raw_fbank_data.1.ark").is_file() and (out / "raw_fbank_data.1.scp").is_file()
    assert "ok" in (out / "log" / "make_fbank.1.log").read_text()

    # CMVN statistics per speaker and per utterance
    cmvn_scp = compute_cmvn(data_dir, tmp_path / "cmvn", progress=False)
    stats = dict(kaldiio.load_scp(str(cmvn_scp)))
    assert sorted(stats) == ["spk1", "spk2"]
    expected = compute_cmvn_stats(np.concatenate([feats["spk1-utt1"], feats["spk1-utt2"]]))
    np.testing.assert_allclose(stats["spk1"], expected, rtol=1e-10)
    compute_cmvn(data_dir, tmp_path / "cmvn", per_utt=True, progress=False)
    stats = dict(kaldiio.load_scp(str(data_dir / "cmvn.scp")))
    assert sorted(stats) == sorted(feats)
    np.testing.assert_allclose(stats["spk2-utt1"], compute_cmvn_stats(feats["spk2-utt1"]), rtol=1e-10)

    # rerun: complete jobs are not redone; another configuration recomputes
    mtime = (out / "raw_fbank_data.1.ark").stat().st_mtime_ns
    make_features(data_dir, out, kind="fbank", config=ROOT / "conf" / "fbank.yaml", overrides=["dither=0"], progress=False)
    assert (out / "raw_fbank_data.1.ark").stat().st_mtime_ns == mtime
    make_features(data_dir, out, kind="fbank", config=ROOT / "conf" / "fbank.yaml",
                  overrides=["dither=0", "num_mel_bins=40"], progress=False)
    assert next(iter(kaldiio.load_scp(str(feats_scp)).values())).shape[1] == 40


def test_compute_cmvn_needs_features(data_dir, tmp_path):
    with pytest.raises(DataError, match="feats.scp"):
        compute_cmvn(data_dir, tmp_path / "cmvn", progress=False)


def _replace_audio(data_dir: Path, utt: str, wave: np.ndarray, rate: int = 16000, subtype: str = "PCM_16") -> None:
    wav = dict(line.split() for line in (data_dir / "wav.scp").read_text().splitlines())
    sf.write(wav[utt], wave, rate, subtype=subtype)


@pytest.mark.parametrize(
    "wave,subtype,message",
    [
        (np.array([0.1, np.nan] * 4000, np.float32), "FLOAT", "NaN"),
        (np.zeros(0, np.float32), "PCM_16", "empty"),
        (np.zeros(200, np.float32), "PCM_16", "too short"),
    ],
    ids=["nan", "empty", "too_short"],
)
def test_bad_audio_fails_cleanly_without_partial_output(data_dir, tmp_path, wave, subtype, message):
    _replace_audio(data_dir, "spk2-utt1", wave, subtype=subtype)
    out = tmp_path / "fbank"
    if subtype == "FLOAT":  # once through the command line: one line on stderr, exit status 1
        r = _cli("features", "make-fbank", str(data_dir), str(out))
        assert r.returncode == 1
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), r.stderr
        error = err[0]
    else:
        with pytest.raises(SpeechrepError) as info:
            make_features(data_dir, out, progress=False)
        error = str(info.value)
    assert message in error and "spk2-utt1" in error and "make_fbank.1.log" in error
    assert _no_feature_files(out)
    assert not (data_dir / "feats.scp").exists()


def test_wrong_sample_rate_is_an_error_unless_resampling_is_allowed(data_dir, tmp_path):
    _replace_audio(data_dir, "spk1-utt2", np.zeros(4000, np.float32) + 0.1, rate=8000)
    with pytest.raises(DataError, match="sample rate 8000 Hz differs from sample_frequency=16000"):
        make_features(data_dir, tmp_path / "fbank", progress=False)
    assert not list((tmp_path / "fbank").glob("*.ark"))
    make_features(data_dir, tmp_path / "fbank", overrides=["allow_upsample=true"], progress=False)
    assert (data_dir / "feats.scp").is_file()


def test_config_errors(tmp_path):
    bad = tmp_path / "fbank.yaml"
    bad.write_text("num_mel_bins: 40\nnum_mel_bin: 80\n")
    with pytest.raises(ConfigError, match=r"fbank.yaml.*unknown config key 'num_mel_bin'"):
        feature_config("fbank", bad)
    bad.write_text("window_type: kaiser\n")
    with pytest.raises(ConfigError, match=r"fbank.yaml: window_type"):
        feature_config("fbank", bad)
    with pytest.raises(ConfigError, match="kind"):
        feature_config("pitch")
    # every field of fbank's option struct is a config field with the same default
    from speechrep.features.kaldi_options import FbankOptions

    cfg = FbankConfig()
    assert all(getattr(cfg, f.name) == f.default for f in dataclasses.fields(FbankOptions))


def test_cli_unknown_key_recipe_script_and_job_split(data_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("nmel: 3\n")
    r = _cli("features", "make-mfcc", str(data_dir), str(tmp_path / "x"), "--config", str(bad))
    assert r.returncode == 1 and "unknown config key 'nmel'" in r.stderr and str(bad) in r.stderr
    assert not (data_dir / "feats.scp").exists()
    env = dict(os.environ, SPEECHREP=f"{sys.executable} -m speechrep")
    r = subprocess.run(
        ["bash", str(ROOT / "recipes" / "make_feats.sh"), "--nj", "1", "--type", "mfcc",
         "--config", str(ROOT / "conf" / "mfcc.yaml"), str(data_dir), str(tmp_path / "logs"), str(tmp_path / "mfcc")],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "logs" / "make_mfcc.1.log").is_file()
    assert (tmp_path / "mfcc" / "raw_mfcc_data.1.ark").is_file()
    first = {k: v.copy() for k, v in kaldiio.load_scp(str(data_dir / "feats.scp")).items()}
    assert len(first) == 4 and next(iter(first.values())).shape[1] == 13
    # dither noise is seeded per utterance: the same features for any job split
    make_features(data_dir, tmp_path / "b", kind="mfcc", config=ROOT / "conf" / "mfcc.yaml", nj=2, progress=False)
    second = dict(kaldiio.load_scp(str(data_dir / "feats.scp")))
    assert all(np.array_equal(first[u], second[u]) for u in first)
    assert (tmp_path / "b" / "raw_mfcc_data.2.ark").is_file() and (tmp_path / "b" / "log" / "make_mfcc.2.log").is_file()
    assert (data_dir / "conf" / "mfcc.yaml").is_file() and not (data_dir / "conf" / "fbank.yaml").exists()
    r = subprocess.run(["bash", str(ROOT / "recipes" / "make_feats.sh"), str(data_dir)], capture_output=True, text=True)
    assert r.returncode != 0 and "Usage" in r.stderr
