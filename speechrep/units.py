"""Discrete units of a trained model over a data directory.

A *unit model* is a trained module with a ``units(batch) -> (indices (B, T'), lengths
(B,))`` method (``vqvae``, ``vqcpc``), a ``frame_shift`` attribute and, when known, a
``frame_offset`` (centre of code frame 0 in seconds; for feature input, from the centre of
feature frame 0, or, for a model that assumes a framing of its features (the CPC family's
``feat_frame_offset``), absolute, and then the framing recorded beside the features replaces
the assumed one). :func:`extract_units` runs one over every utterance and
:func:`write_units` writes::

    OUT/units.txt        utt u1 u2 ... (one unit per frame)
    OUT/units_dedup.txt  utt u1 u2 ... (runs of a repeated unit collapsed)
    OUT/boundaries.txt   utt t1 t2 ... (seconds where the unit changes)
    OUT/frame_shift      seconds between unit frames
    OUT/frame_offset     centre of frame 0 in seconds (when known)
    OUT/num_codes        size of the unit inventory

``OUT`` is built under a temporary name and renamed when complete; it is refused when it
is an input or holds anything but an earlier ``speechrep units`` output (replaced only
with ``force``).

``frame_shift``/``frame_offset`` beside ``units.txt`` are what the phone-discovery
evaluation (``speechrep eval units --units OUT/units.txt``) reads to place the frames.

By default a frame's unit is its nearest code. With a *segment penalty*
(:func:`segment_units`, ``speechrep units --segment-penalty``), the units of an utterance
are chosen jointly by duration-penalised dynamic programming (Kamper & van Niekerk 2021,
"DPDP"): the utterance is cut into segments, each segment is named by the one code of
least total cost over its frames, and every segment costs the penalty on top, so runs of
near-tied codes inside a phone merge into one unit and the bitrate falls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import numpy as np

from speechrep.errors import DataError, SpeechrepError
from speechrep.utils.io import output_dir

__all__ = [
    "UnitSet",
    "deduplicate",
    "segment_units",
    "unit_boundaries",
    "extract_units",
    "write_units",
    "load_unit_file",
    "units_from_model",
]

log = logging.getLogger("speechrep.units")

# Kaldi fbank/MFCC defaults (25 ms window, snip_edges): centre of frame 0, used for
# feature-input models when the features' own configuration does not say.
_KALDI_FRAME_OFFSET = 0.0125


@dataclass
class UnitSet:
    """Frame-level units of a set of utterances.

    Attributes
    ----------
    units : utt -> (num_frames,) int64, in C-sorted utterance order.
    frame_shift : seconds between frames.
    frame_offset : centre of frame 0 in seconds, None when unknown.
    num_codes : size of the unit inventory.
    """

    units: dict[str, np.ndarray]
    frame_shift: float
    frame_offset: float | None
    num_codes: int


def deduplicate(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of a repeated unit.

    Parameters
    ----------
    units : (num_frames,) int.

    Returns
    -------
    values : (num_runs,) the unit of each run.
    starts : (num_runs,) first frame of each run.
    """
    units = np.asarray(units)
    if units.size == 0:
        return units.copy(), np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.flatnonzero(units[1:] != units[:-1]) + 1]).astype(np.int64)
    return units[starts], starts


def unit_boundaries(units: np.ndarray, *, frame_shift: float, frame_offset: float = 0.0) -> np.ndarray:
    """Times (seconds) where the unit changes, halfway between the two frames' centres.

    Returns (num_runs - 1,) float64, the same definition as the evaluation's boundaries.
    """
    from speechrep.eval.inputs import FrameTimes
    from speechrep.eval.segmentation import unit_boundaries as _boundaries

    return _boundaries(np.asarray(units), FrameTimes(frame_shift, frame_offset))


