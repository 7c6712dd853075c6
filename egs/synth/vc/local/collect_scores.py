#!/usr/bin/env python3
"""Gather per-system ``speechrep eval vc`` outputs into one table.

Usage: collect_scores.py <scores-dir> <vc.json> <table.txt>

Reads ``<scores-dir>/<family>_<vocoder>.json``; writes ``{"families": {"<family>+<vocoder>":
summary}}`` (the layout ``speechrep report`` reads from ``exp/eval/vc*.json``) and the
plain-text table of all systems side by side, then each system's rates and misses per
target speaker.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from speechrep.eval.vc import format_by_target, format_vc_table
from speechrep.utils.io import atomic_write_json, atomic_write_text


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__.strip().splitlines()[2])
    scores_dir, out_json, out_table = map(Path, sys.argv[1:])
    results = {}
    for path in sorted(scores_dir.glob("*.json")):
        family, _, vocoder = path.stem.rpartition("_")
        results[f"{family}+{vocoder}"] = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        raise SystemExit(f"collect_scores.py: no *.json in {scores_dir}")
    atomic_write_json(out_json, {"families": {name: r["summary"] for name, r in results.items()}})
    per_target = [f"\n{name}, per target speaker:\n{format_by_target(r)}" for name, r in results.items() if "by_target" in r]
    atomic_write_text(out_table, format_vc_table(results) + "\n" + "".join(t + "\n" for t in per_target))


if __name__ == "__main__":
    main()
