"""Hostile input to feature extraction and audio validation (issue 39, part FEATS).

``CASES`` is a table of bad inputs to ``features make-fbank|make-mfcc|compute-cmvn`` and
``data validate``, each run through the real entry point: it must fail with one line
naming the file at fault, no traceback, and leave nothing behind (no output, no temporary
file; a pipe command that must not run would leave a file). The focused tests after it
cover reruns with changed audio, the output lock, jobs dying with their parent, Ctrl-C,
and the one audio rule shared by ``validate --check-audio`` and make-fbank.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from speechrep.cli import main
from speechrep.data.kaldi_dir import read_kaldi_map, write_kaldi_map
from speechrep.errors import SpeechrepError
from speechrep.features import fbank
from speechrep.data.make_features import make_features
from speechrep.utils.jobs import output_lock

ROOT = Path(__file__).resolve().parents[1]


# --- helpers ---------------------------------------------------------------------------


def _run(args: list, capsys) -> tuple[int, str, str]:
    """Run the CLI in this process; an uncaught exception (a traceback) fails the test."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _wav_of(data: Path, utt: str) -> Path:
    return Path(read_kaldi_map(data / "wav.scp")[utt])


def _set_wav(data: Path, utt: str, spec: str) -> None:
    wav = read_kaldi_map(data / "wav.scp")
    wav[utt] = spec
    write_kaldi_map(data / "wav.scp", wav)


