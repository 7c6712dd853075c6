"""Unit quality, codebook usage, bitrate, boundaries and probes on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from speechrep.errors import DataError
from speechrep.eval.bitrate import bitrate
from speechrep.eval.inputs import FrameTimes
from speechrep.eval.phone_discovery import baseline_features
from speechrep.eval.probe import phone_probe, speaker_probe, split_utterances
from speechrep.eval.segmentation import boundary_scores, phone_boundaries, unit_boundaries
from speechrep.eval.units import codebook_usage, contingency_table, unit_quality

# rows: phones a, b; columns: units 0, 1, 2 (8 frames)
TABLE = np.array([[3, 1, 0], [0, 2, 2]])


def test_unit_quality_by_hand():
    m = unit_quality(TABLE)
    h_y = math.log(2)  # p(a) = p(b) = 1/2
    h_z = -(2 * 3 / 8 * math.log(3 / 8) + 2 / 8 * math.log(2 / 8))
    h_yz = -(3 / 8 * math.log(3 / 8) + 1 / 8 * math.log(1 / 8) + 2 * 2 / 8 * math.log(2 / 8))
    mi = h_y + h_z - h_yz
    assert m["phone_purity"] == pytest.approx((3 + 2 + 2) / 8)  # best phone of each unit
    assert m["cluster_purity"] == pytest.approx((3 + 2) / 8)  # best unit of each phone
    assert m["pnmi"] == pytest.approx(mi / h_y) == pytest.approx(0.655639, abs=1e-6)
    assert m["completeness"] == pytest.approx(mi / h_z)
    h, c = mi / h_y, mi / h_z
    assert m["v_measure"] == pytest.approx(2 * h * c / (h + c))


def test_unit_quality_matches_sklearn():
    from sklearn.metrics import homogeneity_completeness_v_measure

    # the 8 frames of TABLE: (a, 0) x3, (a, 1), (b, 1) x2, (b, 2) x2
    ys = [0, 0, 0, 0, 1, 1, 1, 1]
    zs = [0, 0, 0, 1, 1, 1, 2, 2]
    m = unit_quality(TABLE)
    ref = homogeneity_completeness_v_measure(ys, zs)
    assert (m["homogeneity"], m["completeness"], m["v_measure"]) == pytest.approx(ref)


def test_contingency_table_skips_unlabelled_frames():
    labels = {"u1": ["a", "a", None, "b"], "u2": ["b", "a"]}
    units = {"u1": np.array([5, 5, 9, 7]), "u2": np.array([7, 7])}
    table, phones, unit_ids = contingency_table(labels, units)
    assert phones == ["a", "b"] and unit_ids.tolist() == [5, 7]
    assert table.tolist() == [[2, 1], [0, 2]]


def test_codebook_usage_by_hand():
    m = codebook_usage([np.array([0, 0]), np.array([1, 3])], codebook_size=5)
    assert m["perplexity"] == pytest.approx(2**1.5)  # p = 1/2, 1/4, 1/4: H = 1.5 bits
    assert (m["used_codes"], m["dead_codes"], m["codebook_size"]) == (3, 2, 5)
    with pytest.raises(DataError, match="outside the codebook"):
        codebook_usage([np.array([0, 6])], codebook_size=5)


def test_bitrate_by_hand():
    # merged: 1 2 3 | 3 1 -> p(1) = p(3) = 0.4, p(2) = 0.2; 5 symbols in 9 frames of 20 ms
    m = bitrate({"u1": np.array([1, 1, 2, 2, 2, 3]), "u2": np.array([3, 3, 1])}, frame_shift=0.02)
    entropy = -(2 * 0.4 * math.log2(0.4) + 0.2 * math.log2(0.2))
    assert m["entropy_bits"] == pytest.approx(entropy) == pytest.approx(1.521928, abs=1e-6)
    assert m["num_symbols"] == 5 and m["duration"] == pytest.approx(0.18)
    assert m["bitrate"] == pytest.approx(5 / 0.18 * entropy) == pytest.approx(42.2758, abs=1e-3)


def test_boundaries_from_units_and_alignment():
    kaldi = FrameTimes(0.01, 0.0125)
    # changes before frames 2 and 4: halfway between centres
    assert unit_boundaries(np.array([1, 1, 2, 2, 3]), kaldi) == pytest.approx([0.0275, 0.0475])
    assert unit_boundaries(np.array([1, 1, 2]), FrameTimes(0.02, 0.0)) == pytest.approx([0.03])
    segs = [(0.0, 0.1, "a"), (0.1, 0.25, "b"), (0.25, 0.4, "c")]
    assert phone_boundaries(segs) == pytest.approx([0.1, 0.25])


def test_boundary_scores_by_hand():
    ref = {"u": np.array([0.1, 0.2, 0.3])}
    hyp = {"u": np.array([0.105, 0.19, 0.25, 0.31, 0.5])}
    m = boundary_scores(ref, hyp, tolerance=0.02)
    assert m["num_hits"] == 3
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.6, 1.0, 0.75))
    assert m["over_segmentation"] == pytest.approx(2 / 3)
    r1, r2 = 2 / 3, (1 - 2 / 3 - 1) / math.sqrt(2)
    assert m["r_value"] == pytest.approx(1 - (abs(r1) + abs(r2)) / 2) == pytest.approx(0.430964, abs=1e-6)


def test_boundary_tolerance_is_inclusive_and_one_to_one():
    ref = {"u": np.array([0.1])}
    assert boundary_scores(ref, {"u": np.array([0.12])})["num_hits"] == 1
    assert boundary_scores(ref, {"u": np.array([0.121])})["num_hits"] == 0
    two = boundary_scores(ref, {"u": np.array([0.095, 0.105])})
    assert two["num_hits"] == 1 and two["precision"] == 0.5
    perfect = boundary_scores(ref, {"u": np.array([0.1])})
    assert perfect["r_value"] == pytest.approx(1.0) and perfect["f1"] == 1.0
    with pytest.raises(DataError, match="no phone boundary"):
        boundary_scores({"u": np.zeros(0)}, {"u": np.array([0.1])})


def _speaker_data(separable: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    feats, utt2spk = {}, {}
    for s in range(4):
        for u in range(20):
            x = rng.normal(size=(30, 6))
            if separable:
                x[:, s] += 3.0
            feats[f"s{s}_{u:02d}"] = x
            utt2spk[f"s{s}_{u:02d}"] = f"s{s}"
    return feats, utt2spk


def test_speaker_probe_above_chance_on_separable_and_at_chance_on_noise():
    feats, utt2spk = _speaker_data(separable=True)
    m = speaker_probe(feats, utt2spk)
    assert m["accuracy"] == 1.0 and m["chance"] == pytest.approx(0.25) and m["num_test"] == 20
    noise = speaker_probe(*_speaker_data(separable=False))
    assert abs(noise["accuracy"] - noise["chance"]) < 0.25


def test_speaker_probe_reads_spread_of_mean_normalised_features():
    # every utterance has mean zero (as after per-utterance CMN); speaker s varies most
    # along axis s: pooled means are only rounding noise, the spread tells the speaker
    rng = np.random.default_rng(0)
    feats, utt2spk = {}, {}
    for s in range(3):
        for u in range(8):
            x = rng.normal(size=(40, 3)) * np.where(np.arange(3) == s, 3.0, 1.0)
            feats[f"s{s}_{u}"], utt2spk[f"s{s}_{u}"] = x - x.mean(0), f"s{s}"
    m = speaker_probe(feats, utt2spk)
    assert m["accuracy"] == 1.0 and m["chance"] == pytest.approx(1 / 3)
    assert m["num_test"] == 6 and m["num_train"] == 18 and m["num_classes"] == 3


def test_baseline_features_normalise_each_utterance_alone(make_data_dir):
    # per-speaker CMN (the old baseline) made each speaker's utterance means sum to zero,
    # which pushed a speaker probe below chance; per-utterance CMN uses no speaker label
    data = make_data_dir(speakers=("a", "b"), utts_per_speaker=2, duration=0.3)
    feats = baseline_features(data)
    assert {n: x["a-utt1"].shape[1] for n, x in feats.items()} == {"mfcc": 39, "fbank": 40}
    for per_utt in feats.values():
        assert sorted(per_utt) == ["a-utt1", "a-utt2", "b-utt1", "b-utt2"]
        for x in per_utt.values():
            np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-4)


def test_phone_probe_above_chance_on_separable_and_at_chance_on_noise():
    rng = np.random.default_rng(1)
    feats, labels, noise = {}, {}, {}
    for u in range(12):
        y = rng.integers(0, 3, size=100)
        labels[f"u{u}"] = ["abc"[k] for k in y]
        labels[f"u{u}"][0] = None
        noise[f"u{u}"] = rng.normal(size=(100, 4))
        feats[f"u{u}"] = noise[f"u{u}"] + 4.0 * np.eye(4)[y]
    m = phone_probe(feats, labels)
    assert m["accuracy"] > 0.95 and m["chance"] < 0.5 and m["num_test"] == 3 * 99
    n = phone_probe(noise, labels)
    assert abs(n["accuracy"] - n["chance"]) < 0.1


def test_split_is_seeded_and_per_speaker():
    utt2spk = {f"s{s}_{u}": f"s{s}" for s in range(3) for u in range(4)} | {"lonely": "x"}
    train, test = split_utterances(utt2spk, test_fraction=0.25, seed=3)
    assert len(test) == 3 and "lonely" in train and not set(train) & set(test)
    assert {utt2spk[u] for u in test} == {"s0", "s1", "s2"}
    assert (train, test) == split_utterances(utt2spk, test_fraction=0.25, seed=3)
    assert speaker_probe({"a": np.zeros((2, 2))}, {"a": "s"}) is None
