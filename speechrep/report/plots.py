"""Figures for the report (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np


def plot_alignment(
    wave: np.ndarray,
    sample_rate: int,
    phones: Sequence[tuple[float, float, str]],
    units: Sequence[int] | None,
    out: str | Path,
    *,
    unit_frame_shift: float = 0.02,
    unit_frame_offset: float = 0.0,
    title: str = "",
) -> Path:
    """Spectrogram with reference phone segments and discovered units below it.

    Parameters
    ----------
    wave : (samples,) float waveform.
    phones : reference segments ``(start, end, phone)`` in seconds.
    units : per-frame unit indices (frame i at ``unit_frame_offset + i * unit_frame_shift``),
        or None to leave the unit row out; consecutive repeats are merged into one segment.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    duration = len(wave) / sample_rate
    nrows = 3 if units is not None else 2
    fig, axes = plt.subplots(
        nrows, 1, figsize=(12, 2.2 + 0.6 * (nrows - 1)), sharex=True,
        gridspec_kw={"height_ratios": [4] + [1] * (nrows - 1)},
    )
    ax = axes[0]
    ax.specgram(wave, NFFT=400, Fs=sample_rate, noverlap=240, cmap="magma")
    ax.set_ylabel("Hz")
    ax.set_title(title)
    _segments(axes[1], phones, label="phones")
    if units is not None:
        units = np.asarray(units)
        segs = []
        start = 0
        for i in range(1, len(units) + 1):
            if i == len(units) or units[i] != units[start]:
                t0 = unit_frame_offset + (start - 0.5) * unit_frame_shift
                t1 = unit_frame_offset + (i - 0.5) * unit_frame_shift
                segs.append((max(t0, 0.0), min(t1, duration), str(int(units[start]))))
                start = i
        _segments(axes[2], segs, label="units")
    axes[-1].set_xlim(0, duration)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _segments(ax, segments: Sequence[tuple[float, float, str]], *, label: str) -> None:
    for i, (t0, t1, name) in enumerate(segments):
        ax.axvspan(t0, t1, color=("#dde6f5" if i % 2 else "#f5e6dd"), lw=0)
        ax.axvline(t0, color="#555", lw=0.5)
        ax.text((t0 + t1) / 2, 0.5, name, ha="center", va="center", fontsize=7, clip_on=True)
    ax.set_yticks([])
    ax.set_ylabel(label, rotation=0, ha="right", va="center")
