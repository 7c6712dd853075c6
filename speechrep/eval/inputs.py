"""Inputs of the phone-discovery evaluation: features, units, frame times, consistency checks.

Frame-time conventions
----------------------
Frame ``i`` of a representation stands for the instant ``frame_offset + i * frame_shift``
(its centre). The offset depends on how the frames were cut and moves ABX results by
about a point, so it is read from the feature configuration, never assumed:

* Kaldi, ``snip_edges=true`` (default), 25 ms window, 10 ms shift: the first window is
  ``[0, 25 ms)``, so frame ``i`` is centred at ``0.0125 + 0.01 i``
  (``frame_offset = frame_length / 2``).
* Kaldi, ``snip_edges=false``: frame ``i`` is centred at ``(i + 0.5) * frame_shift``
  (``frame_offset = frame_shift / 2``).
* librosa / torchaudio ``center=True``: the signal is padded by half a window, so frame ``i``
  is centred at ``i * frame_shift`` (``frame_offset = 0``).

The configuration is looked up beside the features (see :func:`find_frame_times`):
plain ``frame_shift`` / ``frame_offset`` files (seconds, Kaldi's ``utils/data`` style), a
``feats_config.yaml``/``feats_config.json`` (keys ``frame_shift``, ``frame_offset``,
``frame_length``, ``snip_edges``, ``center``; times in seconds) or a Kaldi options file
``fbank.conf``/``mfcc.conf`` (``--frame-shift=10 --frame-length=25 --snip-edges=false``,
milliseconds). Explicit ``frame_shift``/``frame_offset`` arguments win.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from speechrep.errors import DataError

__all__ = [
    "FrameTimes",
    "frame_times_from_config",
    "find_frame_times",
    "load_features",
    "load_units",
    "check_utterances",
    "check_frame_counts",
    "find_utt2spk",
    "DEFAULT_FRAME_TOLERANCE",
]

#: Frame counts may differ from what the alignment implies by this many frames: the
#: padding conventions (snip_edges on/off, centre padding, a final partial frame) alone
#: change the count by one or two frames for the same audio.
DEFAULT_FRAME_TOLERANCE = 2


@dataclass(frozen=True)
class FrameTimes:
    """Centre time of each frame: ``frame_offset + i * frame_shift`` seconds.

    Attributes
    ----------
    frame_shift : seconds between consecutive frames (> 0).
    frame_offset : centre of frame 0 in seconds (0.0125 for Kaldi 25/10 ms with
        snip_edges, 0.0 for librosa ``center=True``).
    """

    frame_shift: float
    frame_offset: float

    def __post_init__(self) -> None:
        if not (self.frame_shift > 0 and math.isfinite(self.frame_shift)):
            raise DataError(f"must be a positive number of seconds, got {self.frame_shift}", field="frame_shift")
        if not math.isfinite(self.frame_offset):
            raise DataError(f"must be a finite number of seconds, got {self.frame_offset}", field="frame_offset")

    def centres(self, num_frames: int) -> np.ndarray:
        """Centre times of frames ``0 .. num_frames-1``, shape ``(num_frames,)`` float64."""
        return self.frame_offset + self.frame_shift * np.arange(num_frames, dtype=np.float64)

    def frame_range(self, onset: float, offset: float, num_frames: int) -> tuple[int, int, bool]:
        """Frames whose centre lies in ``[onset, offset]`` (both ends included).

        Returns
        -------
        start, stop : the frames are ``start .. stop-1`` (``stop <= start`` when none).
        clipped : the interval reaches past the span the frames cover,
            ``[centre_0 - shift/2, centre_last + shift/2]``.
        """
        eps = 1e-6  # times in item files carry ~4 decimals; a centre on the edge is inside
        start = max(0, math.ceil((onset - self.frame_offset) / self.frame_shift - eps))
        stop = min(num_frames, math.floor((offset - self.frame_offset) / self.frame_shift + eps) + 1)
        half = self.frame_shift / 2
        clipped = onset < self.frame_offset - half - eps or offset > (
            self.frame_offset + (num_frames - 1) * self.frame_shift + half + eps
        )
        return start, stop, clipped


def frame_times_from_config(config: Mapping[str, Any], *, source: str | Path = "<config>") -> FrameTimes:
    """Frame times from a feature configuration mapping (times in seconds).

    Keys: ``frame_shift`` (required), and either ``frame_offset``, or ``center: true``
    (offset 0), or ``snip_edges`` (true: ``frame_length / 2``, default frame length 25 ms;
    false: ``frame_shift / 2``).

    Raises
    ------
    DataError
        Missing ``frame_shift`` or nothing that determines the offset.
    """
    if config.get("frame_shift") is None:
        raise DataError("no frame_shift in the feature configuration", path=source, field="frame_shift")
    shift = float(config["frame_shift"])
    if config.get("frame_offset") is not None:
        return FrameTimes(shift, float(config["frame_offset"]))
    if config.get("center") is not None and _as_bool(config["center"]):
        return FrameTimes(shift, 0.0)
    if config.get("snip_edges") is not None:
        if _as_bool(config["snip_edges"]):
            return FrameTimes(shift, float(config.get("frame_length", 0.025)) / 2)
        return FrameTimes(shift, shift / 2)
    raise DataError(
        "the frame offset is unknown: give frame_offset, center or snip_edges (or --frame-offset)",
        path=source,
        field="frame_offset",
    )


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _kaldi_conf(path: Path) -> dict[str, Any]:
    # Kaldi option files give times in milliseconds: --frame-shift=10 --frame-length=25
    conf: dict[str, Any] = {}
    for m in re.finditer(r"--([\w-]+)=(\S+)", path.read_text(encoding="utf-8")):
        key, value = m.group(1).replace("-", "_"), m.group(2)
        if key in ("frame_shift", "frame_length"):
            conf[key] = float(value) / 1000
        elif key == "snip_edges":
            conf[key] = value
    return conf


def find_frame_times(
    path: str | Path, *, frame_shift: float | None = None, frame_offset: float | None = None
) -> FrameTimes:
    """Resolve the frame times of the features or units at ``path``.

    Explicit arguments win; missing ones come from the configuration found in ``path``
    (a directory) or beside it (a file), see the module docstring.

    Raises
    ------
    DataError
        When the shift or the offset cannot be determined (``path`` not found, when
        that is why).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    conf: dict[str, Any] = {}
    source: Path | str = folder
    for name in ("fbank.conf", "mfcc.conf"):
        if (folder / name).is_file():
            conf.update(_kaldi_conf(folder / name))
            source = folder / name
    for name in ("feats_config.yaml", "feats_config.json"):
        f = folder / name
        if f.is_file():
            import yaml

            text = f.read_text(encoding="utf-8")
            loaded = json.loads(text) if f.suffix == ".json" else yaml.safe_load(text)
            if not isinstance(loaded, dict):
                raise DataError("expected a mapping of keys to values", path=f)
            conf.update(loaded)
            source = f
    for name in ("frame_shift", "frame_offset"):
        f = folder / name
        if f.is_file():
            try:
                conf[name] = float(f.read_text(encoding="utf-8").split()[0])
            except (ValueError, IndexError):
                raise DataError("expected one number of seconds", path=f, field=name) from None
            source = f
    if frame_shift is not None:
        conf["frame_shift"] = frame_shift
    if frame_offset is not None:
        conf["frame_offset"] = frame_offset
    if conf.get("frame_shift") is None:
        if not path.exists():
            # the inputs themselves are missing: that, not their frame shift, is the problem
            raise DataError("not found", path=path)
        raise DataError(
            "the frame shift is unknown: give --frame-shift or put a 'frame_shift' file beside the features",
            path=path,
            field="frame_shift",
        )
    return frame_times_from_config(conf, source=source)


