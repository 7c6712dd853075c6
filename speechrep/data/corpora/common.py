"""What every corpus preparer shares: collecting utterances, reporting what was skipped,
and writing data directories and alignments atomically.

Output layout of ``prepare_<corpus>(src, out)``::

    OUT/data/<set>/          Kaldi data dirs; wav.scp points at the corpus's own audio
                             files (absolute paths, no copies; load_audio resamples)
    OUT/ali/<set>/phones.ctm phone alignments, where the corpus has them (times relative
                             to the utterance start)
    OUT/prepare.json         corpus, source, utterances per set, skipped files + reasons
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from speechrep.data.ctm import Alignment, write_ctm
from speechrep.data.kaldi_dir import DataDir, spk2utt_from_utt2spk
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir, atomic_write_json

__all__ = [
    "AUDIO_SUFFIXES",
    "CorpusWriter",
    "PreparedCorpus",
    "Utterance",
    "check_output_dir",
    "find_files",
    "normalize_text",
    "read_transcript",
]

#: Audio file suffixes looked for by the preparers (case-insensitive).
AUDIO_SUFFIXES = (".wav", ".flac", ".sph", ".ogg", ".mp3")


@dataclass
class Utterance:
    """One utterance to write.

    Attributes
    ----------
    utt, spk : ids (``utt`` starts with ``spk``; neither contains whitespace).
    audio : the recording's audio file.
    duration : seconds (of the segment when ``segment`` is set).
    text : transcript, ``None`` for untranscribed corpora.
    segment : ``(recording id, start, end)`` when the utterance is part of a recording.
    alignments : CTM name -> ``[(start, end, phone), ...]`` relative to the utterance
        start; written to ``ali/<set>/<name>.ctm`` (``phones`` for the corpus's phones).
    """

    utt: str
    spk: str
    audio: Path
    duration: float
    text: str | None = None
    segment: tuple[str, float, float] | None = None
    alignments: dict[str, Alignment] = field(default_factory=dict)


@dataclass
class PreparedCorpus:
    """What a preparer wrote and what it skipped.

    Attributes
    ----------
    out : output directory.
    sets : data set name -> number of utterances.
    skipped : ``(file, reason)`` for every input file left out.
    """

    out: Path
    sets: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        """Multi-line human summary (printed by the CLI)."""
        lines = [f"{name:20s} {count:8d} utterances" for name, count in self.sets.items()]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) (listed in {self.out / 'prepare.json'}):")
            lines += [f"  {path}: {reason}" for path, reason in self.skipped[:10]]
            if len(self.skipped) > 10:
                lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


def check_output_dir(out: Path, *, marker: str, what: str) -> None:
    """Refuse to replace ``out`` unless it is empty, absent or holds ``marker`` (an
    earlier output of the same kind): outputs are replaced as a whole.

    Raises
    ------
    DataError
        ``out`` holds something else.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not (out / marker).is_file():
        raise DataError(f"exists and is not {what}; remove it or choose another directory", path=out)


# a transcript word: letters/digits (any script), apostrophes inside ("don't", "o'clock")
_TRANSCRIPT_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def normalize_text(sentence: str) -> str:
    """Transcript for a Kaldi ``text`` file: upper case, words of letters and digits
    (apostrophes inside words kept; hyphens and other punctuation become spaces)."""
    return " ".join(_TRANSCRIPT_WORD.findall(sentence)).upper()


def find_files(root: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``root`` whose suffix is one of ``suffixes`` (case-insensitive), sorted."""
    wanted = {s.lower() for s in suffixes}
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in wanted and p.is_file())


def read_transcript(path: Path, skipped: list[tuple[str, str]]) -> str | None:
    """The text of ``path``, or ``None`` (and a ``skipped`` entry) when it is missing or
    not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        skipped.append((str(path), "transcript file not found"))
    except UnicodeDecodeError as e:
        skipped.append((str(path), f"transcript is not valid UTF-8 (byte {e.start})"))
    return None


class CorpusWriter:
    """Collects utterances per data set and writes them under ``OUT`` atomically.

    Usage::

        writer = CorpusWriter("librispeech", src, out)
        duration = writer.duration(path)          # None (and skipped) if unreadable
        writer.add("train", Utterance(...))
        return writer.write()
    """

    def __init__(self, corpus: str, src: str | Path, out: str | Path) -> None:
        self.corpus = corpus
        self.src = Path(src).resolve()
        self.out = Path(out).resolve()
        if not self.src.is_dir():
            raise DataError("corpus directory not found", path=self.src)
        check_output_dir(self.out, marker="prepare.json", what="a prepared corpus")
        self.sets: dict[str, list[Utterance]] = {}
        self.skipped: list[tuple[str, str]] = []
        self.genders: dict[str, str] = {}
        self.extra_files: dict[str, bytes] = {}

    def skip(self, path: Path | str, reason: str) -> None:
        """Record a file left out."""
        self.skipped.append((str(path), reason))

    def duration(self, path: Path) -> float | None:
        """Length of an audio file in seconds; ``None`` (recorded as skipped) when it
        cannot be read or is empty."""
        try:
            info = sf.info(path)
        except (sf.SoundFileError, RuntimeError) as e:
            self.skip(path, f"unreadable audio: {getattr(e, 'error_string', None) or e}")
            return None
        if info.frames <= 0:
            self.skip(path, "empty audio (0 samples)")
            return None
        return info.frames / info.samplerate

    def add(self, name: str, utterance: Utterance) -> None:
        """Add an utterance to data set ``name``."""
        self.sets.setdefault(name, []).append(utterance)

    def write(self, **details: object) -> PreparedCorpus:
        """Write every data set (and alignments) and ``prepare.json``.

        Raises
        ------
        DataError
            No utterance at all was found, or an utterance id repeats within a set.
        """
        if not any(self.sets.values()):
            reason = (
                f" ({len(self.skipped)} file(s) skipped, first: {self.skipped[0][0]}: {self.skipped[0][1]})"
                if self.skipped
                else ""
            )
            raise DataError(f"no usable {self.corpus} utterances found{reason}", path=self.src)
        result = PreparedCorpus(self.out, skipped=self.skipped)
        with atomic_dir(self.out) as tmp:
            for name in sorted(self.sets):
                self._write_set(tmp, name, self.sets[name])
                result.sets[name] = len(self.sets[name])
            for relative, data in self.extra_files.items():
                (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
                (tmp / relative).write_bytes(data)
            atomic_write_json(
                tmp / "prepare.json",
                {
                    "corpus": self.corpus,
                    "src": str(self.src),
                    "sets": result.sets,
                    **details,
                    "skipped": [{"file": path, "reason": reason} for path, reason in self.skipped],
                },
            )
        return result

    def _write_set(self, tmp: Path, name: str, utterances: list[Utterance]) -> None:
        by_id: dict[str, Utterance] = {}
        for u in utterances:
            if u.utt in by_id:
                raise DataError(
                    f"utterance id {u.utt} occurs twice in set {name} ({by_id[u.utt].audio}, {u.audio})", path=self.src
                )
            by_id[u.utt] = u
        utt2spk = {u.utt: u.spk for u in utterances}
        segments: dict[str, tuple[str, float, float]] | None = {
            u.utt: u.segment for u in utterances if u.segment is not None
        }
        if segments:
            wav_scp = {u.segment[0]: str(u.audio) for u in utterances if u.segment is not None}
        else:
            wav_scp = {u.utt: str(u.audio) for u in utterances}
            segments = None
        texts = {u.utt: u.text for u in utterances if u.text is not None}
        spk2utt = spk2utt_from_utt2spk(utt2spk)
        genders = {spk: self.genders[spk] for spk in spk2utt if spk in self.genders}
        DataDir(
            path=tmp / "data" / name,
            wav_scp=wav_scp,
            utt2spk=utt2spk,
            spk2utt=spk2utt,
            segments=segments,
            text=texts or None,
            utt2dur={u.utt: u.duration for u in utterances},
            spk2gender=genders if len(genders) == len(spk2utt) else None,
        ).save()
        for ctm in sorted({key for u in utterances for key in u.alignments}):
            write_ctm(
                tmp / "ali" / name / f"{ctm}.ctm", {u.utt: u.alignments[ctm] for u in utterances if ctm in u.alignments}
            )
