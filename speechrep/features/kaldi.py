"""Kaldi-compatible fbank, MFCC and spectrogram (``compute-{fbank,mfcc,spectrogram}-feats``).

The options carry Kaldi's names (``--frame-length`` is ``frame_length``) and Kaldi's
defaults, dither included: Kaldi adds Gaussian noise of standard deviation ``dither = 1.0``
to every frame. Here that noise comes from a seeded ``np.random.Generator`` (``seed``), so
two runs give the same features; pass ``dither=0.0`` for noise-free features (as the parity
tests against kaldi-native-fbank do).

Like Kaldi, the waveform is used as given: Kaldi reads 16-bit wav files as integers, so
audio in [-1, 1] must be multiplied by 32768 to reproduce Kaldi's features (and for the
default dither to have its intended, tiny, size).

Pipeline: one numba kernel frames the signal (reflection at the edges when
``snip_edges=False``, dither, DC removal, log energy, pre-emphasis, window, zero padding),
``scipy.fft.rfft`` transforms all frames at once (single-threaded unless the caller wraps the
call in ``scipy.fft.set_workers(n)``; extraction parallelises over jobs instead), and a second kernel computes power, the
mel projection over each triangle's support and the log; MFCC adds a DCT kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numba import njit

from speechrep.errors import ConfigError, DataError
from speechrep.features.framing import (
    ENERGY_NONE,
    ENERGY_RAW,
    ENERGY_WINDOWED,
    extract_frames,
    num_frames,
    padded_window_size,
    window_shift,
    window_size,
)
from speechrep.features.mel import apply_filters, kaldi_mel_banks, power_spectrum
from speechrep.features.window import feature_window

__all__ = ["fbank", "mfcc", "spectrogram", "dct_matrix", "lifter_coefficients", "check_wave"]


def check_wave(wave: np.ndarray, *, name: str = "wave") -> np.ndarray:
    """Validate a waveform once: 1-D, real, finite; returns it as contiguous float32.

    Raises
    ------
    DataError
        Wrong shape or type, or NaN/infinite samples (``name`` says which input).
    """
    wave = np.asarray(wave)
    if wave.ndim != 1:
        raise DataError(f"expected a 1-D waveform, got shape {wave.shape}", field=name)
    if not (np.issubdtype(wave.dtype, np.floating) or np.issubdtype(wave.dtype, np.integer)):
        raise DataError(f"expected real samples, got dtype {wave.dtype}", field=name)
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise DataError("waveform contains NaN or infinite samples", field=name)
    return wave


# Frames are transformed in blocks of this many: a block's frame and spectrum buffers stay
# in the CPU cache from the framing kernel through the FFT to the mel kernel, and are reused
# instead of faulting in hundreds of MB for a long recording (246 -> 161 ms CPU for 600 s
# of 80-bin fbank when measured); memory also stays small for long signals.
BLOCK_FRAMES = 1024


@dataclass(frozen=True)
class _Analysis:
    num_frames: int
    padded: int
    blocks: Iterator[tuple[slice, np.ndarray, np.ndarray]]  # (rows, spectrum, log energy)


def _analyse(
    wave: np.ndarray,
    *,
    sample_frequency: float,
    frame_length: float,
    frame_shift: float,
    dither: float,
    seed: int | np.random.Generator | None,
    preemphasis_coefficient: float,
    remove_dc_offset: bool,
    window_type: str,
    blackman_coeff: float,
    round_to_power_of_two: bool,
    snip_edges: bool,
    energy: int,
    energy_floor: float,
) -> _Analysis:
    """Check the options and the wave, then frame and FFT it block by block.

    Each block is ``(rows, spec, log_energy)``: output rows, their ``(len, padded // 2 + 1)``
    complex64 spectra and ``(len,)`` float64 log energies (floored).
    """
    if sample_frequency <= 0:
        raise ConfigError(f"must be positive, got {sample_frequency}", field="sample_frequency")
    length = window_size(sample_frequency, frame_length)
    shift = window_shift(sample_frequency, frame_shift)
    if length < 2:
        raise ConfigError(f"{frame_length} ms is less than two samples at {sample_frequency} Hz", field="frame_length")
    if shift < 1:
        raise ConfigError(f"{frame_shift} ms is less than one sample at {sample_frequency} Hz", field="frame_shift")
    if energy_floor < 0:
        raise ConfigError(f"must be >= 0, got {energy_floor}", field="energy_floor")
    wave = check_wave(wave)
    padded = padded_window_size(length, round_to_power_of_two=round_to_power_of_two)
    window = feature_window(window_type, length, blackman_coeff=blackman_coeff)
    rng = None
    if dither != 0.0:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    total = num_frames(wave.shape[0], frame_length=length, frame_shift=shift, snip_edges=snip_edges)

    def blocks() -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        buf = np.empty((min(total, BLOCK_FRAMES), padded), np.float32)
        for start in range(0, total, BLOCK_FRAMES):
            frames, log_energy = extract_frames(
                wave, frame_length=length, frame_shift=shift, padded_length=padded, window=window,
                snip_edges=snip_edges, remove_dc_offset=remove_dc_offset,
                preemphasis_coefficient=preemphasis_coefficient, dither=dither, rng=rng, energy=energy,
                start_frame=start, count=min(BLOCK_FRAMES, total - start), out=buf,
            )
            if energy != ENERGY_NONE and energy_floor > 0.0:
                np.maximum(log_energy, np.log(energy_floor), out=log_energy)
            yield slice(start, start + frames.shape[0]), scipy.fft.rfft(frames, axis=1), log_energy

    return _Analysis(total, padded, blocks())


def _energy_mode(use_energy: bool, raw_energy: bool) -> int:
    if not use_energy:
        return ENERGY_NONE
    return ENERGY_RAW if raw_energy else ENERGY_WINDOWED


def fbank(
    wave: np.ndarray,
    *,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 1.0,
    seed: int | np.random.Generator | None = 0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    num_mel_bins: int = 23,
    use_energy: bool = False,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
    use_log_fbank: bool = True,
    use_power: bool = True,
) -> np.ndarray:
    """Kaldi filter-bank features (``compute-fbank-feats``).

    Parameters
    ----------
    wave : ``(num_samples,)`` waveform, in Kaldi's 16-bit integer scale.
    sample_frequency : Hz.
    frame_length, frame_shift : milliseconds.
    dither : standard deviation of the Gaussian noise added to each frame (Kaldi's default
        1.0; 0.0 turns it off).
    seed : seed or ``np.random.Generator`` for the dither noise.
    preemphasis_coefficient, remove_dc_offset : per-frame processing, as in Kaldi.
    window_type : ``povey``, ``hamming``, ``hanning``, ``rectangular``, ``blackman``
        (with ``blackman_coeff``) or ``sine``.
    round_to_power_of_two : zero-pad frames to a power-of-two FFT size.
    snip_edges : only frames that fit in the signal (True), or one frame per shift with
        the signal reflected at its ends (False).
    low_freq, high_freq : mel band in Hz; ``high_freq <= 0`` means Nyquist + ``high_freq``.
    num_mel_bins : number of triangular mel filters.
    use_energy : prepend the log frame energy (column 0).
    raw_energy : energy before pre-emphasis and window (True) or after (False).
    energy_floor : floor on the energy (not on its log); 0 = none.
    use_log_fbank : log of the mel energies (floored at float32 epsilon).
    use_power : power spectrum (True) or magnitude (False).

    Returns
    -------
    np.ndarray
        ``(num_frames, num_mel_bins + use_energy)`` float32.
    """
    a = _analyse(
        wave, sample_frequency=sample_frequency, frame_length=frame_length, frame_shift=frame_shift,
        dither=dither, seed=seed, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, window_type=window_type, blackman_coeff=blackman_coeff,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        energy=_energy_mode(use_energy, raw_energy), energy_floor=energy_floor,
    )
    banks = kaldi_mel_banks(num_mel_bins, a.padded, sample_frequency=sample_frequency, low_freq=low_freq, high_freq=high_freq)
    offset = 1 if use_energy else 0
    out = np.empty((a.num_frames, offset + num_mel_bins), np.float32)
    for rows, spec, log_energy in a.blocks:
        apply_filters(spec, banks, use_power=use_power, use_log=use_log_fbank, offset=offset, out=out[rows])
        if use_energy:
            out[rows, 0] = log_energy
    return out


def dct_matrix(num_ceps: int, num_bins: int) -> np.ndarray:
    """First ``num_ceps`` rows of the orthonormal DCT-II of size ``num_bins`` (Kaldi's).

    Returns ``(num_ceps, num_bins)`` float64.
    """
    k = np.arange(num_ceps)[:, None]
    n = np.arange(num_bins)[None, :]
    m = np.sqrt(2.0 / num_bins) * np.cos(np.pi / num_bins * (n + 0.5) * k)
    m[0] = np.sqrt(1.0 / num_bins)
    return m


def lifter_coefficients(num_ceps: int, cepstral_lifter: float) -> np.ndarray:
    """Kaldi's cepstral liftering weights ``1 + Q/2 sin(pi i / Q)``, ``(num_ceps,)`` float64."""
    if cepstral_lifter == 0.0:
        return np.ones(num_ceps)
    i = np.arange(num_ceps)
    return 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * i / cepstral_lifter)


@njit(cache=True)
def _dct_kernel(logmel, dct, out):
    n, nb = logmel.shape
    nc = dct.shape[0]
    for f in range(n):
        for c in range(nc):
            acc = 0.0
            for b in range(nb):
                acc += dct[c, b] * logmel[f, b]
            out[f, c] = acc


def mfcc(
    wave: np.ndarray,
    *,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 1.0,
    seed: int | np.random.Generator | None = 0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    low_freq: float = 20.0,
    high_freq: float = 0.0,
    num_mel_bins: int = 23,
    num_ceps: int = 13,
    cepstral_lifter: float = 22.0,
    use_energy: bool = True,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
) -> np.ndarray:
    """Kaldi MFCCs (``compute-mfcc-feats``).

    Parameters
    ----------
    wave, sample_frequency, ... , num_mel_bins : as in :func:`fbank`.
    num_ceps : number of cepstra kept (<= ``num_mel_bins``).
    cepstral_lifter : liftering coefficient ``Q`` (0 = none).
    use_energy : replace C0 by the log frame energy.
    raw_energy, energy_floor : as in :func:`fbank`.

    Returns
    -------
    np.ndarray
        ``(num_frames, num_ceps)`` float32.
    """
    if not 1 <= num_ceps <= num_mel_bins:
        raise ConfigError(f"must be in [1, num_mel_bins={num_mel_bins}], got {num_ceps}", field="num_ceps")
    a = _analyse(
        wave, sample_frequency=sample_frequency, frame_length=frame_length, frame_shift=frame_shift,
        dither=dither, seed=seed, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, window_type=window_type, blackman_coeff=blackman_coeff,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        energy=_energy_mode(use_energy, raw_energy), energy_floor=energy_floor,
    )
    banks = kaldi_mel_banks(num_mel_bins, a.padded, sample_frequency=sample_frequency, low_freq=low_freq, high_freq=high_freq)
    # liftering scales each cepstrum, so fold it into the DCT rows
    dct = dct_matrix(num_ceps, num_mel_bins) * lifter_coefficients(num_ceps, cepstral_lifter)[:, None]
    out = np.empty((a.num_frames, num_ceps), np.float32)
    for rows, spec, log_energy in a.blocks:
        _dct_kernel(apply_filters(spec, banks, use_power=True, use_log=True), dct, out[rows])
        if use_energy:
            out[rows, 0] = log_energy
    return out


def spectrogram(
    wave: np.ndarray,
    *,
    sample_frequency: float = 16000.0,
    frame_length: float = 25.0,
    frame_shift: float = 10.0,
    dither: float = 1.0,
    seed: int | np.random.Generator | None = 0,
    preemphasis_coefficient: float = 0.97,
    remove_dc_offset: bool = True,
    window_type: str = "povey",
    blackman_coeff: float = 0.42,
    round_to_power_of_two: bool = True,
    snip_edges: bool = True,
    raw_energy: bool = True,
    energy_floor: float = 0.0,
) -> np.ndarray:
    """Kaldi log power spectrogram (``compute-spectrogram-feats``).

    Parameters are those of :func:`fbank`. As in Kaldi, column 0 holds the log frame
    energy instead of the log power of the DC bin.

    Returns
    -------
    np.ndarray
        ``(num_frames, padded_window_size // 2 + 1)`` float32.
    """
    a = _analyse(
        wave, sample_frequency=sample_frequency, frame_length=frame_length, frame_shift=frame_shift,
        dither=dither, seed=seed, preemphasis_coefficient=preemphasis_coefficient,
        remove_dc_offset=remove_dc_offset, window_type=window_type, blackman_coeff=blackman_coeff,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges,
        energy=ENERGY_RAW if raw_energy else ENERGY_WINDOWED, energy_floor=energy_floor,
    )
    out = np.empty((a.num_frames, a.padded // 2 + 1), np.float32)
    for rows, spec, log_energy in a.blocks:
        out[rows] = power_spectrum(spec, use_power=True, use_log=True)
        out[rows, 0] = log_energy
    return out
