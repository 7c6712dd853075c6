"""Hostile output paths and inputs for the commands that write outputs (issue 39).

Every case of :data:`CASES` runs one ``speechrep`` command line that must fail: exit
status 1, exactly one ``error:`` line that names the file at fault, no traceback, the
victim files byte-for-byte untouched and no output left behind. Focused tests below cover
``--force``, symlinks, device nodes and FLAC output.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import yaml

from speechrep.cli import main
from speechrep.utils.io import OUTPUT_MARKER, atomic_write_text, check_output_dir, output_dir
from tests.test_convert import TINY, _save_exp, _tone
from tests.test_train_data import write_config, write_feats_dir, write_wave_dir
from tests.test_units import VQVAE_ARGS

pytestmark = pytest.mark.usefixtures("torch_one_thread")

#: the training data's feature configuration (the CPC model below is trained on it)
TRAIN_CONF = {"num_mel_bins": 4, "frame_shift": 10.0, "frame_length": 25.0, "dither": 1.0}


def _train(root: Path, name: str, data: Path, model: dict, *, input: str, crop: int) -> Path:
    from speechrep.train.trainer import train

    cfg = write_config(root / f"{name}.yaml", exp_dir=root / name, data_dir=data, input=input, crop=crop, model=model,
                       optim={"max_steps": 2, "warmup_steps": 1}, train={"ckpt_every": 2, "valid_every": 2})
    return train(cfg)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """Tiny trained models and their data, shared by the cases (never modified by them)."""
    root = tmp_path_factory.mktemp("hostile")
    feats = write_feats_dir(root / "cpc")
    (feats / "conf").mkdir()
    (feats / "conf" / "fbank.yaml").write_text(yaml.safe_dump(TRAIN_CONF))
    (feats / "frame_shift").write_text("0.01\n")
    cpc = _train(root, "exp_cpc", feats, {"name": "cpc", "args": {"dim": 8, "context_dim": 6, "num_steps": 2,
                                                                   "num_negatives": 3, "feat_layers": 1}},
                 input="feats", crop=16)
    wave = write_wave_dir(root / "vq")
    vq = _train(root, "exp_vq", wave, {"name": "vqvae", "args": VQVAE_ARGS}, input="wave", crop=3200)
    report_exp = root / "exp_report"
    (report_exp / "eval").mkdir(parents=True)
    (report_exp / "eval" / "cpc.json").write_text('{"abx": {"across": 11.0}}\n')
    (report_exp / "checkpoints" / "step_1").mkdir(parents=True)
    (report_exp / "checkpoints" / "step_1" / "model.safetensors").write_bytes(b"weights")
    return {
        "root": root, "feats": feats, "cpc": cpc, "wave": wave, "vq": vq, "report_exp": report_exp,
        "vc": _save_exp(root / "vc", "vc_adain", TINY),
        "src": _tone(root / "src.wav", 0.4, 16000), "tgt": _tone(root / "tgt.wav", 0.4, 16000, f0=220.0),
    }


def _copy_feats_dir(src: Path, dst: Path, *, utts: list[str] | None = None, dim: int | None = None) -> Path:
    """A copy of a feature data directory (own ark), optionally fewer utterances in feats.scp or another dim."""
    dst.mkdir(parents=True)
    mats = dict(kaldiio.load_scp(str(src / "feats.scp")))
    keep = sorted(mats) if utts is None else utts
    with kaldiio.WriteHelper(f"ark,scp:{dst / 'feats.ark'},{dst / 'feats.scp'}") as w:
        for utt in keep:
            x = mats[utt] if dim is None else np.resize(mats[utt], (mats[utt].shape[0], dim))
            w(utt, x.astype(np.float32))
    for name in ("wav.scp", "utt2spk"):
        (dst / name).write_text((src / name).read_text())
    return dst


def _marked(path: Path, command: str) -> Path:
    """An earlier output of ``speechrep <command>`` (its marker and one file)."""
    path.mkdir(parents=True)
    (path / OUTPUT_MARKER).write_text(command + "\n")
    (path / "old.txt").write_text("old output\n")
    return path


def _pairs(path: Path, rows: list[tuple[str, Path, Path]], *, encoding: str = "utf-8") -> Path:
    path.write_bytes(("id\tsource\ttarget\n" + "".join(f"{i}\t{s}\t{t}\n" for i, s, t in rows)).encode(encoding))
    return path


# Each case: (world, tmp) -> dict(argv, names: the text the error line must contain,
# keep: paths that must be untouched, absent: paths that must not exist afterwards).
Case = Callable[[dict, Path], dict]


def extract_into_its_data_dir(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    return dict(argv=["extract", "--model", w["cpc"], data, data], names=str(data), keep=[data])


def extract_over_unrelated_results(w, t):
    (t / "results" / "important").mkdir(parents=True)
    (t / "results" / "important" / "thesis.txt").write_text("years of work\n")
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], t / "results"], names=str(t / "results"),
                keep=[t / "results"])


def extract_over_the_experiment(w, t):
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], w["cpc"]], names=str(w["cpc"]), keep=[w["cpc"]])


def extract_inside_its_data_dir(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    return dict(argv=["extract", "--model", w["cpc"], data, data / "reps"], names=str(data / "reps"), keep=[data],
                absent=[data / "reps"])


def extract_over_a_dir_holding_the_data(w, t):
    data = _copy_feats_dir(w["feats"], t / "corpus" / "data")
    return dict(argv=["extract", "--model", w["cpc"], data, t / "corpus"], names=str(t / "corpus"), keep=[t / "corpus"])


def extract_over_a_file(w, t):
    (t / "out").write_text("a file\n")
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], t / "out"], names=str(t / "out"), keep=[t / "out"])


def extract_over_its_earlier_output_without_force(w, t):
    out = _marked(t / "out", "extract")
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], out], names="--force", keep=[out])


def extract_over_another_commands_output(w, t):
    out = _marked(t / "out", "units")
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], out], names=str(out), keep=[out])


def extract_with_missing_features(w, t):
    data = _copy_feats_dir(w["feats"], t / "data", utts=["spkA-u0", "spkB-u1", "spkC-u2"])
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"], names=str(data / "feats.scp"), keep=[data],
                absent=[t / "out"])


def extract_20ms_features_into_a_10ms_model(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    (data / "frame_shift").write_text("0.02\n")
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"], names=str(data / "frame_shift"), keep=[data],
                absent=[t / "out"])


def extract_20ms_fbank_config_into_a_10ms_model(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")  # no frame_shift file: the configuration says 20 ms
    (data / "conf").mkdir()
    (data / "conf" / "fbank.yaml").write_text(yaml.safe_dump({**TRAIN_CONF, "frame_shift": 20.0}))
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"],
                names=f"{data / 'conf' / 'fbank.yaml'}: the features have a frame shift of 0.02 s",
                keep=[data], absent=[t / "out"])


def extract_under_a_file(w, t):
    (t / "notes.txt").write_text("a file\n")
    return dict(argv=["extract", "--model", w["cpc"], w["feats"], t / "notes.txt" / "out"], names=str(t / "notes.txt"),
                keep=[t / "notes.txt"])


def extract_13_dim_features_into_a_4_dim_model(w, t):
    data = _copy_feats_dir(w["feats"], t / "data", dim=13)
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"], names=str(data / "feats.scp"), keep=[data],
                absent=[t / "out"])


def extract_mfcc_into_an_fbank_model(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    (data / "conf").mkdir()
    (data / "conf" / "mfcc.yaml").write_text(yaml.safe_dump({"num_ceps": 4}))
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"], names=str(data / "conf" / "mfcc.yaml"),
                keep=[data], absent=[t / "out"])


def extract_other_fbank_config(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    (data / "conf").mkdir()
    # another frame length; another dither does not change what the features are
    (data / "conf" / "fbank.yaml").write_text(yaml.safe_dump({**TRAIN_CONF, "frame_length": 50.0, "dither": 0.0}))
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"],
                names=f"{data / 'conf' / 'fbank.yaml'}: frame_length",
                keep=[data], absent=[t / "out"])


def extract_truncated_ark(w, t):
    data = _copy_feats_dir(w["feats"], t / "data")
    ark = data / "feats.ark"
    ark.write_bytes(ark.read_bytes()[: ark.stat().st_size // 2])
    return dict(argv=["extract", "--model", w["cpc"], data, t / "out"], names=str(ark), keep=[data], absent=[t / "out"])


def report_of_a_missing_dir(w, t):
    return dict(argv=["report", t / "no" / "such" / "dir"], names=str(t / "no" / "such" / "dir"),
                absent=[t / "no"])


def report_over_the_experiment(w, t):
    exp = w["report_exp"]
    return dict(argv=["report", exp, "--out", exp], names=str(exp), keep=[exp])


def report_over_unrelated_results(w, t):
    (t / "results").mkdir()
    (t / "results" / "thesis.txt").write_text("years of work\n")
    return dict(argv=["report", w["report_exp"], "--out", t / "results"], names=str(t / "results"),
                keep=[t / "results", w["report_exp"]])


def report_over_a_file(w, t):
    (t / "page").write_text("a file\n")
    return dict(argv=["report", w["report_exp"], "--out", t / "page"], names=str(t / "page"), keep=[t / "page"])


def report_with_a_text_file_as_audio(w, t):
    (t / "notes.wav").write_text("not audio at all\n")
    (t / "audio.tsv").write_text(f"label\tconverted\nex1\t{t / 'notes.wav'}\n")
    return dict(argv=["report", w["report_exp"], "--out", t / "r", "--audio", t / "audio.tsv"],
                names=str(t / "audio.tsv"), absent=[t / "r"])


def report_with_truncated_eval_json(w, t):
    exp = t / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "eval" / "cpc.json").write_text('{"abx": {"acro')
    return dict(argv=["report", exp], names=str(exp / "eval" / "cpc.json"), keep=[exp], absent=[exp / "report"])


def report_with_list_eval_json(w, t):
    exp = t / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "eval" / "cpc.json").write_text("[1, 2, 3]\n")
    return dict(argv=["report", exp], names=str(exp / "eval" / "cpc.json"), keep=[exp], absent=[exp / "report"])


def report_with_list_baselines(w, t):
    exp = t / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "eval" / "baseline.json").write_text('{"baselines": [1, 2]}\n')
    return dict(argv=["report", exp], names=f"{exp / 'eval' / 'baseline.json'}: baselines", keep=[exp],
                absent=[exp / "report"])


def _pairs_case(pair_id: str):
    def case(w, t):
        bad = str(t / "abs") if pair_id == "ABS" else pair_id  # an absolute path inside this test's directory
        pairs = _pairs(t / "pairs.tsv", [("ok", w["src"], w["tgt"]), (bad, w["src"], w["tgt"])])
        return dict(argv=["convert", "--model", w["vc"], "--pairs", pairs, "--out-dir", t / "out" / "conv"],
                    names=f"{pairs}: line 3", absent=[t / "out", t / "escaped.wav", t / "abs.wav"])

    return case


def convert_latin1_pairs_file(w, t):
    pairs = _pairs(t / "pairs.tsv", [("café", w["src"], w["tgt"])], encoding="latin-1")
    return dict(argv=["convert", "--model", w["vc"], "--pairs", pairs, "--out-dir", t / "out"], names=str(pairs),
                absent=[t / "out"])


def convert_over_unrelated_dir(w, t):
    (t / "wavs").mkdir()
    (t / "wavs" / "keep.wav").write_bytes(b"RIFF precious")
    pairs = _pairs(t / "pairs.tsv", [("keep", w["src"], w["tgt"])])
    return dict(argv=["convert", "--model", w["vc"], "--pairs", pairs, "--out-dir", t / "wavs"], names=str(t / "wavs"),
                keep=[t / "wavs"])


def convert_out_is_a_directory(w, t):
    (t / "outdir").mkdir()
    return dict(argv=["convert", "--model", w["vc"], "--source", w["src"], "--target", w["tgt"], "--out", t / "outdir"],
                names=str(t / "outdir"), keep=[t / "outdir"])


def convert_out_with_unknown_extension(w, t):
    return dict(argv=["convert", "--model", w["vc"], "--source", w["src"], "--target", w["tgt"], "--out", t / "x.mp3"],
                names=str(t / "x.mp3"), absent=[t / "x.mp3"])


def convert_out_over_its_source(w, t):
    src = _tone(t / "src.wav", 0.4, 16000)
    return dict(argv=["convert", "--model", w["vc"], "--source", src, "--target", w["tgt"], "--out", src],
                names=str(src), keep=[src])


def units_over_a_file(w, t):
    (t / "units").write_text("a file\n")
    return dict(argv=["units", "--model", w["vq"], w["wave"], t / "units"], names=str(t / "units"), keep=[t / "units"])


def units_into_its_data_dir(w, t):
    data = t / "data"
    data.mkdir()
    for name in ("wav.scp", "utt2spk"):
        (data / name).write_text((w["wave"] / name).read_text())
    return dict(argv=["units", "--model", w["vq"], data, data], names=str(data), keep=[data])


def units_over_unrelated_results(w, t):
    (t / "results").mkdir()
    (t / "results" / "thesis.txt").write_text("years of work\n")
    return dict(argv=["units", "--model", w["vq"], w["wave"], t / "results"], names=str(t / "results"),
                keep=[t / "results"])


def units_of_a_100_sample_wav(w, t):
    sf.write(t / "short.wav", np.full(100, 0.1, np.float32), 16000)
    data = t / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"spkA-short {t / 'short.wav'}\n")
    (data / "utt2spk").write_text("spkA-short spkA\n")
    return dict(argv=["units", "--model", w["vq"], data, t / "out"], names="utterance spkA-short", keep=[data],
                absent=[t / "out"])


def train_exp_dir_is_a_file(w, t):
    (t / "exp").write_text("a file\n")
    cfg = write_config(t / "c.yaml", exp_dir=t / "exp", data_dir=w["feats"], optim={"max_steps": 1, "warmup_steps": 0})
    return dict(argv=["train", cfg], names=f"{t / 'exp'}: exp_dir", keep=[t / "exp"])


def _eval_inputs(t: Path) -> tuple[Path, Path]:
    (t / "phones.ctm").write_text("".join(f"spkA-u0 1 {i / 10:.2f} 0.10 {p}\n" for i, p in enumerate("abcd")))
    (t / "utt2spk").write_text("spkA-u0 spkA\n")
    (t / "units.txt").write_text("spkA-u0 1 2 3\n")
    return t / "units.txt", t / "phones.ctm"


def eval_out_is_a_directory(w, t):
    units, ctm = _eval_inputs(t)
    (t / "res").mkdir()
    return dict(argv=["eval", "units", "--units", units, "--ali", ctm, "--out", t / "res"], names=str(t / "res"),
                keep=[t / "res"])


def eval_items_over_its_alignment(w, t):
    _, ctm = _eval_inputs(t)
    return dict(argv=["eval", "make-items", ctm, ctm], names=str(ctm), keep=[ctm])


def ablation_over_unrelated_results(w, t):
    (t / "results").mkdir()
    (t / "results" / "thesis.txt").write_text("years of work\n")
    (t / "phones.ctm").write_text("spkA-u0 1 0.00 0.10 a\n")
    cfg = write_config(t / "c.yaml", exp_dir=t / "unused", data_dir=w["wave"], input="wave")
    return dict(argv=["ablation", cfg, t / "phones.ctm", t / "results", "--eval-data", w["wave"], "--bits", "2"],
                names=str(t / "results"), keep=[t / "results"], absent=[t / "unused"])


CASES: dict[str, Case] = {f.__name__: f for f in (
    extract_into_its_data_dir, extract_over_unrelated_results, extract_over_the_experiment,
    extract_inside_its_data_dir, extract_over_a_dir_holding_the_data, extract_over_a_file,
    extract_over_its_earlier_output_without_force, extract_over_another_commands_output, extract_with_missing_features,
    extract_20ms_features_into_a_10ms_model, extract_20ms_fbank_config_into_a_10ms_model, extract_under_a_file,
    extract_13_dim_features_into_a_4_dim_model, extract_mfcc_into_an_fbank_model,
    extract_other_fbank_config, extract_truncated_ark,
    report_of_a_missing_dir, report_over_the_experiment, report_over_unrelated_results, report_over_a_file,
    report_with_a_text_file_as_audio, report_with_truncated_eval_json, report_with_list_eval_json,
    report_with_list_baselines,
    convert_latin1_pairs_file, convert_over_unrelated_dir, convert_out_is_a_directory,
    convert_out_with_unknown_extension, convert_out_over_its_source,
    units_over_a_file, units_into_its_data_dir, units_over_unrelated_results, units_of_a_100_sample_wav,
    train_exp_dir_is_a_file, eval_out_is_a_directory, eval_items_over_its_alignment, ablation_over_unrelated_results,
)}
for _id, _name in (("../escaped", "dotdot"), ("ABS", "absolute"), ("sub/x", "subdir"), ("..", "parent"),
                   ("a\0b", "nul")):
    CASES[f"convert_pairs_id_{_name}"] = _pairs_case(_id)


def _snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    """File type and bytes of ``path`` and everything under it."""
    paths = [path] + (sorted(path.rglob("*")) if path.is_dir() and not path.is_symlink() else [])
    snap = {}
    for p in paths:
        mode = p.lstat().st_mode
        snap[str(p.relative_to(path))] = (stat.S_IFMT(mode), p.read_bytes() if stat.S_ISREG(mode) else b"")
    return snap


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_output_case(name, world, tmp_path, capfd):
    case = CASES[name](world, tmp_path)
    argv = [str(a) for a in case["argv"]]
    keep = {str(p): _snapshot(Path(p)) for p in case.get("keep", [])}
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capfd.readouterr().err
    assert exit_info.value.code == 1, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert case["names"] in errors[0], errors[0]
    for p, snap in keep.items():
        assert _snapshot(Path(p)) == snap, f"{p} was changed"
    for p in case.get("absent", []):
        assert not Path(p).exists(), f"{p} was written"
    # nothing half-written beside the outputs either
    assert not [p for p in tmp_path.rglob("*.tmp")], list(tmp_path.rglob("*.tmp"))


def _cli(argv: list, capfd) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in argv])
    return exit_info.value.code or 0, capfd.readouterr().err


def test_force_replaces_only_an_earlier_output_of_the_same_command(world, tmp_path, capfd):
    out = tmp_path / "out"
    argv = ["extract", "--model", world["cpc"], world["feats"], out]
    assert _cli(argv, capfd)[0] == 0
    assert (out / OUTPUT_MARKER).read_text() == "extract\n"
    (out / "stale.txt").write_text("from the first run\n")
    code, err = _cli(argv, capfd)
    assert code == 1 and "pass --force" in err and (out / "stale.txt").is_file()
    assert _cli([*argv, "--force"], capfd)[0] == 0
    assert not (out / "stale.txt").exists() and (out / "feats.scp").is_file()
    # --force never replaces what is not an earlier output of this command
    (out / OUTPUT_MARKER).write_text("units\n")
    code, err = _cli([*argv, "--force"], capfd)
    assert code == 1 and "is not an output of 'speechrep extract'" in err and (out / "feats.scp").is_file()


def test_report_rerun_needs_force_and_may_live_in_the_experiment(world, tmp_path, capfd):
    exp = tmp_path / "exp"
    (exp / "eval").mkdir(parents=True)
    (exp / "eval" / "cpc.json").write_text('{"abx": {"across": 11.0}}\n')
    assert _cli(["report", exp], capfd)[0] == 0  # the default EXP/report lies inside the experiment
    assert (exp / "report" / "index.html").is_file() and (exp / "report" / OUTPUT_MARKER).is_file()
    assert _cli(["report", exp], capfd)[0] == 1
    assert _cli(["report", exp, "--force"], capfd)[0] == 0


def test_extract_accepts_features_of_the_training_configuration(world, tmp_path):
    from speechrep.extract import extract_representations

    data = _copy_feats_dir(world["feats"], tmp_path / "data")
    (data / "conf").mkdir()
    (data / "conf" / "fbank.yaml").write_text(yaml.safe_dump({**TRAIN_CONF, "dither": 0.0}))  # dither: same features
    (data / "frame_shift").write_text("0.01\n")
    scp = extract_representations(world["cpc"], data, tmp_path / "out", which="last", progress=False)
    assert len(dict(kaldiio.load_scp(str(scp)))) == 9


def test_output_dir_rules(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("a x.wav\n")
    exp = tmp_path / "exp"
    exp.mkdir()
    # inside a container (the experiment) is fine, inside an input is not
    assert check_output_dir(exp / "extract", command="extract", field="OUT", inputs=[data], containers=[exp])
    with pytest.raises(Exception, match="lies inside an input"):
        check_output_dir(data / "x", command="extract", field="OUT", inputs=[data])
    with pytest.raises(Exception, match="holds an input"):
        check_output_dir(tmp_path, command="extract", field="OUT", containers=[exp])
    # a symlink to the input is the input
    (tmp_path / "link").symlink_to(data)
    with pytest.raises(Exception, match="is an input"):
        check_output_dir(tmp_path / "link", command="extract", field="OUT", inputs=[data])
    # an empty directory is fine; an earlier output of a resumable command is added to
    (tmp_path / "empty").mkdir()
    assert check_output_dir(tmp_path / "empty", command="extract", field="OUT") == (tmp_path / "empty").resolve()
    abl = _marked(tmp_path / "abl", "ablation")
    assert check_output_dir(abl, command="ablation", field="OUT", resume=True) == abl.resolve()
    # a failed build leaves the old output and no temporary directory
    out = _marked(tmp_path / "out", "units")
    with pytest.raises(RuntimeError):
        with output_dir(out, command="units", field="OUT", force=True) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "old.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["abl", "data", "empty", "exp", "link", "out"]


def test_atomic_write_through_a_symlink_keeps_the_link(tmp_path):
    target = tmp_path / "real" / "a.txt"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]  # the temp file lived beside the target
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "real" / "b.txt")
    atomic_write_text(dangling, "created")
    assert dangling.is_symlink() and (tmp_path / "real" / "b.txt").read_text() == "created"


def _char_device(tmp_path: Path, name: str, minor: int) -> Path:
    """A writable memory device (1, minor) that a regression may not damage.

    As root (where a rename over /dev/null would succeed and break the machine), a private
    node with the same numbers is made in the test's directory; otherwise /dev/<name>
    itself, which a non-root rename cannot replace.
    """
    if os.geteuid() == 0:
        node = tmp_path / name
        try:
            os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
            node.open("w").close()
        except OSError as e:  # no mknod in a container, or a nodev mount
            pytest.skip(f"cannot make a device node: {e}")
        return node
    dev = Path("/dev") / name
    if not dev.exists() or not stat.S_ISCHR(dev.stat().st_mode) or not os.access(dev, os.W_OK):
        pytest.skip(f"no writable {dev} character device")
    return dev


@pytest.fixture
def null_device(tmp_path) -> Path:
    """/dev/null or a private node like it (see :func:`_char_device`)."""
    return _char_device(tmp_path, "null", 3)


def test_atomic_write_to_a_full_device_names_it(tmp_path):
    full = _char_device(tmp_path, "full", 7)
    with pytest.raises(OSError) as err:
        atomic_write_text(full, "x" * 100)
    assert err.value.filename == str(full) and stat.S_ISCHR(os.lstat(full).st_mode)


def test_atomic_write_to_a_device_node_writes_it_in_place(null_device):
    atomic_write_text(null_device, "discarded\n")
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)
    assert [p.name for p in null_device.parent.glob(".null.*")] == []


def test_atomic_write_to_a_fifo_writes_it_in_place(tmp_path):
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    # a daemon: if the write never reaches the pipe, the blocked reader must not hang pytest
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    atomic_write_text(fifo, "through the pipe\n")
    reader.join(timeout=10)
    assert got == ["through the pipe\n"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_convert_out_flac_symlink_and_device(world, tmp_path, capfd, null_device):
    base = ["convert", "--model", world["vc"], "--source", world["src"], "--target", world["tgt"], "--out"]
    assert _cli([*base, tmp_path / "x.flac"], capfd)[0] == 0
    assert (tmp_path / "x.flac").read_bytes()[:4] == b"fLaC" and sf.info(str(tmp_path / "x.flac")).format == "FLAC"
    assert _cli([*base, tmp_path / "x.WAV"], capfd)[0] == 0
    assert (tmp_path / "x.WAV").read_bytes()[:4] == b"RIFF"
    (tmp_path / "real.wav").write_bytes(b"old")
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    assert _cli([*base, tmp_path / "link.wav"], capfd)[0] == 0
    assert (tmp_path / "link.wav").is_symlink() and (tmp_path / "real.wav").read_bytes()[:4] == b"RIFF"
    assert _cli([*base, null_device], capfd)[0] == 0
    assert stat.S_ISCHR(os.lstat(null_device).st_mode)
    # as root, convert turned /dev/full into a WAV file; a subprocess, because soundfile's
    # "Exception ignored" noise from a failing output went to stderr, not through pytest
    full = _char_device(tmp_path, "full", 7)
    r = subprocess.run([sys.executable, "-m", "speechrep", *map(str, base), str(full)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.splitlines() == [f"error: {full}: No space left on device"], r.stderr
    assert stat.S_ISCHR(os.lstat(full).st_mode)
