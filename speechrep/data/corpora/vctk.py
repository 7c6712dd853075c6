"""VCTK Corpus 0.92 (datashare.ed.ac.uk/handle/10283/3443): 110 English speakers.

Layout::

    SRC/speaker-info.txt                              "ID AGE GENDER ACCENTS REGION ..."
    SRC/txt/p225/p225_001.txt                         one sentence
    SRC/wav48_silence_trimmed/p225/p225_001_mic1.flac 48 kHz (mic1: omni, mic2: small diaphragm)

One data set ``all`` (VCTK has no official split), utterances ``p225_001`` of speaker
``p225`` for the chosen microphone. Recordings without a transcript (all of p315, and
a few others) are skipped and reported, as are transcripts without a recording.
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

__all__ = ["prepare_vctk"]


def _speaker_genders(path: Path) -> dict[str, str]:
    genders = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()[1:]:
            fields = line.split()
            if len(fields) >= 3 and fields[2] in ("M", "F"):
                # 0.92 lists "p225"; older releases list "225"
                spk = fields[0] if fields[0].startswith(("p", "s")) else f"p{fields[0]}"
                genders[spk] = fields[2].lower()
    return genders


def prepare_vctk(src: str | Path, out: str | Path, *, mic: str = "mic1") -> PreparedCorpus:
    """Prepare VCTK 0.92 (``SRC`` holds ``wav48_silence_trimmed/`` and ``txt/``).

    Parameters
    ----------
    mic : ``"mic1"`` or ``"mic2"``.

    Returns
    -------
    the set written and what was skipped.

    Raises
    ------
    DataError
        Bad ``mic``, ``wav48_silence_trimmed`` missing, nothing usable found.
    """
    if mic not in ("mic1", "mic2"):
        raise DataError(f"mic must be 'mic1' or 'mic2', got {mic!r}", field="mic")
    writer = CorpusWriter("vctk", src, out)
    audio_root = writer.src / "wav48_silence_trimmed"
    if not audio_root.is_dir():
        raise DataError("wav48_silence_trimmed not found (VCTK 0.92 layout expected)", path=audio_root)
    suffix = f"_{mic}"
    used = set()
    for audio in find_files(audio_root, [".flac"]):
        if not audio.stem.endswith(suffix):
            continue  # the other microphone
        utt = audio.stem[: -len(suffix)]
        spk = audio.parent.name
        if not utt.startswith(f"{spk}_"):
            writer.skip(audio, f"file name does not start with its speaker directory {spk}_")
            continue
        transcript = writer.src / "txt" / spk / f"{utt}.txt"
        used.add(transcript)
        text = read_transcript(transcript, writer.skipped)
        if text is None:
            continue
        duration = writer.duration(audio)
        if duration is not None:
            writer.add("all", Utterance(utt, spk, audio, duration, text=normalize_text(text)))
    for transcript in find_files(writer.src / "txt", [".txt"]):
        if transcript not in used:
            writer.skip(transcript, f"no {mic} recording")
    writer.genders = _speaker_genders(writer.src / "speaker-info.txt")
    return writer.write(mic=mic)