def segment_units(costs: np.ndarray, penalty: float, *, max_frames: int = 50) -> np.ndarray:
    """Units of one utterance by duration-penalised dynamic programming.

    Minimises, over cuts of the frames into segments of at most ``max_frames`` and one
    unit per segment, the sum over segments of the segment's total frame cost for its
    unit plus ``penalty x scale``, where ``scale`` is the utterance's mean cost of the
    nearest unit per frame (so the penalty is in frames' worth of quantisation error and
    means the same for any model). Penalty 0 gives each frame its lowest-cost unit.

    Parameters
    ----------
    costs : (T, K) cost of naming frame t by unit k (e.g. squared distance to code k).
    penalty : >= 0, cost of starting a segment.
    max_frames : longest segment, >= 1.

    Returns
    -------
    (T,) int64 unit of each frame (constant within a segment).
    """
    costs = np.asarray(costs, dtype=np.float64)
    if costs.ndim != 2 or not np.isfinite(costs).all():
        raise SpeechrepError(f"segment costs must be a finite (frames, units) array, got shape {costs.shape}")
    if not (np.isfinite(penalty) and penalty >= 0) or max_frames < 1:
        raise SpeechrepError(f"segment penalty must be >= 0 and max_frames >= 1, got {penalty} and {max_frames}")
    t_total = costs.shape[0]
    if t_total == 0:
        return np.zeros(0, dtype=np.int64)
    pen = penalty * float(costs.min(1).mean())
    cum = np.concatenate([np.zeros((1, costs.shape[1])), np.cumsum(costs, axis=0)])  # (T + 1, K)
    best = np.zeros(t_total + 1)
    start = np.zeros(t_total + 1, dtype=np.int64)
    unit = np.zeros(t_total + 1, dtype=np.int64)
    for t in range(1, t_total + 1):
        s = np.arange(max(0, t - max_frames), t)
        seg = cum[t] - cum[s]  # (n, K): cost of frames s..t-1 for each unit
        k = seg.argmin(1)
        total = best[s] + seg[np.arange(len(s)), k] + pen
        j = int(total.argmin())
        best[t], start[t], unit[t] = total[j], s[j], k[j]
    out = np.empty(t_total, dtype=np.int64)
    t = t_total
    while t > 0:
        out[start[t] : t] = unit[t]
        t = int(start[t])
    return out


def units_from_model(
    model,
    inputs: Iterable[tuple[str, np.ndarray]],
    *,
    device: str = "cpu",
    segment_penalty: float | None = None,
    max_segment: int = 50,
    source: str | Path = "inputs",
) -> Iterator[tuple[str, np.ndarray]]:
    """Run a unit model over ``(utt, array)`` pairs, one utterance at a time.

    Parameters
    ----------
    model : unit model (see the module docstring) in eval mode.
    inputs : ``(utt, wave (samples,))`` or ``(utt, feats (frames, dim))``, matching
        ``model.input_key``.
    segment_penalty : None: nearest code per frame (``model.units``); a number: units by
        :func:`segment_units` of ``model.unit_costs`` with this penalty and segments of at
        most ``max_segment`` frames.
    source : where the inputs come from, named when the model cannot take one of them.

    Yields
    ------
    (utt, units (num_frames,) int64)
    """
    import torch

    from speechrep.train.inputs import refused_input

    key = getattr(model, "input_key", "wave")
    with torch.inference_mode():
        for utt, x in inputs:
            t = torch.tensor(np.asarray(x, dtype=np.float32), device=device).unsqueeze(0)
            batch = {key: t, "lengths": torch.tensor([x.shape[0]], device=device)}
            with refused_input(utt, x, source):
                if segment_penalty is None:
                    idx, lengths = model.units(batch)
                    found = idx[0, : int(lengths[0])].cpu().numpy().astype(np.int64)
                else:
                    costs, lengths = model.unit_costs(batch)
                    found = segment_units(costs[0, : int(lengths[0])].cpu().numpy(), segment_penalty,
                                          max_frames=max_segment)
            yield utt, found


def _feature_frame_offset(data_dir: Path) -> float:
    from speechrep.eval.inputs import find_frame_times

    scp = data_dir / "feats.scp"
    try:
        return find_frame_times(scp).frame_offset
    except DataError:
        # only the shift may be recorded beside the features; Kaldi's framing is the default
        return _KALDI_FRAME_OFFSET


