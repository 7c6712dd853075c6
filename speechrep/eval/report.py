"""The evaluation's output: one JSON document, and a small table for the terminal."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any, Mapping

from speechrep.utils.io import atomic_write_json

__all__ = ["sha1_of", "input_record", "versions", "write_report", "results_table"]


def sha1_of(path: str | Path) -> str:
    """SHA-1 of a file, or of a directory (its files' relative names and contents, sorted).

    A Kaldi ``.scp`` is hashed together with the archives it points to, so that
    regenerated features change the hash.
    """
    path = Path(path)
    h = hashlib.sha1()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(path)).encode() + b"\0")
            _update(h, f)
        return h.hexdigest()
    _update(h, path)
    if path.suffix == ".scp":
        arks = []
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                ark = parts[1].rsplit(":", 1)[0] if ":" in parts[1] else parts[1]
                if ark not in arks:
                    arks.append(ark)
        for ark in arks:
            if Path(ark).is_file():
                _update(h, Path(ark))
    return h.hexdigest()


def _update(h: "hashlib._Hash", path: Path) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)


def input_record(path: str | Path | None) -> dict[str, str] | None:
    """``{"path", "sha1"}`` of an input file or directory (None stays None)."""
    if path is None:
        return None
    return {"path": str(path), "sha1": sha1_of(path)}


def versions() -> dict[str, str]:
    """Versions of speechrep, Python and the libraries that compute the metrics."""
    import numba
    import numpy
    import scipy
    import sklearn

    import speechrep

    return {
        "speechrep": speechrep.__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }


def write_report(path: str | Path, report: Mapping[str, Any]) -> None:
    """Write the report as key-sorted JSON, atomically (no partial file on failure)."""
    atomic_write_json(path, dict(report))


_ROWS = [
    ("abx", "within", "ABX within speakers (%)"),
    ("abx", "across", "ABX across speakers (%)"),
    ("units", "phone_purity", "phone purity"),
    ("units", "cluster_purity", "cluster purity"),
    ("units", "pnmi", "PNMI"),
    ("units", "v_measure", "V-measure"),
    ("codebook", "perplexity", "codebook perplexity"),
    ("codebook", "used_codes", "used codes"),
    ("codebook", "dead_codes", "dead codes"),
    ("bitrate", "bitrate", "bitrate (bits/s)"),
    ("segmentation", "precision", "boundary precision"),
    ("segmentation", "recall", "boundary recall"),
    ("segmentation", "f1", "boundary F1"),
    ("segmentation", "r_value", "boundary R-value"),
    ("segmentation", "over_segmentation", "over-segmentation"),
]


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def results_table(metrics: Mapping[str, Any], *, title: str = "phone discovery") -> "Any":
    """A rich ``Table`` of the metrics present (probes show accuracy and chance)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for section, key, label in _ROWS:
        if isinstance(metrics.get(section), Mapping) and key in metrics[section]:
            table.add_row(label, _fmt(metrics[section][key]))
    for name in ("phone_probe", "speaker_probe"):
        probe = metrics.get("probes", {}).get(name)
        if probe:
            table.add_row(
                f"{name.replace('_', ' ')} accuracy (chance)", f"{_fmt(probe['accuracy'])} ({_fmt(probe['chance'])})"
            )
    return table
