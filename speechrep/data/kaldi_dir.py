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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speechrep.errors import DataError
from speechrep.utils.io import atomic_write_text

__all__ = [
    "DataDir",
    "FILES",
    "read_kaldi_map",
    "write_kaldi_map",
    "spk2utt_from_utt2spk",
    "validate_data_dir",
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
    path = Path(path)
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
    atomic_write_text(path, "".join(line + "\n" for line in lines))


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


def validate_data_dir(path: str | Path, *, check_audio: bool = False) -> list[str]:
    """Check a data directory; return every problem as ``"file:line: message"``.

    Checks: each file parses (no empty/duplicate keys, values of the right type), is
    C-sorted; ``wav.scp`` and ``utt2spk`` exist; every utterance of ``utt2spk`` is in every
    per-utterance file and no file has extra utterances; utterance ids start with their
    speaker id; ``spk2utt`` matches ``utt2spk``; per-speaker files cover the speakers;
    ``segments`` reference recordings of ``wav.scp`` and have ``end > start``; without
    ``segments``, ``wav.scp`` has exactly the utterances. With ``check_audio`` every
    utterance's audio is decoded (at its native rate) and read errors are reported
    against its ``wav.scp`` line.

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
        if not file.is_file():
            if name in (*_REQUIRED, "spk2utt"):
                problems.append(f"{file}: missing file")
            continue
        entries, file_problems = _parse_file(file, spec, check_order=True)
        problems += [f"{file}:{lineno}: {message}" for lineno, message in sorted(file_problems)]
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
        if check_audio:
            problems += _audio_problems(path, parsed, utt_lines)
    return problems


def _audio_problems(
    path: Path, parsed: dict[str, dict[str, tuple[int, Any]]], utt_lines: Mapping[str, int]
) -> list[str]:
    from speechrep.data.audio import load_audio

    wav = parsed["wav.scp"]
    segments = parsed.get("segments")
    problems = []
    for utt in sorted(utt_lines):
        if segments is not None:
            if utt not in segments:
                continue
            reco, start, end = segments[utt][1]
        else:
            reco, start, end = utt, 0.0, None
        if reco not in wav:
            continue
        lineno, spec = wav[reco]
        try:
            load_audio(spec, sample_rate=None, start=start, end=end, name=utt)
        except DataError as e:
            problems.append(f"{path / 'wav.scp'}:{lineno}: {e}")
    return problems
