"""The numba kernels of the ABX evaluation (:mod:`speechrep.eval.abx`): frame norms, frame
distances of a tile of items in one BLAS call, DTW over the tile's pairs, ABX task errors.

Kept apart from the item logic so that each module stays readable; the tile plan and the
distance definitions are described in :mod:`speechrep.eval.abx`.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["KL_FLOOR", "TILE_FRAMES", "chunks", "frame_norms", "tile_distances", "task_errors"]

KL_FLOOR = 1e-10
# frames per side of one frame-distance tile: <= ~40 MB of float64 per thread
TILE_FRAMES = 2048
# fdlibm's arccos constants (e_acos.c): pi/2 in two parts, arcsin's rational approximation
_PIO2_HI = 1.57079632679489655800e00
_PIO2_LO = 6.12323399573676603587e-17
_PS = (
    1.66666666666666657415e-01,
    -3.25565818622400915405e-01,
    2.01212532134862925881e-01,
    -4.00555345006794114027e-02,
    7.91534994289814532176e-04,
    3.47933107596021167570e-05,
)
_QS = (-2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01, 7.70381505559019352791e-02)


@numba.njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def frame_norms(feats):
    """``(frames,)`` float64 Euclidean norm of each float32 frame (no float64 copy)."""
    out = np.empty(feats.shape[0])
    for t in numba.prange(feats.shape[0]):
        s = 0.0
        for k in range(feats.shape[1]):
            s += np.float64(feats[t, k]) * np.float64(feats[t, k])
        out[t] = np.sqrt(s)
    return out


def chunks(lengths: np.ndarray) -> list[tuple[int, int]]:
    """Runs of consecutive items of about ``TILE_FRAMES`` frames: ``[(first, count)]``."""
    if lengths.sum() <= TILE_FRAMES:
        return [(0, len(lengths))]
    # an item joins the tile its first frame falls in: a tile holds < TILE_FRAMES + one item
    tile = (np.cumsum(lengths) - lengths) // TILE_FRAMES
    first = np.flatnonzero(np.diff(tile, prepend=-1))
    return list(zip(first.tolist(), np.diff(first, append=len(lengths)).tolist()))


# reassociation lets LLVM vectorise the reductions (summation order differs by ~1e-16)
@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _kl_dot(feats, aux, u, v):
    s = 0.0
    for k in range(feats.shape[1]):
        s += (np.float64(feats[u, k]) - np.float64(feats[v, k])) * (aux[u, k] - aux[v, k])
    return s


@numba.njit(cache=True, nogil=True)
def _frame_offsets(starts, lengths, items):
    """First frame of each item in the feature array and in a tile: ``(frames, offsets)``."""
    offsets = np.empty(len(items) + 1, np.int64)
    offsets[0] = 0
    for k in range(len(items)):
        offsets[k + 1] = offsets[k] + lengths[items[k]]
    frames = np.empty(offsets[-1], np.int64)
    for k in range(len(items)):
        for f in range(lengths[items[k]]):
            frames[offsets[k] + f] = starts[items[k]] + f
    return frames, offsets


@numba.njit(cache=True, nogil=True)
def _unit_frames(feats, aux, frames):
    """``(len(frames), dim + 1)`` float64 frames scaled to unit norm.

    A zero frame becomes the extra unit axis instead: at angle 0 from another zero frame
    and pi/2 from every other frame, as the cosine distance defines it.
    """
    dim = feats.shape[1]
    out = np.empty((len(frames), dim + 1))
    for k in range(len(frames)):
        f = frames[k]
        norm = aux[f, 0]
        # a multiplication vectorises, a division per element would cost as much as the BLAS call
        scale = 0.0 if norm == 0.0 else 1.0 / norm
        for c in range(dim):
            out[k, c] = np.float64(feats[f, c]) * scale
        out[k, dim] = 1.0 if norm == 0.0 else 0.0
    return out


@numba.njit(cache=True, nogil=True)
def _frame_matrix(kind, feats, aux, codes, row_frames, col_frames, same):
    """Frame-level values of a tile: cosines (``kind`` 0, one BLAS call), else distances."""
    if kind == 0:
        r = _unit_frames(feats, aux, row_frames)
        c = r if same else _unit_frames(feats, aux, col_frames)
        return np.dot(r, c.T)
    g = np.empty((len(row_frames), len(col_frames)))
    for i in range(len(row_frames)):
        for j in range(len(col_frames)):
            u, v = row_frames[i], col_frames[j]
            if kind == 1:  # symmetrised KL of renormalised posteriors
                g[i, j] = 0.5 * _kl_dot(feats, aux, u, v)
            else:
                g[i, j] = 0.0 if codes[u] == codes[v] else 1.0
    return g


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _angles(d, n):
    """``d[:n] = arccos(d[:n]) / pi`` in place (clipped to [-1, 1]), within 2.3e-16 of libm.

    fdlibm's arccos (rational approximation of arcsin; ``2 arcsin(sqrt((1 - |x|) / 2))``
    above 0.5) with selects instead of branches, so that LLVM vectorises it: 4x faster than
    libm's scalar call, which was a quarter of the ABX time.
    """
    for j in range(n):
        x = min(1.0, max(-1.0, d[j]))
        ax = abs(x)
        big = ax > 0.5
        zb = (1.0 - ax) * 0.5
        zs = x * x
        z = zb if big else zs
        p = z * (_PS[0] + z * (_PS[1] + z * (_PS[2] + z * (_PS[3] + z * (_PS[4] + z * _PS[5])))))
        q = 1.0 + z * (_QS[0] + z * (_QS[1] + z * (_QS[2] + z * _QS[3])))
        r = p / q
        s = np.sqrt(z)
        pos = 2.0 * (s + s * r)
        neg = 2.0 * _PIO2_HI - 2.0 * (s + (r * s - _PIO2_LO))
        small = _PIO2_HI - (x - (_PIO2_LO - x * r))
        big_x = pos if x > 0.0 else neg
        d[j] = (big_x if big else small) / np.pi


@numba.njit(cache=True, nogil=True)
def _dtw(kind, g, r0, n1, c0, n2, transpose, work):
    # frame distance (i, j) of the two items: tile entry (r0 + i, c0 + j), or (r0 + j, c0 + i)
    # when ``transpose`` (the column item is aligned first); cosines become angles / pi here,
    # only for the entries a pair needs. ``work``: (3, >= n2) scratch. Cost and length of
    # the chosen path, one row at a time in place; the predecessor is chosen exactly as a
    # backtrack from the end would choose it, so the path length is exact.
    if transpose:
        n1, n2 = n2, n1
    d, cost, length = work[0], work[1], work[2]
    for i in range(n1):
        if transpose:
            for j in range(n2):
                d[j] = g[r0 + j, c0 + i]
        else:
            for j in range(n2):
                d[j] = g[r0 + i, c0 + j]
        if kind == 0:
            _angles(d, n2)
        if i == 0:
            c, ln = d[0], 1.0
            cost[0], length[0] = c, ln
            for j in range(1, n2):
                c, ln = c + d[j], ln + 1.0
                cost[j], length[j] = c, ln
            continue
        diag, diag_l = cost[0], length[0]
        c, ln = diag + d[0], diag_l + 1.0
        cost[0], length[0] = c, ln
        for j in range(1, n2):
            up, up_l = cost[j], length[j]
            # ties: diagonal, then left (c), then up; selects, not branches: the choice is
            # unpredictable and mispredicted branches cost 3x the whole step
            use_diag = (diag <= c) & (diag <= up)
            use_up = up < c
            best = diag if use_diag else (up if use_up else c)
            best_l = diag_l if use_diag else (up_l if use_up else ln)
            c, ln = best + d[j], best_l + 1.0
            diag, diag_l = up, up_l
            cost[j], length[j] = c, ln
    return cost[n2 - 1] / length[n2 - 1]


@numba.njit(cache=True, nogil=True)
def _collapse(codes, s, n):
    out = np.empty(n, np.int64)
    m = 0
    for k in range(n):
        if m == 0 or codes[s + k] != out[m - 1]:
            out[m] = codes[s + k]
            m += 1
    return out[:m]


@numba.njit(cache=True, nogil=True)
def _edit(codes, s1, n1, s2, n2):
    a = _collapse(codes, s1, n1)
    b = _collapse(codes, s2, n2)
    prev = np.arange(len(b) + 1).astype(np.float64)
    cur = np.empty(len(b) + 1)
    for i in range(1, len(a) + 1):
        cur[0] = i
        for j in range(1, len(b) + 1):
            sub = prev[j - 1] + (0.0 if a[i - 1] == b[j - 1] else 1.0)
            cur[j] = min(sub, prev[j] + 1.0, cur[j - 1] + 1.0)
        prev, cur = cur, prev
    return prev[len(b)] / max(len(a), len(b))


@numba.njit(cache=True, parallel=True)
def tile_distances(kind, feats, aux, codes, starts, lengths, rows, cols, tiles, out):
    """Item distances of every tile into ``out`` (the batch's item matrices, flattened).

    A tile is a run of row items against a run of column items of one cell; its frame
    distances come in one matrix (one BLAS call for cosine), then DTW runs over each pair.
    """
    for t in numba.prange(tiles.shape[0]):
        off, width, rb, p0, np_, cb, q0, nq, sym = tiles[t]
        ru = rows[rb + p0 : rb + p0 + np_]
        cv = cols[cb + q0 : cb + q0 + nq]
        if kind == 3:
            g = np.empty((0, 0))
            roff = coff = np.empty(0, np.int64)
        else:
            row_frames, roff = _frame_offsets(starts, lengths, ru)
            col_frames, coff = _frame_offsets(starts, lengths, cv)
            g = _frame_matrix(kind, feats, aux, codes, row_frames, col_frames, sym == 2)
        work = np.empty((3, max(lengths[ru].max(), lengths[cv].max())))
        for a in range(np_):
            u = ru[a]
            for b in range(nq):
                if sym == 2 and b <= a:
                    continue
                v = cv[b]
                # symmetric distance: the earlier item of the item set is always aligned first
                if kind == 3:
                    s, e = min(u, v), max(u, v)
                    d = _edit(codes, starts[s], lengths[s], starts[e], lengths[e])
                else:
                    d = _dtw(kind, g, roff[a], lengths[u], coff[b], lengths[v], v < u, work)
                out[off + (p0 + a) * width + q0 + b] = d
                if sym:
                    out[off + (q0 + b) * width + p0 + a] = d


@numba.njit(cache=True, parallel=True)
def task_errors(matrices, tasks):
    out = np.empty(tasks.shape[0])
    for t in numba.prange(tasks.shape[0]):
        off, width, a0, na, b0, nb, x0, nx, sym = tasks[t]
        total = 0.0
        for xi in range(nx):
            x = x0 + xi
            for ai in range(na):
                a = a0 + ai
                if sym == 1 and a == x:
                    continue
                dxa = matrices[off + a * width + x]
                for bi in range(nb):
                    dxb = matrices[off + (b0 + bi) * width + x]
                    if dxa < dxb:
                        total += 1.0
                    elif dxa == dxb:
                        total += 0.5
        n_pos = na * (na - 1) if sym == 1 else na * nx
        out[t] = 1.0 - total / (n_pos * nb)
    return out
