#!/usr/bin/env python3
"""List demo examples for the report's audio players.

Usage: demo_audio.py [--per-kind N] <pairs.tsv> <convert-dir> <audio.tsv>

Takes the first N pairs to a seen target speaker and the first N to an unseen one
(zero-shot: target speaker absent from the source speakers) and writes a TSV with the
columns ``label``, ``source``, ``target``, then one column per directory of
``<convert-dir>`` (``<family>_<vocoder>``, ``resynth_<vocoder>``) holding ``<id>.wav``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from speechrep.convert import read_pairs
from speechrep.utils.io import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-kind", type=int, default=2)
    ap.add_argument("pairs", type=Path)
    ap.add_argument("convert_dir", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    pairs = read_pairs(args.pairs)
    sources = {p.source_speaker for p in pairs}
    seen = [p for p in pairs if p.target_speaker in sources][: args.per_kind]
    unseen = [p for p in pairs if p.target_speaker not in sources][: args.per_kind]
    systems = sorted(d for d in args.convert_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    rows = ["\t".join(["label", "source", "target"] + [d.name for d in systems])]
    for p in seen + unseen:
        kind = "seen" if p in seen else "unseen"
        label = f"{p.source_speaker} -> {p.target_speaker} ({kind})"
        files = [str(Path(p.source).resolve()), str(Path(p.targets[0]).resolve())]
        files += [str((d / f"{p.id}.wav").resolve()) if (d / f"{p.id}.wav").is_file() else "" for d in systems]
        rows.append("\t".join([label] + files))
    atomic_write_text(args.out, "\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
