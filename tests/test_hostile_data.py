"""Hostile but realistic inputs (issue 39, data part): each is refused with one line
``error: <file or option>: ...``, exit status != 0, no traceback and no partial output.

The table runs the real entry point (:func:`speechrep.cli.main`) in process; a Python
exception escaping ``main`` fails the case with its traceback. Focused tests below cover
what a table row cannot: ``data fix``'s backup, resuming past a corrupt checkpoint,
Ctrl-C, and the exception classes ``main`` turns into one line.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from speechrep.cli import main
from speechrep.data.kaldi_dir import read_kaldi_map
from speechrep.data.validate import fix_data_dir, validate_data_dir
from speechrep.errors import CheckpointError, DataError
from speechrep.train.checkpoint import list_checkpoints, save_checkpoint
from speechrep.train.logging import read_history
from speechrep.train.toy import ToyConfig, ToyModel
from speechrep.train.trainer import train
from tests.test_train_data import write_config, write_feats_dir

REPO = Path(__file__).resolve().parents[1]


def _run(args: list, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


# --- inputs the cases share --------------------------------------------------------------


def _toy_exp(root: Path, *, edit: Callable[[dict], None] | None = None) -> Path:
    """An experiment directory with one toy checkpoint; ``edit`` changes its state.json."""
    torch.manual_seed(0)
    module = ToyModel(ToyConfig(hidden=4, num_speakers=3), input_dim=4)
    state = {"model": {"name": "toy", "args": {"hidden": 4, "num_speakers": 3}, "input_dim": 4}}
    ckpt = save_checkpoint(root / "exp" / "checkpoints", 1, module=module,
                           optimizer=torch.optim.AdamW(module.parameters()), state=state)
    if edit is not None:
        state_json = ckpt / "state.json"
        state = json.loads(state_json.read_text())
        edit(state)
        state_json.write_text(json.dumps(state))
    return root / "exp"


_UTTS = ("s1-a", "s1-b", "s2-a")
#: 5 phones of 0.1 s per utterance: enough triphone items for ABX
_GOOD_CTM = "".join(f"{u} 1 {i / 10} 0.1 {p}\n" for u in _UTTS for i, p in enumerate("abcab"))
#: line 7 (s1-b's 2nd phone) starts inside its 1st one
_OVERLAP_CTM = _GOOD_CTM.replace("s1-b 1 0.1 0.1 b", "s1-b 1 0.05 0.15 b")


def _eval_inputs(root: Path, ctm: str) -> tuple[Path, Path]:
    """A directory of <utt>.npy features (10 ms frames) and a CTM (with utt2spk beside it)."""
    feats = root / "feats"
    feats.mkdir()
    rng = np.random.default_rng(0)
    for utt in _UTTS:
        np.save(feats / f"{utt}.npy", rng.normal(size=(49, 3)).astype(np.float32))
    (feats / "frame_shift").write_text("0.01\n")
    (feats / "frame_offset").write_text("0.0125\n")
    ali = root / "ali"
    ali.mkdir()
    (ali / "phones.ctm").write_text(ctm)
    (ali / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in _UTTS))
    return feats, ali / "phones.ctm"


def _pairs(root: Path, data_dir: Path, encoding: str) -> Path:
    wav = next(iter(read_kaldi_map(data_dir / "wav.scp").values()))
    pairs = root / "pairs.tsv"
    pairs.write_bytes(f"id\tsource\ttarget\nr\u00e9sum\u00e9\t{wav}\t{wav}\n".encode(encoding))
    return pairs


def _truncated_pairs(root: Path, data_dir: Path) -> Path:
    """A pairs file whose source WAV's header promises twice the samples the file holds."""
    from tests.test_hostile_feats import _truncate

    wav = Path(next(iter(read_kaldi_map(data_dir / "wav.scp").values())))
    bad = root / "truncated.wav"
    bad.write_bytes(wav.read_bytes())
    _truncate(bad)
    pairs = root / "pairs.tsv"
    pairs.write_text(f"id\tsource\ttarget\nx\t{bad}\t{wav}\n", encoding="utf-8")
    return pairs


def _wav_scp_a_directory(data_dir: Path) -> Path:
    (data_dir / "wav.scp").unlink()
    (data_dir / "wav.scp").mkdir()
    return data_dir


