"""CMVN, deltas, stacking and subsampling: Kaldi semantics, checked against kaldi-native-fbank."""

from __future__ import annotations

import numpy as np
import pytest

from speechrep.errors import ConfigError, DataError
from speechrep.features import (
    accumulate_cmvn_stats,
    add_deltas,
    apply_cmvn,
    compute_cmvn_stats,
    stack_frames,
    subsample_frames,
)

knf = pytest.importorskip("kaldi_native_fbank")


def _feats(n: int = 37, dim: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) * np.arange(1, dim + 1) + 3.0).astype(np.float32)


def test_cmvn_stats_have_kaldi_layout():
    x = _feats()
    stats = compute_cmvn_stats(x)
    assert stats.shape == (2, 6) and stats.dtype == np.float64
    np.testing.assert_allclose(stats, knf.compute_cmvn_stats(x), rtol=1e-12)
    assert stats[0, -1] == 37 and stats[1, -1] == 0


@pytest.mark.parametrize("norm_vars", [False, True])
def test_apply_cmvn_matches_kaldi(norm_vars):
    x = _feats()
    stats = compute_cmvn_stats(x)
    ours = apply_cmvn(x, stats, norm_vars=norm_vars)
    ref = knf.apply_cmvn(stats, knf.CmvnOptions(norm_vars=norm_vars), x)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(ours.mean(axis=0), 0.0, atol=1e-5)
    if norm_vars:
        np.testing.assert_allclose(ours.std(axis=0), 1.0, atol=1e-4)


def test_apply_cmvn_edge_cases():
    x = _feats()
    stats = compute_cmvn_stats(x)
    np.testing.assert_array_equal(apply_cmvn(x, stats, norm_means=False), x)
    with pytest.raises(ValueError, match="norm_means"):
        apply_cmvn(x, stats, norm_means=False, norm_vars=True)
    with pytest.raises(DataError, match="do not fit"):
        apply_cmvn(x[:, :4], stats)
    with pytest.raises(DataError, match="count"):
        apply_cmvn(x, np.zeros((2, 6)))
    # constant dimension: variance floored at 1e-20 as in Kaldi, no NaN
    c = np.ones((4, 2), np.float32)
    assert np.isfinite(apply_cmvn(c, compute_cmvn_stats(c), norm_vars=True)).all()


def test_per_speaker_stats_sum_their_utterances():
    a, b, c = _feats(10, seed=1), _feats(12, seed=2), _feats(7, seed=3)
    utt2spk = {"s1-a": "s1", "s1-b": "s1", "s2-a": "s2"}
    stats = accumulate_cmvn_stats([("s1-a", a), ("s1-b", b), ("s2-a", c)], utt2spk=utt2spk)
    assert list(stats) == ["s1", "s2"]
    np.testing.assert_allclose(stats["s1"], compute_cmvn_stats(np.concatenate([a, b])))
    per_utt = accumulate_cmvn_stats([("s1-a", a), ("s2-a", c)])
    np.testing.assert_allclose(per_utt["s2-a"], compute_cmvn_stats(c))
    with pytest.raises(DataError, match="no speaker"):
        accumulate_cmvn_stats([("x", a)], utt2spk=utt2spk)


@pytest.mark.nojit
@pytest.mark.parametrize("order,window", [(2, 2), (1, 1), (3, 2), (0, 2)])
def test_add_deltas_matches_kaldi(order, window):
    x = _feats(20, 3)
    ours = add_deltas(x, order=order, window=window)
    ref = knf.compute_deltas(knf.DeltaOptions(order=order, window=window), x)
    assert ours.shape == (20, 3 * (order + 1))
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.nojit
def test_add_deltas_worked_example():
    # x = [1, 2, 4], order 2, window 1: delta = [0.5, 1.5, 1.0], delta-delta = [0.75, 0.25, -0.75]
    out = add_deltas(np.array([[1.0], [2.0], [4.0]], np.float32), order=2, window=1)
    np.testing.assert_allclose(out, [[1, 0.5, 0.75], [2, 1.5, 0.25], [4, 1.0, -0.75]], atol=1e-6)
    with pytest.raises(ConfigError, match="window"):
        add_deltas(out, window=0)


def test_stack_and_subsample_frames():
    x = _feats(9, 4)
    ours = stack_frames(x, left_context=2, right_context=1)
    ref = knf.splice_frames(x, knf.SpliceOptions(left_context=2, right_context=1))
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(ours[0, :4], x[0])  # left edge repeats the first frame
    np.testing.assert_array_equal(ours[5, 8:12], x[5])  # centre block is the frame itself
    sub = subsample_frames(x, n=3, offset=1)
    np.testing.assert_array_equal(sub, x[[1, 4, 7]])
    assert subsample_frames(x, n=4).shape == (3, 4)
    with pytest.raises(ConfigError, match="offset"):
        subsample_frames(x, n=3, offset=3)
    with pytest.raises(DataError, match="num_frames, dim"):
        stack_frames(np.zeros(3))
