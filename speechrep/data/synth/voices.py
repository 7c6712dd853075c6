"""Speakers of the synthetic corpus and the drivers of the two Debian synthesizers.

Each speaker is a synthesizer voice, optionally with a different mean pitch and speaking
rate. The drivers turn ``(utt, text)`` items into 16 kHz waves with phone alignments
taken from the synthesizer's own segment timings (no forced alignment involved).

Measured on Debian 12 (flite 2.2, festival 2.5.0), on a sentence of ~2.5 s:

* ``flite -voice V -psdur -t TEXT -o x.wav`` prints ``phone:end_time`` pairs (ms
  resolution). awb, rms and slt write 16 kHz audio 0-5 ms shorter than the last end
  time. ``kal`` is 8 kHz, ``kal16`` the same voice at 16 kHz; kal16's audio is cut
  110-122 ms before the end of its final pause. An unknown ``-voice`` name silently
  falls back to the default voice, so voices are checked with ``flite -lv``.
* festival (``utt.synth`` + ``utt.save.segs``, segs lines ``END_TIME 100 phone``;
  ``Utterance`` does not evaluate its arguments, hence ``eval`` to pass a variable): the
  diphone voices ked_diphone and kal_diphone write 16 kHz audio 20-30 ms longer than the
  last segment; cmu_us_slt_arctic_hts writes 32 kHz audio whose length matches the last
  segment. An error in a ``--batch`` script aborts the rest of the script, so each
  utterance is wrapped in ``unwind-protect``.
* ``--setf int_f0_target_mean=HZ`` moves the pitch of awb, slt and kal16 (median F0 of
  one sentence: awb 132 -> 200 Hz at 200, slt 172 -> 79 Hz at 80) but is ignored by rms;
  ``--setf duration_stretch=X`` scales the duration of every voice.

Edge handling (:func:`fit_alignment`): segments are clipped to the audio length, a
segment that starts at or after the end of the audio is dropped, and audio left after
the last segment (festival diphones) is labelled ``pau``: the last segment is extended
when it is a pause, a ``pau`` segment is appended otherwise.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from speechrep.errors import DataError

__all__ = [
    "FESTIVAL_ENCODINGS",
    "PHONES",
    "SAMPLE_RATE",
    "SPEAKERS",
    "SynthSpeaker",
    "Synthesized",
    "check_voices",
    "fit_alignment",
    "normalize_phone",
    "resample",
    "synthesize",
    "synthesizer_versions",
]

#: Output sample rate of every utterance (Hz).
SAMPLE_RATE = 16000

#: Phone inventory: ``pau`` then the 39 CMU ARPAbet phones (no stress marks).
PHONES: tuple[str, ...] = (
    "pau",
    *"aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split(),
)

# Both synthesizers speak CMU ARPAbet; the only extra symbol they emit today is the
# reduced vowel "ax" (measured over 100 sentences per voice). The other entries are the
# remaining variants of festival's radio phone set, which other lexicon versions may
# emit; each maps to the CMU phone it is a variant of, so all speakers share one
# inventory. Any other symbol makes the utterance fail (skipped and counted).
_PHONE_ALIASES = {
    "ax": "ah",
    "axr": "er",
    "ix": "ih",
    "el": "l",
    "em": "m",
    "en": "n",
    "nx": "n",
    "dx": "t",
    "hv": "hh",
    "h#": "pau",
}
_PHONE_SET = frozenset(PHONES)


@dataclass(frozen=True)
class SynthSpeaker:
    """One speaker of the synthetic corpus.

    Attributes
    ----------
    id : speaker id in the data directories (``[a-z0-9_]``, so that utterance ids
        ``{id}-{sentence}`` sort in the same order as their speakers).
    engine : ``"flite"`` or ``"festival"``.
    voice : flite ``-voice`` name or festival voice name.
    family : the recorded person the voice was built from. Voices and variants of one
        family share a timbre, so speaker-disjoint splits hold out whole families.
    gender : ``"m"`` or ``"f"`` (``spk2gender``).
    package : the Debian package that provides the voice.
    f0_mean : flite ``int_f0_target_mean`` in Hz (``None``: the voice's own).
    duration_stretch : flite ``duration_stretch`` (``None``: 1.0).
    language : ISO 639-1 code of the text the voice reads. Only English voices get phone
        alignments (their phones are CMU ARPAbet); the others are audio and text only.
    warp : vocal-tract / pitch warp factor of a pseudo-speaker (``None``: 1.0). The
        output is resampled as if played ``warp`` times faster: formants and F0 move up
        by ``warp``, durations (and the phone times with them) shrink by ``1 / warp``.
    """

    id: str
    engine: str
    voice: str
    family: str
    gender: str
    package: str
    f0_mean: float | None = None
    duration_stretch: float | None = None
    language: str = "en"
    warp: float | None = None


def _flite(id: str, voice: str, family: str, gender: str, **variant: float) -> SynthSpeaker:
    return SynthSpeaker(id, "flite", voice, family, gender, "flite", **variant)


#: Every speaker, in a fixed order (the order the corpus draws sentences in).
#:
#: Pitch variants count as speakers: a 30-45 % shift of the mean F0 over every utterance
#: changes the cue listeners and speaker-ID systems rely on most, and each variant is
#: also given its own speaking rate. Median F0 measured over 4 sentences (pyin): awb 125,
#: awb_hi 177, awb_lo 82, kal16 90, kal16_hi 121, slt 167, slt_hi 228, slt_lo 115 Hz
#: (rms 101, kal 100, ked 100, slt_hts 172 Hz). They keep the timbre of their voice, hence the
#: shared ``family``. Rate-only variants are not speakers (same voice, same pitch), so
#: rms, whose pitch flite cannot move, has none. flite's kal16 and festival's
#: kal_diphone are the same diphone database, and slt / slt_hts the same CMU ARCTIC
#: speaker, so they share families too.
SPEAKERS: tuple[SynthSpeaker, ...] = (
    _flite("awb", "awb", "awb", "m"),
    _flite("awb_hi", "awb", "awb", "m", f0_mean=185.0, duration_stretch=0.9),
    _flite("awb_lo", "awb", "awb", "m", f0_mean=90.0, duration_stretch=1.15),
    _flite("kal16", "kal16", "kal", "m"),
    _flite("kal16_hi", "kal16", "kal", "m", f0_mean=125.0, duration_stretch=0.9),
    _flite("rms", "rms", "rms", "m"),
    _flite("slt", "slt", "slt", "f"),
    _flite("slt_hi", "slt", "slt", "f", f0_mean=235.0, duration_stretch=0.9),
    _flite("slt_lo", "slt", "slt", "f", f0_mean=120.0, duration_stretch=1.1),
    SynthSpeaker("kal", "festival", "kal_diphone", "kal", "m", "festvox-kallpc16k"),
    SynthSpeaker("ked", "festival", "ked_diphone", "ked", "m", "festvox-kdlpc16k"),
    SynthSpeaker("slt_hts", "festival", "cmu_us_slt_arctic_hts", "slt", "f", "festvox-us-slt-hts"),
)


@dataclass
class Synthesized:
    """The outcome of synthesizing one item.

    Attributes
    ----------
    utt : utterance id.
    wave : (samples,) float32 at :data:`SAMPLE_RATE`, ``None`` on failure.
    segments : ``[(start, end, phone), ...]`` in seconds, normalised phones.
    error : why the item failed (``None`` on success).
    duration : seconds of audio at :data:`SAMPLE_RATE` (0 on failure).
    audio_minus_end : audio length minus the synthesizer's last segment end (seconds),
        before :func:`fit_alignment` (the edge mismatch).
    """

    utt: str
    wave: np.ndarray | None = None
    segments: list[tuple[float, float, str]] | None = None
    error: str | None = None
    duration: float = 0.0
    audio_minus_end: float = 0.0


def normalize_phone(phone: str) -> str:
    """Map a synthesizer's phone name to :data:`PHONES` (``ValueError`` if unknown)."""
    phone = _PHONE_ALIASES.get(phone.lower(), phone.lower())
    if phone not in _PHONE_SET:
        raise ValueError(f"unknown phone {phone!r}")
    return phone


def fit_alignment(ends: Sequence[tuple[float, str]], duration: float) -> list[tuple[float, float, str]]:
    """Turn ``(end_time, phone)`` pairs into segments that tile ``[0, duration]`` exactly.

    Parameters
    ----------
    ends : segment end times in seconds with normalised phones, in order; each segment
        starts where the previous one ends, the first at 0.
    duration : audio length in seconds.

    Returns
    -------
    ``[(start, end, phone), ...]``: zero-length segments dropped, ends clipped to
    ``duration``, segments starting at or after ``duration`` dropped, trailing audio
    labelled ``pau`` (last pause extended, or a pause appended), consecutive pauses merged.
    """
    segments: list[tuple[float, float, str]] = []
    start = 0.0
    for end, phone in ends:
        end = min(end, duration)
        if end > start:
            if segments and phone == "pau" == segments[-1][2]:
                start = segments.pop()[0]
            segments.append((start, end, phone))
            start = end
    if start < duration:
        if segments and segments[-1][2] == "pau":
            start = segments.pop()[0]
        segments.append((start, duration, "pau"))
    return segments


# --- availability ---------------------------------------------------------------------


def _flite_voices(binary: str) -> set[str]:
    out = subprocess.run([binary, "-lv"], capture_output=True, text=True, check=False).stdout
    return set(out.split(":", 1)[-1].split())


def _festival_voices(binary: str) -> set[str]:
    out = subprocess.run(
        [binary, "--batch", "(print (voice.list))"], capture_output=True, text=True, check=False
    ).stdout
    return set(re.findall(r"[\w.-]+", out))


def check_voices(speakers: Iterable[SynthSpeaker]) -> None:
    """Check that every speaker's synthesizer and voice are installed.

    Raises
    ------
    DataError
        One line listing every missing voice (with its speakers) and the Debian packages
        that provide them.
    """
    speakers = list(speakers)
    installed: dict[str, set[str] | None] = {}
    for engine, lister in (("flite", _flite_voices), ("festival", _festival_voices)):
        if any(s.engine == engine for s in speakers):
            binary = shutil.which(engine)
            installed[engine] = lister(binary) if binary else None
    missing: dict[tuple[str, str], list[str]] = {}
    packages: set[str] = set()
    for s in speakers:
        voices = installed[s.engine]
        if voices is None or s.voice not in voices:
            missing.setdefault((s.engine, s.voice), []).append(s.id)
            # without the binary, the engine's own package is needed too
            packages.update([s.package] + ([s.engine] if voices is None else []))
    if missing:
        detail = "; ".join(
            f"{engine} voice {voice} (speakers {', '.join(ids)})"
            + (f": {engine} not found on PATH" if installed[engine] is None else "")
            for (engine, voice), ids in missing.items()
        )
        raise DataError(
            f"missing speech synthesizer voices: {detail}; install the Debian packages with "
            f"'apt-get install {' '.join(sorted(packages))}'",
            field="speakers",
        )


def synthesizer_versions(engines: Iterable[str]) -> dict[str, str]:
    """Version line of each installed engine (recorded in ``stats.json``)."""
    versions = {}
    for engine in sorted(set(engines)):
        out = subprocess.run([engine, "--version"], capture_output=True, text=True, check=False).stdout
        match = re.search(r"(flite-[\w.-]+|\d+\.\d+\.\d+)", out)
        versions[engine] = match.group(1) if match else out.strip()
    return versions


# --- synthesis ------------------------------------------------------------------------


def _load(path: Path, warp: float | None = None) -> tuple[np.ndarray, float]:
    """Read a synthesizer's wav as (samples,) float32 resampled to SAMPLE_RATE (and warped
    by ``warp``, see :class:`SynthSpeaker`), and its native length in s."""
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    wave = data[:, 0]
    duration = len(wave) / rate
    return resample(wave, rate, warp=warp), duration


def resample(wave: np.ndarray, rate: float, *, warp: float | None = None) -> np.ndarray:
    """(samples,) float32 at ``rate`` -> (samples',) float32 at :data:`SAMPLE_RATE`.

    With ``warp``, the wave is taken as sampled at ``rate * warp`` (played faster): the
    vocal-tract (formant) and pitch warp of a pseudo-speaker, exact for phone times.
    """
    rate = rate * (warp or 1.0)
    if rate != SAMPLE_RATE:
        import soxr

        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return wave


def _finish(speaker: SynthSpeaker, utt: str, wav: Path, ends: list[tuple[float, str]]) -> Synthesized:
    """Check and package one synthesized item (wave file + raw segment ends).

    Only English voices speak :data:`PHONES`; the others keep their audio, no segments.
    """
    aligned = speaker.language == "en"
    if aligned:
        try:
            ends = [(end, normalize_phone(phone)) for end, phone in ends]
        except ValueError as e:
            return Synthesized(utt, error=str(e))
    if not any(phone not in ("pau", "#", "_") for _, phone in ends):
        return Synthesized(utt, error="no speech phones in the synthesizer's output")
    try:
        wave, native_duration = _load(wav, speaker.warp)
    except (sf.SoundFileError, RuntimeError) as e:
        return Synthesized(utt, error=f"unreadable audio: {e}")
    if wave.size == 0 or not np.any(wave):
        return Synthesized(utt, error="empty audio")
    duration = wave.size / SAMPLE_RATE
    scale = 1.0 / (speaker.warp or 1.0)
    segments = fit_alignment([(end * scale, phone) for end, phone in ends], duration) if aligned else None
    return Synthesized(utt, wave, segments, duration=duration, audio_minus_end=native_duration - ends[-1][0])


def _flite_command(speaker: SynthSpeaker) -> list[str]:
    command = ["flite", "-voice", speaker.voice]
    if speaker.f0_mean is not None:
        command += ["--setf", f"int_f0_target_mean={speaker.f0_mean:g}"]
    if speaker.duration_stretch is not None:
        command += ["--setf", f"duration_stretch={speaker.duration_stretch:g}"]
    return command + ["-psdur"]


def _parse_psdur(stdout: str) -> list[tuple[float, str]]:
    ends = []
    for token in stdout.split():
        phone, _, end = token.rpartition(":")
        ends.append((float(end), phone))
    return ends


def _synth_flite(speaker: SynthSpeaker, items: Sequence[tuple[str, str]], tmp: Path) -> list[Synthesized]:
    results = []
    base = _flite_command(speaker)
    for i, (utt, text) in enumerate(items):
        wav = tmp / f"{i}.wav"
        proc = subprocess.run([*base, "-t", text, "-o", str(wav)], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or not wav.is_file():
            results.append(Synthesized(utt, error=f"flite exited with status {proc.returncode}"))
            continue
        try:
            ends = _parse_psdur(proc.stdout)
        except ValueError:
            results.append(Synthesized(utt, error="unparsable flite -psdur output"))
            continue
        results.append(_finish(speaker, utt, wav, ends))
    return results


#: Text encoding festival's voices of each language expect (default UTF-8: English is
#: ASCII, the Russian voice reads UTF-8). Sentences are kept only when they encode.
FESTIVAL_ENCODINGS = {"it": "latin-1", "ca": "latin-1", "cs": "iso-8859-2"}

_FESTIVAL_PRELUDE = """\
(define (synth_one id text wav segs)
  (unwind-protect
    (let ((u (utt.synth (eval (list 'Utterance 'Text text)))))
      (utt.save.wave u wav 'riff)
      (utt.save.segs u segs)
      (format t "OK %s\\n" id))
    (format t "FAIL %s\\n" id)))
"""


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_segs(path: Path) -> list[tuple[float, str]]:
    ends = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) == 3:
            ends.append((float(fields[0]), fields[2]))
    return ends


def _synth_festival(speaker: SynthSpeaker, items: Sequence[tuple[str, str]], tmp: Path) -> list[Synthesized]:
    done: dict[int, Synthesized] = {}
    pending = list(range(len(items)))
    # festival stops at a crash (not at a Scheme error, which unwind-protect catches):
    # the first item without a report is the culprit; rerun the rest without it
    while pending:
        script = tmp / "synth.scm"
        lines = [_FESTIVAL_PRELUDE, f"(voice_{speaker.voice})"]
        for i in pending:
            lines.append(f'(synth_one "{i}" {_scheme_string(items[i][1])} "{tmp / f"{i}.wav"}" "{tmp / f"{i}.segs"}")')
        # festival reads bytes: each language's lexicon and letter-to-sound rules expect
        # its own legacy encoding (measured: Czech text in UTF-8 is spelt out as garbage)
        script.write_bytes(("\n".join(lines) + "\n").encode(FESTIVAL_ENCODINGS.get(speaker.language, "utf-8")))
        proc = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True, check=False)
        reports = dict(line.split()[::-1] for line in proc.stdout.splitlines() if re.fullmatch(r"(OK|FAIL) \d+", line))
        for i in pending:
            utt = items[i][0]
            status = reports.get(str(i))
            if status == "OK":
                try:
                    done[i] = _finish(speaker, utt, tmp / f"{i}.wav", _parse_segs(tmp / f"{i}.segs"))
                except (OSError, ValueError) as e:
                    done[i] = Synthesized(utt, error=f"unreadable festival output: {e}")
            elif status == "FAIL":
                done[i] = Synthesized(utt, error="festival failed on this text")
            else:
                done[i] = Synthesized(utt, error=f"festival exited with status {proc.returncode}")
                break
        pending = [i for i in pending if i not in done]
    return [done[i] for i in range(len(items))]


def synthesize(speaker: SynthSpeaker, items: Sequence[tuple[str, str]]) -> list[Synthesized]:
    """Synthesize ``(utt, text)`` items with one speaker.

    Parameters
    ----------
    speaker : the voice (and its pitch/rate variant).
    items : ``(utterance id, text)`` pairs.

    Returns
    -------
    one :class:`Synthesized` per item, in order. A text the synthesizer fails on, or
    whose output has no speech or no audio, comes back with ``error`` set and no wave.
    """
    with tempfile.TemporaryDirectory(prefix="speechrep-synth-") as tmp:
        driver = _synth_flite if speaker.engine == "flite" else _synth_festival
        return driver(speaker, items, Path(tmp))
