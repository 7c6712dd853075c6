"""Subset, split and combine Kaldi data directories (Kaldi's ``subset_data_dir.sh``,
``split_data.sh`` and ``combine_data.sh``); every output is written atomically."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from speechrep.data.kaldi_dir import FILES, DataDir, read_kaldi_map, restrict_data_dir, spk2utt_from_utt2spk
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir

__all__ = ["combine_data_dirs", "split_data_dir", "subset_data_dir"]


def _read_id_list(source: str | Path | Iterable[str]) -> list[str]:
    if isinstance(source, (str, Path)):
        return list(read_kaldi_map(source))
    return list(source)


def _check_dst(src: Path, dst: Path) -> None:
    if dst.resolve() == src.resolve():
        raise DataError("output directory is the input directory", path=dst)


def subset_data_dir(
    src: str | Path,
    dst: str | Path,
    *,
    utt_list: str | Path | Iterable[str] | None = None,
    first: int | None = None,
    last: int | None = None,
    spk_list: str | Path | Iterable[str] | None = None,
) -> Path:
    """Write the part of data directory ``src`` selected by exactly one option to ``dst``.

    Parameters
    ----------
    src, dst : input and output data directories (``dst`` is replaced atomically).
    utt_list : utterance ids, or a file whose first column holds them.
    first, last : the first / last N utterances in C order.
    spk_list : speaker ids (all their utterances), or a file whose first column holds them.

    Returns
    -------
    ``dst``.

    Raises
    ------
    DataError
        Not exactly one selector, unknown ids in a list, N out of range, ``dst == src``.
    """
    src, dst = Path(src), Path(dst)
    chosen = [name for name, v in (("utt_list", utt_list), ("first", first), ("last", last), ("spk_list", spk_list)) if v is not None]
    if len(chosen) != 1:
        raise DataError(f"give exactly one of utt_list, first, last, spk_list (got {chosen or 'none'})", path=src)
    _check_dst(src, dst)
    dd = DataDir.load(src)
    utts = dd.utts
    if first is not None or last is not None:
        n = first if first is not None else last
        assert n is not None
        if not 0 < n <= len(utts):
            raise DataError(f"cannot take {n} of {len(utts)} utterances", path=src, field="first" if first is not None else "last")
        selected = utts[:n] if first is not None else utts[-n:]
    else:
        ids = _read_id_list(utt_list if utt_list is not None else spk_list)  # type: ignore[arg-type]
        known = set(utts) if utt_list is not None else set(dd.spk2utt)
        kind = "utterance" if utt_list is not None else "speaker"
        unknown = [i for i in ids if i not in known]
        if unknown:
            shown = " ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(f"{len(unknown)} {kind} id(s) not in the data directory: {shown}", path=src)
        wanted = set(ids)
        selected = [u for u in utts if (u if utt_list is not None else dd.utt2spk[u]) in wanted]
        if not selected:
            raise DataError(f"empty {kind} list", path=src)
    with atomic_dir(dst) as tmp:
        restrict_data_dir(dd, selected, dst).save(tmp)
    return dst


def _split_points(sizes: list[int], n: int) -> list[int]:
    """Indices that cut ``sizes`` into ``n`` contiguous, non-empty groups whose sums are as
    close as possible to equal shares (cut ``k`` at the cumulative sum nearest ``k/n``)."""
    total = sum(sizes)
    cumulative = [0]
    for s in sizes:
        cumulative.append(cumulative[-1] + s)
    cuts = [0]
    for k in range(1, n):
        target = total * k / n
        # leave at least one item for each of the n - k groups still to come
        lo, hi = cuts[-1] + 1, len(sizes) - (n - k)
        best = min(range(lo, hi + 1), key=lambda i: (abs(cumulative[i] - target), i))
        cuts.append(best)
    cuts.append(len(sizes))
    return cuts


def split_data_dir(src: str | Path, n: int, *, by_speaker: bool = False) -> list[Path]:
    """Split a data directory into ``n`` parts for parallel jobs (Kaldi ``split_data.sh``).

    Parts are ``src/split{n}/1`` ... ``src/split{n}/{n}``, contiguous in C order with
    near-equal utterance counts; with ``by_speaker`` no speaker is spread over two parts
    (needed for per-speaker CMVN). A split that is newer than every file of ``src`` and
    was made the same way is reused.

    Returns
    -------
    the ``n`` part directories.

    Raises
    ------
    DataError
        ``n < 1`` or more parts than utterances (or speakers with ``by_speaker``).
    """
    src = Path(src)
    if n < 1:
        raise DataError(f"number of parts must be >= 1, got {n}", path=src)
    root = src / f"split{n}"
    parts = [root / str(i) for i in range(1, n + 1)]
    mode = "speaker" if by_speaker else "utterance"
    marker = root / ".done"
    if marker.is_file() and marker.read_text().strip() == mode and all(p.is_dir() for p in parts):
        newest = max((src / name).stat().st_mtime for name in FILES if (src / name).is_file())
        if marker.stat().st_mtime >= newest:
            return parts
    dd = DataDir.load(src)
    if by_speaker:
        groups = list(spk2utt_from_utt2spk(dd.utt2spk).values())
        unit = "speakers"
    else:
        groups = [[u] for u in dd.utts]
        unit = "utterances"
    if n > len(groups):
        raise DataError(f"cannot split {len(groups)} {unit} into {n} parts", path=src)
    cuts = _split_points([len(g) for g in groups], n)
    with atomic_dir(root) as tmp:
        for i in range(n):
            utts = [u for g in groups[cuts[i] : cuts[i + 1]] for u in g]
            restrict_data_dir(dd, utts, parts[i]).save(tmp / str(i + 1))
        (tmp / ".done").write_text(mode + "\n")
    return parts


def combine_data_dirs(dst: str | Path, srcs: Sequence[str | Path]) -> Path:
    """Combine data directories into ``dst`` (Kaldi ``combine_data.sh``).

    Optional files are kept only when every source has them. Sources with and without
    ``segments`` mix when the ones without have ``utt2dur`` (each recording becomes one
    whole-file segment).

    Raises
    ------
    DataError
        No sources, ``dst`` among them, an utterance id in two sources, a recording or
        speaker with different entries in two sources, or segments needed without
        ``utt2dur``.
    """
    dst = Path(dst)
    if not srcs:
        raise DataError("no source directories to combine", path=dst)
    dirs = [DataDir.load(s) for s in srcs]
    for d in dirs:
        _check_dst(d.path, dst)
    any_segments = any(d.segments is not None for d in dirs)
    merged: dict[str, dict[str, Any] | None] = {}
    owner: dict[tuple[str, str], Path] = {}
    for name, spec in FILES.items():
        if name == "spk2utt":
            continue
        if name == "segments":
            present = any_segments
        else:
            present = all(getattr(d, spec.attr) is not None for d in dirs)
        if not present:
            merged[spec.attr] = None
            continue
        out: dict[str, Any] = {}
        for d in dirs:
            table = getattr(d, spec.attr)
            if name == "segments" and table is None:
                if d.utt2dur is None:
                    raise DataError("cannot combine with segmented directories: no segments and no utt2dur", path=d.path)
                table = {u: (u, 0.0, d.utt2dur[u]) for u in d.utt2spk}
            for key, value in table.items():
                if key in out:
                    # utterances must be unique; shared recordings/speakers must agree
                    if spec.keyed_by == "utt" or out[key] != value:
                        what = "utterance" if spec.keyed_by == "utt" else f"{name} entry"
                        raise DataError(
                            f"{what} '{key}' in both {owner[name, key]} and {d.path}", path=dst, field=name
                        )
                    continue
                out[key] = value
                owner[name, key] = d.path
        merged[spec.attr] = out
    utt2spk = merged.pop("utt2spk")
    assert utt2spk is not None
    combined = DataDir(path=dst, utt2spk=utt2spk, spk2utt=spk2utt_from_utt2spk(utt2spk), **merged)  # type: ignore[arg-type]
    with atomic_dir(dst) as tmp:
        combined.save(tmp)
    return dst
