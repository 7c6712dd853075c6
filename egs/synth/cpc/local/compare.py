#!/usr/bin/env python3
"""Side-by-side table of phone-discovery results (JSON of ``speechrep eval features``).

Usage: local/compare.py [--ratio-to NAME] [--out TABLE.md] NAME=RESULT.json ...

A report of ``speechrep eval baseline`` holds several representations; NAME picks one
(``mfcc=baseline.json``, ``fbank=baseline.json``).
Prints a Markdown table (ABX within/across speakers in %, phone and speaker probe
accuracy) and, with ``--ratio-to``, each row's ABX-across error relative to that row.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _row(name: str, path: Path) -> dict[str, float | None]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    metrics = doc["baselines"].get(name, {}) if "baselines" in doc else doc
    abx = metrics.get("abx") or {}
    probes = metrics.get("probes") or {}
    acc = lambda name: (probes.get(name) or {}).get("accuracy")  # noqa: E731
    return {"within": abx.get("within"), "across": abx.get("across"), "phone": acc("phone_probe"), "speaker": acc("speaker_probe")}


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="NAME=RESULT.json")
    p.add_argument("--ratio-to", metavar="NAME", help="row whose ABX-across error is the reference")
    p.add_argument("--out", type=Path, help="also write the table to this file")
    args = p.parse_args()
    rows = {}
    for item in args.results:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            sys.exit(f"error: {item}: expected NAME=RESULT.json of an existing file")
        rows[name] = _row(name, Path(path))
    ref = rows.get(args.ratio_to, {}).get("across") if args.ratio_to else None
    if args.ratio_to and ref is None:
        sys.exit(f"error: --ratio-to {args.ratio_to}: no ABX-across result under that name")
    head = "| representation | ABX within (%) | ABX across (%) | phone probe acc | speaker probe acc |"
    lines = [head + (f" across / {args.ratio_to} |" if ref else ""), "|" + "---|" * (5 + bool(ref))]
    for name, r in rows.items():
        line = f"| {name} | {_fmt(r['within'])} | {_fmt(r['across'])} | {_fmt(r['phone'], 3)} | {_fmt(r['speaker'], 3)} |"
        if ref:
            line += f" {_fmt(None if r['across'] is None else r['across'] / ref)} |"
        lines.append(line)
    table = "\n".join(lines) + "\n"
    print(table, end="")
    if args.out:
        args.out.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()