def _empty_dir(root: Path) -> Path:
    d = root / "empty"
    d.mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt", "text"):
        (d / name).write_text("")
    return d


def _bad_speaker_prefix(data_dir: Path) -> Path:
    # fix cannot repair an utterance id that does not start with its speaker id
    (data_dir / "utt2spk").write_text("spk1-utt1 spk1\nspk1-utt2 spk2\nspk2-utt1 spk2\nspk2-utt2 spk2\n")
    return data_dir


# --- the table ---------------------------------------------------------------------------


@dataclass
class Case:
    """``setup(tmp_path, data_dir) -> argv``; the error line must contain ``where`` and
    ``what``; ``tmp_path / "out*"`` must not exist afterwards (no partial output)."""

    id: str
    setup: Callable[[Path, Path], list]
    where: str
    what: str


def _train_cfg(t: Path, **sections) -> Path:
    return write_config(t / "c.yaml", exp_dir=t / "out_exp", data_dir=write_feats_dir(t), **sections)


CASES = [
    # --threads of every command that has it, --device where a command has it
    Case("units --threads 0", lambda t, d: ["units", d, t / "out", "--model", _toy_exp(t), "--threads", 0],
         "error: --threads:", "must be at least 1, got 0"),
    Case("eval features --threads 0", lambda t, d: [
        "eval", "features", "--feats", _eval_inputs(t, _GOOD_CTM)[0], "--ali", t / "ali" / "phones.ctm",
        "--out", t / "out.json", "--threads", "0"], "error: --threads:", "must be at least 1"),
    Case("eval units --threads -2", lambda t, d: [
        "eval", "units", "--units", t / "u.txt", "--ali", t / "a.ctm", "--out", t / "out.json", "--threads", "-2"],
        "error: --threads:", "must be at least 1, got -2"),
    Case("eval baseline --threads 0", lambda t, d: [
        "eval", "baseline", d, "--ali", t / "a.ctm", "--out", t / "out.json", "--threads", "0"],
        "error: --threads:", "must be at least 1"),
    Case("units --device cuda", lambda t, d: ["units", d, t / "out", "--model", _toy_exp(t), "--device", "cuda"],
         "error: --device:", "not available"),
    Case("units --device tpu", lambda t, d: ["units", d, t / "out", "--model", _toy_exp(t), "--device", "tpu"],
         "error: --device:", "not available"),
    Case("convert --device cuda:3", lambda t, d: [
        "convert", "--pairs", _pairs(t, d, "utf-8"), "--out-dir", t / "out", "--resynthesize", "--device", "cuda:3"],
        "error: --device:", "not available"),
    # a hand-edited pairs file in Latin-1
    Case("Latin-1 pairs file", lambda t, d: [
        "convert", "--pairs", _pairs(t, d, "latin-1"), "--out-dir", t / "out", "--resynthesize"],
        "pairs.tsv: line 2:", "not valid UTF-8"),
    # hand-edited state.json with wrong types
    Case("state.json step is a string", lambda t, d: [
        "units", d, t / "out", "--model", _toy_exp(t, edit=lambda s: s.update(step="ten"))],
        "state.json: step:", "must be a non-negative integer"),
    Case("state.json model.args is a list", lambda t, d: [
        "units", d, t / "out", "--model", _toy_exp(t, edit=lambda s: s["model"].update(args=[4]))],
        "state.json: model.args:", "must be a mapping or null"),
    # eval inputs
    Case("eval --feats missing.scp", lambda t, d: [
        "eval", "features", "--feats", t / "missing.scp", "--ali", _eval_inputs(t, _GOOD_CTM)[1],
        "--out", t / "out.json"], "missing.scp: not found", ""),
    Case("eval features --threads beyond numba's", lambda t, d: [
        "eval", "features", "--feats", _eval_inputs(t, _GOOD_CTM)[0], "--ali", t / "ali" / "phones.ctm",
        "--out", t / "out.json", "--threads", str(10**6)], "error: threads:", "must be between 1 and"),
    Case("eval features --set threads=0", lambda t, d: [
        "eval", "features", "--feats", _eval_inputs(t, _GOOD_CTM)[0], "--ali", t / "ali" / "phones.ctm",
        "--out", t / "out.json", "--set", "threads=0"], "error: threads:", "must be between 1 and"),
    Case("overlapping CTM segments", lambda t, d: [
        "eval", "features", "--feats", _eval_inputs(t, _OVERLAP_CTM)[0], "--ali", t / "ali" / "phones.ctm",
        "--out", t / "out.json"], "phones.ctm:7:", "b 0.05-0.2 s overlaps a 0-0.1 s (line 6)"),
    # config values: named with --set or the file, choices listed in plain words
    Case("--distance not a choice", lambda t, d: [
        "eval", "features", "--feats", _eval_inputs(t, _GOOD_CTM)[0], "--ali", t / "ali" / "phones.ctm",
        "--distance", "euclid", "--out", t / "out.json"],
        "error: --set: abx.distance:", "expected one of cosine, kl, onehot, edit (or null), got 'euclid'"),
    Case("--set wrong type", lambda t, d: ["train", _train_cfg(t), "--set", "optim.lr=fast"],
         "error: --set: optim.lr:", "expected a number, got 'fast'"),
    Case("--set optional int", lambda t, d: ["train", _train_cfg(t), "--set", "train.num_threads=many"],
         "error: --set: train.num_threads:", "expected an integer (or null), got 'many'"),
    Case("--set bad value checked after parsing", lambda t, d: ["train", _train_cfg(t), "--set", "optim.lr=-1"],
         "error: --set: optim.lr:", "must be positive"),
    Case("make-fbank --set value the front end refuses", lambda t, d: [
        "features", "make-fbank", d, t / "out", "--set", "num_mel_bins=0"],
        "error: --set: num_mel_bins:", "must be at least 3, got 0"),
    Case("train.device tpu in the config", lambda t, d: ["train", _train_cfg(t, train={"device": "tpu"})],
         "c.yaml: train.device:", "device 'tpu' not available"),
    Case("train.device cuda by --set", lambda t, d: ["train", _train_cfg(t), "--set", "train.device=cuda:7"],
         "error: --set: train.device:", "not available"),
    Case("config file literal", lambda t, d: ["train", _train_cfg(t, optim={"amp": "fp32"})],
         "c.yaml: optim.amp:", "expected one of none, bf16, fp16, got 'fp32'"),
    # data directories
    Case("fix an all-empty data dir", lambda t, d: ["data", "fix", _empty_dir(t)],
         "empty:", "no utterance is consistent"),
    Case("fix with wav.scp a directory", lambda t, d: ["data", "fix", _wav_scp_a_directory(d)],
         "wav.scp:", "is a directory, not a file"),
    Case("convert a truncated source WAV", lambda t, d: [
        "convert", "--pairs", _truncated_pairs(t, d), "--out-dir", t / "out", "--resynthesize"],
        "truncated.wav", "truncated WAV"),
    Case("fix leaves a problem it cannot repair", lambda t, d: ["data", "fix", _bad_speaker_prefix(d)],
         "utt2spk:2:", "does not start with its speaker id 'spk2' (still invalid after fixing: 1 problem(s)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line(case, tmp_path, data_dir, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same on a GPU machine
    argv = case.setup(tmp_path, data_dir)
    capsys.readouterr()
    code, _, err = _run(argv, capsys)
    assert code != 0, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]  # progress bars aside
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.where in lines[0] and case.what in lines[0], lines[0]
    assert not list(tmp_path.glob("out*")), "partial output left behind"


# --- data fix: backup and remaining problems --------------------------------------------


def test_fix_backs_up_every_file_it_changes(data_dir):
    # the case: a spk2gender value 'x' drops that speaker's utterances (as in Kaldi)
    (data_dir / "spk2gender").write_text("spk1 f\nspk2 x\n")
    before = {p.name: p.read_bytes() for p in data_dir.iterdir() if p.is_file()}

    counts = fix_data_dir(data_dir)

    assert counts["utt2spk"] == (2, 2)
    backup = data_dir / ".backup"
    changed = {name for name, old in before.items() if (data_dir / name).read_bytes() != old}
    assert changed == {"wav.scp", "utt2spk", "spk2utt", "text", "utt2dur", "spk2gender"}
    assert {p.name: p.read_bytes() for p in backup.iterdir()} == {name: before[name] for name in changed}
    # a second run that changes nothing keeps the backup of the first
    fix_data_dir(data_dir)
    assert (backup / "spk2gender").read_bytes() == b"spk1 f\nspk2 x\n"
    assert not (data_dir / ".backup.1").exists()
    # one that changes something keeps it too, as .backup.1: the originals are never lost
    (data_dir / "text").write_text("spk1-utt2 b\nspk1-utt1 a\n")
    fix_data_dir(data_dir)
    assert (data_dir / ".backup.1" / "spk2gender").read_bytes() == b"spk1 f\nspk2 x\n"
    assert {p.name for p in backup.iterdir()} == {"text"}


def test_fix_of_a_valid_dir_makes_no_backup(data_dir):
    fix_data_dir(data_dir)
    assert not (data_dir / ".backup").exists()


def test_fix_still_invalid_keeps_its_work_and_the_backup(data_dir):
    _bad_speaker_prefix(data_dir)
    (data_dir / "text").write_text("spk2-utt2 b\nspk1-utt1 a\nspk1-utt2 a\nspk2-utt1 a\n")
    with pytest.raises(DataError, match=r"utt2spk:2: utterance 'spk1-utt2' does not start .*still invalid"):
        fix_data_dir(data_dir)
    assert (data_dir / ".backup" / "text").read_text().startswith("spk2-utt2 b\n")
    assert (data_dir / "text").read_text().startswith("spk1-utt1 a\n")  # sorted
    assert len(validate_data_dir(data_dir)) == 1


def test_validate_refuses_an_all_empty_data_dir(tmp_path, capsys):
    d = _empty_dir(tmp_path)
    assert validate_data_dir(d) == [
        f"{d / 'wav.scp'}: empty file (a data directory needs at least one utterance)",
        f"{d / 'utt2spk'}: empty file (a data directory needs at least one utterance)",
    ]
    code, out, err = _run(["data", "validate", d], capsys)
    assert code == 1 and "2 problem(s)" in err and "OK" not in out


# --- resume past a corrupt checkpoint ----------------------------------------------------


def _losses(exp: Path) -> list[float]:
    return [r["loss"] for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]


def test_resume_falls_back_to_the_previous_good_checkpoint(tmp_path):
    d = write_feats_dir(tmp_path)
    common = dict(data_dir=d, optim={"max_steps": 9, "warmup_steps": 1}, train={"ckpt_every": 3, "keep_last": 3})
    ref = train(write_config(tmp_path / "ref.yaml", exp_dir=tmp_path / "ref", **common))
    cfg = write_config(tmp_path / "run.yaml", exp_dir=tmp_path / "run", **common)
    exp = train(cfg, overrides=["optim.max_steps=9"])
    ckpts = dict(list_checkpoints(exp / "checkpoints"))
    assert sorted(ckpts) == [3, 6, 9]
    # the run is resumed from step 6, as if 7..9 never happened; step_9 becomes corrupt
    history = exp / "train_history.jsonl"
    history.write_text("".join(line + "\n" for line in history.read_text().splitlines()
                               if json.loads(line)["step"] <= 6))
    (exp / "train_summary.json").unlink()
    weights = ckpts[9] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    train(cfg, resume=True)

    log_text = (exp / "log" / "train.log").read_text()
    assert f"skipping unusable checkpoint {ckpts[9]}: {weights}: corrupt or truncated" in log_text
    assert f"resuming from {ckpts[6]} (step 6)" in log_text
    assert _losses(exp) == _losses(ref)  # exact: resumed from step 6
    assert (exp / "checkpoints" / "step_9" / "model.safetensors").stat().st_size > 100  # rewritten


def test_resume_errors_when_no_checkpoint_is_usable(tmp_path):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d,
                       optim={"max_steps": 4, "warmup_steps": 1}, train={"ckpt_every": 2})
    exp = train(cfg, overrides=["optim.max_steps=4"])
    for _, ckpt in list_checkpoints(exp / "checkpoints"):
        state = json.loads((ckpt / "state.json").read_text())
        state["sampler"]["batches"] = "many"  # a hand edit
        (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=r"checkpoints: none of the 2 checkpoints can be resumed from; the "
                                              r"newest: .*step_4/state\.json: sampler\.batches: must be a "
                                              r"non-negative integer, got \"many\""):
        train(cfg, overrides=["optim.max_steps=6"], resume=True)


