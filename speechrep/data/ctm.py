"""Phone alignments in CTM form, and frame labels.

A CTM line is ``utt channel start duration phone [confidence]`` (times in seconds).
``ali/<set>/phones.ctm`` is the canonical alignment; frame labels and TextGrids are
derived from it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from speechrep.errors import DataError
from speechrep.utils.io import atomic_write_text
from speechrep.utils.text import read_utf8

__all__ = ["Alignment", "SILENCE_PHONES", "read_ctm", "write_ctm", "frame_labels"]

#: Segments may overlap by this much (seconds): CTM times are written to the microsecond,
#: so a segment's rounded end can pass the next one's start by about that.
_OVERLAP_TOLERANCE = 1e-5

#: One utterance's alignment: ``[(start, end, label), ...]`` in seconds, time-sorted.
Alignment = list[tuple[float, float, str]]

#: Labels dropped from phone sequences before CTC training and scoring.
SILENCE_PHONES = frozenset({"pau", "sil", "SIL", "sp", "spn", "<eps>"})


def _ctm_error(path: Path, lineno: int, message: str) -> DataError:
    err = DataError(f"{path}:{lineno}: {message}")
    err.path = path
    err.field = f"line {lineno}"
    return err


def read_ctm(path: str | Path) -> dict[str, Alignment]:
    """Read a CTM file.

    Returns
    -------
    dict utt -> [(start, end, phone), ...] sorted by start time, utterances in file order.

    Raises
    ------
    DataError
        Missing file or not UTF-8; a line without 5 or 6 fields, a non-numeric or
        negative start, a non-positive duration, two segments of an utterance that overlap
        (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("CTM file not found", path=path)
    alignments: dict[str, Alignment] = {}
    line_of: dict[tuple[str, int], int] = {}  # (utt, index in alignments[utt]) -> CTM line
    for lineno, line in enumerate(read_utf8(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";;"):
            continue  # blank lines and NIST ';;' comments
        if len(fields) not in (5, 6):
            raise _ctm_error(path, lineno, f"expected 'utt channel start duration phone [conf]', got {len(fields)} fields")
        utt, _, start_s, dur_s, phone = fields[:5]
        try:
            start, dur = float(start_s), float(dur_s)
        except ValueError:
            raise _ctm_error(path, lineno, f"start {start_s!r} or duration {dur_s!r} is not a number") from None
        if not (math.isfinite(start) and math.isfinite(dur)) or start < 0:
            raise _ctm_error(path, lineno, f"invalid start {start_s}")
        if dur <= 0:
            raise _ctm_error(path, lineno, f"duration {dur_s} <= 0")
        # rounding drops the float noise of start + duration (0.1 + 0.2 -> 0.3)
        segments = alignments.setdefault(utt, [])
        line_of[utt, len(segments)] = lineno
        segments.append((start, round(start + dur, 9), phone))
    for utt, segments in alignments.items():
        order = sorted(range(len(segments)), key=lambda i: segments[i][0])
        for prev, cur in zip(order, order[1:]):
            (p_start, p_end, p_phone), (c_start, c_end, c_phone) = segments[prev], segments[cur]
            if c_start < p_end - _OVERLAP_TOLERANCE:
                first, second = sorted((line_of[utt, prev], line_of[utt, cur]))
                raise _ctm_error(
                    path,
                    second,
                    f"utterance {utt}: {c_phone} {c_start:g}-{c_end:g} s overlaps {p_phone} {p_start:g}-{p_end:g} s "
                    f"(line {first})",
                )
        alignments[utt] = [segments[i] for i in order]
    return alignments


def _fmt(seconds: float) -> str:
    # microsecond resolution, trailing zeros dropped: exact enough, still readable
    text = f"{seconds:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def write_ctm(path: str | Path, alignments: Mapping[str, Sequence[tuple[float, float, str]]]) -> None:
    """Write alignments (utt -> [(start, end, phone), ...]) as a CTM file, atomically.

    Utterances are written C-sorted, segments time-sorted, channel ``1``.

    Raises
    ------
    DataError
        A segment with ``end <= start``, a negative start, or a label with whitespace.
    """
    path = Path(path)
    lines = []
    for utt in sorted(alignments):
        for start, end, phone in sorted(alignments[utt], key=lambda s: s[0]):
            if start < 0 or not end > start:
                raise DataError(f"utterance {utt}: invalid segment {start}-{end} ({phone})", path=path)
            if not phone or any(c.isspace() for c in phone):
                raise DataError(f"utterance {utt}: invalid label {phone!r}", path=path)
            lines.append(f"{utt} 1 {_fmt(start)} {_fmt(end - start)} {phone}\n")
    atomic_write_text(path, "".join(lines))


def frame_labels(
    segments: Sequence[tuple[float, float, str]],
    *,
    num_frames: int,
    frame_shift: float = 0.01,
    frame_offset: float = 0.0125,
) -> list[str | None]:
    """Label of each feature frame, by where the frame's centre falls.

    Frame ``i`` has its centre at ``frame_offset + i * frame_shift`` seconds (defaults:
    Kaldi's 25 ms window with 10 ms shift and ``snip_edges``); it takes the label of the
    segment ``[start, end)`` that contains that centre, or ``None`` if no segment does.
    Where segments overlap, the later-starting one wins.

    Returns
    -------
    list of length ``num_frames``.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if frame_shift <= 0:
        raise ValueError(f"frame_shift must be > 0, got {frame_shift}")
    centres = frame_offset + np.arange(num_frames) * frame_shift
    labels: list[str | None] = [None] * num_frames
    for start, end, label in sorted(segments, key=lambda s: s[0]):
        first, stop = np.searchsorted(centres, [start, end], side="left")
        labels[first:stop] = [label] * int(stop - first)
    return labels
