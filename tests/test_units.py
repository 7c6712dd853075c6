"""Units from a trained model: deduplication, boundaries, `speechrep units` end to end, errors."""

import math

import numpy as np
import pytest
import torch

from speechrep.errors import CheckpointError, DataError, SpeechrepError
from speechrep.train.checkpoint import find_checkpoint, load_weights
from speechrep.models.registry import build_model
from speechrep.train.trainer import train
from speechrep.units import UnitSet, deduplicate, extract_units, load_unit_file, segment_units, unit_boundaries, write_units
from tests.test_train_data import write_config, write_feats_dir, write_wave_dir

pytestmark = pytest.mark.usefixtures("torch_one_thread")

VQVAE_ARGS = {
    "hidden": 16,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "speaker_dim": 4,
    "bottleneck": {"kind": "vq", "num_codes": 8, "code_dim": 8},
}


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the ``speechrep`` entry point in-process: (exit status, stdout, stderr)."""
    from speechrep.cli import main

    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def _train_vqvae(tmp_path, data, *, input: str, name: str = "exp"):
    cfg = write_config(
        tmp_path / f"{name}.yaml",
        exp_dir=tmp_path / name,
        data_dir=data,
        input=input,
        model={"name": "vqvae", "args": VQVAE_ARGS},
        optim={"lr": 0.003, "max_steps": 6},
        train={"valid_every": 6, "ckpt_every": 6},
    )
    return train(cfg)


def test_deduplicate_and_boundaries_hand_example():
    u = np.array([3, 3, 1, 1, 1, 4, 3])
    values, starts = deduplicate(u)
    assert values.tolist() == [3, 1, 4, 3] and starts.tolist() == [0, 2, 5, 6]
    # changes at frames 2, 5, 6; boundary halfway between centres: offset + (i - 0.5) * shift
    assert unit_boundaries(u, frame_shift=0.02, frame_offset=0.005).tolist() == pytest.approx([0.035, 0.095, 0.115])
    assert deduplicate(np.array([], np.int64))[0].size == 0


def test_write_units_files(tmp_path):
    us = UnitSet({"b": np.array([1, 1, 2]), "a": np.array([0])}, frame_shift=0.02, frame_offset=0.005, num_codes=4)
    out = write_units(us, tmp_path / "u")
    assert (out / "units.txt").read_text() == "a 0\nb 1 1 2\n"
    assert (out / "units_dedup.txt").read_text() == "a 0\nb 1 2\n"
    assert (out / "boundaries.txt").read_text() == "a\nb 0.0350\n"
    assert (out / "frame_shift").read_text() == "0.02\n" and (out / "frame_offset").read_text() == "0.005\n"
    assert (out / "num_codes").read_text() == "4\n"


def test_units_cli_end_to_end_on_waveforms(tmp_path, capsys):
    data = write_wave_dir(tmp_path)
    exp = _train_vqvae(tmp_path, data, input="wave")
    out = tmp_path / "units"
    code, stdout, stderr = _cli(capsys, "units", "--model", str(exp), str(data), str(out))
    assert code == 0, stderr
    assert "9 utterances" in stdout
    lines = (out / "units.txt").read_text().splitlines()
    utts = [line.split()[0] for line in lines]
    assert utts == sorted(utts) and len(utts) == 9
    for line, dedup, bounds in zip(
        lines, (out / "units_dedup.txt").read_text().splitlines(), (out / "boundaries.txt").read_text().splitlines()
    ):
        utt, *units = line.split()
        samples = {"u0": 4800, "u1": 4000, "u2": 3200}[utt.split("-")[1]]
        assert len(units) == math.ceil((1 + samples // 160) / 2)  # 20 ms units of 10 ms log-mel frames
        u = np.array(units, dtype=np.int64)
        assert dedup.split()[1:] == [str(v) for v in deduplicate(u)[0]]
        times = [float(t) for t in bounds.split()[1:]]
        assert len(times) == len(deduplicate(u)[0]) - 1 and times == sorted(times)
        assert all(0 < t < samples / 16000 for t in times)
        assert 0 <= u.min() and u.max() < 8
    assert float((out / "frame_shift").read_text()) == 0.02
    assert float((out / "frame_offset").read_text()) == 0.005
    assert int((out / "num_codes").read_text()) == 8
    # the evaluation reads these units back (against the data directory's utterances)
    units = load_unit_file(out / "units.txt", known_utts=utts, num_codes=8)
    assert sorted(units) == utts


def test_feature_vqcpc_frames_are_placed_once(tmp_path):
    """A feature-input VQ-CPC's frame_offset is absolute, like CPC's (extract and kNN conversion
    read it as is); its units take the framing recorded beside the features instead of the
    model's assumed one, and do not count the features' offset twice."""
    from tests.test_vqvae_vqcpc import ARGS

    data = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "vqcpc.yaml", exp_dir=tmp_path / "vqcpc", data_dir=data, input="feats",
                       model={"name": "vqcpc", "args": {**ARGS, "feat_stride": 2}}, optim={"lr": 0.003, "max_steps": 2},
                       train={"valid_every": 2, "ckpt_every": 2})
    exp = train(cfg)
    us = extract_units(exp, data, which="last", progress=False)
    assert us.frame_shift == pytest.approx(0.02) and us.frame_offset == pytest.approx(0.0125 + 0.005)
    (data / "feats_config.yaml").write_text("frame_shift: 0.01\nframe_offset: 0.02\n")  # another framing
    assert extract_units(exp, data, which="last", progress=False).frame_offset == pytest.approx(0.02 + 0.005)


def test_units_from_a_feature_model(tmp_path):
    data = write_feats_dir(tmp_path)
    exp = _train_vqvae(tmp_path, data, input="feats")
    us = extract_units(exp, data, which="last", progress=False)
    assert {u: len(x) for u, x in us.units.items()} == {
        f"{s}-u{j}": math.ceil(n / 2) for s in ("spkA", "spkB", "spkC") for j, n in enumerate((50, 40, 30))
    }
    assert us.frame_shift == pytest.approx(0.02) and us.frame_offset == pytest.approx(0.0125 + 0.005)
    # a feature model needs feats.scp
    wave_data = write_wave_dir(tmp_path)
    with pytest.raises(DataError, match="feats.scp"):
        extract_units(exp, wave_data)
    # checkpoint / codebook mismatch
    other, _ = build_model("vqvae", {**VQVAE_ARGS, "bottleneck": {"kind": "vq", "num_codes": 16, "code_dim": 8}},
                           input_dim=4, num_speakers=3)
    with pytest.raises(CheckpointError, match="codebook"):
        load_weights(other, find_checkpoint(exp, which="last"))


def _brute_force_segmentation(costs: np.ndarray, pen: float, max_frames: int) -> float:
    """Least total cost over every cut of the frames (2^(T-1) of them) and best unit per segment."""
    t = costs.shape[0]
    best = math.inf
    for mask in range(2 ** (t - 1)):
        cuts = [0] + [i + 1 for i in range(t - 1) if mask >> i & 1] + [t]
        if max(b - a for a, b in zip(cuts, cuts[1:])) > max_frames:
            continue
        best = min(best, sum(costs[a:b].sum(0).min() + pen for a, b in zip(cuts, cuts[1:])))
    return best


def _segmentation_cost(costs: np.ndarray, units: np.ndarray, pen: float, max_frames: int) -> float:
    """Cost of frame-level units: a run of one unit is ceil(length / max_frames) segments."""
    _, starts = deduplicate(units)
    runs = np.diff(np.r_[starts, len(units)])
    return float(costs[np.arange(len(units)), units].sum() + pen * np.ceil(runs / max_frames).sum())


def test_segment_units_is_the_optimal_penalised_segmentation():
    rng = np.random.default_rng(0)
    costs = rng.exponential(size=(9, 4))
    scale = costs.min(1).mean()
    # penalty 0: every frame its nearest unit
    assert segment_units(costs, 0.0).tolist() == costs.argmin(1).tolist()
    for penalty, max_frames in ((0.5, 50), (2.0, 50), (2.0, 3), (50.0, 50)):
        u = segment_units(costs, penalty, max_frames=max_frames)
        pen = penalty * scale
        # the DP's cost equals the least over all 256 cuts (hand enumeration), within float rounding
        assert _segmentation_cost(costs, u, pen, max_frames) == pytest.approx(
            _brute_force_segmentation(costs, pen, max_frames), rel=1e-9
        )
    # a large penalty: one segment, the unit of least total cost
    assert segment_units(costs, 50.0).tolist() == [int(costs.sum(0).argmin())] * 9
    # more penalty, fewer segments
    n = [len(deduplicate(segment_units(costs, p))[0]) for p in (0.0, 0.5, 2.0, 50.0)]
    assert n == sorted(n, reverse=True) and n[0] > n[-1] == 1
    assert segment_units(np.zeros((0, 4)), 1.0).size == 0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(SpeechrepError, match="penalty"):
            segment_units(costs, bad)
    with pytest.raises(SpeechrepError, match="finite"):
        segment_units(np.full((3, 2), np.nan), 1.0)


def test_segmented_units_cli(tmp_path, capsys):
    data = write_feats_dir(tmp_path)
    exp = _train_vqvae(tmp_path, data, input="feats")
    plain = extract_units(exp, data, which="last", progress=False)
    # the model's unit costs pick its units: penalty 0 reproduces the nearest-code units
    zero = extract_units(exp, data, which="last", progress=False, segment_penalty=0.0)
    assert all(np.array_equal(plain.units[u], zero.units[u]) for u in plain.units)
    out = tmp_path / "seg"
    code, _, stderr = _cli(capsys, "units", "--model", str(exp), "--which", "last", "--segment-penalty", "3",
                           str(data), str(out))
    assert code == 0, stderr
    seg = load_unit_file(out / "units.txt")
    assert {u: len(x) for u, x in seg.items()} == {u: len(x) for u, x in plain.units.items()}
    runs = lambda d: sum(len(deduplicate(x)[0]) for x in d.values())  # noqa: E731
    assert runs(seg) < runs(plain.units)
    # a bottleneck without per-unit costs: a clear error, no output
    onehot = _train_vqvae_with(tmp_path, data, {"kind": "onehot", "num_codes": 8})
    code, _, stderr = _cli(capsys, "units", "--model", str(onehot), "--segment-penalty", "1", str(data), str(tmp_path / "o"))
    assert code == 1 and "no per-unit costs" in stderr and "bottleneck.kind" in stderr
    assert not (tmp_path / "o" / "units.txt").exists()
    code, _, stderr = _cli(capsys, "units", "--model", str(exp), "--segment-penalty", "-1", str(data), str(tmp_path / "o"))
    assert code == 1 and "segment penalty" in stderr


def _train_vqvae_with(tmp_path, data, bottleneck: dict):
    cfg = write_config(
        tmp_path / "alt.yaml",
        exp_dir=tmp_path / "alt",
        data_dir=data,
        input="feats",
        model={"name": "vqvae", "args": {**VQVAE_ARGS, "bottleneck": bottleneck}},
        optim={"lr": 0.003, "max_steps": 2},
        train={"valid_every": 2, "ckpt_every": 2},
    )
    return train(cfg)


def test_model_without_units_and_unknown_utterances(tmp_path, capsys):
    data = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "toy.yaml", exp_dir=tmp_path / "toy", data_dir=data, optim={"max_steps": 2, "warmup_steps": 0})
    exp = train(cfg)
    with pytest.raises(SpeechrepError, match="no discrete units"):
        extract_units(exp, data)
    code, _, stderr = _cli(capsys, "units", "--model", str(exp), str(data), str(tmp_path / "o"))
    assert code == 1 and stderr.startswith("error: ") and "no discrete units" in stderr
    assert not (tmp_path / "o" / "units.txt").exists()
    f = tmp_path / "units.txt"
    f.write_text("spkA-u0 1 2\nghost 3 3\n")
    with pytest.raises(DataError, match=r"units\.txt: line 2: unknown utterance 'ghost'"):
        load_unit_file(f, known_utts=["spkA-u0", "spkA-u1"])
    with pytest.raises(DataError, match="outside the codebook"):
        load_unit_file(f, num_codes=3)


def test_ablation_variants_summary_and_table():
    from speechrep.ablation import format_table, summarise_report, variant_overrides
    from speechrep.errors import ConfigError

    # equal bit budget: 2^b one-hot classes, b bits, 2^b codes
    assert variant_overrides("onehot", 3) == ["model.args.bottleneck.kind=onehot", "model.args.bottleneck.num_codes=8"]
    assert variant_overrides("binary", 3) == ["model.args.bottleneck.kind=binary", "model.args.bottleneck.num_bits=3"]
    assert variant_overrides("vq", 3)[1] == "model.args.bottleneck.num_codes=8"
    with pytest.raises(ConfigError, match="unknown bottleneck kind"):
        variant_overrides("tree", 3)
    with pytest.raises(ConfigError, match="bit budget"):
        variant_overrides("vq", 0)
    report = {"units": {"pnmi": 0.4, "phone_purity": 0.5}, "abx": {"within": None, "across": 20.0}, "bitrate": {"bitrate": 80.0}}
    row = summarise_report(report)
    assert row["pnmi"] == 0.4 and row["abx_across"] == 20.0 and row["abx_within"] is None and row["used_codes"] is None
    table = format_table([{"variant": "vq_3bit", "bits": 3, **row}])
    assert table.splitlines()[0].startswith("| variant | bits | pnmi |")
    assert "| vq_3bit | 3 | 0.400 | 0.500 | - | 20.000 | 80.000 | - | - | - |" in table
