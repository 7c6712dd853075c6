"""ABX: the fast grouped/numba implementation against a slow brute-force reference."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest

from speechrep.errors import DataError
from speechrep.eval.abx import abx_errors, prepare_abx_items, subsample_groups
from speechrep.eval.inputs import FrameTimes
from speechrep.eval.items import ItemSet

TIMES = FrameTimes(0.01, 0.0125)


def _synthetic(seed: int = 0, n_spk: int = 3, n_utt: int = 2, per_utt: int = 12, dim: int = 4, units: int = 0):
    """Random features (or units) and random short items in a few contexts."""
    rng = np.random.default_rng(seed)
    frames, cols = {}, {k: [] for k in ("f", "on", "off", "ph", "prev", "next", "spk")}
    for s in range(n_spk):
        for u in range(n_utt):
            utt = f"s{s}_u{u}"
            n = 10 * per_utt + 5
            if units:
                frames[utt] = rng.integers(0, units, size=n)
            else:
                frames[utt] = rng.normal(size=(n, dim)).astype(np.float32)
            for k in range(per_utt):
                on = 0.1 * k + rng.uniform(0, 0.02)
                for col, v in zip(
                    cols.values(),
                    (utt, on, on + rng.uniform(0.02, 0.09), rng.choice(["a", "b", "c"]), rng.choice(["x", "y"]), "z", f"s{s}"),
                ):
                    col.append(v)
    items = ItemSet(
        cols["f"], np.array(cols["on"]), np.array(cols["off"]), cols["ph"], cols["prev"], cols["next"], cols["spk"]
    )
    return frames, items


# ---------------------------------------------------------------- brute-force reference


def _ref_frames(x: np.ndarray, onset: float, offset: float) -> np.ndarray:
    keep = [i for i in range(len(x)) if onset - 1e-6 <= 0.0125 + 0.01 * i <= offset + 1e-6]
    return x[keep]


def _ref_frame_distance(kind: str, p, q) -> float:
    if kind == "cosine":
        p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
        c = float(p @ q / (np.linalg.norm(p) * np.linalg.norm(q)))
        return math.acos(min(1.0, max(-1.0, c))) / math.pi
    if kind == "kl":
        p = np.asarray(p, np.float64) + 1e-10
        q = np.asarray(q, np.float64) + 1e-10
        p, q = p / p.sum(), q / q.sum()
        return float(0.5 * (np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p))))
    return float(p != q)


def _ref_dtw(kind: str, x, y) -> float:
    """Full cost matrix, then an explicit backtrack (diagonal, then left, then up on ties)."""
    n, m = len(x), len(y)
    d = [[_ref_frame_distance(kind, x[i], y[j]) for j in range(m)] for i in range(n)]
    cost = [[0.0] * m for _ in range(n)]
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                best = 0.0
            elif i == 0:
                best = cost[0][j - 1]
            elif j == 0:
                best = cost[i - 1][0]
            else:
                best = min(cost[i - 1][j - 1], cost[i][j - 1], cost[i - 1][j])
            cost[i][j] = best + d[i][j]
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        diag, left, up = cost[i - 1][j - 1], cost[i][j - 1], cost[i - 1][j]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j
    return cost[n - 1][m - 1] / length


def _ref_edit(x, y) -> float:
    def collapse(s):
        return [v for k, v in enumerate(s) if k == 0 or s[k - 1] != v]

    a, b = collapse(list(x)), collapse(list(y))
    dist = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        for j in range(len(b) + 1):
            if i == 0 or j == 0:
                dist[i][j] = i + j
            else:
                dist[i][j] = min(dist[i - 1][j] + 1, dist[i][j - 1] + 1, dist[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return dist[len(a)][len(b)] / max(len(a), len(b))


def _ref_abx(frames, items: ItemSet, kind: str, mode: str, context: str = "within", keep=None) -> float:
    """Enumerate every (A, B, X) triplet of the definition; average as the module documents."""
    segs = {}
    for i in range(len(items)):
        x = _ref_frames(frames[items.files[i]], items.onsets[i], items.offsets[i])
        if len(x):
            segs[i] = x
    order = sorted(segs)  # index among kept items = position in this list
    if keep is not None:
        order = [order[k] for k in keep]
    rank = {i: r for r, i in enumerate(sorted(segs))}

    @functools.cache
    def dist(i, j):
        if rank[i] > rank[j]:
            return dist(j, i)
        if kind == "edit":
            return _ref_edit(segs[i], segs[j])
        return _ref_dtw(kind, segs[i], segs[j])

    def ctx(i):
        return (items.prevs[i], items.nexts[i]) if context == "within" else ()

    groups = {}
    for i in order:
        groups.setdefault((items.phones[i], ctx(i), items.speakers[i]), []).append(i)
    phones = sorted({k[0] for k in groups})
    speakers = sorted({k[2] for k in groups})
    contexts = sorted({k[1] for k in groups})
    per_spk_pair = {}
    for a, b, s in itertools.product(phones, phones, speakers):
        if a == b:
            continue
        cells = []
        for c in contexts:
            A, B = groups.get((a, c, s), []), groups.get((b, c, s), [])
            if not B:
                continue
            if mode == "within":
                xs = [(A, True)] if len(A) >= 2 else []
            else:
                xs = [(groups[(a, c, t)], False) for t in speakers if t != s and (a, c, t) in groups] if A else []
            for X, same in xs:
                score = total = 0
                for x in X:
                    for ai in A:
                        if same and ai == x:
                            continue
                        for bi in B:
                            dxa, dxb = dist(x, ai), dist(x, bi)
                            score += 1.0 if dxa < dxb else 0.5 if dxa == dxb else 0.0
                            total += 1
                cells.append(1 - score / total)
        if cells:
            per_spk_pair.setdefault((a, b), []).append(sum(cells) / len(cells))
    return float(np.mean([np.mean(v) for v in per_spk_pair.values()]))


# ---------------------------------------------------------------- tests


@pytest.mark.nojit
@pytest.mark.parametrize("mode", ["within", "across"])
@pytest.mark.parametrize("kind", ["cosine", "kl", "onehot", "edit"])
def test_fast_abx_equals_brute_force(kind, mode):
    discrete = kind in ("onehot", "edit")
    frames, items = _synthetic(seed=1, units=3 if discrete else 0)
    if kind == "kl":
        frames = {u: np.exp(x) / np.exp(x).sum(1, keepdims=True) for u, x in frames.items()}
    data = prepare_abx_items(frames, items, TIMES, distance=kind)
    fast = abx_errors(data, speaker_modes=(mode,), max_size_group=None, max_x_across=None)[mode]
    ref = _ref_abx(frames, items, kind, mode)
    assert fast == pytest.approx(ref, abs=1e-6)
    # a tiny memory budget: cells scored in many batches, same result
    small = abx_errors(data, speaker_modes=(mode,), max_size_group=None, max_x_across=None, max_batch_pairs=50)[mode]
    assert small == pytest.approx(ref, abs=1e-6)
    # random features: close to chance, so the reference is not trivially 0 or 1
    assert 0.2 < ref < 0.8


@pytest.mark.nojit
def test_phone_only_mode_equals_brute_force():
    frames, items = _synthetic(seed=2, per_utt=6)
    data = prepare_abx_items(frames, items, TIMES, context="any")
    for mode in ("within", "across"):
        fast = abx_errors(data, speaker_modes=(mode,), max_size_group=None, max_x_across=None)[mode]
        assert fast == pytest.approx(_ref_abx(frames, items, "cosine", mode, context="any"), abs=1e-6)


@pytest.mark.nojit
def test_subsampled_abx_equals_brute_force_on_kept_items():
    frames, items = _synthetic(seed=3, per_utt=16)
    data = prepare_abx_items(frames, items, TIMES)
    kept = subsample_groups(data, max_size_group=2, seed=7)
    assert len(kept) < len(data.starts)
    fast = abx_errors(data, speaker_modes=("within",), max_size_group=2, seed=7)["within"]
    assert fast == pytest.approx(_ref_abx(frames, items, "cosine", "within", keep=kept.tolist()), abs=1e-6)


def test_subsampling_caps_groups_and_is_seeded():
    frames, items = _synthetic(seed=4, per_utt=16)
    data = prepare_abx_items(frames, items, TIMES)
    kept = subsample_groups(data, max_size_group=3, seed=0)
    keys = list(zip(data.phone[kept], data.context[kept], data.speaker[kept]))
    assert max(keys.count(k) for k in set(keys)) == 3
    assert np.array_equal(kept, subsample_groups(data, max_size_group=3, seed=0))
    assert not np.array_equal(kept, subsample_groups(data, max_size_group=3, seed=1))
    assert abx_errors(data, seed=5) == abx_errors(data, seed=5)


def test_across_x_speakers_are_capped():
    frames, items = _synthetic(seed=5, n_spk=4, n_utt=1)
    data = prepare_abx_items(frames, items, TIMES)
    one = abx_errors(data, speaker_modes=("across",), max_size_group=None, max_x_across=1, seed=0)["across"]
    every = abx_errors(data, speaker_modes=("across",), max_size_group=None, max_x_across=None)["across"]
    assert every == pytest.approx(_ref_abx(frames, items, "cosine", "across"), abs=1e-6)
    assert one != pytest.approx(every, abs=1e-9)


def _hand_items(spec):
    """spec: [(utt, onset, offset, phone, speaker)] in one context."""
    return ItemSet(
        [s[0] for s in spec],
        np.array([s[1] for s in spec]),
        np.array([s[2] for s in spec]),
        [s[3] for s in spec],
        ["x"] * len(spec),
        ["y"] * len(spec),
        [s[4] for s in spec],
    )


def test_hand_computed_within_and_ties():
    # one utterance, 1-frame items (centres 0.0125 + 0.01 i); angles: a1=0, a2=10deg, b=90deg
    deg = np.deg2rad([0.0, 10.0, 90.0, 90.0])
    frames = {"u": np.stack([np.cos(deg), np.sin(deg)], 1).astype(np.float32)}
    spec = [("u", 0.01, 0.015, "a", "s"), ("u", 0.02, 0.025, "a", "s"), ("u", 0.03, 0.035, "b", "s")]
    data = prepare_abx_items(frames, _hand_items(spec), TIMES)
    # (a, b): X=a1 A=a2 B=b -> correct; X=a2 A=a1 -> correct. (b, a): B group has 1 item -> no X.
    assert abx_errors(data, speaker_modes=("within",), max_size_group=None)["within"] == 0.0
    # B identical to X's distance: a2 and b both at 90deg from... use a tie: X=b1, A=b2, B=a?
    spec_tie = [("u", 0.03, 0.035, "b", "s"), ("u", 0.04, 0.045, "b", "s"), ("u", 0.01, 0.015, "a", "s")]
    data = prepare_abx_items(frames, _hand_items(spec_tie), TIMES)
    # X=b1, A=b2: d=0; B=a1: d=0.5 -> correct for both X -> error 0
    assert abx_errors(data, speaker_modes=("within",), max_size_group=None)["within"] == 0.0
    frames_tie = {"u": np.array([[1, 0], [0, 1], [-1, 0]], np.float32)}
    spec = [("u", 0.01, 0.015, "a", "s"), ("u", 0.02, 0.025, "b", "s"), ("u", 0.03, 0.035, "a", "s")]
    data = prepare_abx_items(frames_tie, _hand_items(spec), TIMES)
    # X=a1: d(A=a3)=1 > d(B)=0.5 -> wrong; X=a3 likewise -> error 1
    assert abx_errors(data, speaker_modes=("within",), max_size_group=None)["within"] == 1.0


def test_item_frames_include_both_ends_and_compat_flag_drops_last():
    frames = {"u": np.eye(6, dtype=np.float32)}
    spec = [("u", 0.0125, 0.0325, "a", "s")]  # centres 0.0125, 0.0225, 0.0325: 3 frames
    data = prepare_abx_items(frames, _hand_items(spec), TIMES)
    assert data.lengths.tolist() == [3] and data.starts.tolist() == [0]
    data = prepare_abx_items(frames, _hand_items(spec), TIMES, drop_last_frame=True)
    assert data.lengths.tolist() == [2]
    # librosa-centred frames: centres 0.0, 0.01, 0.02, 0.03 -> frames 2, 3
    data = prepare_abx_items(frames, _hand_items(spec), FrameTimes(0.01, 0.0))
    assert data.starts.tolist() == [2] and data.lengths.tolist() == [2]


def test_clipped_and_empty_items_are_counted():
    frames = {"u": np.eye(4, dtype=np.float32)}  # centres up to 0.0425; covers [0.0075, 0.0475]
    spec = [("u", 0.0, 0.02, "a", "s"), ("u", 0.03, 0.09, "a", "s"), ("u", 0.015, 0.02, "b", "s"), ("u", 0.02, 0.03, "b", "s")]
    data = prepare_abx_items(frames, _hand_items(spec), TIMES)
    assert data.num_clipped == 2 and data.num_empty == 1 and len(data.starts) == 3


def test_bad_inputs():
    frames, items = _synthetic(seed=0)
    with pytest.raises(DataError, match="distance"):
        prepare_abx_items(frames, items, TIMES, distance="euclid")
    with pytest.raises(DataError, match="#file"):
        prepare_abx_items({k: v for k, v in frames.items() if k != "s0_u0"}, items, TIMES, source="x.item")
    with pytest.raises(DataError, match="no item has a frame"):
        prepare_abx_items({"u": np.eye(6, dtype=np.float32)}, _hand_items([("u", 0.015, 0.02, "a", "s")]), TIMES)
    with pytest.raises(DataError, match="non-negative"):
        prepare_abx_items(frames, items, TIMES, distance="kl")
    with pytest.raises(DataError, match="integer units"):
        prepare_abx_items(frames, items, TIMES, distance="onehot")
    data = prepare_abx_items(frames, items, TIMES)
    with pytest.raises(DataError, match="speaker mode"):
        abx_errors(data, speaker_modes=("both",))


# ---------------------------------------------------------------- bad input, one line naming the utterance


def _one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("distance", ["cosine", "kl"])
def test_non_finite_features_name_the_utterance(bad, distance):
    frames, items = _synthetic(seed=0)
    frames = {u: np.abs(x) for u, x in frames.items()}
    frames["s1_u1"][7, 2] = bad
    with pytest.raises(DataError, match="NaN or infinite") as e:
        prepare_abx_items(frames, items, TIMES, distance=distance, source="x.item")
    msg = _one_line(e)
    assert msg.startswith("s1_u1: features contain") and "frame 7" in msg


def test_item_outside_the_features_names_the_utterance():
    frames, items = _synthetic(seed=0)
    # the features of one utterance end before its items start: not the same recording
    frames["s2_u0"] = frames["s2_u0"][:3]
    with pytest.raises(DataError, match="lies outside the 3 frames") as e:
        prepare_abx_items(frames, items, TIMES, source="x.item")
    assert "s2_u0" in _one_line(e)
    # an utterance without frames at all
    frames["s2_u0"] = frames["s2_u0"][:0]
    with pytest.raises(DataError, match="lies outside the 0 frames") as e:
        prepare_abx_items(frames, items, TIMES, source="x.item")
    assert "s2_u0" in _one_line(e)
    # items that only reach a little past the end are kept, clipped (padding conventions)
    frames, items = _synthetic(seed=0)
    data = prepare_abx_items({u: x[:-8] for u, x in frames.items()}, items, TIMES)
    assert data.num_clipped > 0


def test_zero_dimension_and_mixed_dimension_features_name_the_utterance():
    frames, items = _synthetic(seed=0)
    frames["s0_u1"] = np.zeros((len(frames["s0_u1"]), 0), np.float32)
    with pytest.raises(DataError, match="zero dimensions") as e:
        prepare_abx_items(frames, items, TIMES)
    assert "s0_u1" in _one_line(e)
    frames, items = _synthetic(seed=0)
    frames["s0_u1"] = np.zeros((len(frames["s0_u1"]), 3), np.float32)
    with pytest.raises(DataError, match="dimension 3 differs from 4 of s0_u0") as e:
        prepare_abx_items(frames, items, TIMES)
    assert "s0_u1" in _one_line(e)


def test_non_integer_units_name_the_utterance():
    frames, items = _synthetic(seed=0, units=3)
    frames = {u: x.astype(np.float64) for u, x in frames.items()}
    data = prepare_abx_items(frames, items, TIMES, distance="onehot")  # integral floats are fine
    assert data.codes.dtype == np.int64
    frames["s1_u0"][4] = np.nan
    with pytest.raises(DataError, match="units must be integers") as e:
        prepare_abx_items(frames, items, TIMES, distance="onehot")
    assert "s1_u0" in _one_line(e)


# ---------------------------------------------------------------- the fast path's pieces


def test_angles_kernel_matches_libm_arccos():
    from speechrep.eval.abx_kernels import _angles

    rng = np.random.default_rng(0)
    near_one, tiny = 1 - 2.0 ** -np.arange(1, 53), 2.0 ** -np.arange(1, 60)
    edges = np.concatenate([[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 1e-300], near_one, tiny])
    x = np.concatenate([rng.uniform(-1, 1, 20000), edges, -edges])
    got = x.copy()
    _angles(got, len(got))
    want = np.arccos(np.clip(x, -1, 1)) / np.pi
    assert np.abs(got - want).max() <= 4.5e-16


@pytest.mark.nojit
@pytest.mark.parametrize("kind", ["cosine", "kl", "edit"])
def test_items_split_over_many_tiles_equal_brute_force(kind, monkeypatch):
    import speechrep.eval.abx_kernels as abx_kernels

    discrete = kind == "edit"
    frames, items = _synthetic(seed=6, units=3 if discrete else 0)
    if kind == "kl":
        frames = {u: np.exp(x) / np.exp(x).sum(1, keepdims=True) for u, x in frames.items()}
    data = prepare_abx_items(frames, items, TIMES, distance=kind)
    # tiles of ~12 frames: every cell's frame distances come in many BLAS calls
    monkeypatch.setattr(abx_kernels, "TILE_FRAMES", 12)
    assert len(abx_kernels.chunks(data.lengths)) > 20
    for mode in ("within", "across"):
        fast = abx_errors(data, speaker_modes=(mode,), max_size_group=None, max_x_across=None)[mode]
        assert fast == pytest.approx(_ref_abx(frames, items, kind, mode), abs=1e-6)


def test_zero_frames_are_at_zero_from_each_other_and_half_from_others():
    frames = {"u": np.array([[0, 0], [0, 0], [1, 0], [0, 1]], np.float32)}
    # X, A: zero frames (distance 0); B: a non-zero frame (0.5): no error either way
    spec = [("u", 0.01, 0.015, "a", "s"), ("u", 0.02, 0.025, "a", "s"), ("u", 0.03, 0.035, "b", "s")]
    data = prepare_abx_items(frames, _hand_items(spec), TIMES)
    assert abx_errors(data, speaker_modes=("within",), max_size_group=None)["within"] == 0.0
    # X a zero frame, A at 0.5 from it, B a zero frame at 0: always wrong
    spec = [("u", 0.01, 0.015, "a", "s"), ("u", 0.03, 0.035, "a", "s"), ("u", 0.02, 0.025, "b", "s")]
    data = prepare_abx_items(frames, _hand_items(spec), TIMES)
    # X=a1 (zero): d(A=a3)=0.5 > d(B=zero)=0 -> wrong; X=a3: d(a1)=0.5 = d(B)=0.5 -> tie
    assert abx_errors(data, speaker_modes=("within",), max_size_group=None)["within"] == 0.75


def test_threads_do_not_change_the_result():
    frames, items = _synthetic(seed=7, n_spk=4, per_utt=16)
    data = prepare_abx_items(frames, items, TIMES)
    assert abx_errors(data, threads=2, max_size_group=3) == abx_errors(data, threads=1, max_size_group=3)
