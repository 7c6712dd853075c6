"""ABX item files (ZeroSpeech format) and their construction from a phone alignment.

An item file has the header ``#file onset offset #phone prev-phone next-phone speaker``
and one line per item: ``<utt> <onset> <offset> <phone> <prev> <next> <speaker>``, times in
seconds. Two levels are built from a CTM:

* ``"triphone"`` (ZeroSpeech 2017/2021 ABX): the item spans the previous phone's start to
  the next phone's end, the phone of interest is the centre one;
* ``"phone"``: the item spans the centre phone only (its context is still recorded, so
  within-context ABX stays possible).

Phones listed in ``silences`` are never an item's centre nor its context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping

import numpy as np

from speechrep.errors import DataError
from speechrep.utils.io import atomic_open

__all__ = ["ItemSet", "make_items", "make_item_file", "read_items", "write_items", "DEFAULT_SILENCES", "ITEM_HEADER"]

ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"
DEFAULT_SILENCES = frozenset({"SIL", "sil", "SPN", "spn", "sp", "<eps>", "NSN", "<sil>", "pau", "h#"})


@dataclass
class ItemSet:
    """Columns of an item file, one entry per item (all the same length).

    Attributes
    ----------
    files : utterance id of each item.
    onsets, offsets : ``(num_items,)`` float64 seconds.
    phones, prevs, nexts, speakers : labels of each item.
    """

    files: list[str]
    onsets: np.ndarray
    offsets: np.ndarray
    phones: list[str]
    prevs: list[str]
    nexts: list[str]
    speakers: list[str]

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, index: Iterable[int]) -> "ItemSet":
        """The items at ``index``, in that order."""
        idx = np.asarray(list(index), dtype=np.int64)
        pick = lambda xs: [xs[i] for i in idx]  # noqa: E731
        return ItemSet(
            pick(self.files),
            self.onsets[idx],
            self.offsets[idx],
            pick(self.phones),
            pick(self.prevs),
            pick(self.nexts),
            pick(self.speakers),
        )


def make_items(
    alignments: Mapping[str, list[tuple[float, float, str]]],
    utt2spk: Mapping[str, str],
    *,
    level: Literal["triphone", "phone"] = "triphone",
    silences: Iterable[str] = DEFAULT_SILENCES,
) -> ItemSet:
    """Build ABX items from phone alignments.

    Parameters
    ----------
    alignments : utt -> time-sorted ``[(start, end, phone), ...]`` (as ``read_ctm`` returns).
    utt2spk : utt -> speaker.
    level : ``"triphone"`` spans previous-phone start .. next-phone end; ``"phone"`` spans
        the centre phone.
    silences : labels that are neither centre nor context of an item.

    Raises
    ------
    DataError
        An utterance without a speaker, a bad level, or no item at all.
    """
    if level not in ("triphone", "phone"):
        raise DataError(f"level must be 'triphone' or 'phone', got {level!r}", field="level")
    sil = set(silences)
    cols: dict[str, list] = {k: [] for k in ("files", "on", "off", "ph", "prev", "next", "spk")}
    for utt in sorted(alignments):
        if utt not in utt2spk:
            raise DataError(f"utterance {utt!r} has no speaker", field="utt2spk")
        segs = alignments[utt]
        for i in range(1, len(segs) - 1):
            (ps, _, prev), (cs, ce, phone), (_, ne, nxt) = segs[i - 1], segs[i], segs[i + 1]
            if phone in sil or prev in sil or nxt in sil:
                continue
            onset, offset = (ps, ne) if level == "triphone" else (cs, ce)
            for k, v in zip(cols, (utt, onset, offset, phone, prev, nxt, utt2spk[utt])):
                cols[k].append(v)
    if not cols["files"]:
        raise DataError("the alignment yields no item (fewer than 3 consecutive non-silence phones)", field="items")
    return ItemSet(
        cols["files"],
        np.array(cols["on"], dtype=np.float64),
        np.array(cols["off"], dtype=np.float64),
        cols["ph"],
        cols["prev"],
        cols["next"],
        cols["spk"],
    )


def make_item_file(
    ctm: str | Path,
    out: str | Path,
    *,
    utt2spk: str | Path | None = None,
    level: Literal["triphone", "phone"] = "triphone",
    silences: Iterable[str] = DEFAULT_SILENCES,
) -> ItemSet:
    """Build items from a CTM (speakers from ``utt2spk``, default: beside the CTM); write ``out``."""
    from speechrep.data.ctm import read_ctm
    from speechrep.data.kaldi_dir import read_kaldi_map
    from speechrep.eval.inputs import find_utt2spk

    items = make_items(read_ctm(ctm), read_kaldi_map(find_utt2spk(ctm, utt2spk)), level=level, silences=silences)
    write_items(out, items)
    return items


def write_items(path: str | Path, items: ItemSet) -> None:
    """Write ``items`` as a ZeroSpeech ``.item`` file (atomic; times with 4 decimals)."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(ITEM_HEADER + "\n")
        for i in range(len(items)):
            f.write(
                f"{items.files[i]} {items.onsets[i]:.4f} {items.offsets[i]:.4f} {items.phones[i]} "
                f"{items.prevs[i]} {items.nexts[i]} {items.speakers[i]}\n"
            )


def read_items(path: str | Path) -> ItemSet:
    """Read a ZeroSpeech ``.item`` file.

    Raises
    ------
    DataError
        Missing file, a line without 7 fields, non-numeric or reversed times, no items;
        the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("item file not found", path=path)
    cols: list[list] = [[] for _ in range(7)]
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 7:
                raise DataError(f"expected 7 fields ({ITEM_HEADER}), got {len(parts)}", path=path, field=f"line {lineno}")
            try:
                onset, offset = float(parts[1]), float(parts[2])
            except ValueError:
                raise DataError("onset/offset must be numbers", path=path, field=f"line {lineno}") from None
            if not (0 <= onset < offset):
                raise DataError(f"need 0 <= onset < offset, got {onset} {offset}", path=path, field=f"line {lineno}")
            parts[1], parts[2] = onset, offset
            for col, v in zip(cols, parts):
                col.append(v)
    if not cols[0]:
        raise DataError("no items", path=path)
    return ItemSet(
        cols[0],
        np.array(cols[1], dtype=np.float64),
        np.array(cols[2], dtype=np.float64),
        cols[3],
        cols[4],
        cols[5],
        cols[6],
    )
