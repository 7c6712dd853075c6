"""fix / subset / split / combine of data directories."""

import os
from pathlib import Path

import pytest

from speechrep.data.dir_ops import combine_data_dirs, split_data_dir, subset_data_dir
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, write_kaldi_map
from speechrep.data.validate import fix_data_dir, validate_data_dir
from speechrep.errors import DataError


def _write(path: Path, text: str) -> None:
    path.write_text(text)


def _synthetic(path: Path, speakers: dict[str, int], *, segments: bool = False) -> Path:
    """Data dir (no audio needed) with the given number of utterances per speaker."""
    utt2spk = {f"{spk}-{j:02d}": spk for spk, n in speakers.items() for j in range(n)}
    if segments:
        wav = {f"rec-{spk}": f"/audio/{spk}.wav" for spk in speakers}
        segs = {u: (f"rec-{s}", float(int(u[-2:])), int(u[-2:]) + 1.0) for u, s in utt2spk.items()}
    else:
        wav = {u: f"/audio/{u}.wav" for u in utt2spk}
        segs = None
    dd = DataDir(
        path=path,
        wav_scp=wav,
        utt2spk=utt2spk,
        spk2utt={},
        segments=segs,
        text={u: "A" for u in utt2spk},
        spk2gender={s: "f" for s in speakers},
    )
    return dd.save()


# --- fix ---------------------------------------------------------------------------------


def test_fix_sorts_drops_and_counts(data_dir):
    _write(data_dir / "utt2spk", "spk2-utt2 spk2\nspk1-utt1 spk1\nspk1-utt2 spk1\nspk1-utt2 spk1\nspk2-utt1 spk2\nbad\n")
    _write(data_dir / "text", "spk1-utt1 a\nspk1-utt2 b\nspk2-utt2 c\nspk9-x d\n")
    _write(data_dir / "spk2utt", "spk1 spk1-utt1\n")
    _write(data_dir / "spk2gender", "spk2 f\nspk1 m\n")
    wav = read_kaldi_map(data_dir / "wav.scp")
    del wav["spk1-utt2"]
    (data_dir / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in reversed(list(wav.items()))))
    assert validate_data_dir(data_dir) != []

    counts = fix_data_dir(data_dir)

    assert validate_data_dir(data_dir) == []
    dd = DataDir.load(data_dir)
    assert dd.utts == ["spk1-utt1", "spk2-utt2"]
    assert dd.spk2utt == {"spk1": ["spk1-utt1"], "spk2": ["spk2-utt2"]}
    assert counts == {
        "wav.scp": (2, 1),
        "utt2spk": (2, 4),  # dropped: duplicate, malformed, 2 inconsistent
        "spk2utt": (2, 0),  # spk2 added back from utt2spk
        "text": (2, 2),
        "utt2dur": (2, 2),
        "spk2gender": (2, 0),
    }
    assert (data_dir / "wav.scp").read_text().splitlines()[0].startswith("spk1-utt1 ")


def test_fix_segments_drops_unused_recordings(tmp_path):
    d = _synthetic(tmp_path / "d", {"a": 2, "b": 1}, segments=True)
    _write(d / "segments", "a-00 rec-a 0 1\na-01 rec-zzz 0 1\nb-00 rec-b 0 1\n")
    _write(d / "utt2spk", "a-00 a\na-01 a\n")
    counts = fix_data_dir(d)
    assert counts["segments"] == (1, 2) and counts["wav.scp"] == (1, 1)
    assert read_kaldi_map(d / "wav.scp") == {"rec-a": "/audio/a.wav"}
    assert validate_data_dir(d) == []


def test_fix_nothing_left_writes_nothing(data_dir):
    _write(data_dir / "text", "other a\n")
    before = {p.name: p.read_text() for p in data_dir.iterdir()}
    with pytest.raises(DataError, match="no utterance is consistent"):
        fix_data_dir(data_dir)
    assert {p.name: p.read_text() for p in data_dir.iterdir()} == before


# --- subset ------------------------------------------------------------------------------


def test_subset_first_last(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 3, "b": 2})
    assert DataDir.load(subset_data_dir(src, tmp_path / "f", first=2)).utts == ["a-00", "a-01"]
    last = DataDir.load(subset_data_dir(src, tmp_path / "l", last=3))
    assert last.utts == ["a-02", "b-00", "b-01"]
    assert last.spk2gender == {"a": "f", "b": "f"}
    assert validate_data_dir(tmp_path / "l") == []


def test_subset_lists_from_file_and_sequence(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 2, "b": 2, "c": 1}, segments=True)
    _write(tmp_path / "spk.list", "c\na\n")
    out = DataDir.load(subset_data_dir(src, tmp_path / "s", spk_list=tmp_path / "spk.list"))
    assert out.utts == ["a-00", "a-01", "c-00"]
    assert set(out.wav_scp) == {"rec-a", "rec-c"}
    assert validate_data_dir(out.path) == []
    out = DataDir.load(subset_data_dir(src, tmp_path / "u", utt_list=["b-01"]))
    assert out.utts == ["b-01"] and list(out.wav_scp) == ["rec-b"] and list(out.spk2gender) == ["b"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({}, "exactly one of"),
        ({"first": 1, "last": 1}, "exactly one of"),
        ({"first": 0}, "cannot take 0 of 3"),
        ({"last": 4}, "cannot take 4 of 3"),
        ({"utt_list": ["a-00", "zz", "yy"]}, "2 utterance id\\(s\\) not in the data directory: zz yy"),
        ({"spk_list": ["q"]}, "1 speaker id"),
        ({"utt_list": []}, "empty utterance list"),
    ],
)
def test_subset_bad_input(tmp_path, options, message):
    src = _synthetic(tmp_path / "src", {"a": 3})
    with pytest.raises(DataError, match=message):
        subset_data_dir(src, tmp_path / "out", **options)
    assert not (tmp_path / "out").exists()


