import pytest

from speechrep.data.ctm import read_ctm, write_ctm
from speechrep.data.textgrid import ctm_to_textgrids, read_textgrid, textgrids_to_ctm, write_textgrid
from speechrep.errors import DataError

SHORT = '''File type = "ooTextFile"
Object class = "TextGrid"

0
1.5
<exists>
2
"IntervalTier"
"phones"
0
1.5
3
0
0.4
"sil"
0.4
0.9
"a"
0.9
1.5
""
"TextTier"
"events"
0
1.5
1
0.7
"click"
'''


def test_read_short_format_skips_gaps_and_point_tiers(tmp_path):
    f = tmp_path / "u1.TextGrid"
    f.write_text(SHORT)
    assert read_textgrid(f) == {"phones": [(0.0, 0.4, "sil"), (0.4, 0.9, "a")]}


def test_read_utf16_long_format_with_quotes(tmp_path):
    f = tmp_path / "x.TextGrid"
    write_textgrid(f, {"words": [(0.1, 0.5, 'say "hi"')]})
    f.write_bytes(f.read_text().encode("utf-16"))  # Praat's default for non-ASCII text
    assert read_textgrid(f) == {"words": [(0.1, 0.5, 'say "hi"')]}


def test_write_long_format_fills_gaps(tmp_path):
    f = tmp_path / "u.TextGrid"
    segs = [(0.2, 0.5, "b"), (0.0, 0.1, "a")]
    write_textgrid(f, {"phones": segs, "words": [(0.0, 0.5, "ab")]}, xmax=0.75)
    text = f.read_text()
    assert "intervals: size = 4" in text  # a, gap, b, gap to xmax
    assert text.count('text = ""') == 3
    assert read_textgrid(f) == {"phones": sorted(segs), "words": [(0.0, 0.5, "ab")]}


@pytest.mark.parametrize(
    "segments, message", [([(0.0, 0.5, "a"), (0.4, 0.6, "b")], "overlaps"), ([(0.0, 2.0, "a")], "outside")]
)
def test_write_bad_intervals(tmp_path, segments, message):
    with pytest.raises(DataError, match=message):
        write_textgrid(tmp_path / "u.TextGrid", {"phones": segments}, xmax=1.0)
    assert not (tmp_path / "u.TextGrid").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ('File type = "ooTextFile"\nObject class = "Pitch 1"\n', "not a Praat TextGrid"),
        (SHORT[: SHORT.index('"a"')], "truncated"),
        (SHORT.replace('"IntervalTier"', "7"), "expected a string"),
        (SHORT.replace('"TextTier"', '"Odd"'), "unknown tier class"),
    ],
)
def test_read_bad_files(tmp_path, content, message):
    f = tmp_path / "bad.TextGrid"
    f.write_text(content)
    with pytest.raises(DataError, match=message):
        read_textgrid(f)
    with pytest.raises(DataError, match="not found"):
        read_textgrid(tmp_path / "none.TextGrid")


def test_ctm_textgrid_round_trip(tmp_path):
    ali = {"u1": [(0.0, 0.25, "sil"), (0.25, 0.5, "a")], "u2": [(0.1, 0.3, "b")]}
    write_ctm(tmp_path / "phones.ctm", ali)
    assert ctm_to_textgrids(tmp_path / "phones.ctm", tmp_path / "tg") == 2
    assert sorted(p.name for p in (tmp_path / "tg").iterdir()) == ["u1.TextGrid", "u2.TextGrid"]
    assert textgrids_to_ctm(tmp_path / "tg", tmp_path / "back.ctm") == 2
    assert read_ctm(tmp_path / "back.ctm") == ali
    with pytest.raises(DataError, match="no interval tier 'words' \\(tiers: phones\\)"):
        textgrids_to_ctm(tmp_path / "tg", tmp_path / "w.ctm", tier="words")
    with pytest.raises(DataError, match="no \\*.TextGrid files"):
        textgrids_to_ctm(tmp_path, tmp_path / "w.ctm")
    assert not (tmp_path / "w.ctm").exists()