def load_features(path: str | Path) -> dict[str, np.ndarray]:
    """Load continuous features, one ``(num_frames, dim)`` float32 matrix per utterance.

    ``path`` is a Kaldi ``.scp`` or ``.ark`` file, or a directory of ``<utt>.npy`` (or
    ``<utt>.txt``) files (ZeroSpeech layout).

    Raises
    ------
    DataError
        Missing/unreadable input, a non-2-D matrix, non-finite values, differing
        dimensions or no utterances; the message names the file and utterance.
    """
    feats = _load_arrays(path)
    dim = None
    for utt, x in feats.items():
        if x.ndim != 2 or x.shape[0] == 0:
            raise DataError(f"expected a non-empty (frames, dim) matrix, got shape {x.shape}", path=path, field=utt)
        if not np.isfinite(x).all():
            raise DataError("features contain NaN or infinite values", path=path, field=utt)
        if dim is None:
            dim = x.shape[1]
        elif x.shape[1] != dim:
            raise DataError(f"dimension {x.shape[1]} differs from {dim} of the first utterance", path=path, field=utt)
    return {utt: x.astype(np.float32, copy=False) for utt, x in feats.items()}


def load_units(path: str | Path, *, codebook_size: int | None = None) -> dict[str, np.ndarray]:
    """Load discrete units, one ``(num_frames,)`` int64 vector per utterance.

    ``path`` is a text file with lines ``utt u1 u2 u3 ...`` (one unit per frame), a Kaldi
    ``.scp``/``.ark`` of integer vectors, or a directory of ``<utt>.npy`` integer arrays.

    Raises
    ------
    DataError
        Non-integer units, units outside ``[0, codebook_size)``, empty or duplicate
        utterances; the message names the file and utterance.
    """
    path = Path(path)
    if path.is_file() and path.suffix not in (".scp", ".ark"):
        units: dict[str, np.ndarray] = {}
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                parts = line.split()
                if not parts:
                    continue
                utt = parts[0]
                if utt in units:
                    raise DataError(f"utterance {utt!r} listed twice", path=path, field=f"line {lineno}")
                try:
                    units[utt] = np.array([int(u) for u in parts[1:]], dtype=np.int64)
                except ValueError:
                    raise DataError("units must be integers", path=path, field=f"line {lineno}") from None
        if not units:
            raise DataError("no utterances", path=path)
    else:
        units = {}
        for utt, x in _load_arrays(path).items():
            x = np.asarray(x)
            if x.ndim == 2 and x.shape[1] == 1:
                x = x[:, 0]
            if x.ndim != 1 or not (np.issubdtype(x.dtype, np.integer) or np.all(x == np.round(x))):
                raise DataError(f"expected a vector of integer units, got shape {x.shape}", path=path, field=utt)
            units[utt] = x.astype(np.int64)
    for utt, u in units.items():
        if u.size == 0:
            raise DataError("no units", path=path, field=utt)
        bad = (u < 0) | (u >= codebook_size) if codebook_size is not None else u < 0
        if bad.any():
            value = int(u[np.argmax(bad)])
            limit = f"[0, {codebook_size})" if codebook_size is not None else "non-negative"
            raise DataError(f"unit {value} outside the codebook ({limit})", path=path, field=utt)
    return units


