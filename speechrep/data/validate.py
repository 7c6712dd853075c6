"""Validate and fix Kaldi data directories (Kaldi's ``validate_data_dir.sh`` and
``fix_data_dir.sh``): every problem with its file and line; a fix keeps a backup of
every file it changes in ``.backup/``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechrep.data.kaldi_dir import (
    _REQUIRED,
    FILES,
    DataDir,
    _kaldi_map_text,
    _not_a_file,
    _parse_file,
    restrict_data_dir,
    spk2utt_from_utt2spk,
)
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir

if TYPE_CHECKING:
    from speechrep.data.audio import AudioRule

__all__ = ["BACKUP_DIR", "fix_data_dir", "validate_data_dir"]


def validate_data_dir(
    path: str | Path, *, check_audio: bool = False, rule: AudioRule | None = None, progress: bool = False
) -> list[str]:
    """Check a data directory; return every problem as ``"file:line: message"``.

    Checks: each file parses (no empty/duplicate keys, values of the right type), is
    C-sorted; ``wav.scp`` and ``utt2spk`` exist and are not empty; every utterance of
    ``utt2spk`` is in every per-utterance file and no file has extra utterances; utterance ids start with their
    speaker id; ``spk2utt`` matches ``utt2spk``; per-speaker files cover the speakers;
    ``segments`` reference recordings of ``wav.scp`` and have ``end > start``; without
    ``segments``, ``wav.scp`` has exactly the utterances. With ``check_audio`` every
    utterance's audio is decoded (at its native rate) and read errors, and breaches of
    ``rule`` (a :class:`speechrep.data.audio.AudioRule`: the sample rate and length a
    feature configuration needs, as feature extraction checks them), are reported against
    its ``wav.scp`` line (``progress`` shows a progress bar while decoding). Pipe commands
    that ``rule`` refuses are reported without being run, with or without ``check_audio``.

    Returns
    -------
    list of problems, empty when the directory is valid.
    """
    path = Path(path)
    if not path.is_dir():
        return [f"{path}: not a directory"]
    problems: list[str] = []
    parsed: dict[str, dict[str, tuple[int, Any]]] = {}
    for name, spec in FILES.items():
        file = path / name
        if file.exists() and not file.is_file():
            problems.append(f"{file}: {_not_a_file(file)}")
            continue
        if not file.is_file():
            if name in (*_REQUIRED, "spk2utt"):
                problems.append(f"{file}: missing file")
            continue
        entries, file_problems = _parse_file(file, spec, check_order=True)
        problems += [f"{file}:{lineno}: {message}" for lineno, message in sorted(file_problems)]
        if name in _REQUIRED and not entries and not file_problems:
            problems.append(f"{file}: empty file (a data directory needs at least one utterance)")
        parsed[name] = entries
    if "utt2spk" not in parsed:
        return problems
    utt2spk = parsed["utt2spk"]
    utt_file = path / "utt2spk"

    for utt, (lineno, spk) in utt2spk.items():
        if not utt.startswith(spk):
            problems.append(f"{utt_file}:{lineno}: utterance '{utt}' does not start with its speaker id '{spk}'")

    # first utt2spk line of each speaker, to point at when a speaker is missing elsewhere
    spk_line: dict[str, int] = {}
    for utt, (lineno, spk) in utt2spk.items():
        spk_line.setdefault(spk, lineno)

    if "spk2utt" in parsed:
        expected = spk2utt_from_utt2spk({utt: spk for utt, (_, spk) in utt2spk.items()})
        file = path / "spk2utt"
        for spk, (lineno, utts) in parsed["spk2utt"].items():
            if spk not in expected:
                problems.append(f"{file}:{lineno}: speaker '{spk}' has no utterances in utt2spk")
            elif utts != expected[spk]:
                missing = sorted(set(expected[spk]) - set(utts))
                extra = sorted(set(utts) - set(expected[spk]))
                if missing or extra:
                    detail = "; ".join(
                        part
                        for part in (
                            f"missing {' '.join(missing)}" if missing else "",
                            f"not theirs in utt2spk {' '.join(extra)}" if extra else "",
                        )
                        if part
                    )
                    problems.append(f"{file}:{lineno}: speaker '{spk}' does not match utt2spk ({detail})")
                else:
                    problems.append(f"{file}:{lineno}: utterances of speaker '{spk}' not sorted (C collation)")
        for spk in expected:
            if spk not in parsed["spk2utt"]:
                problems.append(f"{utt_file}:{spk_line[spk]}: speaker '{spk}' missing from spk2utt")

    def compare(name: str, keys: Mapping[str, int], kind: str) -> None:
        """Cross-check the keys of file ``name`` against ``keys`` (key -> utt2spk line)."""
        if name not in parsed:
            return
        file = path / name
        for key, lineno in keys.items():
            if key not in parsed[name]:
                problems.append(f"{utt_file}:{lineno}: {kind} '{key}' missing from {name}")
        for key, (lineno, _) in parsed[name].items():
            if key not in keys:
                problems.append(f"{file}:{lineno}: {kind} '{key}' not in utt2spk")

    utt_lines = {utt: lineno for utt, (lineno, _) in utt2spk.items()}
    for name, spec in FILES.items():
        if spec.keyed_by == "utt" and name != "utt2spk":
            compare(name, utt_lines, "utterance")
        elif spec.keyed_by == "spk" and name != "spk2utt":
            compare(name, spk_line, "speaker")

    wav = parsed.get("wav.scp")
    if wav is not None:
        if "segments" in parsed:
            seg_file = path / "segments"
            for utt, (lineno, (reco, _, _)) in parsed["segments"].items():
                if reco not in wav:
                    problems.append(f"{seg_file}:{lineno}: recording '{reco}' not in wav.scp")
        else:
            compare("wav.scp", utt_lines, "utterance")
        refused = set()
        if rule is not None:
            for reco, (lineno, spec) in wav.items():
                problem = rule.pipe_problem(spec)
                if problem is not None:
                    refused.add(reco)
                    problems.append(f"{path / 'wav.scp'}:{lineno}: recording '{reco}': {problem}")
        if check_audio:
            problems += _audio_problems(path, parsed, utt_lines, rule=rule, skip=refused, progress=progress)
    return problems


def _audio_problems(
    path: Path,
    parsed: dict[str, dict[str, tuple[int, Any]]],
    utt_lines: Mapping[str, int],
    *,
    rule: AudioRule | None,
    skip: set[str],
    progress: bool,
) -> list[str]:
    from speechrep.utils.progress import progress_bar

    from speechrep.data.audio import SegmentReader

    wav = parsed["wav.scp"]
    segments = parsed.get("segments")
    # native rate (no resampling): decoding and the rule are what is checked
    reader = SegmentReader(sample_rate=None, rule=rule)
    problems = []
    for utt in progress_bar(sorted(utt_lines), desc="checking audio", unit="utt", enabled=progress):
        if segments is not None:
            if utt not in segments:
                continue
            reco, start, end = segments[utt][1]
        else:
            reco, start, end = utt, 0.0, None
        if reco not in wav or reco in skip:
            continue
        lineno, spec = wav[reco]
        try:
            reader.load(spec, start=start, end=end, name=utt)
        except DataError as e:
            problems.append(f"{path / 'wav.scp'}:{lineno}: {e}")
    return problems


# --- fix / subset / split / combine ------------------------------------------------------


def _count_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


#: Where :func:`fix_data_dir` keeps the previous version of each file it changes
#: (Kaldi's ``fix_data_dir.sh`` does the same).
BACKUP_DIR = ".backup"


def fix_data_dir(path: str | Path) -> dict[str, tuple[int, int]]:
    """Repair a data directory in place (Kaldi ``utils/fix_data_dir.sh``).

    Malformed lines and repeated keys (all but the first) are dropped; an utterance is
    kept only if it is in ``utt2spk`` and in every per-utterance file present, its
    recording is in ``wav.scp`` and its speaker in every per-speaker file present (a
    speaker missing from ``spk2gender``, as in Kaldi, or with a malformed line there loses
    its utterances);
    recordings no segment uses are dropped; every file is rewritten C-sorted and
    ``spk2utt`` is rebuilt from ``utt2spk``. Before a file is changed, its previous
    version is copied to ``path/.backup/``, so nothing dropped is lost; the backup of an
    earlier fix is kept as ``.backup.1``, ``.backup.2``, ... (oldest first).

    Returns
    -------
    dict file name -> (entries written, lines of the old file not kept), for every file
    present (``spk2utt`` may gain speakers that were only in ``utt2spk``).

    Raises
    ------
    DataError
        Not a directory, ``wav.scp``/``utt2spk`` missing, or nothing left to keep (then
        nothing is rewritten); or the directory is still invalid after the fix (problems
        fixing cannot repair, such as an utterance id that does not start with its
        speaker id): the message gives the first problem :func:`validate_data_dir` finds.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError("data directory not found", path=path)
    values: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    for name, spec in FILES.items():
        file = path / name
        if file.exists() and not file.is_file():
            raise DataError(_not_a_file(file), path=file)
        if not file.is_file():
            if name in _REQUIRED:
                raise DataError("missing file", path=file)
            continue
        parsed, _ = _parse_file(file, spec)
        values[spec.attr] = {key: value for key, (_, value) in parsed.items()}
        lines[name] = _count_lines(file)
    original_keys = {name: set(values[FILES[name].attr]) for name in lines}
    values.pop("spk2utt", None)
    dd = DataDir(path=path, spk2utt={}, **values)

    utts = set(dd.utt2spk)
    for name, spec in FILES.items():
        table = getattr(dd, spec.attr)
        if table is None or name == "utt2spk":
            continue
        if spec.keyed_by == "utt":
            utts &= set(table)
        elif spec.keyed_by == "spk" and name != "spk2utt":
            utts = {u for u in utts if dd.utt2spk[u] in table}
    if dd.segments is not None:
        utts = {u for u in utts if dd.segments[u][0] in dd.wav_scp}
    else:
        utts &= set(dd.wav_scp)
    if not utts:
        raise DataError("no utterance is consistent across the files; nothing kept", path=path)
    fixed = restrict_data_dir(dd, utts, path)
    _back_up_changes(fixed)
    fixed.save()
    counts = {}
    for name, count in lines.items():
        written = getattr(fixed, FILES[name].attr)
        counts[name] = (len(written), count - len(original_keys[name] & set(written)))
    remaining = validate_data_dir(path)
    if remaining:
        raise DataError(
            f"{remaining[0]} (still invalid after fixing: {len(remaining)} problem(s), "
            f"see 'speechrep data validate {path}'; previous files in {path / BACKUP_DIR})"
        )
    return counts


def _back_up_changes(dd: DataDir) -> None:
    """Copy each file of ``dd.path`` that saving ``dd`` would change to ``.backup/``; the
    backup of an earlier fix is kept, renamed ``.backup.1``, ``.backup.2``, ... (oldest first)."""
    old: dict[str, bytes] = {}
    for name, spec in FILES.items():
        file = dd.path / name
        if not file.is_file():
            continue
        value = spk2utt_from_utt2spk(dd.utt2spk) if name == "spk2utt" else getattr(dd, spec.attr)
        content = file.read_bytes()
        if value is None or _kaldi_map_text(file, value).encode("utf-8") != content:
            old[name] = content
    if not old:
        return
    backup = dd.path / BACKUP_DIR
    if backup.exists():
        n = 1
        while backup.with_name(f"{BACKUP_DIR}.{n}").exists():
            n += 1
        backup.rename(backup.with_name(f"{BACKUP_DIR}.{n}"))
    with atomic_dir(backup) as tmp:
        for name, content in old.items():
            (tmp / name).write_bytes(content)
