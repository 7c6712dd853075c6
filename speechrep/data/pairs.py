"""Pairs files of voice conversion, and the checks on the audio they name.

A pairs file is tab-separated with a header line naming the columns: ``id`` (output name:
a plain file name, no ``/``, ``.``, ``..`` or NUL), ``source`` and ``target`` (audio paths;
several targets separated by commas) are required; ``source_speaker``, ``target_speaker``,
``reference`` (a recording of the target speaker saying the source text, for MCD/F0) and
``phones`` (the source's phone sequence, space-separated) are optional and used by
``speechrep eval vc``. :func:`read_pairs` reads one, :func:`make_pairs` writes pairs of
held-out sentences of a corpus whose utterance ids are ``<speaker>-<sentence>`` (the
embedded synthetic corpus); ``speechrep convert --pairs`` and ``speechrep eval vc`` read it.
:func:`read_input_audio` refuses unreadable, empty, silent, too short or too low-rate input.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from speechrep.data.ctm import read_ctm
from speechrep.data.kaldi_dir import DataDir, restrict_data_dir, spk2utt_from_utt2spk
from speechrep.errors import ConfigError, DataError
from speechrep.utils.io import atomic_write_text
from speechrep.utils.text import read_utf8

__all__ = [
    "MIN_DURATION",
    "MIN_INPUT_RATE",
    "PAIRS_HEADER",
    "SILENCE_PEAK",
    "ConversionPair",
    "make_pairs",
    "read_input_audio",
    "read_pairs",
    "write_unused",
]

#: Lowest input sample rate accepted: below it the band up to 4 kHz that carries most
#: phonetic information is missing, and upsampling cannot bring it back.
MIN_INPUT_RATE = 8000
#: Peak absolute amplitude below which audio counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4
#: Shortest input accepted, in seconds (a few frames of the 64 ms analysis window).
MIN_DURATION = 0.1

_PAIR_COLUMNS = ("id", "source", "target", "source_speaker", "target_speaker", "reference", "phones")


@dataclass
class ConversionPair:
    """One line of a pairs file (see the module docstring)."""

    id: str
    source: str
    targets: list[str]
    source_speaker: str | None = None
    target_speaker: str | None = None
    reference: str | None = None
    phones: list[str] | None = field(default=None)


def read_input_audio(path: str | Path, *, sample_rate: int, field_name: str = "audio") -> np.ndarray:
    """Read an audio file for conversion, resampled to ``sample_rate``.

    Returns
    -------
    np.ndarray
        ``(samples,)`` float32.

    Raises
    ------
    DataError
        Missing, unreadable or empty file, sample rate below :data:`MIN_INPUT_RATE`, shorter
        than :data:`MIN_DURATION`, silence.
    """
    import soundfile as sf

    from speechrep.data.audio import load_audio

    path = Path(path)
    if not path.is_file():
        raise DataError("audio file not found", path=path, field=field_name)
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as e:
        raise DataError(f"unreadable audio ({str(e).splitlines()[0]})", path=path, field=field_name) from None
    if info.frames == 0:
        raise DataError("empty audio (0 samples)", path=path, field=field_name)
    if info.samplerate < MIN_INPUT_RATE:
        raise DataError(
            f"sample rate {info.samplerate} Hz is below the {MIN_INPUT_RATE} Hz the model can handle",
            path=path, field=field_name,
        )
    wave = load_audio(path, sample_rate=sample_rate, name=None)
    if wave.size == 0:
        raise DataError("empty audio (0 samples)", path=path, field=field_name)
    if wave.size < MIN_DURATION * sample_rate:
        raise DataError(f"audio of {wave.size / sample_rate:.3f} s is shorter than the {MIN_DURATION} s minimum",
                        path=path, field=field_name)
    if float(np.max(np.abs(wave))) < SILENCE_PEAK:
        raise DataError(f"audio is silent (peak below {SILENCE_PEAK:g})", path=path, field=field_name)
    return wave


def read_pairs(path: str | Path) -> list[ConversionPair]:
    """Read a pairs file (tab-separated, header line; see the module docstring).

    Raises
    ------
    DataError
        Missing file or required column, unknown column, empty field, duplicate id; the
        message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("pairs file not found", path=path)
    lines = read_utf8(path).splitlines()
    rows = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#")]
    if not rows:
        raise DataError("pairs file is empty (expected a header line: id, source, target, ...)", path=path)
    header_line, header = rows[0][0], [c.strip() for c in rows[0][1].split("\t")]
    missing = [c for c in ("id", "source", "target") if c not in header]
    if missing:
        raise DataError(f"line {header_line}: header lacks column(s) {', '.join(missing)} "
                        f"(columns are tab-separated; known: {', '.join(_PAIR_COLUMNS)})", path=path)
    unknown = [c for c in header if c not in _PAIR_COLUMNS]
    if unknown:
        raise DataError(f"line {header_line}: unknown column '{unknown[0]}' (known: {', '.join(_PAIR_COLUMNS)})", path=path)
    pairs, seen = [], set()
    for lineno, line in rows[1:]:
        text = line.split("\t")
        if len(text) != len(header):
            raise DataError(f"line {lineno}: {len(text)} fields, the header has {len(header)}", path=path)
        row = dict(zip(header, (t.strip() for t in text)))
        for c in ("id", "source", "target"):
            if not row[c]:
                raise DataError(f"line {lineno}: empty '{c}'", path=path)
        if "/" in row["id"] or "\0" in row["id"] or row["id"] in (".", ".."):
            # the id names the output file: a path would write outside the output directory
            raise DataError(f"line {lineno}: id '{row['id']}' is not a plain file name (no '/', NUL, '.' or '..')",
                            path=path)
        if row["id"] in seen:
            raise DataError(f"line {lineno}: duplicate id '{row['id']}'", path=path)
        seen.add(row["id"])
        pairs.append(ConversionPair(
            id=row["id"],
            source=row["source"],
            targets=[t.strip() for t in row["target"].split(",") if t.strip()],
            source_speaker=row.get("source_speaker") or None,
            target_speaker=row.get("target_speaker") or None,
            reference=row.get("reference") or None,
            phones=row["phones"].split() if row.get("phones") else None,
        ))
    if not pairs:
        raise DataError("pairs file has a header but no pairs", path=path)
    return pairs


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
    nonparallel: bool = False,
    sources: Sequence[str] = (),
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
    nonparallel : also pair A with a target B that read none of A's sentences (voices of other
        corpora or languages): ``per_pair`` of A's sentences are drawn, with no reference (no
        MCD/F0 against parallel speech); and a source without a CTM is kept, with no phones (the independent
        judges score the words from the data directory's ``text``).
    sources : source-only speakers: pairs from each of them to each of ``speakers`` and
        ``unseen``, and none from ``speakers`` (e.g. real voices to synthetic ones only).

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
    missing = [s for s in [*sources, *seen, *unseen] if s not in by_spk]
    if missing:
        raise DataError(f"speaker '{missing[0]}' is not in {', '.join(map(str, data_dirs))}", field="--speakers")
    rng = random.Random(seed)
    rows = ["\t".join(PAIRS_HEADER)]
    used: set[str] = set()
    for a in sources or seen:
        for b in [*seen, *unseen]:
            if a == b:
                continue
            shared = sorted(set(by_spk[a]) & set(by_spk[b]))
            parallel = bool(shared) or not nonparallel
            pool = shared if parallel else sorted(by_spk[a])
            for sent in rng.sample(pool, min(per_pair, len(pool))):
                src, ref = by_spk[a][sent], by_spk[b].get(sent) if parallel else None
                others = sorted(u for s, u in by_spk[b].items() if s != sent)
                chosen = rng.sample(others, min(targets, 2, len(others)))
                rest = [u for u in others if u not in chosen]
                pair_id = f"{a}__{b}__{sent}"
                chosen += random.Random(f"{seed}:{pair_id}").sample(rest, min(targets - len(chosen), len(rest)))
                if not chosen or (not nonparallel and src not in phones):
                    continue
                rows.append("\t".join([pair_id, wav[src], ",".join(wav[t] for t in chosen), a, b,
                                       wav[ref] if ref else "", " ".join(phones.get(src, []))]))
                used.update([u for u in (src, ref, *chosen) if u])
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
