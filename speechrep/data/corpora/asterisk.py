"""Asterisk's studio prompts (Debian ``asterisk-core-sounds-<lang>-g722``): one real person
reading a few hundred telephone prompts, stored as raw 64 kbit/s G.722 at 16 kHz.

Layout::

    SRC/<pack directory>/**/*.g722     e.g. /usr/share/asterisk/sounds/en_US_f_Allison/vm-goodbye.g722

One data set ``all``, one speaker (the pack's id, e.g. ``allison_en``); the prompts are
decoded (:func:`speechrep.data.synth.real.decode_g722`) into ``OUT/wav/<utt>.wav`` and the
utterance ids are ``<speaker>-<prompt name>`` with ``/`` and ``-`` of the name made ``_``
(``digits/1`` -> ``allison_en-digits_1``). Transcripts come from ``core-sounds-<lang>.txt.gz``
(searched where :mod:`speechrep.data.synth.real` looks, or given); a prompt without one,
or whose English transcript is a bracketed tone description, is left out, as are prompts
shorter than ``min_duration``, silent ones (the ``silence/<n>`` prompts: RMS below -60 dBFS)
and files that do not decode (listed in ``prepare.json``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrep.data.corpora.common import CorpusWriter, PreparedCorpus, Utterance, normalize_text
from speechrep.data.synth.real import DOC_DIRS, PACKS, decode_g722, pack_prompts, read_transcripts, transcripts_path
from speechrep.data.synth.voices import SAMPLE_RATE
from speechrep.errors import DataError

__all__ = ["prepare_asterisk"]

#: RMS level below which a prompt is taken for silence (speech prompts are near -20 dBFS).
_SILENCE_DBFS = -60.0


def _transcripts(language: str, given: str | Path | None) -> dict[str, str]:
    path = Path(given) if given is not None else transcripts_path(language, DOC_DIRS)
    if path is None:
        raise DataError(
            f"no transcripts core-sounds-{language}.txt.gz in {' or '.join(str(d) for d in DOC_DIRS)} "
            f"(bash tools/setup.sh extracts them, or pass --transcripts)", field="transcripts")
    if not path.is_file():
        raise DataError("transcripts file not found", path=path, field="transcripts")
    try:
        return read_transcripts(path)
    except (OSError, EOFError) as e:
        raise DataError(f"unreadable transcripts ({e})", path=path, field="transcripts") from None


def prepare_asterisk(
    src: str | Path,
    out: str | Path,
    *,
    pack: str = "allison_en",
    transcripts: str | Path | None = None,
    min_duration: float = 0.0,
) -> PreparedCorpus:
    """Prepare one Asterisk prompt pack (``SRC`` is the sounds directory holding the packs,
    e.g. ``/usr/share/asterisk/sounds``).

    Parameters
    ----------
    pack : the pack's speaker id (``allison_en``, ``allison_es``, ``june_fr``, ``ivr_ru``).
    transcripts : ``core-sounds-<lang>.txt.gz`` of the pack's language (default: searched).
        For a pack other than English, the English transcripts are read too when found
        (they say which prompts are tones).
    min_duration : shortest prompt kept, in seconds.

    Raises
    ------
    DataError
        Unknown pack, the pack's directory or its transcripts missing, nothing usable found.
    """
    packs = {p.id: p for p in PACKS}
    if pack not in packs:
        raise DataError(f"unknown pack {pack!r} (choose from {', '.join(packs)})", field="pack")
    chosen = packs[pack]
    writer = CorpusWriter("asterisk", src, out)
    if not (writer.src / chosen.directory).is_dir():
        raise DataError(f"no {chosen.directory}/ here (Debian package {chosen.package})", path=writer.src, field="pack")
    try:
        import G722  # noqa: F401
    except ImportError:
        raise DataError("the G.722 decoder is not installed (pip install g722==1.2.8; bash tools/setup.sh installs it)",
                        field="pack") from None
    texts = _transcripts(chosen.language, transcripts)
    english_path = None if chosen.language == "en" else transcripts_path("en", DOC_DIRS)
    english = texts if chosen.language == "en" else read_transcripts(english_path) if english_path else {}
    for path, text in pack_prompts(chosen, texts, english, writer.src):
        name = Path(path).relative_to(writer.src / chosen.directory).with_suffix("").as_posix()
        utt = f"{chosen.id}-{name.replace('/', '_').replace('-', '_')}"
        try:
            wave = decode_g722(path)
        except (OSError, ValueError) as e:
            writer.skip(path, f"cannot decode: {e}")
            continue
        duration = wave.size / SAMPLE_RATE
        level = 20 * math.log10(max(float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))), 1e-10))
        if level < _SILENCE_DBFS:  # the silence/<n> prompts: seconds of line noise
            writer.skip(path, f"no speech (RMS {level:.0f} dBFS)")
            continue
        if duration < min_duration:
            writer.skip(path, f"shorter than {min_duration:g} s ({duration:.2f} s)")
            continue
        buf = io.BytesIO()
        sf.write(buf, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        writer.extra_files[f"wav/{utt}.wav"] = buf.getvalue()
        writer.add("all", Utterance(utt, chosen.id, writer.out / "wav" / f"{utt}.wav", duration,
                                    text=normalize_text(text)))
    writer.genders = {chosen.id: chosen.gender}
    return writer.write(pack=chosen.id, package=chosen.package, min_duration=min_duration)
