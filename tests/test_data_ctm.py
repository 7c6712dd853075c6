import pytest

from speechrep.data.ctm import frame_labels, read_ctm, write_ctm
from speechrep.errors import DataError


def test_read_ctm_sorts_by_time_and_skips_comments(tmp_path):
    f = tmp_path / "phones.ctm"
    f.write_text(";; comment\nu2 1 0.10 0.20 b\nu2 1 0.00 0.10 a 0.9\n\nu1 A 0 0.5 sil\n")
    ali = read_ctm(f)
    assert list(ali) == ["u2", "u1"]
    assert ali["u2"] == [(0.0, 0.1, "a"), (0.1, pytest.approx(0.3), "b")]
    assert ali["u1"] == [(0.0, 0.5, "sil")]


@pytest.mark.parametrize(
    "line, message",
    [
        ("u1 1 0.0 0.1", "expected 'utt channel start duration phone"),
        ("u1 1 x 0.1 a", "is not a number"),
        ("u1 1 -1 0.1 a", "invalid start"),
        ("u1 1 0.2 0 a", "duration 0 <= 0"),
        ("u1 1 nan 0.1 a", "invalid start"),
    ],
)
def test_read_ctm_errors_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "phones.ctm"
    f.write_text(f"u1 1 0.0 0.1 a\n{line}\n")
    with pytest.raises(DataError, match=rf"phones.ctm:2: .*{message}"):
        read_ctm(f)


def test_read_ctm_missing(tmp_path):
    with pytest.raises(DataError, match="CTM file not found"):
        read_ctm(tmp_path / "x.ctm")


def test_write_ctm_round_trip(tmp_path):
    ali = {"u2": [(0.0, 0.125, "a"), (0.125, 0.3, "b")], "u1": [(0.5, 1.0, "sil"), (0.0, 0.5, "x")]}
    write_ctm(tmp_path / "o.ctm", ali)
    assert (tmp_path / "o.ctm").read_text().splitlines() == [
        "u1 1 0 0.5 x",
        "u1 1 0.5 0.5 sil",
        "u2 1 0 0.125 a",
        "u2 1 0.125 0.175 b",
    ]
    back = read_ctm(tmp_path / "o.ctm")
    assert back["u2"][1] == (0.125, pytest.approx(0.3, abs=1e-9), "b")
    assert back["u1"] == sorted(ali["u1"])


@pytest.mark.parametrize("seg, message", [((0.2, 0.2, "a"), "invalid segment"), ((0.0, 0.1, "a b"), "invalid label")])
def test_write_ctm_bad_input_leaves_no_file(tmp_path, seg, message):
    with pytest.raises(DataError, match=message):
        write_ctm(tmp_path / "o.ctm", {"u": [seg]})
    assert not (tmp_path / "o.ctm").exists()


def test_frame_labels_centres():
    # centres: 0.0125, 0.0225, 0.0325, ... ; [start, end) by centre
    segs = [(0.0, 0.0225, "a"), (0.0225, 0.05, "b"), (0.07, 0.08, "c")]
    assert frame_labels(segs, num_frames=8) == ["a", "b", "b", "b", None, None, "c", None]


def test_frame_labels_options_and_empty():
    segs = [(0.0, 0.03, "a"), (0.03, 1.0, "b")]
    assert frame_labels(segs, num_frames=4, frame_shift=0.02, frame_offset=0.0) == ["a", "a", "b", "b"]
    assert frame_labels([], num_frames=3) == [None, None, None]
    assert frame_labels(segs, num_frames=0) == []
    with pytest.raises(ValueError):
        frame_labels(segs, num_frames=-1)


def test_read_ctm_refuses_overlaps_but_not_rounding_noise(tmp_path):
    f = tmp_path / "phones.ctm"
    # microsecond rounding of written times: ends may pass the next start by ~1e-6 s
    f.write_text("u1 1 0.1 0.1000004 b\nu1 1 0 0.1000004 a\nu2 1 0 0.2 a\n")
    assert [p for _, _, p in read_ctm(f)["u1"]] == ["a", "b"]
    f.write_text("u1 1 0 0.2 a\nu2 1 0 0.2 a\nu1 1 0.3 0.1 c\nu1 1 0.15 0.1 b\n")
    with pytest.raises(DataError, match=r"phones\.ctm:4: utterance u1: b 0\.15-0\.25 s overlaps a 0-0\.2 s \(line 1\)"):
        read_ctm(f)