def test_subset_into_itself_is_an_error(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 3})
    with pytest.raises(DataError, match="output directory is the input"):
        subset_data_dir(src, src, first=1)


# --- split -------------------------------------------------------------------------------


def test_split_by_utterance_balanced_and_contiguous(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 5, "b": 2})
    parts = split_data_dir(src, 3)
    assert parts == [src / "split3" / str(i) for i in (1, 2, 3)]
    utts = [DataDir.load(p).utts for p in parts]
    assert [len(u) for u in utts] == [2, 3, 2]  # cuts nearest 7/3 and 14/3
    assert sum(utts, []) == DataDir.load(src).utts
    assert all(validate_data_dir(p) == [] for p in parts)


def test_split_by_speaker_keeps_speakers_whole(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 4, "b": 1, "c": 1, "d": 2}, segments=True)
    parts = split_data_dir(src, 2, by_speaker=True)
    speakers = [DataDir.load(p).speakers for p in parts]
    assert speakers == [["a"], ["b", "c", "d"]]
    assert list(DataDir.load(parts[1]).wav_scp) == ["rec-b", "rec-c", "rec-d"]
    with pytest.raises(DataError, match="cannot split 4 speakers into 5 parts"):
        split_data_dir(src, 5, by_speaker=True)
    with pytest.raises(DataError, match="cannot split 8 utterances into 9 parts"):
        split_data_dir(src, 9)
    with pytest.raises(DataError, match="must be >= 1"):
        split_data_dir(src, 0)


def test_split_reused_when_up_to_date(tmp_path):
    src = _synthetic(tmp_path / "src", {"a": 2, "b": 2})
    parts = split_data_dir(src, 2)
    (parts[0] / "stamp").write_text("kept")  # survives only if the split is reused
    assert split_data_dir(src, 2) == parts and (parts[0] / "stamp").exists()
    # made the other way: rebuilt
    split_data_dir(src, 2, by_speaker=True)
    assert not (parts[0] / "stamp").exists()
    (parts[0] / "stamp").write_text("kept")
    # source changed after the split: rebuilt
    future = (src / "split2" / ".done").stat().st_mtime + 10
    os.utime(src / "text", (future, future))
    split_data_dir(src, 2, by_speaker=True)
    assert not (parts[0] / "stamp").exists()


# --- combine -----------------------------------------------------------------------------


def test_combine(tmp_path):
    a = _synthetic(tmp_path / "a", {"a": 2})
    b = _synthetic(tmp_path / "b", {"b": 1, "c": 1})
    write_kaldi_map(b / "utt2dur", {"b-00": 1.0, "c-00": 2.0})
    out = DataDir.load(combine_data_dirs(tmp_path / "ab", [a, b]))
    assert out.utts == ["a-00", "a-01", "b-00", "c-00"]
    assert out.utt2dur is None  # only one source has it
    assert out.spk2gender == {"a": "f", "b": "f", "c": "f"}
    assert validate_data_dir(out.path) == []


def test_combine_mixed_segments_uses_utt2dur(tmp_path):
    a = _synthetic(tmp_path / "a", {"a": 2}, segments=True)
    b = _synthetic(tmp_path / "b", {"b": 1})
    with pytest.raises(DataError, match="no segments and no utt2dur"):
        combine_data_dirs(tmp_path / "ab", [a, b])
    write_kaldi_map(b / "utt2dur", {"b-00": 1.5})
    out = DataDir.load(combine_data_dirs(tmp_path / "ab", [a, b]))
    assert out.segments["b-00"] == ("b-00", 0.0, 1.5)
    assert out.wav_scp["b-00"] == "/audio/b-00.wav"
    assert validate_data_dir(out.path) == []


def test_combine_duplicates_are_errors(tmp_path):
    a = _synthetic(tmp_path / "a", {"a": 2})
    b = _synthetic(tmp_path / "b", {"a": 1})
    with pytest.raises(DataError, match=f"utterance 'a-00' in both {a} and {b}"):
        combine_data_dirs(tmp_path / "ab", [a, b])
    assert not (tmp_path / "ab").exists()
    c = _synthetic(tmp_path / "c", {"c": 1})
    d = _synthetic(tmp_path / "d", {"c": 1}, segments=True)
    write_kaldi_map(d / "segments", {"c-77": ("rec-c", 0.0, 1.0)})
    write_kaldi_map(d / "utt2spk", {"c-77": "c"})
    write_kaldi_map(d / "text", {"c-77": "A"})
    write_kaldi_map(c / "spk2gender", {"c": "m"})
    write_kaldi_map(c / "utt2dur", {"c-00": 1.0})
    with pytest.raises(DataError, match="spk2gender entry 'c' in both"):
        combine_data_dirs(tmp_path / "cd", [c, d])
    with pytest.raises(DataError, match="no source directories"):
        combine_data_dirs(tmp_path / "x", [])
    with pytest.raises(DataError, match="output directory is the input"):
        combine_data_dirs(a, [a, c])
