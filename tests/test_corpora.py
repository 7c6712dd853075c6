"""Corpus preparers on tiny fixture trees with the real layouts (tests/fixtures/corpora.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from speechrep.data import DataDir, read_ctm, validate_data_dir
from speechrep.data.corpora import (
    PREPARERS,
    prepare,
    prepare_buckeye,
    prepare_folder,
    prepare_librispeech,
    prepare_ljspeech,
    prepare_timit,
    prepare_vctk,
    prepare_zerospeech2019,
)
from speechrep.data.corpora.buckeye import segment_at_pauses
from speechrep.data.corpora.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS
from speechrep.errors import DataError
from tests.fixtures import corpora as fixtures


def _valid(out: Path, sets: list[str]) -> dict[str, DataDir]:
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(sets)
    for name in sets:
        assert validate_data_dir(out / "data" / name, check_audio=True) == []
    return {name: DataDir.load(out / "data" / name) for name in sets}


def _reasons(result) -> dict[str, str]:
    return {Path(path.split(":")[0]).name: reason for path, reason in result.skipped}


def test_librispeech(tmp_path: Path):
    src = fixtures.write_librispeech(tmp_path)
    result = prepare_librispeech(src, tmp_path / "out", abx_items=tmp_path / "abx")
    dirs = _valid(result.out, ["dev_clean", "train_clean_100"])
    dev = dirs["dev_clean"]
    assert dev.utts == ["1272-128104-0000", "1272-128104-0001", "2277-149896-0000"]
    assert dev.text["1272-128104-0001"] == "NOR IS MISTER QUILTER'S MANNER"
    assert dev.utt2spk["2277-149896-0000"] == "2277" and dev.spk2gender == {"1272": "m", "2277": "f"}
    assert dev.utt2dur["1272-128104-0000"] == pytest.approx(0.5)
    assert dev.wav_scp["1272-128104-0000"].endswith("dev-clean/1272/128104/1272-128104-0000.flac")
    reasons = _reasons(result)
    assert reasons["1272-128104-0002.flac"].startswith("unreadable audio")
    assert reasons["1272-128104-0004.flac"] == "listed in 1272-128104.trans.txt but missing"
    assert reasons["1272-128104-0003.flac"] == "no transcript line"
    assert reasons["2277-149897.trans.txt"].startswith("transcript is not valid UTF-8")
    # ABX items copied; the one about files not prepared is reported
    assert (result.out / "abx" / "dev-clean.item").read_bytes() == (tmp_path / "abx" / "dev-clean.item").read_bytes()
    assert "116-288045-0000" in reasons["dev-other.item"]
    report = json.loads((result.out / "prepare.json").read_text())
    assert report["sets"] == {"dev_clean": 3, "train_clean_100": 1} and len(report["skipped"]) == len(result.skipped)


def test_librispeech_subsets_and_errors(tmp_path: Path):
    src = fixtures.write_librispeech(tmp_path)
    result = prepare_librispeech(src, tmp_path / "out", subsets=["train-clean-100"])
    assert result.sets == {"train_clean_100": 1}
    with pytest.raises(DataError, match="subset test-clean not found"):
        prepare_librispeech(src, tmp_path / "out2", subsets=["test-clean"])
    with pytest.raises(DataError, match="no .item files"):
        prepare_librispeech(src, tmp_path / "out3", abx_items=tmp_path / "nothing")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_zerospeech2019(tmp_path: Path):
    src = fixtures.write_zerospeech2019(tmp_path)
    result = prepare_zerospeech2019(src, tmp_path / "out")
    dirs = _valid(result.out, ["test", "train_unit", "train_voice"])
    assert dirs["train_voice"].utt2spk == {"V001_0000000047": "V001", "V002_0000000001": "V002"}
    assert dirs["train_unit"].speakers == ["S015", "S020"] and dirs["test"].text is None
    assert (result.out / "synthesis.txt").read_text() == "S002_0379088085 V002\n"
    assert _reasons(result) == {"noprefix.wav": "file name is not SPEAKER_ID.wav"}
    with pytest.raises(DataError, match="english"):
        prepare_zerospeech2019(tmp_path, tmp_path / "out2")


@pytest.mark.parametrize("mic", ["mic1", "mic2"])
def test_vctk(tmp_path: Path, mic: str):
    src = fixtures.write_vctk(tmp_path)
    result = prepare_vctk(src, tmp_path / "out", mic=mic)
    dd = _valid(result.out, ["all"])["all"]
    assert dd.utts == ["p225_001", "p225_002"]
    assert dd.text["p225_001"] == "PLEASE CALL STELLA" and dd.spk2gender == {"p225": "f"}
    assert dd.wav_scp["p225_001"].endswith(f"p225_001_{mic}.flac")
    assert dd.utt2dur["p225_001"] == pytest.approx(0.5 if mic == "mic1" else 0.6)
    reasons = _reasons(result)
    assert reasons["p315_001.txt"] == "transcript file not found"  # p315 has no transcripts
    assert reasons["p226_001.txt"].startswith("transcript is not valid UTF-8")
    assert reasons["p225_003.txt"] == f"no {mic} recording"


def test_vctk_bad_mic_and_layout(tmp_path: Path):
    with pytest.raises(DataError, match="mic must be"):
        prepare_vctk(tmp_path, tmp_path / "out", mic="mic3")
    with pytest.raises(DataError, match="wav48_silence_trimmed not found"):
        prepare_vctk(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("lower", [False, True])
def test_timit(tmp_path: Path, lower: bool):
    src = fixtures.write_timit(tmp_path, lower=lower)
    result = prepare_timit(src, tmp_path / "out")
    dirs = _valid(result.out, ["dev", "test", "train"])
    assert dirs["train"].utts == ["fcjf0_si1027"]  # SA1 left out, SX37 has no .PHN
    assert dirs["test"].utts == ["mdab0_sx139"] and dirs["dev"].utts == ["faks0_si943"]
    assert dirs["train"].text["fcjf0_si1027"] == "SHE HAD YOUR DARK SUIT"
    assert dirs["train"].spk2gender == {"fcjf0": "f"} and dirs["test"].spk2gender == {"mdab0": "m"}
    ctm = read_ctm(result.out / "ali" / "train" / "phones.ctm")["fcjf0_si1027"]
    assert ctm == [(0.0, 0.15, "h#"), (0.15, 0.25, "sh"), (0.25, 0.35, "iy"), (0.35, 0.375, "q"), (0.375, 0.5, "h#")]
    folded = read_ctm(result.out / "ali" / "train" / "phones39.ctm")["fcjf0_si1027"]
    assert [p for _, _, p in folded] == ["sil", "sh", "iy", "sil"]  # q removed
    assert _reasons(result) == {
        (
            "sx37.wav" if lower else "SX37.WAV"
        ): f"missing {'sx37' if lower else 'SX37'}.PHN or {'sx37' if lower else 'SX37'}.TXT"
    }
    with_sa = prepare_timit(src, tmp_path / "out_sa", include_sa=True)
    assert with_sa.sets["train"] == 2


def test_timit_speaker_lists():
    assert len(CORE_TEST_SPEAKERS) == 24 and len(DEV_SPEAKERS) == 50
    assert not CORE_TEST_SPEAKERS & DEV_SPEAKERS
    # 8 dialect regions x (2 men + 1 woman)
    assert sum(s.startswith("m") for s in CORE_TEST_SPEAKERS) == 16


def test_timit_bad_phone_file(tmp_path: Path):
    src = fixtures.write_timit(tmp_path)
    phn = src / "TRAIN" / "DR1" / "FCJF0" / "SI1027.PHN"
    phn.write_text("0 2400 h#\n2400 oops sh\n")
    result = prepare_timit(src, tmp_path / "out")
    assert "train" not in result.sets
    assert _reasons(result)["SI1027.PHN"] == "expected 'start_sample end_sample phone'"


def test_buckeye(tmp_path: Path):
    src = fixtures.write_buckeye(tmp_path)
    result = prepare_buckeye(src, tmp_path / "out")
    dd = _valid(result.out, ["all"])["all"]
    assert dd.segments["s0101a-0001"] == ("s0101a", 0.5, 1.4)  # the 0.1 s pause stays inside
    assert dd.segments["s0101a-0002"] == ("s0101a", 2.4, 2.9)  # after the 1 s pause
    assert dd.segments["s0101a-0003"] == ("s0101a", 3.0, 3.5)  # after interviewer speech
    assert dd.text == {
        f"{rec}-{k}": t
        for rec in ("s0101a", "s0201a")
        for k, t in (("0001", "HI YOU"), ("0002", "OKAY"), ("0003", "NO"))
    }
    assert dd.spk2utt["s02"] == ["s0201a-0001", "s0201a-0002", "s0201a-0003"]
    ctm = read_ctm(result.out / "ali" / "all" / "phones.ctm")
    # times relative to the utterance start (0.5 s into the recording)
    assert [p for *_, p in ctm["s0101a-0001"]] == ["hh", "ay", "sil", "y", "uw"]
    assert [s for s, _, _ in ctm["s0101a-0001"]] == pytest.approx([0.0, 0.1, 0.3, 0.4, 0.6])
    assert ctm["s0101a-0001"][-1][1] == pytest.approx(0.9)
    assert _reasons(result) == {"s0301a.phones": "missing s0301a.wav or s0301a.words"}


def test_buckeye_segmentation_options():
    phones = [(0.0, 1.0, "aa"), (1.0, 1.3, "SIL"), (1.3, 2.0, "b"), (2.0, 2.1, "SIL"), (2.1, 5.0, "k")]
    assert len(segment_at_pauses(phones, min_pause=0.5)) == 1
    assert len(segment_at_pauses(phones, min_pause=0.25)) == 2
    # too long: cut at every pause after which the utterance would exceed 1.5 s
    assert [u[0][0] for u in segment_at_pauses(phones, min_pause=0.5, max_duration=1.5)] == [0.0, 1.3, 2.1]
    # no pause at all: never cut
    assert len(segment_at_pauses([(0.0, 3.0, "aa"), (3.0, 6.0, "b")], max_duration=1.0)) == 1
    with pytest.raises(DataError, match="must be > 0"):
        prepare_buckeye(".", "out", min_pause=0)


def test_ljspeech(tmp_path: Path):
    src = fixtures.write_ljspeech(tmp_path)
    result = prepare_ljspeech(src, tmp_path / "out")
    dd = _valid(result.out, ["all"])["all"]
    assert dd.utts == ["LJ001-0001", "LJ001-0002"] and dd.speakers == ["LJ"]
    assert dd.text["LJ001-0001"] == "PRINTING IN THE ONLY SENSE"
    assert dd.utt2dur["LJ001-0002"] == pytest.approx(0.3, abs=1e-4)
    assert _reasons(result) == {
        "metadata.csv": "expected 'ID|text|normalized text'",
        "LJ001-0004.wav": "listed in metadata.csv line 4 but missing",
        "LJ999-0001.wav": "not in metadata.csv",
    }
    (src / "metadata.csv").write_bytes(fixtures.LATIN1)
    with pytest.raises(DataError, match="not valid UTF-8"):
        prepare_ljspeech(src, tmp_path / "out2")


def test_folder(tmp_path: Path):
    src = fixtures.write_folder(tmp_path)
    result = prepare_folder(src, tmp_path / "out")
    dd = _valid(result.out, ["all"])["all"]
    assert dd.utt2spk == {"alice-alice_001": "alice", "bob-bob_002": "bob"}
    assert dd.text == {"alice-alice_001": "HELLO WORLD", "bob-bob_002": "GOOD MORNING"}
    assert _reasons(result) == {"003.wav": "no transcript (.txt or .lab) while other files have one"}
    # without any transcript: every file, no text
    for path in list(src.rglob("*.txt")) + list(src.rglob("*.lab")):
        path.unlink()
    single = prepare_folder(src, tmp_path / "out2", speaker_from="single")
    dd = _valid(single.out, ["all"])["all"]
    assert dd.text is None and dd.speakers == ["myrecordings"] and len(dd.utts) == 3
    prefix = prepare_folder(src, tmp_path / "out3", speaker_from="prefix")
    assert sorted(DataDir.load(prefix.out / "data" / "all").speakers) == ["001", "002", "003"]


def test_folder_errors(tmp_path: Path):
    with pytest.raises(DataError, match="corpus directory not found"):
        prepare_folder(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no audio files"):
        prepare_folder(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataError, match="speaker_from"):
        prepare_folder(tmp_path / "empty", tmp_path / "out", speaker_from="voice")
    bad = tmp_path / "bad"
    fixtures.write_text(bad / "a.wav", b"RIFF broken")
    with pytest.raises(DataError, match=r"no usable folder utterances found \(1 file\(s\) skipped"):
        prepare_folder(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_output_is_atomic_and_guarded(tmp_path: Path):
    src = fixtures.write_ljspeech(tmp_path)
    out = tmp_path / "out"
    prepare_ljspeech(src, out)
    prepare_ljspeech(src, out)  # an earlier preparation is replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    with pytest.raises(DataError, match="not a prepared corpus"):
        prepare_ljspeech(src, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["LJSpeech-1.1", "mine", "out"]


def test_prepare_dispatch_and_cli(tmp_path: Path):
    assert set(PREPARERS) == {"librispeech", "zerospeech2019", "vctk", "timit", "buckeye", "ljspeech", "asterisk", "folder"}
    src = fixtures.write_vctk(tmp_path)
    with pytest.raises(DataError, match="vctk takes no option include_sa"):
        prepare("vctk", src, tmp_path / "out", include_sa=True)
    run = [sys.executable, "-m", "speechrep", "data", "prepare"]
    r = subprocess.run([*run, "vctk", str(src), str(tmp_path / "out"), "--mic", "mic2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (
        "all                         2 utterances" in r.stdout and "p315_001.txt: transcript file not found" in r.stdout
    )
    r = subprocess.run([*run, "vctk", str(src), str(tmp_path / "o2"), "--include-sa"], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["error: options: vctk takes no option include_sa (it takes: mic)"]
