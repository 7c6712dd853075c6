"""LJSpeech 1.1 (keithito.com/LJ-Speech-Dataset): one speaker, 22.05 kHz.

Layout::

    SRC/metadata.csv        "LJ001-0001|raw text|normalized text" (UTF-8, "|"-separated)
    SRC/wavs/LJ001-0001.wav

One data set ``all``, speaker ``LJ`` (female); the transcript is the normalized column,
upper-cased with punctuation removed.
"""

from __future__ import annotations

from pathlib import Path

from speechrep.data.corpora.common import (
    CorpusWriter,
    PreparedCorpus,
    Utterance,
    find_files,
    normalize_text,
    read_transcript,
)
from speechrep.errors import DataError

__all__ = ["prepare_ljspeech"]


def prepare_ljspeech(src: str | Path, out: str | Path) -> PreparedCorpus:
    """Prepare LJSpeech (``SRC`` is the ``LJSpeech-1.1`` directory).

    Returns
    -------
    the set written and what was skipped (malformed metadata lines, missing or
    unreadable wavs, wavs absent from the metadata).

    Raises
    ------
    DataError
        ``metadata.csv`` missing or not UTF-8, nothing usable found.
    """
    writer = CorpusWriter("ljspeech", src, out)
    metadata = writer.src / "metadata.csv"
    if not metadata.is_file():
        raise DataError("metadata.csv not found", path=metadata)
    text = read_transcript(metadata, writer.skipped)
    if text is None:
        raise DataError(writer.skipped[-1][1], path=metadata)
    listed = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split("|")
        if len(fields) != 3 or not fields[0]:
            writer.skip(f"{metadata}:{lineno}", "expected 'ID|text|normalized text'")
            continue
        audio = writer.src / "wavs" / f"{fields[0]}.wav"
        listed.add(audio)
        if not audio.is_file():
            writer.skip(audio, f"listed in metadata.csv line {lineno} but missing")
            continue
        duration = writer.duration(audio)
        if duration is not None:
            writer.add("all", Utterance(fields[0], "LJ", audio, duration, text=normalize_text(fields[2])))
    for audio in find_files(writer.src / "wavs", [".wav"]):
        if audio not in listed:
            writer.skip(audio, "not in metadata.csv")
    writer.genders = {"LJ": "f"}
    return writer.write()
