"""Report helpers: input hashes, atomic JSON, terminal table."""

from __future__ import annotations

import hashlib
import json

import kaldiio
import numpy as np

from speechrep.eval.report import input_record, results_table, sha1_of, write_report


def test_sha1_of_file_dir_and_scp(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("hello\n")
    assert sha1_of(f) == hashlib.sha1(b"hello\n").hexdigest()
    d = tmp_path / "npy"
    d.mkdir()
    np.save(d / "u1.npy", np.zeros(3))
    before = sha1_of(d)
    np.save(d / "u1.npy", np.ones(3))
    assert sha1_of(d) != before
    # regenerated archive behind an unchanged scp changes the hash
    kaldiio.save_ark(str(tmp_path / "f.ark"), {"u": np.zeros((2, 2), np.float32)}, scp=str(tmp_path / "f.scp"))
    scp_text, h1 = (tmp_path / "f.scp").read_text(), sha1_of(tmp_path / "f.scp")
    kaldiio.save_ark(str(tmp_path / "f.ark"), {"u": np.ones((2, 2), np.float32)}, scp=str(tmp_path / "f.scp"))
    assert (tmp_path / "f.scp").read_text() == scp_text and sha1_of(tmp_path / "f.scp") != h1
    assert input_record(None) is None and input_record(f) == {"path": str(f), "sha1": sha1_of(f)}


def test_write_report_and_table(tmp_path):
    metrics = {
        "abx": {"within": 12.5, "across": None},
        "units": {"pnmi": 0.5},
        "probes": {"speaker_probe": {"accuracy": 0.9, "chance": 0.25}, "phone_probe": None},
    }
    write_report(tmp_path / "r.json", {**metrics, "value": np.float32(1.5)})
    assert json.loads((tmp_path / "r.json").read_text())["value"] == 1.5
    from rich.console import Console

    console = Console(width=100, record=True)
    console.print(results_table(metrics, title="t"))
    text = console.export_text()
    assert "ABX within speakers (%)" in text and "12.5" in text and "n/a" in text
    assert "PNMI" in text and "0.9 (0.25)" in text and "phone probe" not in text
