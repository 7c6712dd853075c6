"""A folder of audio files, with optional transcripts: the importer for everything else.

Every audio file under ``SRC`` (``.wav``, ``.flac``, ``.sph``, ``.ogg``, ``.mp3``; any
case) is an utterance. A transcript is a ``.txt`` or ``.lab`` file with the same stem
beside it. When at least one transcript exists, audio without one is skipped and
reported (a data dir's ``text`` covers all utterances or none).

The speaker of a file is, by ``speaker_from``:

* ``"dir"``: the name of its parent folder (``SRC/alice/001.wav`` -> ``alice``),
* ``"prefix"``: the part of the file name before the first ``_`` or ``-``,
* ``"single"``: one speaker named after ``SRC``.

Utterance ids are ``{speaker}-{path below SRC without suffix, "/" -> "_"}`` with
whitespace replaced by ``_``; one data set ``all``.
"""

from __future__ import annotations

import re
from pathlib import Path

from speechrep.data.corpora.common import (
    AUDIO_SUFFIXES,
    CorpusWriter,
    PreparedCorpus,
    Utterance,
    find_files,
    normalize_text,
    read_transcript,
)
from speechrep.errors import DataError

__all__ = ["prepare_folder"]

_SPEAKER_FROM = ("dir", "prefix", "single")


def _token(text: str) -> str:
    return re.sub(r"\s+", "_", text.strip())


def prepare_folder(src: str | Path, out: str | Path, *, speaker_from: str = "dir") -> PreparedCorpus:
    """Import a folder of audio files (+ optional transcripts) as data set ``all``.

    Parameters
    ----------
    src : folder, searched recursively.
    out : output directory.
    speaker_from : ``"dir"``, ``"prefix"`` or ``"single"`` (see the module docstring).

    Returns
    -------
    the set written and what was skipped (unreadable audio, missing or non-UTF-8
    transcripts when others exist).

    Raises
    ------
    DataError
        Bad ``speaker_from``, no audio found.
    """
    if speaker_from not in _SPEAKER_FROM:
        raise DataError(
            f"speaker_from must be one of {', '.join(_SPEAKER_FROM)}, got {speaker_from!r}", field="speaker_from"
        )
    writer = CorpusWriter("folder", src, out)
    audio_files = find_files(writer.src, AUDIO_SUFFIXES)
    if not audio_files:
        raise DataError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) found", path=writer.src)

    def transcript_of(audio: Path) -> Path | None:
        return next((p for p in (audio.with_suffix(".txt"), audio.with_suffix(".lab")) if p.is_file()), None)

    transcribed = any(transcript_of(a) is not None for a in audio_files)
    for audio in audio_files:
        relative = audio.relative_to(writer.src).with_suffix("")
        if speaker_from == "dir":
            spk = _token(audio.parent.name if audio.parent != writer.src else writer.src.name)
        elif speaker_from == "prefix":
            spk = _token(re.split(r"[_-]", audio.stem, maxsplit=1)[0])
        else:
            spk = _token(writer.src.name)
        text = None
        if transcribed:
            path = transcript_of(audio)
            if path is None:
                writer.skip(audio, "no transcript (.txt or .lab) while other files have one")
                continue
            raw = read_transcript(path, writer.skipped)
            if raw is None:
                continue
            text = normalize_text(raw)
        duration = writer.duration(audio)
        if duration is not None:
            utt = f"{spk}-{_token('_'.join(relative.parts))}"
            writer.add("all", Utterance(utt, spk, audio, duration, text=text))
    return writer.write(speaker_from=speaker_from)
