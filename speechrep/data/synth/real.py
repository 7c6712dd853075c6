"""Real voices of the many-voice corpus: Asterisk's studio prompts (Debian packages
``asterisk-core-sounds-<lang>-g722``), decoded from G.722 with their transcripts.

Each pack is one person reading a few hundred telephone prompts (``digits/1``,
``vm-goodbye``, ...), stored as raw 64 kbit/s G.722 at 16 kHz. The transcripts are
``core-sounds-<lang>.txt.gz`` (lines ``name: text``) in the docs of the packages
``asterisk-core-sounds-<lang>``; images that exclude ``/usr/share/doc`` (Docker's Debian)
lack them, so ``tools/setup.sh --voices`` extracts them from the ``.deb`` into
``/usr/local/share/doc`` (both places are searched). Prompts whose English transcript is
in brackets (``[ascending tones]``) are tones, not speech, and are left out; so are
prompts without a transcript.

Decoder: the PyPI package ``g722`` (``G722`` module, libg722). Measured against Debian's
ffmpeg 5.1 (``ffmpeg -f g722 -i F -f s16le -``) on 342 prompts (22 min of audio) of the
four packs: the outputs have the same length and are sample-identical (no lag, SNR
between them above 190 dB, i.e. no difference at all); decoding took 3.5 s with
``g722`` against 112 s with ffmpeg (one process per file, on a loaded 2-core machine).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PACKS", "SOUNDS_DIR", "DOC_DIRS", "RealPack", "decode_g722", "pack_prompts", "read_transcripts"]

#: Where the packs install their prompts (one directory per pack).
SOUNDS_DIR = Path("/usr/share/asterisk/sounds")

#: Where ``core-sounds-<lang>.txt.gz`` is looked for, in order.
DOC_DIRS = (Path("/usr/share/doc"), Path("/usr/local/share/doc"))


@dataclass(frozen=True)
class RealPack:
    """One Asterisk prompt pack: a real person's voice.

    Attributes
    ----------
    id : speaker id.
    directory : the pack's directory under :data:`SOUNDS_DIR`.
    language : ISO 639-1 code (the transcripts are ``core-sounds-<language>.txt.gz``).
    family : the person (the English and Spanish packs are both Allison Smith).
    gender : ``"m"`` or ``"f"``.
    package : the Debian package of the prompts.
    """

    id: str
    directory: str
    language: str
    family: str
    gender: str
    package: str


#: The packs in Debian main with a G.722 (16 kHz) build.
PACKS: tuple[RealPack, ...] = (
    RealPack("allison_en", "en_US_f_Allison", "en", "allison", "f", "asterisk-core-sounds-en-g722"),
    RealPack("allison_es", "es_MX_f_Allison", "es", "allison", "f", "asterisk-core-sounds-es-g722"),
    RealPack("june_fr", "fr_CA_f_June", "fr", "june", "f", "asterisk-core-sounds-fr-g722"),
    RealPack("ivr_ru", "ru_RU_f_IvrvoiceRU", "ru", "ivr_ru", "f", "asterisk-core-sounds-ru-g722"),
)


def transcripts_path(language: str, doc_dirs: Sequence[Path] = DOC_DIRS) -> Path | None:
    """The first ``core-sounds-<language>.txt.gz`` found, or ``None``."""
    for root in doc_dirs:
        path = root / f"asterisk-core-sounds-{language}" / f"core-sounds-{language}.txt.gz"
        if path.is_file():
            return path
    return None


def read_transcripts(path: Path) -> dict[str, str]:
    """``prompt name -> text`` from a ``core-sounds-<lang>.txt.gz`` (``;`` lines are comments)."""
    entries = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            name, sep, text = line.partition(":")
            if sep and not line.startswith(";") and name.strip() and text.strip():
                entries[name.strip()] = " ".join(text.split())
    return entries


def pack_prompts(
    pack: RealPack, transcripts: dict[str, str], english: dict[str, str], root: Path
) -> list[tuple[str, str]]:
    """``[(file, text), ...]`` of the pack's speech prompts, sorted by file name.

    A prompt is kept when it has a transcript in its language and its English transcript
    (the reference list of what each prompt is) is not a bracketed description of a tone.
    """
    prompts = []
    for path in sorted((root / pack.directory).rglob("*.g722")):
        name = path.relative_to(root / pack.directory).with_suffix("").as_posix()
        text = transcripts.get(name)
        if text and not text.startswith("[") and not english.get(name, "").startswith("["):
            prompts.append((str(path), text))
    return prompts


def decode_g722(path: str | Path) -> np.ndarray:
    """(samples,) float32 at 16 kHz from a raw 64 kbit/s G.722 file.

    Raises
    ------
    ValueError
        An empty file, or one that decodes to silence.
    OSError
        The file cannot be read.
    """
    from G722 import G722

    data = Path(path).read_bytes()
    if not data:
        raise ValueError("empty G.722 file")
    samples = np.frombuffer(G722(16000, 64000, use_numpy=False).decode(data), dtype=np.int16)
    if not np.any(samples):
        raise ValueError("decodes to silence")
    return samples.astype(np.float32) / 32768.0
