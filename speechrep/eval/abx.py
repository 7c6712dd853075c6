"""ABX phone discriminability (ZeroSpeech 2017/2021 definition), numba-accelerated.

Definition
----------
Items (see :mod:`speechrep.eval.items`) carry a phone, a context (previous and next phone)
and a speaker. For phones ``a != b`` sharing a context ``c``:

* within speaker ``s``: A and X are items of ``(a, c, s)`` (X != A), B an item of
  ``(b, c, s)``;
* across speakers: A of ``(a, c, s)``, B of ``(b, c, s)``, X of ``(a, c, s_x)`` for
  another speaker ``s_x``.

The error of a cell is the fraction of triplets where X is closer to B than to A (ties
count one half). Errors are averaged over contexts (and X speakers across), then over
speakers, then over ordered phone pairs, as in the Libri-Light/ZeroSpeech 2021 script.
``context="any"`` (phone-only ABX) ignores the context: every item is in one context.

Distances between two items are a DTW alignment cost averaged along the alignment path
(steps (1,0), (0,1), (1,1); ties prefer the diagonal, then (0,1), then (1,0)), over the
frame distance chosen by ``distance``:

* ``"cosine"``: angle between frames divided by pi, in [0, 1] (a zero frame is at 0 from
  another zero frame and 0.5 from any other frame);
* ``"kl"``: symmetrised Kullback-Leibler divergence ``(KL(p||q) + KL(q||p)) / 2`` between
  posteriorgram frames (each renormalised to sum to one, floored at 1e-10);
* ``"onehot"``: 0 for equal discrete units, 1 otherwise (DTW as above);
* ``"edit"``: no DTW; the Levenshtein distance between the unit sequences with repeats
  merged, divided by the longer one's length.

To be symmetric, the distance always aligns the item that comes first in the item set
against the later one.

Subsampling (ZeroSpeech 2021): each (phone, context, speaker) group keeps at most
``max_size_group`` items and each (A-phone, context, speaker) cell at most ``max_x_across``
X speakers, drawn once with a generator seeded by ``seed``; ``None`` keeps everything
(exact mode).

Implementation: every utterance's frames are held once, in one contiguous array; an
item is an offset and a length into it. Items are processed cell by cell, a cell being
the items of one (context, speaker) pair plus, across speakers, the X items of the
sampled speakers. Every item distance a cell needs is computed once (not once per
triplet): the cell's items are cut into tiles of about ``TILE_FRAMES`` frames a side,
the cosines of a tile's frames come from one BLAS call (frames scaled to unit norm, in
float64 as the definition's dot products), and one numba kernel runs DTW over the
tile's item pairs (angles from a vectorised arccos, branch-free steps), tiles in
parallel. Cells are batched until ``max_batch_pairs`` distances and scored by a second
parallel kernel, so memory is bounded by one batch and one tile per thread.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Iterator, Literal, Mapping

import numba
import numpy as np

from speechrep.errors import DataError
from speechrep.eval.abx_kernels import KL_FLOOR, chunks, frame_norms, task_errors, tile_distances
from speechrep.eval.inputs import FrameTimes
from speechrep.eval.items import ItemSet

__all__ = ["AbxItems", "prepare_abx_items", "subsample_groups", "abx_errors", "DISTANCES"]

DISTANCES = ("cosine", "kl", "onehot", "edit")
_KIND = {name: i for i, name in enumerate(DISTANCES)}


@dataclass
class AbxItems:
    """Items resolved to frames, ready for :func:`abx_errors`.

    Attributes
    ----------
    feats : ``(total_frames, dim)`` float32 frames of all utterances (cosine/kl), or
        ``(0, 1)`` for discrete units.
    aux : ``(total_frames, 1)`` float64 frame norms (cosine) or ``(total_frames, dim)``
        float64 log-probabilities (kl), else ``(0, 1)``.
    codes : ``(total_frames,)`` int64 units (onehot/edit), else empty.
    starts, lengths : ``(num_items,)`` int64 first frame and frame count of each kept item.
    phone, context, speaker : ``(num_items,)`` int64 label ids of each kept item.
    phones, speakers : label names indexed by the ids.
    kind : distance name.
    num_clipped : items reaching past the first/last frame (kept, clipped).
    num_empty : items without any frame centre inside them (dropped).
    """

    feats: np.ndarray
    aux: np.ndarray
    codes: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    phone: np.ndarray
    context: np.ndarray
    speaker: np.ndarray
    phones: list[str]
    speakers: list[str]
    kind: str
    num_clipped: int = 0
    num_empty: int = 0


def prepare_abx_items(
    frames: Mapping[str, np.ndarray],
    items: ItemSet,
    times: FrameTimes,
    *,
    distance: str = "cosine",
    context: Literal["within", "any"] = "within",
    drop_last_frame: bool = False,
    source: str = "<items>",
) -> AbxItems:
    """Cut each item's frames out of its utterance.

    Parameters
    ----------
    frames : utt -> ``(num_frames, dim)`` features, or ``(num_frames,)`` int units for
        the ``"onehot"``/``"edit"`` distances.
    items : the item set.
    times : frame centre times; an item takes the frames whose centre lies in
        ``[onset, offset]``, both ends included.
    distance : one of :data:`DISTANCES`.
    context : ``"within"`` (items must share the previous/next phones) or ``"any"``.
    drop_last_frame : also drop the last frame of every item, as the Libri-Light ABX
        script does (compatibility only).
    source : item file name used in error messages.

    Raises
    ------
    DataError
        Unknown distance or context, an item whose utterance has no frames, an item
        entirely outside its utterance's frames, features with NaN or infinite values,
        zero dimensions or dimensions that differ between utterances, non-integer units,
        negative posteriors for ``"kl"``, continuous input for discrete distances (or the
        reverse), or no item left with frames. The message names the utterance.
    """
    if distance not in _KIND:
        raise DataError(f"unknown distance {distance!r} (choose from {', '.join(DISTANCES)})", field="distance")
    if context not in ("within", "any"):
        raise DataError(f"context must be 'within' or 'any', got {context!r}", field="context")
    discrete = distance in ("onehot", "edit")
    utts = sorted(set(items.files))
    missing = [u for u in utts if u not in frames]
    if missing:
        raise DataError(
            f"{len(missing)} utterance(s) of the items have no frames, e.g. {', '.join(missing[:3])}",
            path=source,
            field="#file",
        )
    utt_start, utt_frames, total, dim = {}, {}, 0, None
    for u in utts:
        x = np.asarray(frames[u])
        if discrete != (x.ndim == 1) or x.ndim > 2:
            want = "(frames,) integer units" if discrete else "(frames, dim) features"
            raise DataError(f"distance {distance!r} needs {want}, got shape {x.shape}", field=u)
        if not discrete:
            if x.shape[1] == 0:
                raise DataError("features have zero dimensions", field=u)
            if dim is not None and x.shape[1] != dim:
                raise DataError(f"feature dimension {x.shape[1]} differs from {dim} of {utts[0]}", field=u)
            dim = x.shape[1]
        utt_start[u], utt_frames[u] = total, x.shape[0]
        total += x.shape[0]
    starts, lengths, keep = [], [], []
    clipped = empty = 0
    for i, u in enumerate(items.files):
        n = utt_frames[u]
        onset, offset = float(items.onsets[i]), float(items.offsets[i])
        a, b, clip = times.frame_range(onset, offset, n)
        if clip:
            first, last = _frame_span(times, n)
            if n == 0 or onset >= last or offset <= first:
                # not a frame or two of padding convention: these are not this item's features
                raise DataError(
                    f"item {i} ({onset:.4f}-{offset:.4f} s) lies outside the {n} frames of its utterance "
                    f"({first:.4f}-{last:.4f} s)",
                    path=source,
                    field=u,
                )
        if drop_last_frame:
            b -= 1
        if b <= a:
            empty += 1
            continue
        clipped += clip
        starts.append(utt_start[u] + a)
        lengths.append(b - a)
        keep.append(i)
    if not keep:
        raise DataError("no item has a frame centre inside it (wrong frame shift or offset?)", path=source, field="items")
    utt_bounds = np.array([utt_start[u] for u in utts] + [total], np.int64)
    if discrete:
        codes = np.empty(total, np.int64)
        for u in utts:
            x = np.asarray(frames[u])
            if x.dtype.kind not in "iub" and not (np.isfinite(x).all() and (x == np.round(x)).all()):
                raise DataError("units must be integers (found a fraction, NaN or infinity)", field=u)
            codes[utt_start[u] : utt_start[u] + len(x)] = x
        feats = np.zeros((0, 1), np.float32)
        aux = np.zeros((0, 1), np.float64)
    else:
        codes = np.zeros(0, np.int64)
        # held once: every utterance's frames in one contiguous array, items as offsets
        feats = np.empty((total, dim), np.float32)
        for u in utts:
            feats[utt_start[u] : utt_start[u] + utt_frames[u]] = frames[u]
        norms = frame_norms(feats)
        bad = np.flatnonzero(~np.isfinite(norms))  # a NaN or infinity makes the norm non-finite
        if len(bad):
            u = utts[int(np.searchsorted(utt_bounds, bad[0], side="right")) - 1]
            raise DataError(f"features contain NaN or infinite values (frame {bad[0] - utt_start[u]})", field=u)
        if distance == "cosine":
            aux = norms[:, None]
        else:
            if (feats < 0).any():
                raise DataError("KL distance needs non-negative posteriorgrams", field="features")
            p = feats.astype(np.float64) + KL_FLOOR
            p /= p.sum(axis=1, keepdims=True)
            feats = p.astype(np.float32)
            aux = np.log(p)
    phone_ids, phones = _encode([items.phones[i] for i in keep])
    spk_ids, speakers = _encode([items.speakers[i] for i in keep])
    if context == "within":
        ctx_ids, _ = _encode([f"{items.prevs[i]}\t{items.nexts[i]}" for i in keep])
    else:
        ctx_ids = np.zeros(len(keep), np.int64)
    return AbxItems(
        feats=feats,
        aux=aux,
        codes=codes,
        starts=np.asarray(starts, np.int64),
        lengths=np.asarray(lengths, np.int64),
        phone=phone_ids,
        context=ctx_ids,
        speaker=spk_ids,
        phones=phones,
        speakers=speakers,
        kind=distance,
        num_clipped=int(clipped),
        num_empty=int(empty),
    )


def _encode(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    names = sorted(set(labels))
    lookup = {n: i for i, n in enumerate(names)}
    return np.array([lookup[x] for x in labels], np.int64), names


def _frame_span(times: FrameTimes, num_frames: int) -> tuple[float, float]:
    """Start and end in seconds of the span ``num_frames`` frames cover."""
    half = times.frame_shift / 2
    return times.frame_offset - half, times.frame_offset + (num_frames - 1) * times.frame_shift + half


def subsample_groups(data: AbxItems, *, max_size_group: int | None, seed: int) -> np.ndarray:
    """Indices of the items kept when each (phone, context, speaker) group is capped.

    Returns
    -------
    ``(num_kept,)`` int64 item indices, sorted; all items when ``max_size_group`` is None.
    """
    n = len(data.starts)
    if max_size_group is None:
        return np.arange(n, dtype=np.int64)
    if max_size_group < 1:
        raise DataError(f"must be >= 1 or None, got {max_size_group}", field="max_size_group")
    rng = np.random.default_rng([seed, 0])
    order = np.lexsort((data.speaker, data.context, data.phone))
    key = np.stack([data.phone[order], data.context[order], data.speaker[order]], axis=1)
    bounds = np.flatnonzero(np.any(key[1:] != key[:-1], axis=1)) + 1
    kept = []
    for group in np.split(order, bounds):
        if len(group) > max_size_group:
            group = rng.choice(group, size=max_size_group, replace=False)
        kept.append(group)
    return np.sort(np.concatenate(kept))


def abx_errors(
    data: AbxItems,
    *,
    speaker_modes: tuple[str, ...] = ("within", "across"),
    max_size_group: int | None = 10,
    max_x_across: int | None = 5,
    seed: int = 0,
    threads: int | None = None,
    max_batch_pairs: int = 200_000,
    progress: bool = False,
) -> dict[str, float | None]:
    """ABX error rates (fractions in [0, 1]) per speaker mode.

    Parameters
    ----------
    data : items from :func:`prepare_abx_items`.
    speaker_modes : any of ``"within"``, ``"across"``.
    max_size_group : items kept per (phone, context, speaker) group; None = exact mode.
    max_x_across : X speakers per (A-phone, context, A-speaker) across speakers; None = all.
    seed : seeds both subsamplings; results are deterministic.
    threads : numba threads (None keeps numba's setting).
    max_batch_pairs : item distances computed per batch (bounds memory).
    progress : show a progress bar.

    Returns
    -------
    ``{mode: error}``; ``None`` for a mode without any (A, B, X) triplet.
    """
    for mode in speaker_modes:
        if mode not in ("within", "across"):
            raise DataError(f"speaker mode must be 'within' or 'across', got {mode!r}", field="speaker_mode")
    if max_x_across is not None and max_x_across < 1:
        raise DataError(f"must be >= 1 or None, got {max_x_across}", field="max_x_across")
    if threads is not None and not 1 <= threads <= numba.config.NUMBA_NUM_THREADS:
        # numba's own error is a traceback from deep inside it
        raise DataError(f"must be between 1 and {numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS), got {threads}",
                        field="threads")
    from threadpoolctl import threadpool_limits

    importlib.import_module("scipy.linalg.cython_blas")  # the BLAS numba's np.dot calls: loaded, so limited

    previous_threads = numba.get_num_threads()
    if threads is not None:
        numba.set_num_threads(threads)
    # the numba threads run one single-threaded BLAS call per tile each: a multi-threaded
    # BLAS would spin idle threads (3x the CPU time measured) and exceed ``threads``
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            kept = subsample_groups(data, max_size_group=max_size_group, seed=seed)
            out: dict[str, float | None] = {}
            for mode in speaker_modes:
                rng = np.random.default_rng([seed, 1])
                cells = _cells(data, kept, mode=mode, max_x_across=max_x_across, rng=rng)
                out[mode] = _score(data, cells, mode=mode, max_batch_pairs=max_batch_pairs, progress=progress)
        return out
    finally:
        numba.set_num_threads(previous_threads)


@dataclass
class _Cell:
    """Items of one (context, speaker) pair and, across speakers, their X items."""

    speaker: int
    rows: np.ndarray  # item indices, grouped by phone
    row_groups: list[tuple[int, int, int]]  # (phone, start, length) of each group in rows
    cols: np.ndarray | None = None  # across: X items, grouped by (phone, X speaker)
    col_groups: list[tuple[int, int, int]] | None = None  # (phone, start, length)


def _cells(data: AbxItems, kept: np.ndarray, *, mode: str, max_x_across: int | None, rng) -> Iterator[_Cell]:
    groups: dict[int, dict[int, dict[int, list[int]]]] = {}  # context -> speaker -> phone -> items
    for i in kept.tolist():
        c, s, p = int(data.context[i]), int(data.speaker[i]), int(data.phone[i])
        groups.setdefault(c, {}).setdefault(s, {}).setdefault(p, []).append(i)
    for c in sorted(groups):
        by_speaker = groups[c]
        for s in sorted(by_speaker):
            by_phone = by_speaker[s]
            if len(by_phone) < 2:
                continue
            phones = sorted(by_phone)
            row_groups, start = [], 0
            for p in phones:
                row_groups.append((p, start, len(by_phone[p])))
                start += len(by_phone[p])
            rows = np.array([i for p in phones for i in by_phone[p]], np.int64)
            if mode == "within":
                if any(n >= 2 for _, _, n in row_groups):
                    yield _Cell(s, rows, row_groups)
                continue
            col_groups, cols, start = [], [], 0
            for p in phones:
                others = sorted(o for o in by_speaker if o != s and p in by_speaker[o])
                if max_x_across is not None and len(others) > max_x_across:
                    others = sorted(rng.choice(others, size=max_x_across, replace=False).tolist())
                for o in others:
                    col_groups.append((p, start, len(by_speaker[o][p])))
                    cols.extend(by_speaker[o][p])
                    start += len(by_speaker[o][p])
            if cols:
                yield _Cell(s, rows, row_groups, np.array(cols, np.int64), col_groups)


def _score(data: AbxItems, cells: Iterator[_Cell], *, mode: str, max_batch_pairs: int, progress: bool) -> float | None:
    n_spk, n_ph = len(data.speakers), len(data.phones)
    acc_sum = np.zeros(n_spk * n_ph * n_ph)
    acc_cnt = np.zeros(n_spk * n_ph * n_ph)
    bar = None
    if progress:
        from speechrep.utils.progress import progress_bar

        bar = progress_bar(desc=f"ABX {mode}", unit="cells", leave=False)
    batch: list[_Cell] = []
    pairs = 0
    for cell in cells:
        batch.append(cell)
        pairs += len(cell.rows) * (len(cell.rows) if cell.cols is None else len(cell.cols))
        if pairs >= max_batch_pairs:
            _score_batch(data, batch, acc_sum, acc_cnt, n_ph)
            if bar is not None:
                bar.update(len(batch))
            batch, pairs = [], 0
    if batch:
        _score_batch(data, batch, acc_sum, acc_cnt, n_ph)
        if bar is not None:
            bar.update(len(batch))
    if bar is not None:
        bar.close()
    # mean over contexts (and X speakers), then over speakers, then over ordered phone pairs
    acc_sum, acc_cnt = acc_sum.reshape(n_spk, n_ph * n_ph), acc_cnt.reshape(n_spk, n_ph * n_ph)
    has = acc_cnt > 0
    per_speaker = np.where(has, acc_sum / np.maximum(acc_cnt, 1), 0.0)
    n_speakers = has.sum(axis=0)
    if not n_speakers.any():
        return None
    pair_has = n_speakers > 0
    return float((per_speaker.sum(axis=0)[pair_has] / n_speakers[pair_has]).mean())


def _score_batch(data: AbxItems, batch: list[_Cell], acc_sum: np.ndarray, acc_cnt: np.ndarray, n_ph: int) -> None:
    """Compute every item distance the batch's cells need, then score all their triplets."""
    rows_all, cols_all = [], []
    # tile columns: matrix offset, matrix width, rows base, first row, row count, cols
    # base, first column, column count, symmetric (0 no, 1 yes, 2 yes and diagonal tile)
    tiles: list[tuple[int, ...]] = []
    # task columns: matrix offset, matrix width, A rows, B rows, X columns, symmetric, accumulator
    tasks: list[tuple[int, ...]] = []
    offset = rbase = cbase = 0
    for cell in batch:
        rows = cell.rows
        sym = cell.cols is None
        # within: one symmetric (rows x rows) matrix, X ranges over the A rows themselves;
        # across: (rows x X columns) matrix, X columns grouped by (A phone, X speaker)
        cols = rows if sym else cell.cols
        n = len(cols)
        row_chunks = chunks(data.lengths[rows])
        col_chunks = row_chunks if sym else chunks(data.lengths[cols])
        for ci, (p0, np_) in enumerate(row_chunks):
            for cj, (q0, nq) in enumerate(col_chunks):
                if not sym or cj > ci:
                    tiles.append((offset, n, rbase, p0, np_, cbase, q0, nq, int(sym)))
                elif cj == ci:
                    tiles.append((offset, n, rbase, p0, np_, cbase, q0, nq, 2))
        rows_all.append(rows)
        cols_all.append(cols)
        if sym:
            for a, a0, na in cell.row_groups:
                if na < 2:
                    continue
                for b, b0, nb in cell.row_groups:
                    if b != a:
                        tasks.append((offset, n, a0, na, b0, nb, a0, na, 1, (cell.speaker * n_ph + a) * n_ph + b))
        else:
            row_of = {p: (p0, np_) for p, p0, np_ in cell.row_groups}
            for a, x0, nx in cell.col_groups:
                a0, na = row_of[a]
                for b, b0, nb in cell.row_groups:
                    if b != a:
                        tasks.append((offset, n, a0, na, b0, nb, x0, nx, 0, (cell.speaker * n_ph + a) * n_ph + b))
        offset += len(rows) * n
        rbase += len(rows)
        cbase += n
    if not tasks:
        return
    matrices = np.empty(offset)
    tile_distances(
        _KIND[data.kind],
        data.feats,
        data.aux,
        data.codes,
        data.starts,
        data.lengths,
        np.concatenate(rows_all),
        np.concatenate(cols_all),
        np.array(tiles, np.int64),
        matrices,
    )
    t = np.array(tasks, np.int64)
    err = task_errors(matrices, t[:, :9])
    np.add.at(acc_sum, t[:, 9], err)
    np.add.at(acc_cnt, t[:, 9], 1.0)

