from pathlib import Path

import pytest

from speechrep.data.audio import AudioRule
from speechrep.data.kaldi_dir import DataDir, read_kaldi_map, write_kaldi_map
from speechrep.data.validate import validate_data_dir
from speechrep.errors import DataError


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --- read/write maps ---------------------------------------------------------------------


def test_read_kaldi_map_keeps_order_and_rest_of_line(tmp_path):
    f = _write(tmp_path / "text", "b  hello  world \na\tone\nc\n")
    m = read_kaldi_map(f)
    assert list(m) == ["b", "a", "c"]
    assert m == {"b": "hello  world", "a": "one", "c": ""}


def test_read_kaldi_map_pipe_value(tmp_path):
    f = _write(tmp_path / "wav.scp", "u1 sox a.wav -t wav - |\n")
    assert read_kaldi_map(f)["u1"] == "sox a.wav -t wav - |"


@pytest.mark.parametrize(
    "content, line, message",
    [
        ("a 1\na 2\n", 2, "duplicate key 'a'"),
        ("a 1\n\nb 2\n", 2, "empty line"),
        ("a 1\n b 2\n", 2, "starts with whitespace"),
    ],
)
def test_read_kaldi_map_errors_name_file_and_line(tmp_path, content, line, message):
    f = _write(tmp_path / "utt2spk", content)
    with pytest.raises(DataError, match=rf"utt2spk:{line}: .*{message}"):
        read_kaldi_map(f)


def test_read_kaldi_map_missing(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_kaldi_map(tmp_path / "nope")
    assert read_kaldi_map(tmp_path / "nope", allow_missing=True) == {}


def test_read_kaldi_map_rejects_non_utf8(tmp_path):
    f = tmp_path / "text"
    f.write_bytes(b"a ok\nb \xff\xfe\n")
    with pytest.raises(DataError, match="text:2: not valid UTF-8"):
        read_kaldi_map(f)


def test_write_kaldi_map_c_sorted_and_formats(tmp_path):
    f = tmp_path / "m"
    # C collation: uppercase before lowercase, '-' (0x2d) before '_' (0x5f) and digits
    write_kaldi_map(f, {"b": 1, "a_x": 0.1, "a-x": ["u1", "u2"], "B": ("r", 0.0, 1.5), "e": ""})
    assert f.read_text() == "B r 0.0 1.5\na-x u1 u2\na_x 0.1\nb 1\ne\n"
    assert read_kaldi_map(f)["a_x"] == "0.1"


def test_write_kaldi_map_bad_key_leaves_no_file(tmp_path):
    f = tmp_path / "m"
    with pytest.raises(DataError, match="invalid key"):
        write_kaldi_map(f, {"a b": "x"})
    with pytest.raises(DataError, match="newline"):
        write_kaldi_map(f, {"a": "x\ny"})
    assert list(tmp_path.iterdir()) == []


# --- DataDir -----------------------------------------------------------------------------


def test_datadir_load_fixture(data_dir):
    dd = DataDir.load(data_dir)
    assert dd.utts == ["spk1-utt1", "spk1-utt2", "spk2-utt1", "spk2-utt2"]
    assert dd.speakers == ["spk1", "spk2"]
    assert dd.spk2utt == {"spk1": ["spk1-utt1", "spk1-utt2"], "spk2": ["spk2-utt1", "spk2-utt2"]}
    assert dd.utt2dur["spk1-utt1"] == pytest.approx(0.5)
    assert dd.segments is None and dd.feats_scp is None and dd.spk2gender is None
    assert dd.text["spk2-utt2"].startswith("HELLO WORLD")


def test_datadir_round_trip_all_files(tmp_path):
    dd = DataDir(
        path=tmp_path / "a",
        wav_scp={"rec1": "/x/rec1.wav", "rec2": "sox /x/r2.flac -t wav - |"},
        utt2spk={"s1-b": "s1", "s1-a": "s1", "s2-a": "s2"},
        spk2utt={},  # rewritten from utt2spk on save
        segments={"s1-a": ("rec1", 0.0, 1.25), "s1-b": ("rec1", 1.25, 2.5), "s2-a": ("rec2", 0.5, 3.0)},
        text={"s1-a": "A B", "s1-b": "", "s2-a": "C"},
        utt2dur={"s1-a": 1.25, "s1-b": 1.25, "s2-a": 2.5},
        feats_scp={"s1-a": "f.ark:10", "s1-b": "f.ark:99", "s2-a": "f.ark:200"},
        utt2num_frames={"s1-a": 123, "s1-b": 123, "s2-a": 248},
        spk2gender={"s1": "f", "s2": "m"},
        cmvn_scp={"s1": "c.ark:5", "s2": "c.ark:50"},
    )
    out = dd.save()
    back = DataDir.load(out)
    assert back.spk2utt == {"s1": ["s1-a", "s1-b"], "s2": ["s2-a"]}
    assert back == dd.replace(spk2utt=back.spk2utt)
    assert validate_data_dir(out) == []
    assert (out / "utt2spk").read_text().splitlines()[0] == "s1-a s1"


def test_datadir_save_removes_files_of_absent_fields(data_dir):
    dd = DataDir.load(data_dir)
    dd.replace(text=None).save()
    assert not (data_dir / "text").exists()
    assert DataDir.load(data_dir).text is None


def test_datadir_load_derives_spk2utt(data_dir):
    (data_dir / "spk2utt").unlink()
    assert DataDir.load(data_dir).spk2utt["spk2"] == ["spk2-utt1", "spk2-utt2"]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("segments", "spk1-utt1 rec 1.0\n", r"segments:1: expected 'recording start end'"),
        ("segments", "spk1-utt1 rec 1.0 0.5\n", r"segments:1: end 0.5 <= start 1.0"),
        ("segments", "spk1-utt1 rec x 0.5\n", r"segments:1: start 'x' is not a number"),
        ("utt2dur", "spk1-utt1 0.5\nspk1-utt2 -1\n", r"utt2dur:2: duration -1.0 <= 0"),
        ("utt2num_frames", "spk1-utt1 1.5\n", r"utt2num_frames:1: '1.5' is not an integer"),
        ("spk2gender", "spk1 x\n", r"spk2gender:1: gender must be 'm' or 'f'"),
        ("utt2spk", "spk1-utt1 spk1 extra\n", r"utt2spk:1: expected exactly one value"),
    ],
)
def test_datadir_load_bad_values(data_dir, name, content, message):
    _write(data_dir / name, content)
    with pytest.raises(DataError, match=message):
        DataDir.load(data_dir)


