"""Conversion pairs of held-out sentences of a corpus whose utterance ids are
``<speaker>-<sentence>`` (the embedded synthetic corpus), written as a pairs file.

The pairs file is tab-separated with a header line (``id``, ``source``, ``target``,
``source_speaker``, ``target_speaker``, ``reference``, ``phones``); ``speechrep convert
--pairs`` and ``speechrep eval vc`` read it.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Sequence

from speechrep.data.ctm import read_ctm
from speechrep.data.kaldi_dir import DataDir, restrict_data_dir, spk2utt_from_utt2spk
from speechrep.errors import ConfigError, DataError
from speechrep.utils.io import atomic_write_text

__all__ = ["PAIRS_HEADER", "make_pairs", "write_unused"]

PAIRS_HEADER = ("id", "source", "target", "source_speaker", "target_speaker", "reference", "phones")


def make_pairs(
    out: str | Path,
    data_dirs: Sequence[str | Path],
    ctms: Sequence[str | Path],
    *,
    speakers: Sequence[str] = (),
    unseen: Sequence[str] = (),
    per_pair: int = 1,
    targets: int = 2,
    seed: int = 0,
    unused_out: str | Path | None = None,
) -> tuple[int, int | None]:
    """Write the conversion pairs of the held-out sentences of ``data_dirs``.

    For every ordered pair of distinct speakers (A, B) with A in ``speakers`` and B in
    ``speakers`` or ``unseen``, ``per_pair`` sentences read by both are drawn: the source is
    A's reading, the reference B's reading of the same sentence (parallel speech for
    MCD/F0), the targets ``targets`` other utterances of B. Phones come from the CTMs
    (silences kept; the scorer drops them).

    The first two targets come from the same random stream as the sentences; targets
    beyond two are drawn from a stream of their own (seeded by ``seed`` and the pair id), so
    that ``targets >= 2`` changes only the targets: the sentences stay those of ``targets=2``.

    Parameters
    ----------
    out : pairs file to write (atomically).
    data_dirs : Kaldi data directories of the held-out utterances.
    ctms : phone CTMs of their utterances.
    speakers : source/target speakers (empty: every speaker of ``data_dirs``).
    unseen : target-only speakers (zero-shot conversion).
    per_pair, targets, seed : sentences per ordered pair, target utterances per pair, seed.
    unused_out : also write (see :func:`write_unused`) a data directory of the utterances
        that no pair uses: training data for a speaker scorer that has heard every speaker of
        the pairs, the unseen ones too, without hearing the pairs' own audio.

    Returns
    -------
    (pairs, unused) : the number of pairs written, and of utterances in ``unused_out``
        (0 when the pairs use every utterance and nothing is written; None without it).

    Raises
    ------
    ConfigError
        ``targets`` or ``per_pair`` below 1.
    DataError
        A speaker absent from the data directories, or no pair found.
    """
    if targets < 1:
        raise ConfigError(f"must be >= 1, got {targets}", field="--targets")
    if per_pair < 1:
        raise ConfigError(f"must be >= 1, got {per_pair}", field="--per-pair")
    phones: dict[str, list[str]] = {}
    for c in ctms:
        phones.update({u: [ph for _, _, ph in segs] for u, segs in read_ctm(c).items()})
    wav: dict[str, str] = {}
    by_spk: dict[str, dict[str, str]] = {}  # speaker -> sentence -> utt
    loaded = [DataDir.load(d) for d in data_dirs]
    for dd in loaded:
        for utt in dd.utts:
            wav[utt] = dd.wav_scp[utt]
            by_spk.setdefault(dd.utt2spk[utt], {})[utt.rsplit("-", 1)[1]] = utt
    seen = list(speakers) or sorted(by_spk)
    missing = [s for s in [*seen, *unseen] if s not in by_spk]
    if missing:
        raise DataError(f"speaker '{missing[0]}' is not in {', '.join(map(str, data_dirs))}", field="--speakers")
    rng = random.Random(seed)
    rows = ["\t".join(PAIRS_HEADER)]
    used: set[str] = set()
    for a in seen:
        for b in [*seen, *unseen]:
            if a == b:
                continue
            shared = sorted(set(by_spk[a]) & set(by_spk[b]))
            for sent in rng.sample(shared, min(per_pair, len(shared))):
                src, ref = by_spk[a][sent], by_spk[b][sent]
                others = sorted(u for s, u in by_spk[b].items() if s != sent)
                chosen = rng.sample(others, min(targets, 2, len(others)))
                rest = [u for u in others if u not in chosen]
                pair_id = f"{a}__{b}__{sent}"
                chosen += random.Random(f"{seed}:{pair_id}").sample(rest, min(targets - len(chosen), len(rest)))
                if not chosen or src not in phones:
                    continue
                rows.append("\t".join([pair_id, wav[src], ",".join(wav[t] for t in chosen), a, b,
                                       wav[ref], " ".join(phones[src])]))
                used.update([src, ref, *chosen])
    if len(rows) == 1:
        raise DataError("no pair found (do the speakers share no sentence, or lack phones in the CTMs?)",
                        path=data_dirs[0])
    unused = None if unused_out is None else write_unused(unused_out, loaded, used)
    atomic_write_text(out, "\n".join(rows) + "\n")
    return len(rows) - 1, unused


def write_unused(out: str | Path, data_dirs: Sequence[DataDir], used: set[str]) -> int:
    """Write the utterances of ``data_dirs`` outside ``used`` as one data directory.

    An earlier ``out`` is removed first; nothing is written when ``used`` covers every
    utterance. Returns the number of utterances written.
    """
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    parts = [restrict_data_dir(dd, [u for u in dd.utts if u not in used]) for dd in data_dirs]
    parts = [p for p in parts if p.utt2spk]
    if not parts:
        return 0

    def merged(attr: str) -> dict | None:
        tables = [getattr(p, attr) for p in parts]
        return None if any(t is None for t in tables) else {k: v for t in tables for k, v in t.items()}

    utt2spk = merged("utt2spk")
    DataDir(path=out, wav_scp=merged("wav_scp"), utt2spk=utt2spk, spk2utt=spk2utt_from_utt2spk(utt2spk),
            text=merged("text"), utt2dur=merged("utt2dur"), spk2gender=merged("spk2gender")).save()
    return len(utt2spk)
