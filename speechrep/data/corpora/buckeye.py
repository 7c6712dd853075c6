"""Buckeye Corpus of conversational speech (buckeyecorpus.osu.edu): 40 speakers,
hour-long interviews with phone and word labels.

Layout (the speaker zips unpacked; nested ``sNN/sNNNNx/`` folders also work)::

    SRC/s01/s0101a.wav      16 kHz
    SRC/s01/s0101a.phones   xwaves labels: header, "#", then "END_TIME COLOR LABEL" lines
    SRC/s01/s0101a.words    same, LABEL = "word; citation; phonetic; POS"

A label line gives the *end* of its segment, which starts where the previous one ends.
Phones are lower case (``aa``, nasalised ``aan``, ``tq``...); everything else (``SIL``,
``IVER`` interviewer, ``VOCNOISE``, ``{B_TRANS}``, ``<EXCLUDE-...>``) is non-speech.

The long recordings are cut into utterances at pauses: an utterance is a run of phones
in which no non-speech stretch lasts ``min_pause`` seconds or more and none is
interviewer speech or a transcription boundary; it is also cut at a shorter pause when
the phone after it would end more than ``max_duration`` after the utterance start (a
run without any pause is never cut). Short pauses inside an utterance are labelled
``sil`` in the CTM. Output: data set ``all`` with ``segments`` (recordings ``s0101a``,
utterances ``s0101a-0001`` of speaker ``s01``), ``text`` from the ``.words`` file and
``ali/all/phones.ctm`` (times relative to the utterance start).
"""

from __future__ import annotations

from pathlib import Path

from speechrep.data.corpora.common import CorpusWriter, PreparedCorpus, Utterance, find_files, read_transcript
from speechrep.data.ctm import Alignment
from speechrep.errors import DataError

__all__ = ["prepare_buckeye", "read_xwaves", "segment_at_pauses"]

# non-speech stretches that always end an utterance, whatever their length
_BREAKING = ("IVER", "{B_TRANS}", "{E_TRANS}", "<EXCLUDE", "<IVER")


def read_xwaves(text: str) -> Alignment:
    """Parse an xwaves label file (``.phones`` / ``.words``) into ``[(start, end, label)]``.

    The label is the first ``;``-separated field; zero-length segments are dropped.

    Raises
    ------
    ValueError
        No ``#`` header end, or a line whose time is not a number.
    """
    lines = text.splitlines()
    header_end = next((i for i, line in enumerate(lines) if line.strip() == "#"), None)
    if header_end is None:
        raise ValueError("no '#' line ending the header")
    body = lines[header_end + 1 :]
    segments = []
    start = 0.0
    for line in body:
        fields = line.split(None, 2)
        if not fields:
            continue
        try:
            end = float(fields[0])
        except ValueError:
            raise ValueError(f"bad label line {line.strip()!r}") from None
        label = fields[2].split(";")[0].strip() if len(fields) == 3 else ""
        if end > start:
            segments.append((start, end, label))
            start = end
    return segments


def _is_phone(label: str) -> bool:
    return bool(label) and label[0].islower()


def segment_at_pauses(phones: Alignment, *, min_pause: float = 0.5, max_duration: float = 20.0) -> list[Alignment]:
    """Group a recording's phone segments into utterances (rule in the module docstring).

    Returns
    -------
    list of utterances, each ``[(start, end, label), ...]`` in recording time, starting
    and ending with a phone; non-speech inside is relabelled ``sil``.
    """
    utterances: list[Alignment] = []
    current: Alignment = []
    gap: Alignment = []  # non-speech since the last phone
    for start, end, label in phones:
        if not _is_phone(label):
            gap.append((start, end, label))
            continue
        if current:
            pause = sum(e - s for s, e, _ in gap)
            breaking = any(lab.startswith(_BREAKING) for _, _, lab in gap)
            too_long = bool(gap) and end - current[0][0] > max_duration
            if pause >= min_pause or breaking or too_long:
                utterances.append(current)
                current = []
            else:
                current += [(s, e, "sil") for s, e, _ in gap]
        gap = []
        current.append((start, end, label))
    if current:
        utterances.append(current)
    return utterances


def _words_in(words: Alignment, start: float, end: float) -> str:
    # a word belongs to the utterance its middle falls in
    return " ".join(
        label.upper() for s, e, label in words if start <= (s + e) / 2 < end and label and label[0] not in "<{"
    )


def prepare_buckeye(
    src: str | Path, out: str | Path, *, min_pause: float = 0.5, max_duration: float = 20.0
) -> PreparedCorpus:
    """Prepare Buckeye as segmented utterances with phone alignments.

    Parameters
    ----------
    src : directory holding the speakers' folders.
    min_pause : non-speech of at least this many seconds ends an utterance.
    max_duration : longest utterance, in seconds (cut at the next pause after it).

    Returns
    -------
    the set written and what was skipped (recordings missing their .wav or .words,
    unparsable or non-UTF-8 label files, unreadable audio, recordings without speech).

    Raises
    ------
    DataError
        Bad options, nothing usable found.
    """
    if min_pause <= 0 or max_duration <= 0:
        raise DataError(f"min_pause and max_duration must be > 0, got {min_pause}, {max_duration}", field="min_pause")
    writer = CorpusWriter("buckeye", src, out)
    for phones_file in find_files(writer.src, [".phones"]):
        rec = phones_file.stem
        audio = phones_file.with_suffix(".wav")
        words_file = phones_file.with_suffix(".words")
        if not audio.is_file() or not words_file.is_file():
            writer.skip(phones_file, f"missing {rec}.wav or {rec}.words")
            continue
        phones_text = read_transcript(phones_file, writer.skipped)
        words_text = read_transcript(words_file, writer.skipped)
        if phones_text is None or words_text is None:
            continue
        try:
            phones, words = read_xwaves(phones_text), read_xwaves(words_text)
        except ValueError as e:
            writer.skip(phones_file, str(e))
            continue
        total = writer.duration(audio)
        if total is None:
            continue
        utterances = segment_at_pauses(phones, min_pause=min_pause, max_duration=max_duration)
        if not utterances:
            writer.skip(phones_file, "no phones")
            continue
        spk = rec[:3]
        for k, segments in enumerate(utterances, start=1):
            start, end = segments[0][0], min(segments[-1][1], total)
            if end <= start:
                writer.skip(f"{phones_file} utterance {k}", "beyond the end of the audio")
                continue
            writer.add(
                "all",
                Utterance(
                    f"{rec}-{k:04d}",
                    spk,
                    audio,
                    end - start,
                    text=_words_in(words, start, end),
                    segment=(rec, start, end),
                    alignments={"phones": [(s - start, min(e, end) - start, p) for s, e, p in segments if s < end]},
                ),
            )
    return writer.write(min_pause=min_pause, max_duration=max_duration)