def test_resume_with_one_bad_checkpoint_names_its_field(tmp_path, capsys):
    d = write_feats_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d,
                       optim={"max_steps": 2, "warmup_steps": 1}, train={"ckpt_every": 2})
    exp = train(cfg)
    (ckpt,) = [p for _, p in list_checkpoints(exp / "checkpoints")]
    state = json.loads((ckpt / "state.json").read_text())
    state["rng"][0]["torch"] = [1, 2, 3]  # not a torch RNG state
    (ckpt / "state.json").write_text(json.dumps(state))
    code, _, err = _run(["train", cfg, "--set", "optim.max_steps=3", "--resume"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"error: {ckpt / 'state.json'}: rng: unusable value")


# --- the CLI's main: exception classes and Ctrl-C ---------------------------------------


@pytest.mark.parametrize(
    "exc, line",
    [
        (FileExistsError(errno.EEXIST, "File exists", "out/feats.ark"), "error: out/feats.ark: File exists"),
        (IsADirectoryError(errno.EISDIR, "Is a directory", "data/wav.scp"), "error: data/wav.scp: Is a directory"),
        (NotADirectoryError(errno.ENOTDIR, "Not a directory", "a/b"), "error: a/b: Not a directory"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.wav"),
         "error: x.wav: No such file or directory"),
        (UnicodeDecodeError("utf-8", b"a\xe9", 1, 2, "invalid continuation byte"),
         "error: input is not valid UTF-8 text (byte b'\\xe9' at offset 1)"),
        (DataError("bad", path="f", field="k"), "error: f: k: bad"),
    ],
    ids=["exists", "is-a-directory", "not-a-directory", "not-found", "unicode", "speechrep-error"],
)
def test_main_turns_user_errors_into_one_line(exc, line, monkeypatch, data_dir, capsys):
    def boom(*args, **kwargs):
        raise exc

    monkeypatch.setattr("speechrep.data.validate.fix_data_dir", boom)
    code, _, err = _run(["data", "fix", data_dir], capsys)
    assert (code, err) == (1, line + "\n")


def test_main_leaves_real_bugs_as_tracebacks(monkeypatch, data_dir):
    monkeypatch.setattr("speechrep.data.validate.fix_data_dir", lambda *a: [][0])
    with pytest.raises(IndexError):
        main(["data", "fix", str(data_dir)])


def test_main_ctrl_c_in_process(monkeypatch, data_dir, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("speechrep.data.validate.fix_data_dir", interrupted)
    assert _run(["data", "fix", data_dir], capsys) == (130, "", "interrupted\n")


def test_ctrl_c_prints_interrupted_and_exits_130(tmp_path, data_dir):
    # a pipe in wav.scp that signals when it runs, then blocks: SIGINT arrives mid-command
    # (one process both signals and blocks, so that Ctrl-C cannot fall between the two)
    started = tmp_path / "started"
    wav = read_kaldi_map(data_dir / "wav.scp")
    first = sorted(wav)[0]
    block = f"import pathlib,time;pathlib.Path('{started}').touch();time.sleep(60)"
    wav[first] = f"{sys.executable} -c \"{block}\"; cat {wav[first]} |"
    (data_dir / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(wav.items())))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "speechrep", "data", "validate", "--check-audio", str(data_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), proc.communicate()
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert err.splitlines()[-1] == "interrupted" and "Traceback" not in err



def test_the_eval_inputs_of_the_table_are_otherwise_good(tmp_path, capsys):
    # so that the eval rows above fail for the reason they name, not for their inputs
    feats, ctm = _eval_inputs(tmp_path, _GOOD_CTM)
    code, _, err = _run(["eval", "features", "--feats", feats, "--ali", ctm, "--out", tmp_path / "r.json",
                         "--threads", "1"], capsys)
    assert code == 0, err
    assert json.loads((tmp_path / "r.json").read_text())["kind"] == "features"
