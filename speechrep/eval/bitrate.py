"""Bitrate of a unit sequence (ZeroSpeech 2019 definition)."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from speechrep.errors import DataError

__all__ = ["bitrate"]


def bitrate(units: Mapping[str, np.ndarray], *, frame_shift: float) -> dict[str, float | int]:
    """Entropy of the symbol distribution times symbols per second, repeats merged.

    Consecutive repeats of a unit are merged into one symbol (``1 1 2 2 2 3 -> 1 2 3``);
    with ``N`` symbols over all utterances, ``D`` their total duration
    (``num_frames * frame_shift`` seconds) and ``H`` the entropy in bits of the symbol
    frequencies, the bitrate is ``N / D * H`` bits per second.

    Parameters
    ----------
    units : utt -> ``(num_frames,)`` integer units.
    frame_shift : seconds per frame.

    Returns
    -------
    ``{"bitrate", "entropy_bits", "symbols_per_second", "num_symbols", "duration"}``.
    """
    merged, duration = [], 0.0
    for u in units.values():
        u = np.asarray(u)
        if u.size == 0:
            continue
        merged.append(u[np.concatenate([[True], u[1:] != u[:-1]])])
        duration += u.size * frame_shift
    if not merged:
        raise DataError("no units", field="units")
    _, counts = np.unique(np.concatenate(merged), return_counts=True)
    p = counts / counts.sum()
    entropy = float(-(p * np.log2(p)).sum())
    rate = counts.sum() / duration
    return {
        "bitrate": float(rate * entropy),
        "entropy_bits": entropy,
        "symbols_per_second": float(rate),
        "num_symbols": int(counts.sum()),
        "duration": float(duration),
    }
