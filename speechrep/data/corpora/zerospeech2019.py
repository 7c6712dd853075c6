"""ZeroSpeech 2019 ("TTS without T"), English development data.

Layout::

    SRC/train/voice/V001_0000000047.wav    target voices (V001, V002) for synthesis
    SRC/train/unit/S015_0361841101.wav     unit discovery (many speakers)
    SRC/test/S002_0379088085.wav           test utterances
    SRC/synthesis.txt                      optional: "S002_0379088085 V002" pairs

All audio is 16 kHz, untranscribed. Data sets ``train_voice``, ``train_unit``, ``test``;
the speaker is the file-name prefix before ``_``; ``synthesis.txt`` is copied to
``OUT/synthesis.txt``.
"""

from __future__ import annotations

from pathlib import Path

from speechrep.data.corpora.common import CorpusWriter, PreparedCorpus, Utterance, find_files
from speechrep.errors import DataError

__all__ = ["prepare_zerospeech2019"]

_SETS = {"train_voice": ("train", "voice"), "train_unit": ("train", "unit"), "test": ("test",)}


def prepare_zerospeech2019(src: str | Path, out: str | Path) -> PreparedCorpus:
    """Prepare the ZeroSpeech 2019 English data (``SRC`` is the ``english`` directory).

    Returns
    -------
    the sets written and the files skipped (names without a ``SPEAKER_`` prefix,
    unreadable audio).

    Raises
    ------
    DataError
        ``src`` missing or none of ``train/voice``, ``train/unit``, ``test`` in it.
    """
    writer = CorpusWriter("zerospeech2019", src, out)
    found = {name: writer.src.joinpath(*parts) for name, parts in _SETS.items() if writer.src.joinpath(*parts).is_dir()}
    if not found:
        raise DataError(
            "none of train/voice, train/unit, test found (is this the 'english' directory?)", path=writer.src
        )
    for name, directory in found.items():
        for audio in find_files(directory, [".wav"]):
            spk, sep, rest = audio.stem.partition("_")
            if not sep or not spk or not rest:
                writer.skip(audio, "file name is not SPEAKER_ID.wav")
                continue
            duration = writer.duration(audio)
            if duration is not None:
                writer.add(name, Utterance(audio.stem, spk, audio, duration))
    synthesis = writer.src / "synthesis.txt"
    if synthesis.is_file():
        writer.extra_files["synthesis.txt"] = synthesis.read_bytes()
    return writer.write(sets_found=sorted(found))