def _load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise DataError("not found", path=path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".txt") and p.is_file())
        if not files:
            raise DataError("no .npy or .txt files", path=path)
        out = {}
        for f in files:
            try:
                x = np.load(f, allow_pickle=False) if f.suffix == ".npy" else np.loadtxt(f, ndmin=2)
            except (ValueError, OSError) as e:
                raise DataError(f"cannot read ({e})", path=f) from None
            out[f.stem] = np.asarray(x)
        return out
    import kaldiio

    try:
        if path.suffix == ".scp":
            reader = kaldiio.load_scp(str(path))
            out = {utt: np.asarray(reader[utt]) for utt in reader}
        else:
            out = {utt: np.asarray(x) for utt, x in kaldiio.load_ark(str(path))}
    except Exception as e:  # kaldiio raises assorted errors for corrupt input
        raise DataError(f"cannot read Kaldi archive ({type(e).__name__}: {e})", path=path) from None
    if not out:
        raise DataError("no utterances", path=path)
    return out


def check_utterances(
    frames: Mapping[str, Any],
    alignments: Mapping[str, Any],
    *,
    frames_path: str | Path,
    ali_path: str | Path,
) -> None:
    """Both inputs must cover the same utterances.

    Raises
    ------
    DataError
        Naming how many and which (first few) utterances are missing on either side.
    """
    only_frames = sorted(set(frames) - set(alignments))
    only_ali = sorted(set(alignments) - set(frames))
    if only_ali:
        raise DataError(
            f"{len(only_ali)} aligned utterance(s) have no features, e.g. {', '.join(only_ali[:3])}",
            path=frames_path,
            field="utterance ids",
        )
    if only_frames:
        raise DataError(
            f"{len(only_frames)} utterance(s) are not in the alignment, e.g. {', '.join(only_frames[:3])}",
            path=ali_path,
            field="utterance ids",
        )


def check_frame_counts(
    num_frames: Mapping[str, int],
    alignments: Mapping[str, list[tuple[float, float, str]]],
    times: FrameTimes,
    *,
    frames_path: str | Path,
    tolerance: int = DEFAULT_FRAME_TOLERANCE,
) -> None:
    """The frame count of each utterance must match its alignment's end within ``tolerance``.

    The alignment ``[0, end]`` implies ``ceil((end - frame_offset) / frame_shift)`` frame
    centres before ``end``; Kaldi snip_edges, centred padding and partial last frames
    make real counts differ from this by up to 2 frames, hence the default tolerance.

    Raises
    ------
    DataError
        Naming the utterance, both counts and the tolerance.
    """
    for utt, segs in alignments.items():
        if not segs:
            continue
        end = max(e for _, e, _ in segs)
        expected = max(0, math.ceil((end - times.frame_offset) / times.frame_shift - 1e-6))
        n = int(num_frames[utt])
        if abs(n - expected) > tolerance:
            raise DataError(
                f"{n} frames but the alignment ends at {end:.3f} s, i.e. ~{expected} frames of "
                f"{times.frame_shift * 1000:g} ms (tolerance {tolerance}); wrong frame shift or utterance?",
                path=frames_path,
                field=utt,
            )


def find_utt2spk(ali: str | Path | None, utt2spk: str | Path | None) -> Path:
    """The given ``utt2spk``, else the one beside the alignment.

    Raises
    ------
    DataError
        When neither exists.
    """
    if utt2spk is not None:
        return Path(utt2spk)
    if ali is None:
        raise DataError("without --ali, give --utt2spk (the speaker probe needs the speakers)", field="utt2spk")
    beside = Path(ali).parent / "utt2spk"
    if beside.is_file():
        return beside
    raise DataError("no utt2spk beside the alignment; give --utt2spk", path=ali, field="utt2spk")
