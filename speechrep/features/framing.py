"""Frame extraction as in Kaldi's ``ExtractWindow``/``ProcessWindow``.

One numba kernel turns a waveform into windowed, zero-padded frames, with two passes over
each frame: (1) dither, mean and energy, (2) DC removal, pre-emphasis and window, written
straight into the frame matrix that the batched FFT (``scipy.fft.rfft``) then transforms.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from speechrep.errors import ConfigError

__all__ = [
    "ENERGY_NONE",
    "ENERGY_RAW",
    "ENERGY_WINDOWED",
    "FLOAT_EPS",
    "window_size",
    "window_shift",
    "padded_window_size",
    "num_frames",
    "first_sample_of_frame",
    "extract_frames",
    "log_floor_",
]

# Kaldi floors energies and mel powers at FLT_EPSILON before taking logs.
FLOAT_EPS = float(np.finfo(np.float32).eps)

# Which log energy the frame kernel returns alongside the frames.
ENERGY_NONE = 0
ENERGY_RAW = 1  # after DC removal, before pre-emphasis and window (Kaldi raw_energy=true)
ENERGY_WINDOWED = 2  # of the final windowed frame (Kaldi raw_energy=false)


def _ms_to_samples(sample_frequency: float, ms: float) -> int:
    # Kaldi computes int32(samp_freq * 0.001 * ms) in double from float options.
    return int(float(np.float32(sample_frequency)) * 0.001 * float(np.float32(ms)))


def window_size(sample_frequency: float, frame_length: float) -> int:
    """Frame length in samples for ``frame_length`` milliseconds (Kaldi ``WindowSize``)."""
    return _ms_to_samples(sample_frequency, frame_length)


def window_shift(sample_frequency: float, frame_shift: float) -> int:
    """Frame shift in samples for ``frame_shift`` milliseconds (Kaldi ``WindowShift``)."""
    return _ms_to_samples(sample_frequency, frame_shift)


def padded_window_size(frame_length: int, *, round_to_power_of_two: bool = True) -> int:
    """FFT size: ``frame_length`` samples, rounded up to a power of two if asked."""
    if not round_to_power_of_two:
        return frame_length
    return 1 << max(frame_length - 1, 0).bit_length()


def num_frames(num_samples: int, *, frame_length: int, frame_shift: int, snip_edges: bool = True) -> int:
    """Number of frames Kaldi extracts from ``num_samples`` samples.

    With ``snip_edges`` only frames that fit completely are kept; without it there is one
    frame per ``frame_shift`` (rounded), the signal being reflected at its ends.
    """
    if snip_edges:
        return 0 if num_samples < frame_length else 1 + (num_samples - frame_length) // frame_shift
    return (num_samples + frame_shift // 2) // frame_shift


def first_sample_of_frame(frame: int, *, frame_length: int, frame_shift: int, snip_edges: bool = True) -> int:
    """Index of the first sample of ``frame`` (negative when it reaches before the start)."""
    if snip_edges:
        return frame * frame_shift
    return frame * frame_shift + frame_shift // 2 - frame_length // 2


def log_floor_(x: np.ndarray, floor: float = FLOAT_EPS) -> np.ndarray:
    """In place ``x = log(max(x, floor))``; numpy's SIMD float32 log is several times faster
    than the scalar log a numba loop calls."""
    np.maximum(x, np.float32(floor), out=x)
    np.log(x, out=x)
    return x


# Reassociation lets LLVM vectorise the sums over a frame (4x faster); the input is checked
# finite beforehand, and the reordering changes results only at rounding level.
FASTMATH = {"reassoc", "contract", "nsz"}


@njit(cache=True, fastmath=FASTMATH)
def _frames_kernel(wave, n_frames, shift, length, padded, first, remove_dc, preemph, window, noise, energy_mode, frames, log_energy):
    n = wave.shape[0]
    add_noise = noise.shape[0] > 0
    edge = np.empty(length, np.float32)
    for f in range(n_frames):
        start = first + f * shift
        if start >= 0 and start + length <= n and not add_noise:
            x = wave[start : start + length]
        else:
            for i in range(length):
                s = start + i
                # reflect at both ends (repeatedly, for signals shorter than a frame)
                while s < 0 or s >= n:
                    if s < 0:
                        s = -s - 1
                    else:
                        s = 2 * n - 1 - s
                edge[i] = wave[s]
            if add_noise:
                for i in range(length):
                    edge[i] += noise[f, i]
            x = edge
        # pass 1: mean and energy. With x' = x - mean, sum x'^2 = sum x^2 - length mean^2
        total = 0.0
        total_sq = 0.0
        for i in range(length):
            v = np.float64(x[i])
            total += v
            total_sq += v * v
        mean = total / length if remove_dc else 0.0
        if energy_mode == 1:
            e = max(total_sq - length * mean * mean, 0.0)
            log_energy[f] = np.log(max(e, 1.1920928955078125e-07))
        # pass 2: pre-emphasis of the DC-free frame, window, windowed energy
        v = (x[0] - mean) * (1.0 - preemph) * window[0]
        frames[f, 0] = v
        e = v * v
        for i in range(1, length):
            v = ((x[i] - mean) - preemph * (x[i - 1] - mean)) * window[i]
            frames[f, i] = v
            e += v * v
        if energy_mode == 2:
            log_energy[f] = np.log(max(e, 1.1920928955078125e-07))
        for i in range(length, padded):
            frames[f, i] = 0.0


def extract_frames(
    wave: np.ndarray,
    *,
    frame_length: int,
    frame_shift: int,
    padded_length: int,
    window: np.ndarray,
    snip_edges: bool = True,
    remove_dc_offset: bool = True,
    preemphasis_coefficient: float = 0.97,
    dither: float = 0.0,
    rng: np.random.Generator | None = None,
    energy: int = ENERGY_NONE,
    start_frame: int = 0,
    count: int | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Windowed frames of ``wave``, zero-padded to the FFT size.

    Parameters
    ----------
    wave : ``(num_samples,)`` float32, contiguous.
    frame_length, frame_shift, padded_length : in samples.
    window : ``(frame_length,)`` analysis window.
    snip_edges : Kaldi's framing (True) or centred frames with reflected edges (False).
    remove_dc_offset : subtract each frame's mean.
    preemphasis_coefficient : ``x[i] -= c * x[i-1]`` inside each frame (``x[0] -= c * x[0]``).
    dither : standard deviation of Gaussian noise added to each frame (needs ``rng``).
    rng : source of the dither noise.
    energy : ``ENERGY_NONE``, ``ENERGY_RAW`` or ``ENERGY_WINDOWED``.
    start_frame, count : extract frames ``start_frame .. start_frame + count - 1`` only
        (default: all), so that long signals can be processed in cache-sized blocks.
    out : ``(>= count, padded_length)`` float32 buffer to fill, reused between blocks.

    Returns
    -------
    frames : ``(count, padded_length)`` float32 (a view of ``out`` when given)
    log_energy : ``(count,)`` float64 log frame energy (zeros if ``ENERGY_NONE``)
    """
    total = num_frames(wave.shape[0], frame_length=frame_length, frame_shift=frame_shift, snip_edges=snip_edges)
    n = total - start_frame if count is None else count
    first = first_sample_of_frame(start_frame, frame_length=frame_length, frame_shift=frame_shift, snip_edges=snip_edges)
    if dither != 0.0:
        if rng is None:
            raise ConfigError("dither needs a random generator (pass seed=...)", field="dither")
        # Kaldi draws new noise for every frame, so overlapping samples get different noise.
        noise = rng.standard_normal((n, frame_length), dtype=np.float32)
        noise *= np.float32(dither)
    else:
        noise = np.empty((0, 0), np.float32)
    frames = np.empty((n, padded_length), np.float32) if out is None else out[:n]
    log_energy = np.zeros(n, np.float64)
    if n > 0:
        _frames_kernel(
            wave, n, frame_shift, frame_length, padded_length, first, bool(remove_dc_offset),
            float(preemphasis_coefficient), np.ascontiguousarray(window, np.float32), noise, int(energy),
            frames, log_energy,
        )
    return frames, log_energy
