"""LibriSpeech (openslr.org/12), and the ABX item files of Libri-Light / ZeroSpeech 2021.

Layout::

    SRC/SPEAKERS.TXT                               ";"-comments, "ID | SEX | SUBSET | ..."
    SRC/<subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt   "UTT TRANSCRIPT" lines
    SRC/<subset>/<spk>/<chapter>/<spk>-<chapter>-<nnnn>.flac  16 kHz

Each subset (``train-clean-100``, ``dev-clean``, ...) becomes data set ``train_clean_100``,
``dev_clean``, ... Speakers are the LibriSpeech speaker ids (not speaker-chapter pairs,
so that speaker probes see one label per person).

ABX item files (``dev-clean.item`` ..., header ``#file onset offset #phone prev-phone
next-phone speaker``, from ZeroSpeech 2021 ``phonetic/`` or Libri-Light's ABX data) are
copied to ``OUT/abx/<name>.item``; items whose file is not among the prepared utterances
are reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from speechrep.data.corpora.common import CorpusWriter, PreparedCorpus, Utterance, find_files, read_transcript
from speechrep.errors import DataError

__all__ = ["prepare_librispeech"]

_ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def _speaker_genders(path: Path) -> dict[str, str]:
    genders = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = [f.strip() for f in line.split("|")]
            if not line.startswith(";") and len(fields) >= 2 and fields[1] in ("M", "F"):
                genders[fields[0]] = fields[1].lower()
    return genders


def _add_abx_items(writer: CorpusWriter, abx_dir: Path, utts: set[str]) -> list[str]:
    items = find_files(abx_dir, [".item"])
    if not items:
        raise DataError("no .item files found", path=abx_dir, field="abx_items")
    names = []
    for item in items:
        data = item.read_bytes()
        lines = data.decode("utf-8", errors="replace").splitlines()
        if not lines or lines[0].split() != _ITEM_HEADER.split():
            writer.skip(item, f"not an ABX item file (expected header '{_ITEM_HEADER}')")
            continue
        unknown = sorted({line.split()[0] for line in lines[1:] if line.strip()} - utts)
        if unknown:
            writer.skip(item, f"{len(unknown)} file id(s) not among the prepared utterances, e.g. {unknown[0]}")
        writer.extra_files[f"abx/{item.name}"] = data
        names.append(item.name)
    return names


def prepare_librispeech(
    src: str | Path,
    out: str | Path,
    *,
    subsets: Sequence[str] | None = None,
    abx_items: str | Path | None = None,
) -> PreparedCorpus:
    """Prepare LibriSpeech subsets as data sets (layout in the module docstring).

    Parameters
    ----------
    src : the ``LibriSpeech`` directory.
    out : output directory.
    subsets : subset directory names to prepare (default: every one found).
    abx_items : directory holding ABX ``.item`` files to copy to ``OUT/abx/``.

    Returns
    -------
    the sets written and the files skipped (missing transcript lines, audio without a
    transcript, unreadable audio, non-UTF-8 transcripts).

    Raises
    ------
    DataError
        ``src`` missing, a requested subset missing, nothing usable found.
    """
    writer = CorpusWriter("librispeech", src, out)
    root = writer.src
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*/*/*.trans.txt")))
    chosen = list(subsets) if subsets else available
    for subset in chosen:
        if subset not in available:
            raise DataError(
                f"subset {subset} not found (found: {', '.join(available) or 'none'})", path=root, field="subsets"
            )
    writer.genders = _speaker_genders(root / "SPEAKERS.TXT")
    for subset in chosen:
        name = subset.replace("-", "_")
        listed: set[Path] = set()
        for trans in sorted((root / subset).glob("*/*/*.trans.txt")):
            text = read_transcript(trans, writer.skipped)
            if text is None:
                continue
            for line in text.splitlines():
                utt, _, words = line.strip().partition(" ")
                if not utt:
                    continue
                audio = trans.parent / f"{utt}.flac"
                listed.add(audio)
                if not audio.is_file():
                    writer.skip(audio, f"listed in {trans.name} but missing")
                    continue
                duration = writer.duration(audio)
                if duration is not None:
                    writer.add(name, Utterance(utt, utt.split("-")[0], audio, duration, text=words.strip()))
        for audio in find_files(root / subset, [".flac"]):
            if audio not in listed:
                writer.skip(audio, "no transcript line")
    details = {"subsets": chosen}
    if abx_items is not None:
        utts = {u.utt for us in writer.sets.values() for u in us}
        details["abx_items"] = _add_abx_items(writer, Path(abx_items).resolve(), utts)
    return writer.write(**details)
