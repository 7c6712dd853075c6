"""Outputs that cannot be written: a full disk (simulated with a file-size limit, which
makes ``write()`` fail the same way for root and non-root users), an exp dir that cannot be
created or written. Each must give one ``error: <file>: <reason>`` line, exit 1, leave
nothing that looks complete, and let a rerun finish as if nothing had happened."""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from speechrep.train.checkpoint import list_checkpoints
from speechrep.utils.io import atomic_dir, atomic_write_text
from tests.test_train_data import write_config, write_feats_dir, write_wave_dir

REPO = Path(__file__).resolve().parents[1]


def _file_size_limit(limit: int):
    """preexec_fn: writes past ``limit`` bytes fail with EFBIG (Python ignores SIGXFSZ)."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


def _speechrep(*args: str, cwd: Path, limit: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "speechrep", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, preexec_fn=None if limit is None else _file_size_limit(limit))


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    return last


def _leftovers(root: Path) -> list[Path]:
    """Temporary files/dirs of the atomic writers (``.<name>.<random>.tmp``, ``.<name>.old``)."""
    return [p for p in root.rglob("*") if p.name.endswith((".tmp", ".old"))]


def test_atomic_writers_on_a_full_disk_name_the_file_and_leave_nothing(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    target, folder = tmp_path / "out.txt", tmp_path / "outdir"
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(OSError) as e:
            atomic_write_text(target, "x" * 5000)
        assert e.value.errno == errno.EFBIG and e.value.filename == str(target)
        with pytest.raises(OSError) as e:
            with atomic_dir(folder) as tmp:
                (tmp / "small").write_text("ok")
                (tmp / "big").write_bytes(b"y" * 5000)
        assert e.value.errno == errno.EFBIG and e.value.filename == str(folder)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no target, no temp file or dir


def test_training_on_a_full_disk_fails_cleanly_and_a_rerun_completes(tmp_path):
    d = write_feats_dir(tmp_path)
    # 24k parameters: the checkpoint (~200 kB with the optimizer state) does not fit 64 kB,
    # the config, log and history do.
    common = dict(data_dir=d, model={"args": {"hidden": 2000}}, optim={"max_steps": 10})
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", **common)
    exp = tmp_path / "exp"
    line = _one_line_error(_speechrep("train", str(cfg), cwd=tmp_path, limit=64 * 1024))
    assert line == f"error: {exp / 'checkpoints' / 'step_5'}: File too large"
    assert list_checkpoints(exp / "checkpoints") == [] and not _leftovers(exp)
    rerun = _speechrep("train", str(cfg), "--resume", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    clean = _speechrep("train", str(write_config(tmp_path / "r.yaml", exp_dir=tmp_path / "ref", **common)),
                       cwd=tmp_path)
    sha = [line for line in clean.stdout.splitlines() + clean.stderr.splitlines() if "weights sha256" in line]
    assert sha and sha[0] in rerun.stdout + rerun.stderr  # the same final weights


def test_feature_extraction_on_a_full_disk_fails_cleanly_and_a_rerun_completes(tmp_path):
    d, ref = write_wave_dir(tmp_path / "a"), write_wave_dir(tmp_path / "b")  # feats.scp goes to the data dir
    out = tmp_path / "fbank"
    line = _one_line_error(_speechrep("features", "make-fbank", str(d), str(out), "--nj", "2", cwd=tmp_path,
                                      limit=8 * 1024))
    assert "failed" in line and "File too large" in line and str(out / "log") in line
    assert not (d / "feats.scp").exists() and not _leftovers(out)
    assert _speechrep("features", "make-fbank", str(d), str(out), "--nj", "2", cwd=tmp_path).returncode == 0
    assert _speechrep("features", "make-fbank", str(ref), str(tmp_path / "ref"), "--nj", "2",
                      cwd=tmp_path).returncode == 0
    a, b = kaldiio.load_scp(str(d / "feats.scp")), kaldiio.load_scp(str(ref / "feats.scp"))
    assert sorted(a) == sorted(b) and len(a) == 9
    for utt in a:
        np.testing.assert_array_equal(a[utt], b[utt])


def test_an_exp_dir_that_cannot_be_created_is_one_line(tmp_path):
    d = write_feats_dir(tmp_path)
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a regular file where the exp dir's parent should be")
    cfg = write_config(tmp_path / "c.yaml", exp_dir=blocker / "exp", data_dir=d, optim={"max_steps": 2})
    line = _one_line_error(_speechrep("train", str(cfg), cwd=tmp_path))
    assert line.startswith(f"error: {blocker}") and line.endswith("Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_exp_dir_is_one_line(tmp_path):
    d = write_feats_dir(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cfg = write_config(tmp_path / "c.yaml", exp_dir=ro / "exp", data_dir=d, optim={"max_steps": 2})
        line = _one_line_error(_speechrep("train", str(cfg), cwd=tmp_path))
        assert line.startswith(f"error: {ro}") and line.endswith("Permission denied")
    finally:
        ro.chmod(0o755)
