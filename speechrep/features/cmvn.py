"""Cepstral mean and variance normalisation with Kaldi's semantics.

Statistics use Kaldi's ``cmvn.ark`` layout, a ``(2, dim + 1)`` float64 matrix: row 0 holds
the per-dimension sums and the frame count in its last column, row 1 the sums of squares
(``compute-cmvn-stats``). :func:`apply_cmvn` is ``apply-cmvn``.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import numpy as np

from speechrep.errors import DataError

__all__ = ["compute_cmvn_stats", "accumulate_cmvn_stats", "apply_cmvn"]


def compute_cmvn_stats(feats: np.ndarray) -> np.ndarray:
    """CMVN statistics of one feature matrix.

    Parameters
    ----------
    feats : ``(num_frames, dim)``.

    Returns
    -------
    np.ndarray
        ``(2, dim + 1)`` float64: ``[sum_t x_t, T; sum_t x_t^2, 0]``.
    """
    x = np.asarray(feats, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"expected (num_frames, dim) features, got shape {x.shape}", field="feats")
    stats = np.zeros((2, x.shape[1] + 1))
    stats[0, :-1] = x.sum(axis=0)
    stats[1, :-1] = np.einsum("td,td->d", x, x)
    stats[0, -1] = x.shape[0]
    return stats


def accumulate_cmvn_stats(
    feats: Iterable[tuple[str, np.ndarray]], *, utt2spk: Mapping[str, str] | None = None
) -> dict[str, np.ndarray]:
    """Per-utterance, or with ``utt2spk`` per-speaker, CMVN statistics.

    Parameters
    ----------
    feats : ``(utt, (num_frames, dim))`` pairs, e.g. read one at a time from a ``feats.scp``.
    utt2spk : utterance -> speaker; None gives one entry per utterance.

    Returns
    -------
    dict
        key (utterance or speaker) -> ``(2, dim + 1)`` float64 stats, keys in first-seen order.

    Raises
    ------
    DataError
        An utterance missing from ``utt2spk``, or dimensions that differ within a speaker.
    """
    out: dict[str, np.ndarray] = {}
    for utt, x in feats:
        if utt2spk is None:
            key = utt
        elif utt in utt2spk:
            key = utt2spk[utt]
        else:
            raise DataError(f"utterance {utt!r} has no speaker", field="utt2spk")
        s = compute_cmvn_stats(x)
        if key in out:
            if out[key].shape != s.shape:
                raise DataError(f"utterance {utt!r} has dim {s.shape[1] - 1}, speaker {key!r} has {out[key].shape[1] - 1}", field="feats")
            out[key] += s
        else:
            out[key] = s
    return out


def apply_cmvn(feats: np.ndarray, stats: np.ndarray, *, norm_means: bool = True, norm_vars: bool = False) -> np.ndarray:
    """Normalise features with CMVN statistics (Kaldi ``apply-cmvn``).

    Parameters
    ----------
    feats : ``(num_frames, dim)``.
    stats : ``(2, dim + 1)`` (or ``(1, dim + 1)`` for means only) from :func:`compute_cmvn_stats`.
    norm_means : subtract the mean (False: features are returned unchanged, as in Kaldi).
    norm_vars : also divide by the standard deviation (needs ``norm_means``); variances are
        floored at 1e-20, as in Kaldi.

    Returns
    -------
    np.ndarray
        ``(num_frames, dim)`` float32.
    """
    x = np.asarray(feats, dtype=np.float32)
    stats = np.asarray(stats, dtype=np.float64)
    if norm_vars and not norm_means:
        raise ValueError("norm_vars needs norm_means (Kaldi cannot normalise the variance but not the mean)")
    if x.ndim != 2 or stats.ndim != 2 or stats.shape[1] != x.shape[1] + 1 or stats.shape[0] not in (1, 2):
        raise DataError(f"stats of shape {stats.shape} do not fit features of shape {x.shape}", field="stats")
    if not norm_means:
        return x.copy()
    count = stats[0, -1]
    if count < 1.0:
        raise DataError(f"insufficient stats for CMVN: count = {count}", field="stats")
    mean = stats[0, :-1] / count
    if not norm_vars:
        return (x - mean).astype(np.float32)
    if stats.shape[0] != 2:
        raise DataError("variance normalisation needs two-row stats", field="stats")
    var = np.maximum(stats[1, :-1] / count - mean * mean, 1e-20)
    scale = 1.0 / np.sqrt(var)
    return (x * scale - mean * scale).astype(np.float32)
