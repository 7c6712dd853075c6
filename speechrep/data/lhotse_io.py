"""Data directories + CTM alignments <-> lhotse manifests (optional extra ``lhotse``).

lhotse is imported only inside these functions; ``pip install speechrep[lhotse]``.

* :func:`to_lhotse`: a data dir (with or without ``segments``) and an optional
  ``phones.ctm`` -> ``(RecordingSet, SupervisionSet)``; each supervision carries text,
  speaker, gender (``spk2gender``) and the CTM as its ``"phone"`` alignment.
* :func:`from_lhotse`: the reverse, writing a data dir and ``phones.ctm``.

CTM times are relative to the utterance; lhotse alignment times are relative to the
recording, so both functions shift by the segment start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechrep.data.ctm import read_ctm, write_ctm
from speechrep.data.kaldi_dir import DataDir, spk2utt_from_utt2spk
from speechrep.errors import DataError

__all__ = ["from_lhotse", "to_lhotse"]


def _lhotse() -> Any:
    try:
        import lhotse
    except ImportError:
        raise DataError("lhotse is not installed: pip install 'speechrep[lhotse]'", field="lhotse") from None
    return lhotse


def to_lhotse(data_dir: str | Path, *, ctm: str | Path | None = None, alignment_type: str = "phone") -> tuple[Any, Any]:
    """Build lhotse manifests from a data directory.

    Parameters
    ----------
    data_dir : Kaldi data directory; ``wav.scp`` must hold file paths (not pipes).
    ctm : alignments to attach (utterance-relative CTM), e.g. ``ali/<set>/phones.ctm``.
    alignment_type : key of the alignment in the supervisions.

    Returns
    -------
    ``(RecordingSet, SupervisionSet)``, supervision ids = utterance ids.

    Raises
    ------
    DataError
        lhotse missing, a pipe or unreadable file in ``wav.scp``, a CTM utterance not in
        the data dir.
    """
    lhotse = _lhotse()
    dd = DataDir.load(data_dir)
    recordings = []
    for reco, spec in dd.wav_scp.items():
        if spec.rstrip().endswith("|"):
            raise DataError(
                f"recording {reco}: pipe commands cannot become lhotse recordings", path=dd.path / "wav.scp"
            )
        try:
            recordings.append(lhotse.Recording.from_file(spec, recording_id=reco))
        except Exception as e:  # lhotse raises whatever its audio backends raise
            raise DataError(f"recording {reco}: {e}", path=dd.path / "wav.scp") from None
    alignments = read_ctm(ctm) if ctm is not None else {}
    unknown = sorted(set(alignments) - set(dd.utt2spk))
    if unknown:
        raise DataError(f"utterance {unknown[0]} is not in {dd.path}", path=ctm)
    supervisions = []
    for utt in dd.utts:
        reco, start, end = dd.segments[utt] if dd.segments else (utt, 0.0, None)
        duration = (end - start) if end is not None else next(r.duration for r in recordings if r.id == reco)
        alignment = None
        if utt in alignments:
            items = [lhotse.supervision.AlignmentItem(p, start + s, e - s) for s, e, p in alignments[utt]]
            alignment = {alignment_type: items}
        spk = dd.utt2spk[utt]
        supervisions.append(
            lhotse.SupervisionSegment(
                id=utt,
                recording_id=reco,
                start=start,
                duration=duration,
                channel=0,
                text=dd.text.get(utt) if dd.text else None,
                speaker=spk,
                gender=dd.spk2gender.get(spk) if dd.spk2gender else None,
                alignment=alignment,
            )
        )
    return lhotse.RecordingSet.from_recordings(recordings), lhotse.SupervisionSet.from_segments(supervisions)


def from_lhotse(
    recordings: Any, supervisions: Any, out: str | Path, *, ctm: str | Path | None = None, alignment_type: str = "phone"
) -> DataDir:
    """Write lhotse manifests as a data directory (and a CTM of their alignments).

    Supervisions become utterances; ``segments`` is written unless every supervision
    covers its whole recording. Utterance ids are prefixed with the speaker id where
    they do not start with it already (Kaldi's sorting contract).

    Parameters
    ----------
    recordings, supervisions : lhotse ``RecordingSet`` / ``SupervisionSet``.
    out : data directory to write.
    ctm : where to write the ``alignment_type`` alignments (skipped when ``None``).

    Raises
    ------
    DataError
        A recording that is not a single audio file, a supervision without speaker, or
        a supervision of an unknown recording.
    """
    _lhotse()
    wav_scp, utt2spk, segments, text, utt2dur, gender, alignments = {}, {}, {}, {}, {}, {}, {}
    whole = True
    for sup in supervisions:
        if sup.recording_id not in recordings:
            raise DataError(f"supervision {sup.id}: unknown recording {sup.recording_id}", field="supervisions")
        rec = recordings[sup.recording_id]
        if len(rec.sources) != 1 or rec.sources[0].type != "file":
            raise DataError(f"recording {rec.id}: only single-file recordings can go to wav.scp", field="recordings")
        if not sup.speaker:
            raise DataError(f"supervision {sup.id} has no speaker", field="supervisions")
        utt = sup.id if sup.id.startswith(sup.speaker) else f"{sup.speaker}-{sup.id}"
        wav_scp[rec.id] = rec.sources[0].source
        utt2spk[utt] = sup.speaker
        segments[utt] = (rec.id, sup.start, sup.end)
        whole = whole and sup.start == 0 and abs(sup.duration - rec.duration) < 1e-6 and utt == rec.id
        utt2dur[utt] = sup.duration
        if sup.text is not None:
            text[utt] = sup.text
        if sup.gender in ("m", "f"):
            gender[sup.speaker] = sup.gender
        if sup.alignment and alignment_type in sup.alignment:
            alignments[utt] = [
                (a.start - sup.start, a.end - sup.start, a.symbol) for a in sup.alignment[alignment_type]
            ]
    spk2utt = spk2utt_from_utt2spk(utt2spk)
    dd = DataDir(
        path=Path(out),
        wav_scp=wav_scp,
        utt2spk=utt2spk,
        spk2utt=spk2utt,
        segments=None if whole else segments,
        text=text if len(text) == len(utt2spk) else None,
        utt2dur=utt2dur,
        spk2gender=gender if len(gender) == len(spk2utt) else None,
    )
    dd.save()
    if ctm is not None and alignments:
        write_ctm(ctm, alignments)
    return dd