def test_datadir_load_missing(tmp_path, data_dir):
    with pytest.raises(DataError, match="data directory not found"):
        DataDir.load(tmp_path / "nope")
    (data_dir / "utt2spk").unlink()
    with pytest.raises(DataError, match="utt2spk: missing file"):
        DataDir.load(data_dir)


def test_datadir_file_that_is_a_directory(data_dir):
    (data_dir / "wav.scp").unlink()
    (data_dir / "wav.scp").mkdir()
    with pytest.raises(DataError, match=f"^{data_dir}/wav.scp: is a directory, not a file$"):
        DataDir.load(data_dir)
    assert f"{data_dir}/wav.scp: is a directory, not a file" in validate_data_dir(data_dir)


# --- validate ----------------------------------------------------------------------------


def test_validate_clean_fixture(data_dir):
    assert validate_data_dir(data_dir) == []
    assert validate_data_dir(data_dir, check_audio=True) == []


def test_validate_reports_every_problem(data_dir):
    d = str(data_dir)
    _write(data_dir / "utt2spk", "spk1-utt2 spk1\nspk1-utt1 spk1\nspk2-utt1 spk2\nspk2-utt1 spk2\nx-utt3 spk2\n")
    _write(data_dir / "text", "spk1-utt1 a\nspk1-utt2 b\nspk2-utt9 c\n")
    _write(data_dir / "spk2utt", "spk1 spk1-utt1 spk1-utt2\nspk3 spk3-a\n")
    _write(data_dir / "spk2gender", "spk1 m\n")
    problems = validate_data_dir(data_dir)
    expected = [
        f"{d}/utt2spk:2: not sorted (C collation): 'spk1-utt1' after 'spk1-utt2'",
        f"{d}/utt2spk:4: duplicate key 'spk2-utt1' (first on line 3)",
        f"{d}/utt2spk:5: utterance 'x-utt3' does not start with its speaker id 'spk2'",
        f"{d}/spk2utt:2: speaker 'spk3' has no utterances in utt2spk",
        f"{d}/utt2spk:3: speaker 'spk2' missing from spk2utt",
        f"{d}/utt2spk:3: utterance 'spk2-utt1' missing from text",
        f"{d}/utt2spk:5: utterance 'x-utt3' missing from text",
        f"{d}/text:3: utterance 'spk2-utt9' not in utt2spk",
        f"{d}/utt2spk:5: utterance 'x-utt3' missing from utt2dur",
        f"{d}/utt2dur:4: utterance 'spk2-utt2' not in utt2spk",
        f"{d}/utt2spk:3: speaker 'spk2' missing from spk2gender",
        f"{d}/utt2spk:5: utterance 'x-utt3' missing from wav.scp",
        f"{d}/wav.scp:4: utterance 'spk2-utt2' not in utt2spk",
    ]
    assert sorted(problems) == sorted(expected)


