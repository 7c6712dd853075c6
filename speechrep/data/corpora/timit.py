"""TIMIT (LDC93S1): read speech with hand-labelled phone boundaries.

Layout (upper case on the LDC disc, lower case in many copies; both are accepted)::

    SRC/TRAIN/DR1/FCJF0/SI1027.WAV   NIST SPHERE (or RIFF) 16 kHz
    SRC/TRAIN/DR1/FCJF0/SI1027.PHN   "start_sample end_sample phone" (61 phones)
    SRC/TRAIN/DR1/FCJF0/SI1027.TXT   "start_sample end_sample sentence"
    SRC/TEST/DR1/MDAB0/...

Data sets (the usual Kaldi ``timit/s5`` split): ``train`` (TRAIN, 462 speakers),
``dev`` (the 50 TEST speakers of :data:`DEV_SPEAKERS`) and ``test`` (the 24-speaker core
test set, :data:`CORE_TEST_SPEAKERS`). The SA sentences (read by every speaker) are left
out unless ``include_sa``. Speakers are lower-case (``fcjf0``, gender from the first
letter), utterances ``fcjf0_si1027``. Alignments: ``ali/<set>/phones.ctm`` with the 61
TIMIT phones (sample indices / 16000), and ``phones39.ctm`` folded to the 39 phones of
Lee & Hon (1989), closures and pauses as ``sil``, glottal stops ``q`` removed.
"""

from __future__ import annotations

from pathlib import Path

from speechrep.data.corpora.common import CorpusWriter, PreparedCorpus, Utterance, normalize_text, read_transcript
from speechrep.data.ctm import Alignment
from speechrep.errors import DataError

__all__ = ["CORE_TEST_SPEAKERS", "DEV_SPEAKERS", "FOLD_39", "prepare_timit"]

#: The 24 speakers of the core test set (2 men, 1 woman per dialect region).
CORE_TEST_SPEAKERS = frozenset(
    "mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 "
    "mbpm0 mklt0 fnlp0 mcmj0 mjdh0 fmgd0 mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0".split()
)

#: The 50 development speakers (from the TEST part, disjoint from the core test set).
DEV_SPEAKERS = frozenset(
    "faks0 fdac1 fjem0 mgwt0 mjar0 mmdb1 mmdm2 mpdf0 fcmh0 fkms0 mbdg0 mbwm0 mcsh0 fadg0 "
    "fdms0 fedw0 mgjf0 mglb0 mrtk0 mtaa0 mtdt0 mthc0 mwjg0 fnmr0 frew0 fsem0 mbns0 mmjr0 "
    "mdls0 mdlf0 mdvc0 mers0 fmah0 fdrw0 mrcs0 mrjm4 fcal1 mmwh0 fjsj0 majc0 mjsw0 mreb0 "
    "fgjd0 fjmg0 mroa0 mteb0 mjfc0 mrjr0 fmml0 mrws1".split()
)

#: 61 TIMIT phones -> 39 (``None``: removed).
FOLD_39: dict[str, str | None] = {
    **{p: p for p in "aa ae ah aw ay b ch d dh dx eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th".split()},
    **{p: p for p in "uh uw v w y z".split()},
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l", "em": "m",
    "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    **{p: "sil" for p in "bcl dcl gcl pcl tcl kcl h# pau epi".split()},
    "q": None,
}  # fmt: skip

SAMPLE_RATE = 16000


def _read_phn(path: Path, skipped: list[tuple[str, str]]) -> Alignment | None:
    text = read_transcript(path, skipped)
    if text is None:
        return None
    segments = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            start, end = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            skipped.append((f"{path}:{lineno}", "expected 'start_sample end_sample phone'"))
            return None
        if len(fields) != 3 or fields[2] not in FOLD_39 or end <= start:
            skipped.append((f"{path}:{lineno}", f"bad phone segment {line.strip()!r}"))
            return None
        segments.append((start / SAMPLE_RATE, end / SAMPLE_RATE, fields[2]))
    return segments


def _fold(alignment: Alignment) -> Alignment:
    return [(s, e, FOLD_39[p]) for s, e, p in alignment if FOLD_39[p] is not None]


def _child(directory: Path, name: str) -> Path | None:
    """``directory/name`` in either case."""
    for candidate in (name.upper(), name.lower()):
        if (directory / candidate).exists():
            return directory / candidate
    return None


def prepare_timit(src: str | Path, out: str | Path, *, include_sa: bool = False) -> PreparedCorpus:
    """Prepare TIMIT's train / dev / core test sets (see the module docstring).

    Parameters
    ----------
    src : the directory holding ``TRAIN/`` and ``TEST/`` (either case).
    include_sa : keep the two SA sentences of each speaker.

    Returns
    -------
    the sets written and what was skipped (missing .PHN/.TXT, bad phone lines,
    unreadable audio, non-UTF-8 files).

    Raises
    ------
    DataError
        Neither ``TRAIN`` nor ``TEST`` found, nothing usable found.
    """
    writer = CorpusWriter("timit", src, out)
    parts = {part: _child(writer.src, part) for part in ("train", "test")}
    if not any(parts.values()):
        raise DataError("neither TRAIN nor TEST found", path=writer.src)
    for part, directory in parts.items():
        if directory is None:
            continue
        for audio in sorted(p for p in directory.glob("*/*/*") if p.suffix.lower() == ".wav"):
            spk = audio.parent.name.lower()
            sentence = audio.stem.lower()
            if sentence.startswith("sa") and not include_sa:
                continue
            if part == "train":
                name = "train"
            elif spk in CORE_TEST_SPEAKERS:
                name = "test"
            elif spk in DEV_SPEAKERS:
                name = "dev"
            else:
                continue  # the rest of TEST is in neither standard set
            phn = _child(audio.parent, f"{audio.stem}.phn")
            txt = _child(audio.parent, f"{audio.stem}.txt")
            if phn is None or txt is None:
                writer.skip(audio, f"missing {audio.stem}.PHN or {audio.stem}.TXT")
                continue
            alignment = _read_phn(phn, writer.skipped)
            text = read_transcript(txt, writer.skipped)
            duration = writer.duration(audio) if alignment is not None and text is not None else None
            if duration is None:
                continue
            # TXT lines are "start end sentence"
            words = normalize_text(" ".join(text.split()[2:]))
            writer.genders[spk] = spk[0]
            writer.add(
                name,
                Utterance(
                    f"{spk}_{sentence}",
                    spk,
                    audio,
                    duration,
                    text=words,
                    alignments={"phones": alignment, "phones39": _fold(alignment)},
                ),
            )
    return writer.write(include_sa=include_sa)
