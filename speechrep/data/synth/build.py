"""Build the synthetic corpus: sentences -> splits -> speakers -> wavs, data dirs, CTMs.

Layout of the output directory ``OUT``::

    OUT/data/{train,dev,test,test_unseen_spk}/   Kaldi data dirs (wav.scp, utt2spk,
                                                 spk2utt, text, utt2dur, spk2gender)
    OUT/ali/<split>/phones.ctm                   phone alignments (times in seconds)
    OUT/ali/<split>/frame_labels                 with ``frame_labels=True``: one phone per
                                                 10 ms frame (25 ms windows, snip_edges)
    OUT/wav/<speaker>/<utt>.wav                  16 kHz mono 16-bit PCM
    OUT/phones.txt                               ``phone id``: pau 0, ARPAbet 1..39
    OUT/stats.json                               hours, utterances per speaker, phone
                                                 counts, skipped utterances, versions

Splits: ``train``, ``dev`` and ``test`` have disjoint sentences and the same speakers;
``test_unseen_spk`` has speakers of voice families never seen in the other splits
(zero-shot voice conversion) reading the test sentences (and more held-out ones).
Dev and test sentences are read by every seen speaker (parallel data for conversion);
each train speaker reads its own random draw from the train sentences.

Determinism: for a seed, size and ``fortunes`` package version, the sentences, speakers
and utterance ids are always the same, as are the wav bytes of the same synthesizer
build (flite and festival are deterministic). Another flite/festival version or voice
package may change waveforms, durations, phone strings (lexicon and letter-to-sound
rules) and whether a sentence fails.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from speechrep.data.audio import write_wav
from speechrep.data.corpora.common import check_output_dir, normalize_text
from speechrep.data.ctm import frame_labels, write_ctm
from speechrep.data.kaldi_dir import DataDir, spk2utt_from_utt2spk, write_kaldi_map
from speechrep.data.synth.text import FORTUNE_CATEGORIES, fortune_sentences
from speechrep.data.synth.voices import (
    PHONES,
    SAMPLE_RATE,
    SPEAKERS,
    Synthesized,
    SynthSpeaker,
    check_voices,
    synthesize,
    synthesizer_versions,
)
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir, atomic_write_json, atomic_write_text

__all__ = ["SIZES", "SPLITS", "SynthSize", "assign_sentences", "make_synth"]

# Sizes of the many-voice corpus (speechrep.data.synth.many), which make_synth hands over.
_VOICE_SIZES = ("many", "large")

#: Split names, in the order they are drawn and written.
SPLITS = ("train", "dev", "test", "test_unseen_spk")

# Utterances per synthesizer call: flite is one process per sentence anyway; festival
# loads its voice once per call (0.3-1 s), so chunks keep that cost small while still
# spreading one voice over several jobs.
_CHUNK = 25

# Frame labels: Kaldi's default framing at 16 kHz (25 ms windows every 10 ms, snip_edges).
_FRAME_LENGTH, _FRAME_SHIFT = 400, 160


@dataclass(frozen=True)
class SynthSize:
    """How big a corpus to build.

    Attributes
    ----------
    seen : speaker ids of train/dev/test.
    unseen : speaker ids of ``test_unseen_spk`` (whole voice families absent from ``seen``).
    train_pool : number of train sentences.
    train_per_speaker : train sentences each seen speaker reads (drawn from the pool).
    dev, test : sentences of dev/test, read by every seen speaker.
    unseen_sentences : held-out sentences each unseen speaker reads (the test sentences
        first, then more held-out ones).
    """

    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    train_pool: int
    train_per_speaker: int
    dev: int
    test: int
    unseen_sentences: int


_ALL_SEEN = tuple(s.id for s in SPEAKERS if s.family not in ("rms", "ked"))

#: Size presets. ``tiny`` uses flite only (a few seconds); ``default`` has a few hundred
#: utterances per split (about a minute with ``nj=2`` on an idle 2-core machine).
SIZES: dict[str, SynthSize] = {
    "tiny": SynthSize(("awb", "kal16", "slt"), ("rms",), 6, 6, 2, 2, 2),
    "small": SynthSize(_ALL_SEEN, ("ked", "rms"), 100, 20, 5, 5, 10),
    "default": SynthSize(_ALL_SEEN, ("ked", "rms"), 300, 50, 20, 20, 60),
}

_SPEAKERS_BY_ID = {s.id: s for s in SPEAKERS}


def assign_sentences(num_sentences: int, size: SynthSize, seed: int) -> dict[str, list[tuple[str, int]]]:
    """Who reads what: split -> ``[(speaker id, sentence index), ...]``.

    The sentences are shuffled with ``seed``; the held-out ones (test, then the extra
    ones of ``test_unseen_spk``) come first, then dev, then the train pool, so the splits'
    sentences are disjoint except test / test_unseen_spk, which share theirs.

    Raises
    ------
    DataError
        Fewer sentences than the size needs.
    """
    held_out = max(size.test, size.unseen_sentences)
    needed = held_out + size.dev + size.train_pool
    if num_sentences < needed:
        raise DataError(f"{num_sentences} sentences available, this size needs {needed}", field="sentences")
    rng = np.random.default_rng(seed)
    order = rng.permutation(num_sentences)
    test_pool = order[:held_out]
    dev = order[held_out : held_out + size.dev]
    train_pool = order[held_out + size.dev : needed]
    pairs: dict[str, list[tuple[str, int]]] = {split: [] for split in SPLITS}
    for spk in size.seen:
        chosen = rng.choice(train_pool, size=size.train_per_speaker, replace=False)
        pairs["train"] += [(spk, int(i)) for i in sorted(chosen)]
        pairs["dev"] += [(spk, int(i)) for i in sorted(dev)]
        pairs["test"] += [(spk, int(i)) for i in sorted(test_pool[: size.test])]
    for spk in size.unseen:
        pairs["test_unseen_spk"] += [(spk, int(i)) for i in sorted(test_pool[: size.unseen_sentences])]
    return pairs


def _check_size(size: SynthSize) -> list[SynthSpeaker]:
    unknown = [s for s in size.seen + size.unseen if s not in _SPEAKERS_BY_ID]
    if unknown:
        raise DataError(f"unknown speakers {', '.join(unknown)}", field="size")
    seen_families = {_SPEAKERS_BY_ID[s].family for s in size.seen}
    leaking = [s for s in size.unseen if _SPEAKERS_BY_ID[s].family in seen_families]
    if leaking:
        raise DataError(f"unseen speakers {', '.join(leaking)} share a voice family with seen ones", field="size")
    return [_SPEAKERS_BY_ID[s] for s in dict.fromkeys(size.seen + size.unseen)]


_Voice = TypeVar("_Voice")


def _run_jobs(
    jobs: list[tuple[_Voice, list[tuple[str, str]]]],
    *,
    nj: int,
    store: Callable[[_Voice, Synthesized], None],
    progress: bool,
    work: Callable[[_Voice, list[tuple[str, str]]], list[Synthesized]] = synthesize,
) -> None:
    """Run ``work(speaker, items)`` for every job on ``nj`` threads (synthesis runs in
    subprocesses) and hand each result to ``store``."""
    from speechrep.utils.progress import progress_bar

    total = sum(len(items) for _, items in jobs)
    with progress_bar(total=total, desc="synthesizing", unit="utt", enabled=progress) as bar:
        with ThreadPoolExecutor(max_workers=nj) as pool:
            futures = {pool.submit(work, speaker, items): speaker for speaker, items in jobs}
            for future in as_completed(futures):
                for result in future.result():
                    store(futures[future], result)
                bar.update(len(future.result()))


def make_synth(
    out: str | Path,
    *,
    size: str | SynthSize = "default",
    seed: int = 0,
    nj: int = 1,
    write_frame_labels: bool = False,
    sentences: Sequence[str] | None = None,
    progress: bool = False,
) -> dict:
    """Generate the synthetic corpus in ``out`` (layout in the module docstring).

    The directory is built under a temporary name and renamed into place when complete;
    an existing ``out`` is replaced only if it holds an earlier synthetic corpus.

    Parameters
    ----------
    out : output directory.
    size : ``"tiny"``, ``"small"``, ``"default"`` (:data:`SIZES`), a custom :class:`SynthSize`,
        or ``"many"`` / ``"large"``: the many-voice corpus (:func:`speechrep.data.synth.many.make_many`,
        without ``write_frame_labels`` and ``sentences``).
    seed : seeds the choice of sentences per split and speaker.
    nj : parallel synthesizer jobs.
    write_frame_labels : also write ``ali/<split>/frame_labels``.
    sentences : sentences to read instead of the fortunes (one per item).
    progress : show a progress bar.

    Returns
    -------
    the statistics written to ``stats.json``.

    Raises
    ------
    DataError
        Unknown size, missing synthesizer or voice (naming the Debian packages), missing
        fortune files, too few sentences, ``out`` holding something else, or a split
        left without any utterance.
    """
    if isinstance(size, str) and size in _VOICE_SIZES:
        from speechrep.data.synth.many import make_many  # builds on this module's writers

        if write_frame_labels or sentences is not None:
            raise DataError(f"--size {size} reads its own texts and writes no frame labels", field="size")
        return make_many(out, size=size, seed=seed, nj=nj, progress=progress)
    if isinstance(size, str) and size not in SIZES:
        raise DataError(f"unknown size {size!r} (choose from {', '.join([*SIZES, *_VOICE_SIZES])})", field="size")
    if nj < 1:
        raise DataError(f"nj must be >= 1, got {nj}", field="nj")
    out = Path(out).resolve()
    preset = SIZES[size] if isinstance(size, str) else size
    speakers = _check_size(preset)
    check_output_dir(out, marker="stats.json", what="a synthetic corpus")
    check_voices(speakers)
    texts = list(fortune_sentences()) if sentences is None else [" ".join(s.split()).lstrip("-") for s in sentences]
    pairs = assign_sentences(len(texts), preset, seed)

    # utterance id: speaker id, "-", sentence index (the same sentence has the same suffix
    # for every speaker: parallel utterances pair up by id)
    width = max(5, len(str(len(texts) - 1)))
    entries = {split: [(f"{spk}-{index:0{width}d}", spk, index) for spk, index in pairs[split]] for split in SPLITS}
    by_speaker: dict[str, list[tuple[str, str]]] = {s.id: [] for s in speakers}
    for split in SPLITS:
        for utt, spk, index in entries[split]:
            by_speaker[spk].append((utt, texts[index]))
    # costliest voices first (HTS, then festival) so that jobs finish together
    cost = {"cmu_us_slt_arctic_hts": 0, "festival": 1, "flite": 2}
    jobs = [
        (speaker, items[i : i + _CHUNK])
        for speaker in sorted(speakers, key=lambda s: cost.get(s.voice, cost[s.engine]))
        for items in [by_speaker[speaker.id]]
        for i in range(0, len(items), _CHUNK)
    ]

    with atomic_dir(out) as tmp:
        done: dict[str, Synthesized] = {}

        def store(speaker: SynthSpeaker, result: Synthesized) -> None:
            if result.wave is not None:
                write_wav(tmp / "wav" / speaker.id / f"{result.utt}.wav", result.wave, SAMPLE_RATE)
                result.wave = None  # written; keep memory flat
            done[result.utt] = result

        _run_jobs(jobs, nj=nj, store=store, progress=progress)
        read = {split: [(utt, spk, texts[index]) for utt, spk, index in entries[split]] for split in SPLITS}
        stats = _write_corpus(tmp, out, done, read, {s.id: s.gender for s in speakers}, write_frame_labels)
        stats.update(
            corpus="speechrep-synth",
            size=size if isinstance(size, str) else dataclasses.asdict(size),
            seed=seed,
            sample_rate=SAMPLE_RATE,
            sentences="custom" if sentences is not None else {"fortunes": list(FORTUNE_CATEGORIES)},
            num_sentences_available=len(texts),
            synthesizers=synthesizer_versions(s.engine for s in speakers),
        )
        atomic_write_json(tmp / "stats.json", stats)
    return stats


def _write_corpus(
    tmp: Path,
    out: Path,
    done: dict[str, Synthesized],
    entries: dict[str, list[tuple[str, str, str]]],
    gender: dict[str, str],
    write_frame_labels: bool,
) -> dict:
    """Write data dirs, CTMs, phones.txt into ``tmp``; return the statistics.

    ``entries``: split -> ``[(utt, speaker, sentence), ...]`` (its keys are the splits, in
    order). Only utterances with phone segments (English synthetic voices) go into the
    CTMs, phone counts and edge statistics.
    """
    split_stats: dict[str, dict] = {}
    skipped = []
    edges: dict[str, list[float]] = {}
    for split, split_entries in entries.items():
        utt2spk, wav_scp, text, utt2dur, ctm = {}, {}, {}, {}, {}
        phones: Counter[str] = Counter()
        for utt, spk, sentence in split_entries:
            result = done[utt]
            if result.error is not None:
                skipped.append({"utt": utt, "split": split, "text": sentence, "reason": result.error})
                continue
            utt2spk[utt] = spk
            wav_scp[utt] = str(out / "wav" / spk / f"{utt}.wav")
            text[utt] = normalize_text(sentence)
            utt2dur[utt] = result.duration
            if result.segments is not None:
                ctm[utt] = result.segments
                phones.update(phone for _, _, phone in result.segments)
                edges.setdefault(spk, []).append(result.audio_minus_end)
        if not utt2spk:
            raise DataError(f"no utterance of split {split} could be synthesized", field=split)
        spk2utt = spk2utt_from_utt2spk(utt2spk)
        DataDir(
            path=tmp / "data" / split,
            wav_scp=wav_scp,
            utt2spk=utt2spk,
            spk2utt=spk2utt,
            text=text,
            utt2dur=utt2dur,
            spk2gender={spk: gender[spk] for spk in spk2utt},
        ).save()
        write_ctm(tmp / "ali" / split / "phones.ctm", ctm)
        if write_frame_labels:
            _write_frame_labels(tmp / "ali" / split / "frame_labels", ctm, utt2dur)
        split_stats[split] = {
            "utterances": len(utt2spk),
            "hours": sum(utt2dur.values()) / 3600,
            "utterances_per_speaker": {spk: len(utts) for spk, utts in spk2utt.items()},
            "phone_counts": dict(sorted(phones.items())),
            "skipped": sum(1 for s in skipped if s["split"] == split),
        }
    atomic_write_text(tmp / "phones.txt", "".join(f"{phone} {i}\n" for i, phone in enumerate(PHONES)))
    return {
        "hours": sum(s["hours"] for s in split_stats.values()),
        "utterances": sum(s["utterances"] for s in split_stats.values()),
        "splits": split_stats,
        "skipped": {"count": len(skipped), "utterances": skipped},
        # audio length minus the synthesizer's last segment end, in ms (see fit_alignment)
        "alignment_edge_ms": {
            spk: {"min": round(1000 * min(v), 1), "max": round(1000 * max(v), 1)} for spk, v in sorted(edges.items())
        },
    }


def _write_frame_labels(path: Path, ctm: dict[str, list[tuple[float, float, str]]], utt2dur: dict[str, float]) -> None:
    from speechrep.features.framing import num_frames

    labels = {}
    for utt, segments in ctm.items():
        n = num_frames(round(utt2dur[utt] * SAMPLE_RATE), frame_length=_FRAME_LENGTH, frame_shift=_FRAME_SHIFT)
        # segments tile the whole audio, so every frame centre has a label (no None)
        labels[utt] = frame_labels(
            segments, num_frames=n, frame_shift=_FRAME_SHIFT / SAMPLE_RATE, frame_offset=_FRAME_LENGTH / SAMPLE_RATE / 2
        )
    write_kaldi_map(path, labels)
