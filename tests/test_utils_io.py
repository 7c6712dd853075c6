import os
import stat

import pytest

from speechrep.utils.io import atomic_dir, atomic_open, atomic_write_json, atomic_write_text


def test_atomic_file_replaced_only_on_success(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")
    with pytest.raises(RuntimeError):
        with atomic_open(p) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.txt"]  # no temp file left
    atomic_write_json(p, {"b": 1})
    assert p.read_text().strip().startswith("{")


def test_atomic_permissions_follow_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f", "x")
        with atomic_dir(tmp_path / "d") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755


def test_atomic_dir(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as d:
        (d / "x").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as d:
            (d / "x").write_text("2")
            raise ValueError
    assert (target / "x").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
