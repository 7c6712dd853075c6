"""Frame-time conventions, feature/unit loading, consistency checks and item files."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest

from speechrep.data.ctm import read_ctm, write_ctm
from speechrep.errors import DataError
from speechrep.eval.inputs import (
    FrameTimes,
    check_frame_counts,
    check_utterances,
    find_frame_times,
    frame_times_from_config,
    load_features,
    load_units,
)
from speechrep.eval.items import ITEM_HEADER, make_items, read_items, write_items


def test_frame_centres_conventions():
    # Kaldi 25/10 ms snip_edges: window [10 i, 10 i + 25) ms -> centre 12.5 + 10 i ms
    kaldi = frame_times_from_config({"frame_shift": 0.01, "frame_length": 0.025, "snip_edges": True})
    assert kaldi.centres(3) == pytest.approx([0.0125, 0.0225, 0.0325])
    # librosa center=True: padded by half a window -> centre 10 i ms
    assert frame_times_from_config({"frame_shift": 0.01, "center": True}).centres(2) == pytest.approx([0.0, 0.01])
    # Kaldi snip_edges=false: one frame per shift, centred on it
    assert frame_times_from_config({"frame_shift": 0.01, "snip_edges": False}).frame_offset == pytest.approx(0.005)
    with pytest.raises(DataError, match="frame_offset"):
        frame_times_from_config({"frame_shift": 0.01})
    with pytest.raises(DataError, match="frame_shift"):
        FrameTimes(0.0, 0.0)


def test_frame_counts_of_real_front_ends_fit_the_tolerance():
    """1 s of audio: Kaldi snip_edges gives 98 frames, librosa center=True 101; both within 2 of the alignment."""
    from speechrep.features import fbank

    wave = np.random.default_rng(0).normal(size=16000).astype(np.float32)
    ali = {"u": [(0.0, 0.5, "a"), (0.5, 1.0, "b")]}
    n_kaldi = fbank(wave, dither=0.0).shape[0]
    n_librosa = 1 + len(wave) // 160  # librosa's frame count with center=True
    assert (n_kaldi, n_librosa) == (98, 101)
    check_frame_counts({"u": n_kaldi}, ali, FrameTimes(0.01, 0.0125), frames_path="f")
    check_frame_counts({"u": n_librosa}, ali, FrameTimes(0.01, 0.0), frames_path="f")
    with pytest.raises(DataError, match="tolerance 2") as e:
        check_frame_counts({"u": 50}, ali, FrameTimes(0.01, 0.0125), frames_path="feats.scp")
    assert "feats.scp: u:" in str(e.value)


def test_find_frame_times_sources(tmp_path):
    (tmp_path / "kaldi").mkdir()
    (tmp_path / "kaldi" / "fbank.conf").write_text("--frame-shift=20\n--snip-edges=false\n")
    assert find_frame_times(tmp_path / "kaldi" / "feats.scp") == FrameTimes(0.02, 0.01)
    (tmp_path / "yaml").mkdir()
    (tmp_path / "yaml" / "feats_config.yaml").write_text("frame_shift: 0.02\ncenter: true\n")
    assert find_frame_times(tmp_path / "yaml") == FrameTimes(0.02, 0.0)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "frame_shift").write_text("0.01\n")
    (tmp_path / "plain" / "frame_offset").write_text("0.0125\n")
    assert find_frame_times(tmp_path / "plain" / "units.txt") == FrameTimes(0.01, 0.0125)
    # explicit options win
    assert find_frame_times(tmp_path / "plain", frame_offset=0.0) == FrameTimes(0.01, 0.0)
    (tmp_path / "none").mkdir()
    with pytest.raises(DataError, match="frame shift is unknown"):
        find_frame_times(tmp_path / "none")
    with pytest.raises(DataError, match="frame offset is unknown"):
        find_frame_times(tmp_path / "none", frame_shift=0.01)


def test_load_features_scp_ark_npy(tmp_path):
    rng = np.random.default_rng(0)
    feats = {"u1": rng.normal(size=(5, 3)).astype(np.float32), "u2": rng.normal(size=(4, 3)).astype(np.float32)}
    kaldiio.save_ark(str(tmp_path / "feats.ark"), feats, scp=str(tmp_path / "feats.scp"))
    (tmp_path / "npy").mkdir()
    for utt, x in feats.items():
        np.save(tmp_path / "npy" / f"{utt}.npy", x)
    for path in (tmp_path / "feats.scp", tmp_path / "feats.ark", tmp_path / "npy"):
        loaded = load_features(path)
        assert sorted(loaded) == ["u1", "u2"] and np.array_equal(loaded["u2"], feats["u2"])


def test_load_features_rejects_nan_and_mixed_dims(tmp_path):
    bad = np.zeros((4, 3), np.float32)
    bad[2, 1] = np.nan
    kaldiio.save_ark(str(tmp_path / "a.ark"), {"ok": np.zeros((4, 3), np.float32), "bad": bad}, scp=str(tmp_path / "a.scp"))
    with pytest.raises(DataError, match=r"a\.scp: bad: .*NaN"):
        load_features(tmp_path / "a.scp")
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "u1.npy", np.zeros((4, 3)))
    np.save(tmp_path / "npy" / "u2.npy", np.zeros((4, 2)))
    with pytest.raises(DataError, match="u2: dimension 2"):
        load_features(tmp_path / "npy")
    with pytest.raises(DataError, match="not found"):
        load_features(tmp_path / "missing.scp")


def test_load_units_text_and_codebook(tmp_path):
    f = tmp_path / "units.txt"
    f.write_text("u1 0 0 3\nu2 2 1\n")
    units = load_units(f, codebook_size=4)
    assert units["u1"].tolist() == [0, 0, 3] and units["u2"].dtype == np.int64
    with pytest.raises(DataError, match=r"units\.txt: u1: unit 3 outside the codebook"):
        load_units(f, codebook_size=3)
    f.write_text("u1 0 x\n")
    with pytest.raises(DataError, match="line 1"):
        load_units(f)
    f.write_text("u1 0 -1\n")
    with pytest.raises(DataError, match="unit -1"):
        load_units(f)


def test_utterance_mismatch_names_the_file():
    with pytest.raises(DataError, match=r"feats\.scp: utterance ids: 1 aligned .* u3"):
        check_utterances({"u1": 0}, {"u1": [], "u3": []}, frames_path="feats.scp", ali_path="phones.ctm")
    with pytest.raises(DataError, match=r"phones\.ctm: utterance ids: .* u2"):
        check_utterances({"u1": 0, "u2": 0}, {"u1": []}, frames_path="feats.scp", ali_path="phones.ctm")


ALI = {
    "s1_u1": [(0.0, 0.1, "SIL"), (0.1, 0.2, "a"), (0.2, 0.3, "b"), (0.3, 0.4, "c"), (0.4, 0.5, "d"), (0.5, 0.6, "SIL")],
}


def test_make_items_triphone_and_phone_levels(tmp_path):
    write_ctm(tmp_path / "phones.ctm", ALI)
    ali = read_ctm(tmp_path / "phones.ctm")
    tri = make_items(ali, {"s1_u1": "s1"})
    # centres b (a_b_c) and c (b_c_d); a and d have silence as context
    assert tri.phones == ["b", "c"] and tri.prevs == ["a", "b"] and tri.nexts == ["c", "d"]
    assert tri.onsets.tolist() == pytest.approx([0.1, 0.2]) and tri.offsets.tolist() == pytest.approx([0.4, 0.5])
    phone = make_items(ali, {"s1_u1": "s1"}, level="phone")
    assert phone.onsets.tolist() == pytest.approx([0.2, 0.3]) and phone.offsets.tolist() == pytest.approx([0.3, 0.4])
    write_items(tmp_path / "x.item", tri)
    lines = (tmp_path / "x.item").read_text().splitlines()
    assert lines[0] == ITEM_HEADER and lines[1] == "s1_u1 0.1000 0.4000 b a c s1"
    back = read_items(tmp_path / "x.item")
    assert back.phones == tri.phones and np.allclose(back.offsets, tri.offsets)
    with pytest.raises(DataError, match="no speaker"):
        make_items(ali, {})
    with pytest.raises(DataError, match="no item"):
        make_items({"u": ALI["s1_u1"][:3]}, {"u": "s"})


def test_read_items_errors(tmp_path):
    f = tmp_path / "bad.item"
    f.write_text(ITEM_HEADER + "\nu 0.1 0.2 a b c\n")
    with pytest.raises(DataError, match=r"bad\.item: line 2: expected 7 fields"):
        read_items(f)
    f.write_text(ITEM_HEADER + "\nu 0.3 0.2 a b c s\n")
    with pytest.raises(DataError, match="onset < offset"):
        read_items(f)
    f.write_text(ITEM_HEADER + "\n")
    with pytest.raises(DataError, match="no items"):
        read_items(f)
