"""Kaldi data directories: read and write (validation: :mod:`speechrep.data.validate`; subset,
split, combine: :mod:`speechrep.data.dir_ops`).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechrep.errors import DataError
from speechrep.utils.io import atomic_write_text

__all__ = ["DataDir", "FILES", "read_kaldi_map", "restrict_data_dir", "spk2utt_from_utt2spk", "write_kaldi_map"]


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
