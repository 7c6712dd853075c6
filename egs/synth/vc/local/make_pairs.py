#!/usr/bin/env python3
"""Write the conversion pairs of the synthetic corpus's held-out sentences.

Usage: make_pairs.py --ctm CTM [--ctm CTM2] [--speakers a,b,c] [--unseen x,y] [--per-pair N]
                     [--targets K] [--seed S] [--unused-out DIR] <pairs.tsv> <data-dir> [<data-dir> ...]

Utterance ids are ``<speaker>-<sentence>``. For every ordered pair of distinct speakers
(A, B) with A in --speakers and B in --speakers or --unseen, N sentences read by both
are drawn: the source is A's reading, the reference B's reading of the same sentence
(parallel speech for MCD/F0), the targets K other utterances of B. Phones come from the
CTM (silences kept; the scorer drops them).

The first two targets come from the same random stream as the sentences; targets beyond
two are drawn from a stream of their own (seeded by the seed and the pair id), so that
--targets K >= 2 changes only the targets: the sentences stay those of the default (K = 2).

--unused-out writes a data directory of the utterances of the data directories that no pair
uses (as source, target or reference): training data for a speaker scorer that has heard
every speaker of the pairs, the unseen ones too, without hearing the pairs' own audio. When
the pairs use every utterance (tiny corpora) it is not written.
"""

from __future__ import annotations

import argparse
import random
import shutil
from pathlib import Path

from speechrep.data.ctm import read_ctm
from speechrep.data.kaldi_dir import DataDir, restrict_data_dir, spk2utt_from_utt2spk
from speechrep.utils.io import atomic_write_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", default="", help="comma-separated source/target speakers (default: all seen)")
    ap.add_argument("--unseen", default="", help="comma-separated target-only speakers (zero-shot)")
    ap.add_argument("--per-pair", type=int, default=1)
    ap.add_argument("--targets", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ctm", type=Path, action="append", required=True, help="phone CTM of the data dirs (repeatable)")
    ap.add_argument("--unused-out", type=Path, help="data directory of the utterances no pair uses")
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
    loaded = [DataDir.load(d) for d in data_dirs]
    for dd in loaded:
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
    used: set[str] = set()
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
                used.update([src, ref, *targets])
    if len(rows) == 1:
        raise SystemExit("make_pairs.py: no pair found (speakers share no sentence?)")
    if args.unused_out is not None:
        write_unused(args.unused_out, loaded, used)
    atomic_write_text(out, "\n".join(rows) + "\n")
    print(f"{out}: {len(rows) - 1} pairs")


def write_unused(out: Path, data_dirs: list[DataDir], used: set[str]) -> None:
    """Write the utterances of ``data_dirs`` outside ``used`` as one data directory (none
    and a note when the pairs use every utterance)."""
    shutil.rmtree(out, ignore_errors=True)
    parts = [restrict_data_dir(dd, [u for u in dd.utts if u not in used]) for dd in data_dirs]
    parts = [p for p in parts if p.utt2spk]
    if not parts:
        print(f"{out}: not written: the pairs use every utterance")
        return

    def merged(attr: str) -> dict | None:
        tables = [getattr(p, attr) for p in parts]
        return None if any(t is None for t in tables) else {k: v for t in tables for k, v in t.items()}

    utt2spk = merged("utt2spk")
    DataDir(path=out, wav_scp=merged("wav_scp"), utt2spk=utt2spk, spk2utt=spk2utt_from_utt2spk(utt2spk),
            text=merged("text"), utt2dur=merged("utt2dur"), spk2gender=merged("spk2gender")).save()
    print(f"{out}: {len(utt2spk)} utterances no pair uses")


if __name__ == "__main__":
    main()
