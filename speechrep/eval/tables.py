"""Side-by-side tables of phone-discovery results (JSON of ``speechrep eval features`` /
``speechrep eval baseline``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from speechrep.errors import DataError

__all__ = ["phone_discovery_row", "phone_discovery_table"]


def phone_discovery_row(name: str, path: str | Path) -> dict[str, float | None]:
    """ABX within/across (%) and phone/speaker probe accuracy of one result.

    A report of ``speechrep eval baseline`` holds several representations: ``name`` picks
    one (``mfcc``, ``fbank``; ``mfcc@unseen``: mfcc of a tagged evaluation set's report); any
    other report is read as it is.

    Raises
    ------
    DataError
        A missing or unreadable JSON file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("result file not found", path=path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"not a JSON result ({e})", path=path) from None
    metrics = doc["baselines"].get(name.partition("@")[0], {}) if "baselines" in doc else doc
    abx = metrics.get("abx") or {}
    probes = metrics.get("probes") or {}

    def acc(probe: str) -> float | None:
        return (probes.get(probe) or {}).get("accuracy")

    return {"within": abx.get("within"), "across": abx.get("across"), "phone": acc("phone_probe"),
            "speaker": acc("speaker_probe")}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def phone_discovery_table(results: Mapping[str, str | Path], *, ratio_to: str | None = None) -> str:
    """Markdown table, one row per ``{name: result JSON}``: ABX within/across speakers in %,
    phone and speaker probe accuracy and, with ``ratio_to``, each row's ABX-across error
    relative to that row's (a row ``<name>@<tag>``, results on another evaluation set, relative
    to ``<ratio_to>@<tag>``).

    Raises
    ------
    DataError
        A missing result file, or ``ratio_to`` naming no row with an ABX-across result.
    """
    rows = {name: phone_discovery_row(name, path) for name, path in results.items()}
    ref = rows.get(ratio_to, {}).get("across") if ratio_to else None
    if ratio_to and ref is None:
        raise DataError(f"no ABX-across result under the name '{ratio_to}'", field="--ratio-to")
    head = "| representation | ABX within (%) | ABX across (%) | phone probe acc | speaker probe acc |"
    lines = [head + (f" across / {ratio_to} |" if ref else ""), "|" + "---|" * (5 + bool(ref))]
    for name, r in rows.items():
        line = f"| {name} | {_fmt(r['within'])} | {_fmt(r['across'])} | {_fmt(r['phone'], 3)} | {_fmt(r['speaker'], 3)} |"
        if ref:
            tag = name.partition("@")[2]
            row_ref = rows.get(f"{ratio_to}@{tag}", {}).get("across") if tag else ref
            line += f" {_fmt(None if r['across'] is None or not row_ref else r['across'] / row_ref)} |"
        lines.append(line)
    return "\n".join(lines) + "\n"
