"""Kaldi-compatible fbank, MFCC and spectrogram (``compute-{fbank,mfcc,spectrogram}-feats``).

The options carry Kaldi's names (``--frame-length`` is ``frame_length``) and live in
Kaldi's option structs (:mod:`speechrep.features.kaldi_options`), with Kaldi's defaults, dither included: Kaldi adds Gaussian noise of standard deviation ``dither = 1.0``
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
from typing import Any

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
from speechrep.features.kaldi_options import FbankOptions, MfccOptions, SpectrogramOptions, resolve_options
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


def _analyse(wave: np.ndarray, opts: FbankOptions | MfccOptions | SpectrogramOptions, *, energy: int) -> _Analysis:
    """Check the options and the wave, then frame and FFT it block by block.

    Each block is ``(rows, spec, log_energy)``: output rows, their ``(len, padded // 2 + 1)``
    complex64 spectra and ``(len,)`` float64 log energies (floored).
    """
    sample_frequency, frame_length, frame_shift = opts.sample_frequency, opts.frame_length, opts.frame_shift
    if sample_frequency <= 0:
        raise ConfigError(f"must be positive, got {sample_frequency}", field="sample_frequency")
    length = window_size(sample_frequency, frame_length)
    shift = window_shift(sample_frequency, frame_shift)
    if length < 2:
        raise ConfigError(f"{frame_length} ms is less than two samples at {sample_frequency} Hz", field="frame_length")
    if shift < 1:
        raise ConfigError(f"{frame_shift} ms is less than one sample at {sample_frequency} Hz", field="frame_shift")
    if opts.energy_floor < 0:
        raise ConfigError(f"must be >= 0, got {opts.energy_floor}", field="energy_floor")
    wave = check_wave(wave)
    padded = padded_window_size(length, round_to_power_of_two=opts.round_to_power_of_two)
    window = feature_window(opts.window_type, length, blackman_coeff=opts.blackman_coeff)
    rng = None
    if opts.dither != 0.0:
        seed = opts.seed
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    total = num_frames(wave.shape[0], frame_length=length, frame_shift=shift, snip_edges=opts.snip_edges)

    def blocks() -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        buf = np.empty((min(total, BLOCK_FRAMES), padded), np.float32)
        for start in range(0, total, BLOCK_FRAMES):
            frames, log_energy = extract_frames(
                wave, frame_length=length, frame_shift=shift, padded_length=padded, window=window,
                snip_edges=opts.snip_edges, remove_dc_offset=opts.remove_dc_offset,
                preemphasis_coefficient=opts.preemphasis_coefficient, dither=opts.dither, rng=rng, energy=energy,
                start_frame=start, count=min(BLOCK_FRAMES, total - start), out=buf,
            )
            if energy != ENERGY_NONE and opts.energy_floor > 0.0:
                np.maximum(log_energy, np.log(opts.energy_floor), out=log_energy)
            yield slice(start, start + frames.shape[0]), scipy.fft.rfft(frames, axis=1), log_energy

    return _Analysis(total, padded, blocks())


def _energy_mode(use_energy: bool, raw_energy: bool) -> int:
    if not use_energy:
        return ENERGY_NONE
    return ENERGY_RAW if raw_energy else ENERGY_WINDOWED


def _mel_banks(opts: FbankOptions | MfccOptions, padded: int) -> np.ndarray:
    return kaldi_mel_banks(
        opts.num_mel_bins, padded, sample_frequency=opts.sample_frequency, low_freq=opts.low_freq, high_freq=opts.high_freq
    )


def fbank(wave: np.ndarray, *, options: FbankOptions | None = None, **overrides: Any) -> np.ndarray:
    """Kaldi filter-bank features (``compute-fbank-feats``).

    Parameters
    ----------
    wave : ``(num_samples,)`` waveform, in Kaldi's 16-bit integer scale.
    options : :class:`~speechrep.features.kaldi_options.FbankOptions` (default: Kaldi's).
    **overrides : fields of ``FbankOptions`` replacing those of ``options``, e.g.
        ``fbank(wave, num_mel_bins=80, dither=0.0)``.

    Returns
    -------
    np.ndarray
        ``(num_frames, num_mel_bins + use_energy)`` float32.
    """
    opts = resolve_options(FbankOptions, options, overrides)
    a = _analyse(wave, opts, energy=_energy_mode(opts.use_energy, opts.raw_energy))
    banks = _mel_banks(opts, a.padded)
    offset = 1 if opts.use_energy else 0
    out = np.empty((a.num_frames, offset + opts.num_mel_bins), np.float32)
    for rows, spec, log_energy in a.blocks:
        apply_filters(spec, banks, use_power=opts.use_power, use_log=opts.use_log_fbank, offset=offset, out=out[rows])
        if opts.use_energy:
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


def mfcc(wave: np.ndarray, *, options: MfccOptions | None = None, **overrides: Any) -> np.ndarray:
    """Kaldi MFCCs (``compute-mfcc-feats``).

    Parameters
    ----------
    wave : ``(num_samples,)`` waveform, as in :func:`fbank`.
    options : :class:`~speechrep.features.kaldi_options.MfccOptions` (default: Kaldi's).
    **overrides : fields of ``MfccOptions`` replacing those of ``options``.

    Returns
    -------
    np.ndarray
        ``(num_frames, num_ceps)`` float32.
    """
    opts = resolve_options(MfccOptions, options, overrides)
    num_ceps, num_mel_bins = opts.num_ceps, opts.num_mel_bins
    if not 1 <= num_ceps <= num_mel_bins:
        raise ConfigError(f"must be in [1, num_mel_bins={num_mel_bins}], got {num_ceps}", field="num_ceps")
    a = _analyse(wave, opts, energy=_energy_mode(opts.use_energy, opts.raw_energy))
    banks = _mel_banks(opts, a.padded)
    # liftering scales each cepstrum, so fold it into the DCT rows
    dct = dct_matrix(num_ceps, num_mel_bins) * lifter_coefficients(num_ceps, opts.cepstral_lifter)[:, None]
    out = np.empty((a.num_frames, num_ceps), np.float32)
    for rows, spec, log_energy in a.blocks:
        _dct_kernel(apply_filters(spec, banks, use_power=True, use_log=True), dct, out[rows])
        if opts.use_energy:
            out[rows, 0] = log_energy
    return out


def spectrogram(wave: np.ndarray, *, options: SpectrogramOptions | None = None, **overrides: Any) -> np.ndarray:
    """Kaldi log power spectrogram (``compute-spectrogram-feats``).

    Parameters
    ----------
    wave : ``(num_samples,)`` waveform, as in :func:`fbank`.
    options : :class:`~speechrep.features.kaldi_options.SpectrogramOptions` (default: Kaldi's).
    **overrides : fields of ``SpectrogramOptions`` replacing those of ``options``.

    As in Kaldi, column 0 holds the log frame energy instead of the log power of the DC bin.

    Returns
    -------
    np.ndarray
        ``(num_frames, padded_window_size // 2 + 1)`` float32.
    """
    opts = resolve_options(SpectrogramOptions, options, overrides)
    a = _analyse(wave, opts, energy=_energy_mode(True, opts.raw_energy))
    out = np.empty((a.num_frames, a.padded // 2 + 1), np.float32)
    for rows, spec, log_energy in a.blocks:
        out[rows] = power_spectrum(spec, use_power=True, use_log=True)
        out[rows, 0] = log_energy
    return out
