#!/usr/bin/env python3
"""Write the conversion pairs of the synthetic corpus's held-out sentences.

Usage: make_pairs.py --ctm CTM [--ctm CTM2] [--speakers a,b,c] [--unseen x,y] [--per-pair N]
                     [--targets K] [--seed S] <pairs.tsv> <data-dir> [<data-dir> ...]

Utterance ids are ``<speaker>-<sentence>``. For every ordered pair of distinct speakers
(A, B) with A in --speakers and B in --speakers or --unseen, N sentences read by both
are drawn: the source is A's reading, the reference B's reading of the same sentence
(parallel speech for MCD/F0), the targets K other utterances of B. Phones come from the
CTM (silences kept; the scorer drops them).

The first two targets come from the same random stream as the sentences; targets beyond
two are drawn from a stream of their own (seeded by the seed and the pair id), so that
--targets K >= 2 changes only the targets: the sentences stay those of the default (K = 2).
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from speechrep.data.ctm import read_ctm
from speechrep.data.kaldi_dir import DataDir
from speechrep.utils.io import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", default="", help="comma-separated source/target speakers (default: all seen)")
    ap.add_argument("--unseen", default="", help="comma-separated target-only speakers (zero-shot)")
    ap.add_argument("--per-pair", type=int, default=1)
    ap.add_argument("--targets", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ctm", type=Path, action="append", required=True, help="phone CTM of the data dirs (repeatable)")
    ap.add_argument("out", type=Path, help="pairs file to write")
    ap.add_argument("data_dirs", type=Path, nargs="+", help="Kaldi data directories of the held-out utterances")
    args = ap.parse_args()
    if args.targets < 1:
        raise SystemExit(f"make_pairs.py: --targets must be >= 1, got {args.targets}")
    out, data_dirs = args.out, args.data_dirs
    phones: dict[str, list[str]] = {}
    for c in args.ctm:
        phones.update({u: [ph for _, _, ph in segs] for u, segs in read_ctm(c).items()})
    wav: dict[str, str] = {}
    by_spk: dict[str, dict[str, str]] = {}  # speaker -> sentence -> utt
    for d in data_dirs:
        dd = DataDir.load(d)
        for utt in dd.utts:
            spk = dd.utt2spk[utt]
            wav[utt] = dd.wav_scp[utt]
            by_spk.setdefault(spk, {})[utt.rsplit("-", 1)[1]] = utt
    seen = [s for s in args.speakers.split(",") if s] or sorted(by_spk)
    unseen = [s for s in args.unseen.split(",") if s]
    missing = [s for s in seen + unseen if s not in by_spk]
    if missing:
        raise SystemExit(f"make_pairs.py: speaker {missing[0]} not in {', '.join(map(str, data_dirs))}")
    rng = random.Random(args.seed)
    rows = ["id\tsource\ttarget\tsource_speaker\ttarget_speaker\treference\tphones"]
    for a in seen:
        for b in seen + unseen:
            if a == b:
                continue
            shared = sorted(set(by_spk[a]) & set(by_spk[b]))
            for sent in rng.sample(shared, min(args.per_pair, len(shared))):
                src, ref = by_spk[a][sent], by_spk[b][sent]
                others = sorted(u for s, u in by_spk[b].items() if s != sent)
                targets = rng.sample(others, min(args.targets, 2, len(others)))
                rest = [u for u in others if u not in targets]
                pair_id = f"{a}__{b}__{sent}"
                targets += random.Random(f"{args.seed}:{pair_id}").sample(rest, min(args.targets - len(targets), len(rest)))
                if not targets or src not in phones:
                    continue
                rows.append("\t".join([pair_id, wav[src], ",".join(wav[t] for t in targets), a, b,
                                       wav[ref], " ".join(phones[src])]))
    if len(rows) == 1:
        raise SystemExit("make_pairs.py: no pair found (speakers share no sentence?)")
    atomic_write_text(out, "\n".join(rows) + "\n")
    print(f"{out}: {len(rows) - 1} pairs")


if __name__ == "__main__":
    main()
