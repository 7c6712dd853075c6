"""Kaldi data directories: read, write and validate.

A data directory is the interface between stages (as in Kaldi's ``data/<set>/``):

=================  ==========  =====================================================
file               keyed by    value
=================  ==========  =====================================================
``wav.scp``        recording   audio path, or a shell command ending in ``|``
``segments``       utterance   ``recording start end`` (seconds)
``utt2spk``        utterance   speaker id
``spk2utt``        speaker     utterance ids (derived from ``utt2spk``)
``text``           utterance   transcript
``utt2dur``        utterance   duration in seconds
``feats.scp``      utterance   Kaldi ark location (``file.ark:offset``)
``utt2num_frames`` utterance   number of feature frames
``spk2gender``     speaker     ``m`` or ``f``
``cmvn.scp``       speaker     Kaldi ark location of the CMVN statistics
=================  ==========  =====================================================

Without ``segments`` the recordings are the utterances. Every file is sorted with C
collation (byte order of the UTF-8 key, which is also Python's ``str`` order), has one
entry per key, and utterance ids start with their speaker id so that sorting by
utterance also groups speakers (what ``split --by-speaker`` and per-speaker CMVN need).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir, atomic_write_text

if TYPE_CHECKING:  # audio imports this module
    from speechrep.data.audio import AudioRule

__all__ = [
    "DataDir",
    "FILES",
    "combine_data_dirs",
    "fix_data_dir",
    "read_kaldi_map",
    "restrict_data_dir",
    "spk2utt_from_utt2spk",
    "split_data_dir",
    "subset_data_dir",
    "validate_data_dir",
    "write_kaldi_map",
]


def _line_error(path: str | Path, lineno: int, message: str) -> DataError:
    err = DataError(f"{path}:{lineno}: {message}")
    err.path = Path(path)
    err.field = f"line {lineno}"
    return err


def _scan(path: Path) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """Split a Kaldi map file into ``(lineno, key, rest)`` entries and ``(lineno, message)``
    problems. Duplicate keys and malformed lines are reported and left out of the entries.
    """
    problems: list[tuple[int, str]] = []
    entries: list[tuple[int, str, str]] = []
    first_line: dict[str, int] = {}
    raw = path.read_bytes()
    for lineno, line_bytes in enumerate(raw.splitlines(), start=1):
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            problems.append((lineno, "not valid UTF-8"))
            continue
        if not line.strip():
            problems.append((lineno, "empty line"))
            continue
        if line[0].isspace():
            problems.append((lineno, "line starts with whitespace (no key)"))
            continue
        parts = line.split(maxsplit=1)
        key = parts[0]
        rest = parts[1].strip() if len(parts) > 1 else ""
        if key in first_line:
            problems.append((lineno, f"duplicate key '{key}' (first on line {first_line[key]})"))
            continue
        first_line[key] = lineno
        entries.append((lineno, key, rest))
    return entries, problems


def _not_a_file(path: Path) -> str:
    return "is a directory, not a file" if path.is_dir() else "is not a regular file"


def _order_problems(entries: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    problems = []
    for (_, prev, _), (lineno, key, _) in zip(entries, entries[1:]):
        if key < prev:
            problems.append((lineno, f"not sorted (C collation): '{key}' after '{prev}'"))
    return problems


def read_kaldi_map(path: str | Path, *, allow_missing: bool = False) -> dict[str, str]:
    """Read a Kaldi ``key rest-of-line`` file (``wav.scp``, ``utt2spk``, ``text``, ...).

    Parameters
    ----------
    path : the file.
    allow_missing : return ``{}`` when the file does not exist instead of raising.

    Returns
    -------
    dict mapping each key to the rest of its line (stripped; ``""`` when absent), in file
    order.

    Raises
    ------
    DataError
        Missing file, duplicate key, empty or malformed line (naming file and line).
    """
    path = Path(path)
    if not path.is_file():
        if allow_missing and not path.exists():
            return {}
        raise DataError("file not found", path=path)
    entries, problems = _scan(path)
    if problems:
        raise _line_error(path, *problems[0])
    return {key: rest for _, key, rest in entries}


def _format_value(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return " ".join(_format_value(v) for v in value)
    if isinstance(value, bool):
        raise TypeError("bool is not a Kaldi map value")
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value, "dtype").kind in "iu"):
        return str(int(value))  # type: ignore[arg-type]
    if isinstance(value, float) or hasattr(value, "dtype"):
        # shortest repr that reads back to the same float
        return repr(float(value))  # type: ignore[arg-type]
    raise TypeError(f"cannot write a {type(value).__name__} in a Kaldi map")


def write_kaldi_map(path: str | Path, mapping: Mapping[str, object]) -> None:
    """Write ``mapping`` as a Kaldi ``key value`` file, sorted with C collation, atomically.

    Values may be strings, numbers (floats written as their shortest exact repr) or
    lists/tuples of those (joined by spaces: ``spk2utt``, ``segments``).

    Raises
    ------
    DataError
        A key that is empty or contains whitespace, or a value with a newline.
    """
    atomic_write_text(path, _kaldi_map_text(path, mapping))


def _kaldi_map_text(path: str | Path, mapping: Mapping[str, object]) -> str:
    """What :func:`write_kaldi_map` writes to ``path`` (named in errors)."""
    lines = []
    for key in sorted(mapping):
        if not key or any(c.isspace() for c in key):
            raise DataError(f"invalid key {key!r} (empty or contains whitespace)", path=path)
        try:
            value = _format_value(mapping[key])
        except TypeError as e:
            raise DataError(f"key '{key}': {e}", path=path) from None
        if "\n" in value or "\r" in value:
            raise DataError(f"key '{key}': value contains a newline", path=path)
        lines.append(f"{key} {value}" if value else key)
    return "".join(line + "\n" for line in lines)


# --- value parsers: raise ValueError with a message; the caller adds file and line ------


def _as_nonempty(rest: str) -> str:
    if not rest:
        raise ValueError("missing value")
    return rest


def _as_text(rest: str) -> str:
    return rest


def _as_token(rest: str) -> str:
    tokens = rest.split()
    if len(tokens) != 1:
        raise ValueError(f"expected exactly one value, got {len(tokens)}")
    return tokens[0]


def _as_token_list(rest: str) -> list[str]:
    tokens = rest.split()
    if not tokens:
        raise ValueError("missing value")
    return tokens


def _as_seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{what} {text!r} is not finite")
    return value


def _as_segment(rest: str) -> tuple[str, float, float]:
    tokens = rest.split()
    if len(tokens) != 3:
        raise ValueError(f"expected 'recording start end', got {len(tokens)} values")
    start = _as_seconds(tokens[1], "start")
    end = _as_seconds(tokens[2], "end")
    if start < 0:
        raise ValueError(f"start {start} < 0")
    if end <= start:
        raise ValueError(f"end {end} <= start {start}")
    return tokens[0], start, end


def _as_duration(rest: str) -> float:
    value = _as_seconds(_as_token(rest), "duration")
    if value <= 0:
        raise ValueError(f"duration {value} <= 0")
    return value


def _as_count(rest: str) -> int:
    token = _as_token(rest)
    try:
        value = int(token)
    except ValueError:
        raise ValueError(f"{token!r} is not an integer") from None
    if value < 0:
        raise ValueError(f"{value} < 0")
    return value


def _as_gender(rest: str) -> str:
    token = _as_token(rest)
    if token not in ("m", "f"):
        raise ValueError(f"gender must be 'm' or 'f', got {token!r}")
    return token


@dataclass(frozen=True)
class _FileSpec:
    attr: str
    keyed_by: str  # "utt", "spk" or "reco"
    parse: Callable[[str], Any]


#: The files of a data directory: name -> (DataDir attribute, key kind, value parser).
FILES: dict[str, _FileSpec] = {
    "wav.scp": _FileSpec("wav_scp", "reco", _as_nonempty),
    "utt2spk": _FileSpec("utt2spk", "utt", _as_token),
    "spk2utt": _FileSpec("spk2utt", "spk", _as_token_list),
    "segments": _FileSpec("segments", "utt", _as_segment),
    "text": _FileSpec("text", "utt", _as_text),
    "utt2dur": _FileSpec("utt2dur", "utt", _as_duration),
    "feats.scp": _FileSpec("feats_scp", "utt", _as_nonempty),
    "utt2num_frames": _FileSpec("utt2num_frames", "utt", _as_count),
    "spk2gender": _FileSpec("spk2gender", "spk", _as_gender),
    "cmvn.scp": _FileSpec("cmvn_scp", "spk", _as_nonempty),
}
_REQUIRED = ("wav.scp", "utt2spk")


def _parse_file(
    path: Path, spec: _FileSpec, *, check_order: bool = False
) -> tuple[dict[str, tuple[int, Any]], list[tuple[int, str]]]:
    """Parse one file to ``key -> (lineno, value)``, collecting every ``(lineno, message)``
    problem (including sorting problems when ``check_order``)."""
    entries, problems = _scan(path)
    if check_order:
        problems += _order_problems(entries)
    parsed: dict[str, tuple[int, Any]] = {}
    for lineno, key, rest in entries:
        try:
            parsed[key] = (lineno, spec.parse(rest))
        except ValueError as e:
            problems.append((lineno, str(e)))
    return parsed, problems


def _load_file(path: Path, spec: _FileSpec) -> dict[str, Any]:
    parsed, problems = _parse_file(path, spec)
    if problems:
        raise _line_error(path, *min(problems))
    return {key: value for key, (_, value) in parsed.items()}


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    """Speaker -> C-sorted utterance list, speakers C-sorted (Kaldi ``utt2spk_to_spk2utt.pl``)."""
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: spk2utt[spk] for spk in sorted(spk2utt)}


@dataclass
class DataDir:
    """A Kaldi data directory in memory.

    Optional files that are absent on disk are ``None``. ``spk2utt`` is always present:
    read from disk when there, otherwise derived from ``utt2spk``. Loading parses every
    file but does not cross-check them; use :func:`validate_data_dir` for that.
    """

    path: Path
    wav_scp: dict[str, str]
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    segments: dict[str, tuple[str, float, float]] | None = None
    text: dict[str, str] | None = None
    utt2dur: dict[str, float] | None = None
    feats_scp: dict[str, str] | None = None
    utt2num_frames: dict[str, int] | None = None
    spk2gender: dict[str, str] | None = None
    cmvn_scp: dict[str, str] | None = None

    @property
    def utts(self) -> list[str]:
        """Utterance ids (keys of ``utt2spk``), C-sorted."""
        return sorted(self.utt2spk)

    @property
    def speakers(self) -> list[str]:
        """Speaker ids, C-sorted."""
        return sorted(set(self.utt2spk.values()))

    @classmethod
    def load(cls, path: str | Path) -> DataDir:
        """Read every known file of the data directory ``path``.

        Raises
        ------
        DataError
            Not a directory, ``wav.scp`` or ``utt2spk`` missing, or a malformed line
            (naming file and line).
        """
        path = Path(path)
        if not path.is_dir():
            raise DataError("data directory not found", path=path)
        values: dict[str, Any] = {}
        for name, spec in FILES.items():
            file = path / name
            if not file.exists():
                if name in _REQUIRED:
                    raise DataError("missing file", path=file)
                continue
            if not file.is_file():
                raise DataError(_not_a_file(file), path=file)
            values[spec.attr] = _load_file(file, spec)
        if "spk2utt" not in values:
            values["spk2utt"] = spk2utt_from_utt2spk(values["utt2spk"])
        return cls(path=path, **values)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the data directory to ``path`` (default: ``self.path``); return the path.

        Each file is written atomically and C-sorted; ``spk2utt`` is rewritten from
        ``utt2spk``; files of fields that are ``None`` are removed so the directory on
        disk matches this object.
        """
        path = Path(self.path if path is None else path)
        path.mkdir(parents=True, exist_ok=True)
        for name, spec in FILES.items():
            value = spk2utt_from_utt2spk(self.utt2spk) if name == "spk2utt" else getattr(self, spec.attr)
            if value is None:
                (path / name).unlink(missing_ok=True)
            else:
                write_kaldi_map(path / name, value)
        return path

    def replace(self, **changes: Any) -> DataDir:
        """A copy with some fields replaced (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


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


def restrict_data_dir(dd: DataDir, utts: Iterable[str], path: Path | None = None) -> DataDir:
    """``dd`` limited to ``utts`` in memory (``path``: the new one's, ``dd.path`` by default):
    per-utterance files filtered, recordings and speakers to those still used, ``spk2utt`` rebuilt."""
    keep = set(utts)
    utt2spk = {u: s for u, s in dd.utt2spk.items() if u in keep}
    speakers = set(utt2spk.values())
    if dd.segments is not None:
        segments = {u: seg for u, seg in dd.segments.items() if u in keep}
        recordings = {reco for reco, _, _ in segments.values()}
    else:
        segments, recordings = None, keep

    def by(mapping: dict[str, Any] | None, keys: set[str]) -> dict[str, Any] | None:
        return None if mapping is None else {k: v for k, v in mapping.items() if k in keys}

    return DataDir(
        path=dd.path if path is None else path,
        wav_scp=by(dd.wav_scp, recordings),  # type: ignore[arg-type]
        utt2spk=utt2spk,
        spk2utt=spk2utt_from_utt2spk(utt2spk),
        segments=segments,
        text=by(dd.text, keep),
        utt2dur=by(dd.utt2dur, keep),
        feats_scp=by(dd.feats_scp, keep),
        utt2num_frames=by(dd.utt2num_frames, keep),
        spk2gender=by(dd.spk2gender, speakers),
        cmvn_scp=by(dd.cmvn_scp, speakers),
    )


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


def _read_id_list(source: str | Path | Iterable[str]) -> list[str]:
    if isinstance(source, (str, Path)):
        return list(read_kaldi_map(source))
    return list(source)


def _check_dst(src: Path, dst: Path) -> None:
    if dst.resolve() == src.resolve():
        raise DataError("output directory is the input directory", path=dst)


def subset_data_dir(
    src: str | Path,
    dst: str | Path,
    *,
    utt_list: str | Path | Iterable[str] | None = None,
    first: int | None = None,
    last: int | None = None,
    spk_list: str | Path | Iterable[str] | None = None,
) -> Path:
    """Write the part of data directory ``src`` selected by exactly one option to ``dst``.

    Parameters
    ----------
    src, dst : input and output data directories (``dst`` is replaced atomically).
    utt_list : utterance ids, or a file whose first column holds them.
    first, last : the first / last N utterances in C order.
    spk_list : speaker ids (all their utterances), or a file whose first column holds them.

    Returns
    -------
    ``dst``.

    Raises
    ------
    DataError
        Not exactly one selector, unknown ids in a list, N out of range, ``dst == src``.
    """
    src, dst = Path(src), Path(dst)
    chosen = [name for name, v in (("utt_list", utt_list), ("first", first), ("last", last), ("spk_list", spk_list)) if v is not None]
    if len(chosen) != 1:
        raise DataError(f"give exactly one of utt_list, first, last, spk_list (got {chosen or 'none'})", path=src)
    _check_dst(src, dst)
    dd = DataDir.load(src)
    utts = dd.utts
    if first is not None or last is not None:
        n = first if first is not None else last
        assert n is not None
        if not 0 < n <= len(utts):
            raise DataError(f"cannot take {n} of {len(utts)} utterances", path=src, field="first" if first is not None else "last")
        selected = utts[:n] if first is not None else utts[-n:]
    else:
        ids = _read_id_list(utt_list if utt_list is not None else spk_list)  # type: ignore[arg-type]
        known = set(utts) if utt_list is not None else set(dd.spk2utt)
        kind = "utterance" if utt_list is not None else "speaker"
        unknown = [i for i in ids if i not in known]
        if unknown:
            shown = " ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise DataError(f"{len(unknown)} {kind} id(s) not in the data directory: {shown}", path=src)
        wanted = set(ids)
        selected = [u for u in utts if (u if utt_list is not None else dd.utt2spk[u]) in wanted]
        if not selected:
            raise DataError(f"empty {kind} list", path=src)
    with atomic_dir(dst) as tmp:
        restrict_data_dir(dd, selected, dst).save(tmp)
    return dst


def _split_points(sizes: list[int], n: int) -> list[int]:
    """Indices that cut ``sizes`` into ``n`` contiguous, non-empty groups whose sums are as
    close as possible to equal shares (cut ``k`` at the cumulative sum nearest ``k/n``)."""
    total = sum(sizes)
    cumulative = [0]
    for s in sizes:
        cumulative.append(cumulative[-1] + s)
    cuts = [0]
    for k in range(1, n):
        target = total * k / n
        # leave at least one item for each of the n - k groups still to come
        lo, hi = cuts[-1] + 1, len(sizes) - (n - k)
        best = min(range(lo, hi + 1), key=lambda i: (abs(cumulative[i] - target), i))
        cuts.append(best)
    cuts.append(len(sizes))
    return cuts


def split_data_dir(src: str | Path, n: int, *, by_speaker: bool = False) -> list[Path]:
    """Split a data directory into ``n`` parts for parallel jobs (Kaldi ``split_data.sh``).

    Parts are ``src/split{n}/1`` ... ``src/split{n}/{n}``, contiguous in C order with
    near-equal utterance counts; with ``by_speaker`` no speaker is spread over two parts
    (needed for per-speaker CMVN). A split that is newer than every file of ``src`` and
    was made the same way is reused.

    Returns
    -------
    the ``n`` part directories.

    Raises
    ------
    DataError
        ``n < 1`` or more parts than utterances (or speakers with ``by_speaker``).
    """
    src = Path(src)
    if n < 1:
        raise DataError(f"number of parts must be >= 1, got {n}", path=src)
    root = src / f"split{n}"
    parts = [root / str(i) for i in range(1, n + 1)]
    mode = "speaker" if by_speaker else "utterance"
    marker = root / ".done"
    if marker.is_file() and marker.read_text().strip() == mode and all(p.is_dir() for p in parts):
        newest = max((src / name).stat().st_mtime for name in FILES if (src / name).is_file())
        if marker.stat().st_mtime >= newest:
            return parts
    dd = DataDir.load(src)
    if by_speaker:
        groups = list(spk2utt_from_utt2spk(dd.utt2spk).values())
        unit = "speakers"
    else:
        groups = [[u] for u in dd.utts]
        unit = "utterances"
    if n > len(groups):
        raise DataError(f"cannot split {len(groups)} {unit} into {n} parts", path=src)
    cuts = _split_points([len(g) for g in groups], n)
    with atomic_dir(root) as tmp:
        for i in range(n):
            utts = [u for g in groups[cuts[i] : cuts[i + 1]] for u in g]
            restrict_data_dir(dd, utts, parts[i]).save(tmp / str(i + 1))
        (tmp / ".done").write_text(mode + "\n")
    return parts


def combine_data_dirs(dst: str | Path, srcs: Sequence[str | Path]) -> Path:
    """Combine data directories into ``dst`` (Kaldi ``combine_data.sh``).

    Optional files are kept only when every source has them. Sources with and without
    ``segments`` mix when the ones without have ``utt2dur`` (each recording becomes one
    whole-file segment).

    Raises
    ------
    DataError
        No sources, ``dst`` among them, an utterance id in two sources, a recording or
        speaker with different entries in two sources, or segments needed without
        ``utt2dur``.
    """
    dst = Path(dst)
    if not srcs:
        raise DataError("no source directories to combine", path=dst)
    dirs = [DataDir.load(s) for s in srcs]
    for d in dirs:
        _check_dst(d.path, dst)
    any_segments = any(d.segments is not None for d in dirs)
    merged: dict[str, dict[str, Any] | None] = {}
    owner: dict[tuple[str, str], Path] = {}
    for name, spec in FILES.items():
        if name == "spk2utt":
            continue
        if name == "segments":
            present = any_segments
        else:
            present = all(getattr(d, spec.attr) is not None for d in dirs)
        if not present:
            merged[spec.attr] = None
            continue
        out: dict[str, Any] = {}
        for d in dirs:
            table = getattr(d, spec.attr)
            if name == "segments" and table is None:
                if d.utt2dur is None:
                    raise DataError("cannot combine with segmented directories: no segments and no utt2dur", path=d.path)
                table = {u: (u, 0.0, d.utt2dur[u]) for u in d.utt2spk}
            for key, value in table.items():
                if key in out:
                    # utterances must be unique; shared recordings/speakers must agree
                    if spec.keyed_by == "utt" or out[key] != value:
                        what = "utterance" if spec.keyed_by == "utt" else f"{name} entry"
                        raise DataError(
                            f"{what} '{key}' in both {owner[name, key]} and {d.path}", path=dst, field=name
                        )
                    continue
                out[key] = value
                owner[name, key] = d.path
        merged[spec.attr] = out
    utt2spk = merged.pop("utt2spk")
    assert utt2spk is not None
    combined = DataDir(path=dst, utt2spk=utt2spk, spk2utt=spk2utt_from_utt2spk(utt2spk), **merged)  # type: ignore[arg-type]
    with atomic_dir(dst) as tmp:
        combined.save(tmp)
    return dst
