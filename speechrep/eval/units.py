"""Quality of discrete units against phone labels, and codebook usage.

With ``p(y, z)`` the joint frequency of phone ``y`` and unit ``z`` over labelled frames:

* phone purity ``sum_z max_y p(y, z)``: how well a unit predicts one phone;
* cluster purity ``sum_y max_z p(y, z)``: how well a phone maps to one unit;
* PNMI ``I(y; z) / H(y)`` (phone-normalised mutual information; equals homogeneity);
* homogeneity ``1 - H(y|z) / H(y)``, completeness ``1 - H(z|y) / H(z)`` and their harmonic
  mean, the V-measure (as scikit-learn defines them with phones as classes);
* codebook perplexity ``exp(H(z))`` over all frames, used and dead codes.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from speechrep.errors import DataError

__all__ = ["contingency_table", "unit_quality", "codebook_usage"]


def contingency_table(
    phone_labels: Mapping[str, Sequence[str | None]], units: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Count (phone, unit) pairs over frames with a phone label.

    Parameters
    ----------
    phone_labels : utt -> label of each frame (``None`` = unlabelled, skipped).
    units : utt -> ``(num_frames,)`` unit of each frame (same frame count as the labels).

    Returns
    -------
    table : ``(num_phones, num_units_seen)`` int64 counts.
    phones : phone of each row (sorted).
    unit_ids : ``(num_units_seen,)`` unit of each column (sorted).
    """
    ys, zs = [], []
    for utt, labels in phone_labels.items():
        u = np.asarray(units[utt])
        keep = [i for i, lab in enumerate(labels) if lab is not None]
        ys.extend(labels[i] for i in keep)
        zs.append(u[keep])
    if not ys:
        raise DataError("no frame has a phone label", field="alignment")
    phones = sorted(set(ys))
    y = np.searchsorted(np.array(phones), np.array(ys))
    unit_ids, z = np.unique(np.concatenate(zs), return_inverse=True)
    table = np.zeros((len(phones), len(unit_ids)), np.int64)
    np.add.at(table, (y, z), 1)
    return table, phones, unit_ids


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def unit_quality(table: np.ndarray) -> dict[str, float]:
    """Purity, PNMI and V-measure from a ``(num_phones, num_units)`` count table."""
    table = np.asarray(table, np.float64)
    if table.sum() <= 0:
        raise DataError("empty contingency table", field="alignment")
    p = table / table.sum()
    py, pz = p.sum(1), p.sum(0)
    h_y, h_z, h_yz = _entropy(py), _entropy(pz), _entropy(p.ravel())
    mi = h_y + h_z - h_yz
    homogeneity = mi / h_y if h_y > 0 else 1.0
    completeness = mi / h_z if h_z > 0 else 1.0
    v = 2 * homogeneity * completeness / (homogeneity + completeness) if homogeneity + completeness > 0 else 0.0
    return {
        "phone_purity": float(p.max(0).sum()),
        "cluster_purity": float(p.max(1).sum()),
        "pnmi": float(homogeneity),
        "homogeneity": float(homogeneity),
        "completeness": float(completeness),
        "v_measure": float(v),
    }


def codebook_usage(units: Iterable[np.ndarray], *, codebook_size: int | None = None) -> dict[str, float | int]:
    """Perplexity ``exp(H)`` of the unit distribution, used and dead codes.

    ``codebook_size`` defaults to the largest unit + 1.
    """
    counts = np.bincount(np.concatenate([np.asarray(u, np.int64) for u in units]))
    size = codebook_size if codebook_size is not None else len(counts)
    if len(counts) > size:
        raise DataError(f"unit {len(counts) - 1} outside the codebook of {size}", field="codebook_size")
    used = int((counts > 0).sum())
    return {
        "perplexity": float(np.exp(_entropy(counts / counts.sum()))),
        "used_codes": used,
        "dead_codes": int(size - used),
        "codebook_size": int(size),
    }
