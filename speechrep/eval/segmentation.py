"""Phone segmentation from unit changes, scored against reference phone boundaries.

Boundaries are matched one to one within a tolerance (20 ms by default): going through
both sorted lists, a hypothesis and a reference boundary closer than the tolerance are
paired and both consumed (for points on a line this greedy pass finds a maximum
matching). With ``H`` hits, precision ``H / #hyp``, recall ``HR = H / #ref``,
over-segmentation ``OS = #hyp / #ref - 1`` and the R-value (Rasanen et al., 2009)
``1 - (|r1| + |r2|) / 2`` with ``r1 = sqrt((1 - HR)^2 + OS^2)`` and
``r2 = (HR - OS - 1) / sqrt(2)``.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from speechrep.errors import DataError
from speechrep.eval.inputs import FrameTimes

__all__ = ["unit_boundaries", "phone_boundaries", "boundary_scores"]


def unit_boundaries(units: np.ndarray, times: FrameTimes) -> np.ndarray:
    """Times where the unit changes: halfway between the centres of frames ``i-1`` and ``i``.

    Returns ``(num_changes,)`` float64 seconds.
    """
    units = np.asarray(units)
    change = np.flatnonzero(units[1:] != units[:-1]) + 1
    return times.frame_offset + (change - 0.5) * times.frame_shift


def phone_boundaries(segments: Sequence[tuple[float, float, str]]) -> np.ndarray:
    """Inner boundaries of an alignment (segment starts and ends, not the utterance's edges).

    Returns ``(num_boundaries,)`` sorted float64 seconds, points closer than 1 us merged.
    """
    if not segments:
        return np.zeros(0)
    points = np.array(sorted({t for s, e, _ in segments for t in (s, e)}))
    points = points[np.concatenate([[True], np.diff(points) > 1e-6])]
    return points[1:-1]


def _hits(ref: np.ndarray, hyp: np.ndarray, tolerance: float) -> int:
    i = j = hits = 0
    while i < len(ref) and j < len(hyp):
        if abs(ref[i] - hyp[j]) <= tolerance + 1e-9:
            hits += 1
            i += 1
            j += 1
        elif hyp[j] < ref[i]:
            j += 1
        else:
            i += 1
    return hits


def boundary_scores(
    reference: Mapping[str, np.ndarray], hypothesis: Mapping[str, np.ndarray], *, tolerance: float = 0.02
) -> dict[str, float | int]:
    """Precision, recall, F1, R-value and over-segmentation over all utterances.

    Parameters
    ----------
    reference, hypothesis : utt -> boundary times (seconds); the same utterances.
    tolerance : largest distance (seconds) between matched boundaries.
    """
    if tolerance < 0:
        raise DataError(f"must be >= 0, got {tolerance}", field="boundary_tolerance")
    hits = n_ref = n_hyp = 0
    for utt, ref in reference.items():
        ref = np.sort(np.asarray(ref, np.float64))
        hyp = np.sort(np.asarray(hypothesis.get(utt, np.zeros(0)), np.float64))
        hits += _hits(ref, hyp, tolerance)
        n_ref += len(ref)
        n_hyp += len(hyp)
    if n_ref == 0:
        raise DataError("the reference has no phone boundary", field="alignment")
    precision = hits / n_hyp if n_hyp else 0.0
    recall = hits / n_ref
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    os_ = n_hyp / n_ref - 1
    r1 = math.sqrt((1 - recall) ** 2 + os_**2)
    r2 = (recall - os_ - 1) / math.sqrt(2)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "r_value": 1 - (abs(r1) + abs(r2)) / 2,
        "over_segmentation": os_,
        "tolerance": tolerance,
        "num_reference": n_ref,
        "num_hypothesis": n_hyp,
        "num_hits": hits,
    }
