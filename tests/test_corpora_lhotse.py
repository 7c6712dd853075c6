"""Data dir + CTM <-> lhotse manifests (skipped when the optional lhotse is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechrep.data import DataDir, read_ctm, read_kaldi_map, validate_data_dir
from speechrep.data.corpora import prepare_buckeye, prepare_ljspeech
from tests.fixtures import corpora as fixtures

lhotse = pytest.importorskip("lhotse", reason="optional extra lhotse is not installed")

from speechrep.data.lhotse_io import from_lhotse, to_lhotse  # noqa: E402


def test_segmented_corpus_round_trip(tmp_path: Path):
    result = prepare_buckeye(fixtures.write_buckeye(tmp_path), tmp_path / "out")
    data, ctm = result.out / "data" / "all", result.out / "ali" / "all" / "phones.ctm"
    recordings, supervisions = to_lhotse(data, ctm=ctm)
    assert len(recordings) == 2 and len(supervisions) == 6
    sup = supervisions["s0101a-0001"]
    assert (sup.recording_id, sup.start, sup.duration, sup.speaker, sup.text) == (
        "s0101a",
        0.5,
        pytest.approx(0.9),
        "s01",
        "HI YOU",
    )
    # lhotse alignment times are relative to the recording
    assert [(a.symbol, a.start) for a in sup.alignment["phone"]][:2] == [("hh", 0.5), ("ay", pytest.approx(0.6))]
    back = from_lhotse(recordings, supervisions, tmp_path / "back", ctm=tmp_path / "back.ctm")
    assert validate_data_dir(back.path) == []
    for name in ("wav.scp", "utt2spk", "spk2utt", "segments", "text"):
        assert read_kaldi_map(back.path / name) == read_kaldi_map(data / name), name
    original, again = read_ctm(ctm), read_ctm(tmp_path / "back.ctm")
    assert original.keys() == again.keys()
    for utt in original:
        assert [p for *_, p in again[utt]] == [p for *_, p in original[utt]]
        assert [s for s, _, _ in again[utt]] == pytest.approx([s for s, _, _ in original[utt]], abs=1e-6)


def test_whole_recordings_round_trip(tmp_path: Path):
    result = prepare_ljspeech(fixtures.write_ljspeech(tmp_path), tmp_path / "out")
    recordings, supervisions = to_lhotse(result.out / "data" / "all")
    assert supervisions["LJ001-0001"].gender == "f" and recordings["LJ001-0001"].sampling_rate == 22050
    back = from_lhotse(recordings, supervisions, tmp_path / "back")
    assert back.segments is None and DataDir.load(back.path).text == DataDir.load(result.out / "data" / "all").text