def test_validate_spk2utt_mismatch_and_order(data_dir):
    _write(data_dir / "spk2utt", "spk1 spk1-utt2 spk1-utt1\nspk2 spk2-utt1 spk1-utt1\n")
    problems = validate_data_dir(data_dir)
    assert problems == [
        f"{data_dir}/spk2utt:1: utterances of speaker 'spk1' not sorted (C collation)",
        f"{data_dir}/spk2utt:2: speaker 'spk2' does not match utt2spk (missing spk2-utt2; "
        "not theirs in utt2spk spk1-utt1)",
    ]


def test_validate_missing_files_and_not_a_dir(tmp_path, data_dir):
    assert validate_data_dir(tmp_path / "nope") == [f"{tmp_path / 'nope'}: not a directory"]
    (data_dir / "wav.scp").unlink()
    (data_dir / "spk2utt").unlink()
    assert validate_data_dir(data_dir) == [f"{data_dir}/wav.scp: missing file", f"{data_dir}/spk2utt: missing file"]


def test_validate_segments(data_dir):
    wav = read_kaldi_map(data_dir / "wav.scp")
    _write(data_dir / "wav.scp", f"recA {wav['spk1-utt1']}\nrecB {wav['spk2-utt1']}\n")
    _write(
        data_dir / "segments",
        "spk1-utt1 recA 0 0.2\nspk1-utt2 recA 0.3 0.2\nspk2-utt1 recB 0 0.4\nspk2-utt2 recC 0 0.1\n",
    )
    problems = validate_data_dir(data_dir)
    assert problems == [
        f"{data_dir}/segments:2: end 0.2 <= start 0.3",
        f"{data_dir}/utt2spk:2: utterance 'spk1-utt2' missing from segments",
        f"{data_dir}/segments:4: recording 'recC' not in wav.scp",
    ]


def test_validate_check_audio_reports_wav_line(data_dir, tmp_path):
    wav = read_kaldi_map(data_dir / "wav.scp")
    (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunkjunkjunk")
    wav["spk1-utt2"] = str(tmp_path / "bad.wav")
    wav["spk2-utt1"] = str(tmp_path / "missing.wav")
    write_kaldi_map(data_dir / "wav.scp", wav)
    assert validate_data_dir(data_dir) == []
    problems = validate_data_dir(data_dir, check_audio=True)
    assert len(problems) == 2
    assert problems[0].startswith(f"{data_dir}/wav.scp:2: {tmp_path}/bad.wav: utterance spk1-utt2: unreadable audio")
    assert problems[1] == f"{data_dir}/wav.scp:3: {tmp_path}/missing.wav: utterance spk2-utt1: audio file not found"


def test_validate_applies_the_audio_rule(data_dir, tmp_path):
    wav = read_kaldi_map(data_dir / "wav.scp")
    wav["spk2-utt2"] = f"touch {tmp_path}/ran; cat {wav['spk2-utt2']} |"
    write_kaldi_map(data_dir / "wav.scp", wav)
    assert validate_data_dir(data_dir, check_audio=True) == []
    (tmp_path / "ran").unlink()
    # pipes refused: reported from the line alone, never run, with or without check_audio
    for check_audio in (False, True):
        problems = validate_data_dir(data_dir, check_audio=check_audio, rule=AudioRule(allow_pipes=False))
        assert problems == [
            f"{data_dir}/wav.scp:4: recording 'spk2-utt2': pipe command refused (--no-pipes): "
            "wav.scp entries must be audio files"
        ]
        assert not (tmp_path / "ran").exists()
    # rate and length: the files are 16 kHz, 0.5 s
    problems = validate_data_dir(data_dir, check_audio=True, rule=AudioRule(sample_rate=8000, min_samples=10))
    assert len(problems) == 4 and all("differs from sample_frequency=8000" in p for p in problems)
    problems = validate_data_dir(data_dir, check_audio=True, rule=AudioRule(sample_rate=16000, min_samples=8001))
    assert problems[0] == (
        f"{data_dir}/wav.scp:1: {wav['spk1-utt1']}: utterance spk1-utt1: 8000 samples are too short for one frame "
        "(at least 8001 at 16000 Hz)"
    )
    assert len(problems) == 4


def test_validate_check_audio_segments_of_pipe(data_dir):
    wav = read_kaldi_map(data_dir / "wav.scp")
    _write(data_dir / "wav.scp", f"recA cat {wav['spk1-utt1']} |\nrecB {wav['spk2-utt1']}\n")
    _write(
        data_dir / "segments",
        "spk1-utt1 recA 0 0.2\nspk1-utt2 recA 0.2 0.9\nspk2-utt1 recB 0 0.5\nspk2-utt2 recB 0.25 0.5\n",
    )
    assert validate_data_dir(data_dir) == []
    problems = validate_data_dir(data_dir, check_audio=True)
    assert problems == [
        f"{data_dir}/wav.scp:1: cat {wav['spk1-utt1']} |: utterance spk1-utt2: "
        "segment end 0.900 s is beyond the end of the file (0.500 s)"
    ]
