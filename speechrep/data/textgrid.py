"""Praat TextGrids <-> CTM alignments.

TextGrid files come in Praat's long ("ooTextFile" with ``xmin = ...`` labels) and short
text formats, UTF-8 or UTF-16; both carry the same sequence of numbers and quoted
strings, which is what the reader parses. Interval tiers are read; empty labels (gaps)
are left out of the alignments. The writer produces the long format, filling gaps
with empty intervals since Praat requires a tier's intervals to tile ``[xmin, xmax]``.

One TextGrid holds one utterance, named by its file stem (``<utt>.TextGrid``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from speechrep.data.ctm import Alignment, read_ctm, write_ctm
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir, atomic_write_text

__all__ = ["read_textgrid", "write_textgrid", "textgrids_to_ctm", "ctm_to_textgrids"]

# quoted string ("" escapes a quote) | [index] to skip | number
_TOKEN = re.compile(r'"((?:[^"]|"")*)"|\[\s*\d*\s*\]|([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)')
_EPS = 1e-9


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not UTF-8 or UTF-16 text", path=path) from None


def _tokens(text: str) -> list[str | float]:
    out: list[str | float] = []
    for match in _TOKEN.finditer(text):
        string, number = match.groups()
        if string is not None:
            out.append(string.replace('""', '"'))
        elif number is not None:
            out.append(float(number))
    return out


def read_textgrid(path: str | Path) -> dict[str, Alignment]:
    """Read the interval tiers of a TextGrid.

    Returns
    -------
    dict tier name -> [(start, end, label), ...] (non-empty labels only, time-sorted).

    Raises
    ------
    DataError
        Missing file, not a TextGrid, or a truncated/malformed tier.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("TextGrid file not found", path=path)
    tokens = _tokens(_decode(path))
    pos = 0

    def take(kind: type) -> str | float:
        nonlocal pos
        if pos >= len(tokens):
            raise DataError("truncated TextGrid", path=path)
        value = tokens[pos]
        if not isinstance(value, kind):
            want = "a number" if kind is float else "a string"
            raise DataError(f"malformed TextGrid: expected {want}, got {value!r} (token {pos + 1})", path=path)
        pos += 1
        return value

    if take(str) != "ooTextFile" or take(str) != "TextGrid":
        raise DataError("not a Praat TextGrid (header is not ooTextFile/TextGrid)", path=path)
    take(float), take(float)  # xmin, xmax of the grid
    tiers: dict[str, Alignment] = {}
    for _ in range(int(take(float))):
        kind, name = take(str), str(take(str))
        take(float), take(float)
        count = int(take(float))
        if kind == "IntervalTier":
            intervals = []
            for _ in range(count):
                start, end, label = float(take(float)), float(take(float)), str(take(str))
                if end < start:
                    raise DataError(f"tier {name!r}: interval {start}-{end} ends before it starts", path=path)
                if label.strip():
                    intervals.append((start, end, label.strip()))
            tiers[name] = sorted(intervals, key=lambda s: s[0])
        elif kind == "TextTier":
            pos += 2 * count  # point tiers (time, mark) have no intervals
        else:
            raise DataError(f"unknown tier class {kind!r}", path=path)
    return tiers


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def write_textgrid(
    path: str | Path, tiers: Mapping[str, Sequence[tuple[float, float, str]]], *, xmax: float | None = None
) -> None:
    """Write interval tiers as a long-format TextGrid (UTF-8), atomically.

    ``xmax`` defaults to the latest end time; gaps become intervals with an empty label.

    Raises
    ------
    DataError
        Overlapping or negative intervals, or one ending after ``xmax``.
    """
    path = Path(path)
    ends = [end for segs in tiers.values() for _, end, _ in segs]
    grid_end = xmax if xmax is not None else max(ends, default=0.0)
    lines = ['File type = "ooTextFile"', 'Object class = "TextGrid"', "", "xmin = 0", f"xmax = {grid_end!r}"]
    lines += ["tiers? <exists>", f"size = {len(tiers)}", "item []:"]
    for t, (name, segments) in enumerate(tiers.items(), start=1):
        filled: list[tuple[float, float, str]] = []
        cursor = 0.0
        for start, end, label in sorted(segments, key=lambda s: s[0]):
            if start < cursor - _EPS or end <= start or end > grid_end + _EPS:
                raise DataError(f"tier {name!r}: interval {start}-{end} {label!r} overlaps or is outside 0-{grid_end}", path=path)
            if start > cursor + _EPS:
                filled.append((cursor, start, ""))
            filled.append((max(start, cursor), end, label))
            cursor = end
        if grid_end > cursor + _EPS or not filled:
            filled.append((cursor, grid_end, ""))
        lines += [f"    item [{t}]:", '        class = "IntervalTier"', f"        name = {_quote(name)}"]
        lines += ["        xmin = 0", f"        xmax = {grid_end!r}", f"        intervals: size = {len(filled)}"]
        for i, (start, end, label) in enumerate(filled, start=1):
            lines += [f"        intervals [{i}]:", f"            xmin = {start!r}", f"            xmax = {end!r}"]
            lines.append(f"            text = {_quote(label)}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def textgrids_to_ctm(textgrid_dir: str | Path, ctm_path: str | Path, *, tier: str = "phones") -> int:
    """Convert every ``<utt>.TextGrid`` in a directory to one CTM file of tier ``tier``.

    Returns
    -------
    number of utterances written.

    Raises
    ------
    DataError
        No TextGrid files, a file without the tier, or a malformed file.
    """
    textgrid_dir = Path(textgrid_dir)
    files = sorted(textgrid_dir.glob("*.TextGrid"))
    if not files:
        raise DataError("no *.TextGrid files", path=textgrid_dir)
    alignments = {}
    for file in files:
        tiers = read_textgrid(file)
        if tier not in tiers:
            raise DataError(f"no interval tier {tier!r} (tiers: {', '.join(tiers) or 'none'})", path=file)
        alignments[file.stem] = tiers[tier]
    write_ctm(ctm_path, alignments)
    return len(alignments)


def ctm_to_textgrids(ctm_path: str | Path, out_dir: str | Path, *, tier: str = "phones") -> int:
    """Write one ``<utt>.TextGrid`` per utterance of a CTM file into ``out_dir`` (replaced
    atomically as a whole). Returns the number of files written."""
    alignments = read_ctm(ctm_path)
    with atomic_dir(out_dir) as tmp:
        for utt, segments in alignments.items():
            write_textgrid(tmp / f"{utt}.TextGrid", {tier: segments})
    return len(alignments)