def extract_units(
    model_dir: str | Path,
    data_dir: str | Path,
    *,
    which: str = "best",
    device: str = "cpu",
    threads: int | None = None,
    progress: bool = True,
    segment_penalty: float | None = None,
    max_segment: int = 50,
) -> UnitSet:
    """Units of every utterance of ``data_dir`` from the trained model in ``model_dir``.

    Parameters
    ----------
    model_dir : experiment directory (or checkpoint directory) of a unit model.
    data_dir : Kaldi data directory; ``wav.scp`` (+ ``segments``) for waveform models,
        ``feats.scp`` for models trained on features.
    which : checkpoint, ``"best"`` or ``"last"``.
    device : torch device for the model.
    threads : torch CPU threads (None: torch's default); one utterance at a time is a
        small workload, and extra threads only help when cores are idle.
    segment_penalty, max_segment : duration-penalised units (:func:`units_from_model`).

    Raises
    ------
    SpeechrepError
        The model has no discrete units; CheckpointError / DataError for a bad
        checkpoint or data directory.
    """
    import torch
    from speechrep.utils.progress import progress_bar

    from speechrep.data.kaldi_dir import DataDir
    from speechrep.train.checkpoint import load_model
    from speechrep.train.inputs import model_inputs

    if threads is not None:
        torch.set_num_threads(threads)
    model, name, cfg = load_model(model_dir, which=which, map_location=device)
    if not hasattr(model, "units"):
        raise SpeechrepError(f"model '{name}' has no discrete units (use a vqvae or vqcpc experiment)", path=model_dir)
    if segment_penalty is not None and not hasattr(model, "unit_costs"):
        raise SpeechrepError(f"model '{name}' has no per-unit costs to segment with", path=model_dir)
    dd = DataDir.load(data_dir)
    offset = getattr(model, "frame_offset", None)
    inputs, total = model_inputs(model_dir, model, cfg, dd.path, which=which)
    if getattr(model, "input_key", "wave") == "feats" and offset is not None:
        # from the framing of these features: a model that assumes one for its input (the CPC
        # family's feat_frame_offset) has it replaced; the others count from feature frame 0
        offset += _feature_frame_offset(dd.path) - float(getattr(cfg, "feat_frame_offset", 0.0))
    units = {}
    found = units_from_model(model, inputs, device=device, segment_penalty=segment_penalty, max_segment=max_segment,
                             source=dd.path)
    for utt, u in progress_bar(found, total=total, desc="units", enabled=progress):
        units[utt] = u
    return UnitSet(units, float(model.frame_shift), offset, int(model.bottleneck.num_codes))


def _line(utt: str, values: Iterable[object]) -> str:
    return " ".join([utt, *map(str, values)]) + "\n"


def write_units(
    unit_set: UnitSet,
    out_dir: str | Path,
    *,
    force: bool = False,
    inputs: Iterable[str | Path | None] = (),
    containers: Iterable[str | Path | None] = (),
) -> Path:
    """Write the files listed in the module docstring into ``out_dir`` (atomically, as one).

    ``force`` replaces an earlier ``speechrep units`` output; ``inputs`` and ``containers``
    are what the units were made from (see :func:`speechrep.utils.io.check_output_dir`).
    """
    out = Path(out_dir)
    shift, offset = unit_set.frame_shift, unit_set.frame_offset
    frames, dedup, bounds = [], [], []
    for utt in sorted(unit_set.units):  # Python's str order is C collation
        u = unit_set.units[utt]
        frames.append(_line(utt, u.tolist()))
        dedup.append(_line(utt, deduplicate(u)[0].tolist()))
        times = unit_boundaries(u, frame_shift=shift, frame_offset=offset or 0.0)
        bounds.append(_line(utt, (f"{t:.4f}" for t in times)))
    files = {"units.txt": frames, "units_dedup.txt": dedup, "boundaries.txt": bounds, "frame_shift": [f"{shift:g}\n"],
             "num_codes": [f"{unit_set.num_codes}\n"]}
    if offset is not None:
        files["frame_offset"] = [f"{offset:g}\n"]
    with output_dir(out, command="units", field="OUT", force=force, inputs=inputs, containers=containers) as tmp:
        for name, lines in files.items():
            (tmp / name).write_text("".join(lines), encoding="utf-8")
    return out


def load_unit_file(
    path: str | Path, *, known_utts: Iterable[str] | Mapping[str, object] | None = None, num_codes: int | None = None
) -> dict[str, np.ndarray]:
    """Read ``utt u1 u2 ...`` units and check them against a set of utterances.

    Parameters
    ----------
    path : units text file (or any input of the evaluation's unit reader).
    known_utts : utterances the units may refer to (e.g. ``DataDir.utts``).
    num_codes : units must lie in ``[0, num_codes)``.

    Raises
    ------
    DataError
        Unreadable file, bad units, or an utterance that is not known (named with its line).
    """
    from speechrep.eval.inputs import load_units

    units = load_units(path, codebook_size=num_codes)
    if known_utts is not None:
        known = set(known_utts)
        unknown = [u for u in units if u not in known]
        if unknown:
            where = f"utterance {unknown[0]}"
            if Path(path).is_file():
                with open(path, encoding="utf-8") as f:
                    where = next((f"line {i}" for i, line in enumerate(f, 1) if line.split()[:1] == [unknown[0]]), where)
            raise DataError(f"unknown utterance '{unknown[0]}' ({len(unknown)} unknown in all)", path=path, field=where)
    return units