def _truncate(path: Path) -> None:
    """Cut a 16-bit WAV file to half its samples, leaving its header's sizes as they were."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 4 * 2])


def _write_tone(path: Path, rate: int, seconds: float) -> Path:
    t = np.arange(int(round(rate * seconds))) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, subtype="PCM_16")
    return path


def _make_fbank(tmp: Path, data: Path, *extra: str) -> list:
    return ["features", "make-fbank", data, tmp / "out", *extra]


def _compute_cmvn(tmp: Path, data: Path) -> list:
    # a feats.scp that is never read: every case is refused before the features are
    (data / "feats.scp").write_text("".join(f"{u} {data}/none.ark:9\n" for u in read_kaldi_map(data / "utt2spk")))
    return ["features", "compute-cmvn", data, tmp / "cmvn"]


def _validate(tmp: Path, data: Path, *extra: str) -> list:
    return ["data", "validate", data, "--check-audio", *extra]


# preparations: (tmp_path, data_dir, monkeypatch) -> None


def _wav_scp_dir(tmp, data, mp):
    (data / "wav.scp").unlink()
    (data / "wav.scp").mkdir()


def _truncated(tmp, data, mp):
    _truncate(_wav_of(data, "spk1-utt2"))


def _wav_is_dir(tmp, data, mp):
    (tmp / "adir.wav").mkdir()
    _set_wav(data, "spk2-utt1", str(tmp / "adir.wav"))


def _file_at(relative: str):
    def prepare(tmp, data, mp):
        (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp / relative).write_text("not a directory\n")

    return prepare


def _dir_at(relative: str):
    def prepare(tmp, data, mp):
        (tmp / relative).mkdir(parents=True)

    return prepare


def _missing(module: str):
    def prepare(tmp, data, mp):
        mp.setitem(sys.modules, module, None)  # importing it fails, as without the cluster extra

    return prepare


def _read_only_data(tmp, data, mp):
    # what a read-only mount answers (a chmod cannot show it to root)
    real = os.access
    mp.setattr(os, "access", lambda p, mode, **kw: not (mode & os.W_OK and Path(p) == data) and real(p, mode, **kw))


def _rate_8k(tmp, data, mp):
    _write_tone(_wav_of(data, "spk2-utt2"), 8000, 0.5)


def _too_short(tmp, data, mp):
    _write_tone(_wav_of(data, "spk1-utt1"), 16000, 0.02)


def _pipe(tmp, data, mp):
    # a pipe that must not run: it would leave pipe-ran behind
    _set_wav(data, "spk1-utt1", f"touch {tmp}/pipe-ran; cat {_wav_of(data, 'spk1-utt1')} |")


def _pipe_44k(tmp, data, mp):
    _write_tone(tmp / "cd.wav", 44100, 0.5)
    _set_wav(data, "spk1-utt2", f"cat {tmp}/cd.wav |")


def _empty_data(tmp, data, mp):
    for name in ("wav.scp", "utt2spk", "spk2utt", "text", "utt2dur"):
        (data / name).write_text("")


def _nothing(tmp, data, mp):
    pass


@dataclass(frozen=True)
class Case:
    """A bad input: ``prepare`` breaks the data directory (or the environment), ``command``
    builds the command line; the error must name ``names`` and contain ``message``."""

    name: str
    prepare: Callable[[Path, Path, pytest.MonkeyPatch], None]
    command: Callable[[Path, Path], list]
    names: Callable[[Path, Path], Path | str]
    message: str

    @property
    def validate(self) -> bool:  # `data validate` lists problems on stdout instead of one error line
        return self.name.startswith("validate")


def _named(relative: str) -> Callable[[Path, Path], Path]:
    return lambda t, d: t / relative


_WAV_SCP = lambda t, d: d / "wav.scp"  # noqa: E731
_UTT2 = lambda t, d: _wav_of(d, "spk1-utt2")  # noqa: E731
_CMD = lambda t, d: "--cmd"  # noqa: E731
_MFCC = lambda t, d: ["features", "make-mfcc", d, t / "out"]  # noqa: E731

CASES = [
    Case("wav_scp_is_a_directory", _wav_scp_dir, _make_fbank, _WAV_SCP, "is a directory, not a file"),
    Case("truncated_wav_make_fbank", _truncated, _make_fbank, _UTT2, "truncated WAV"),
    Case("truncated_wav_make_mfcc", _truncated, _MFCC, _UTT2,
         "truncated WAV: the header promises 8000 samples, the file holds 4000"),
    Case("wav_entry_is_a_directory", _wav_is_dir, _make_fbank, _named("adir.wav"), "is a directory, not an audio file"),
    Case("out_is_a_file", _file_at("out"), _make_fbank, _named("out"), "exists and is not a directory"),
    Case("out_below_a_file", _file_at("out"), lambda t, d: ["features", "make-fbank", d, t / "out" / "sub"],
         _named("out"), "is not a directory"),
    Case("out_config_is_a_directory", _dir_at("out/fbank.yaml"), _make_fbank, _named("out/fbank.yaml"),
         "not a regular file"),
    Case("log_dir_is_a_file", _file_at("out/log"), _make_fbank, _named("out/log"), "exists and is not a directory"),
    Case("data_output_is_a_directory", _dir_at("data/frame_shift"), _make_fbank, _named("data/frame_shift"),
         "not a regular file"),
    Case("no_utterances", _empty_data, _make_fbank, _named("data/utt2spk"), "no utterances"),
    Case("cmd_sge", _nothing, lambda t, d: _make_fbank(t, d, "--cmd", "sge"), _CMD, "unknown job command"),
    Case("nj_zero", _nothing, lambda t, d: _make_fbank(t, d, "--nj", "0"), lambda t, d: "--nj", "must be >= 1"),
    Case("nj_above_utterances", _nothing, lambda t, d: _make_fbank(t, d, "--nj", "9"), lambda t, d: "--nj",
         "9 jobs for 4 utterances"),
    Case("slurm_without_cluster_extra", _missing("submitit"), lambda t, d: _make_fbank(t, d, "--cmd", "slurm"), _CMD,
         "pip install '.[cluster]'"),
    Case("dask_without_cluster_extra", _missing("distributed"),
         lambda t, d: _make_fbank(t, d, "--cmd", "dask://localhost:8786"), _CMD, "pip install '.[cluster]'"),
    Case("read_only_data_dir", _read_only_data, _make_fbank, _named("data"), "not writable"),
    Case("file_at_8khz", _rate_8k, _make_fbank, lambda t, d: _wav_of(d, "spk2-utt2"),
         "sample rate 8000 Hz differs from sample_frequency=16000"),
    Case("pipe_refused_make_fbank", _pipe, lambda t, d: _make_fbank(t, d, "--no-pipes"), _WAV_SCP,
         "pipe command refused (--no-pipes)"),
    Case("pipe_refused_make_mfcc", _pipe, lambda t, d: [*_MFCC(t, d), "--no-pipes"], _WAV_SCP,
         "pipe command refused (--no-pipes)"),
    Case("cmvn_wav_scp_is_a_directory", _wav_scp_dir, _compute_cmvn, _WAV_SCP, "is a directory, not a file"),
    Case("cmvn_out_is_a_file", _file_at("cmvn"), _compute_cmvn, _named("cmvn"), "exists and is not a directory"),
    Case("cmvn_output_is_a_directory", _dir_at("cmvn/cmvn_data.ark"), _compute_cmvn, _named("cmvn/cmvn_data.ark"),
         "not a regular file"),
    Case("cmvn_read_only_data_dir", _read_only_data, _compute_cmvn, _named("data"), "not writable"),
    # data validate: problems on stdout, naming wav.scp's line and the file at fault
    Case("validate_wav_scp_is_a_directory", _wav_scp_dir, _validate, _WAV_SCP, "is a directory, not a file"),
    Case("validate_truncated_wav", _truncated, _validate, _UTT2, "truncated WAV"),
    Case("validate_wav_is_a_directory", _wav_is_dir, _validate, _named("adir.wav"), "is a directory, not an audio file"),
    Case("validate_file_at_8khz", _rate_8k, _validate, lambda t, d: _wav_of(d, "spk2-utt2"),
         "sample rate 8000 Hz differs"),
    Case("validate_too_short", _too_short, _validate, lambda t, d: _wav_of(d, "spk1-utt1"),
         "320 samples are too short for one frame (at least 400"),
    Case("validate_pipe_at_44khz", _pipe_44k, _validate, lambda t, d: f"cat {t}/cd.wav |",
         "sample rate 44100 Hz differs"),
    Case("validate_pipe_refused", _pipe, lambda t, d: ["data", "validate", d, "--no-pipes"], _WAV_SCP,
         "pipe command refused (--no-pipes)"),
    Case("validate_pipe_refused_with_check_audio", _pipe, lambda t, d: _validate(t, d, "--no-pipes"), _WAV_SCP,
         "pipe command refused (--no-pipes)"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_one_line_nothing_left(case, tmp_path, data_dir, capsys, monkeypatch):
    case.prepare(tmp_path, data_dir, monkeypatch)
    argv = case.command(tmp_path, data_dir)
    before = _snapshot(tmp_path)
    code, out, err = _run(argv, capsys)
    monkeypatch.undo()
    named = str(case.names(tmp_path, data_dir))
    assert code != 0
    assert "Traceback" not in out + err
    if case.validate:
        problems = [line for line in out.splitlines() if case.message in line]
        assert problems and all(named in line for line in problems), out
        assert err.strip().endswith("problem(s)")
    else:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert named in lines[0] and case.message in lines[0], lines[0]
    assert _snapshot(tmp_path) == before  # no output, no temporary file, no pipe run


# --- job failures: one line, no temporary file, no feats.scp ------------------------------


@pytest.mark.parametrize(
    "prepare, message",
    [
        (_pipe_44k, "sample rate 44100 Hz differs from sample_frequency=16000"),
        (_too_short, "320 samples are too short for one frame"),
    ],
    ids=["pipe_at_44khz", "too_short"],
)
def test_audio_refused_by_the_job_leaves_no_temporary_or_feats(prepare, message, tmp_path, data_dir, capsys):
    prepare(tmp_path, data_dir, None)
    code, out, err = _run(_make_fbank(tmp_path, data_dir), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and message in lines[0] and "make_fbank.1.log" in lines[0], err
    assert not list(tmp_path.rglob("*.tmp")) and not (data_dir / "feats.scp").exists()


def test_validate_and_make_fbank_apply_one_rule(tmp_path, data_dir, capsys):
    """Audio is refused by both commands or by neither, under the same feature config."""
    conf = tmp_path / "fbank8k.yaml"
    conf.write_text("sample_frequency: 8000\n")
    for utt in read_kaldi_map(data_dir / "utt2spk"):
        _write_tone(_wav_of(data_dir, utt), 8000, 0.3)
    # default config (16 kHz): both refuse 8 kHz audio
    assert _run(["data", "validate", data_dir, "--check-audio"], capsys)[0] == 1
    assert _run(_make_fbank(tmp_path, data_dir), capsys)[0] == 1
    # an 8 kHz config: both accept it
    code, out, _ = _run(["data", "validate", data_dir, "--check-audio", "--config", conf], capsys)
    assert code == 0 and "OK" in out
    assert _run(_make_fbank(tmp_path, data_dir, "--config", conf), capsys)[0] == 0
    # once features are made, validate checks against the config beside them
    assert (data_dir / "conf" / "fbank.yaml").is_file()
    assert _run(["data", "validate", data_dir, "--check-audio"], capsys)[0] == 0


# --- reruns: stale features, stale temporaries ----------------------------------------------


def _feats(data: Path) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in kaldiio.load_scp(str(data / "feats.scp")).items()}


def _expected(path: Path) -> np.ndarray:
    wave, _ = sf.read(path, dtype="float32")
    return fbank(wave * 32768, dither=0.0)


def test_rerun_redoes_only_jobs_whose_audio_or_lines_changed(tmp_path, data_dir):
    out = tmp_path / "fbank"
    make_features(data_dir, out, nj=2, overrides=["dither=0"], progress=False)
    arks = [out / f"raw_fbank_data.{j}.ark" for j in (1, 2)]
    mtimes = [a.stat().st_mtime_ns for a in arks]
    (data_dir / "cmvn.scp").write_text("spk1 x.ark:1\nspk2 x.ark:9\n")

    # same name, new audio (spk2-utt2 is in job 2)
    target = _wav_of(data_dir, "spk2-utt2")
    _write_tone(target, 16000, 0.7)
    make_features(data_dir, out, nj=2, overrides=["dither=0"], progress=False)
    np.testing.assert_allclose(_feats(data_dir)["spk2-utt2"], _expected(target), atol=1e-3)
    assert arks[0].stat().st_mtime_ns == mtimes[0]  # job 1 untouched
    assert not (data_dir / "cmvn.scp").exists()  # statistics of the old features are gone

    # a changed wav.scp line
    other = _write_tone(tmp_path / "other.wav", 16000, 0.4)
    _set_wav(data_dir, "spk1-utt1", str(other))
    make_features(data_dir, out, nj=2, overrides=["dither=0"], progress=False)
    assert _feats(data_dir)["spk1-utt1"].shape == _expected(other).shape
    np.testing.assert_allclose(_feats(data_dir)["spk1-utt1"], _expected(other), atol=1e-3)

    # nothing changed: nothing is redone
    mtimes = [a.stat().st_mtime_ns for a in arks]
    make_features(data_dir, out, nj=2, overrides=["dither=0"], progress=False)
    assert [a.stat().st_mtime_ns for a in arks] == mtimes


def test_rerun_removes_temporaries_of_a_killed_run(tmp_path, data_dir):
    out = tmp_path / "fbank"
    out.mkdir()
    stale = [out / ".raw_fbank_data.1.ark.k1ll3d.tmp", out / ".raw_fbank_data.1.scp.x7.tmp"]
    for path in stale:
        path.write_bytes(b"half an ark")
    make_features(data_dir, out, progress=False)
    assert not any(p.exists() for p in stale)
    assert len(_feats(data_dir)) == 4


# --- concurrency, signals -------------------------------------------------------------------


def test_concurrent_run_on_the_same_output_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "fbank"
    out.mkdir()
    with output_lock(out, what="test run"):
        with pytest.raises(SpeechrepError, match=f"^{out}: another make-fbank run is writing to this directory"):
            make_features(data_dir, out, progress=False)
        code, _, err = _run(["features", "make-fbank", data_dir, out], capsys)
        assert code == 1 and err.count("\n") == 1 and "another make-fbank run" in err
    assert not list(out.glob("*.ark")) and not (data_dir / "feats.scp").exists()
    make_features(data_dir, out, progress=False)  # the lock dies with its holder
    assert len(_feats(data_dir)) == 4


def _slow_pipe_data(tmp_path: Path, data: Path) -> Path:
    """spk1-utt2's audio comes from a pipe that blocks: the job sits there, its ark half written.
    The pipe touches ``tmp_path / "in_pipe"`` first: the job has then finished spk1-utt1 (and any
    numba compilation, which a signal must not interrupt in these tests: llvmlite breaks)."""
    _set_wav(data, "spk1-utt2", f"touch {tmp_path / 'in_pipe'}; sleep 20; cat {_wav_of(data, 'spk1-utt2')} |")
    return tmp_path / "fbank"


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-m", "speechrep", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)


def _wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _job_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_of_make_fbank_kills_its_jobs_and_rerun_is_complete(tmp_path, data_dir):
    out = _slow_pipe_data(tmp_path, data_dir)
    proc = _start(["features", "make-fbank", str(data_dir), str(out), "--nj", "2"])
    try:
        assert _wait_for(lambda: (tmp_path / "in_pipe").exists(), 60), proc.stderr
        assert list(out.glob(".raw_fbank_data.1.ark.*.tmp"))
        jobs = _job_pids(proc.pid)
        assert _wait_for(lambda: (out / "raw_fbank_data.2.scp").exists(), 60)  # job 2 (no slow pipe) is done
        assert len(jobs) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _wait_for(lambda: not any(_alive(j) for j in jobs), 20), "jobs outlived their parent"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not list(out.glob(".*.tmp"))  # the jobs cleaned up as they died
    _set_wav(data_dir, "spk1-utt2", str(tmp_path / "wav" / "spk1-utt2.wav"))
    make_features(data_dir, out, nj=2, progress=False)
    feats = _feats(data_dir)
    assert sorted(feats) == sorted(read_kaldi_map(data_dir / "utt2spk")) and {f.shape[1] for f in feats.values()} == {23}


def test_ctrl_c_removes_temporary_files_and_ends_the_job_log(tmp_path, data_dir):
    out = _slow_pipe_data(tmp_path, data_dir)
    proc = _start(["features", "make-fbank", str(data_dir), str(out)])
    try:
        assert _wait_for(lambda: (tmp_path / "in_pipe").exists(), 60), proc.stderr
        assert list(out.glob(".raw_fbank_data.1.ark.*.tmp"))
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr.read().decode()
    assert not list(out.glob(".*.tmp")) and not (data_dir / "feats.scp").exists()
    assert (out / "log" / "make_fbank.1.log").read_text().splitlines()[-1].endswith("interrupted")
