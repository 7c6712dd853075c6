"""Option structs of the Kaldi features, declared once and shared as in Kaldi.

Kaldi's ``FbankOptions`` and ``MfccOptions`` both hold a ``FrameExtractionOptions`` and a
``MelBanksOptions``; here the feature options inherit those structs, so their fields stay
flat (the names of Kaldi's command-line flags and of the keys of ``conf/fbank.yaml``) while
each is declared in one place. The feature functions take a struct, keyword overrides, or
both: ``fbank(wave, options=FbankOptions(num_mel_bins=80))`` equals
``fbank(wave, num_mel_bins=80)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "FrameOptions",
    "MelOptions",
    "EnergyOptions",
    "FbankOptions",
    "MfccOptions",
    "SpectrogramOptions",
    "resolve_options",
]


@dataclass(frozen=True)
class FrameOptions:
    """How frames are cut from the waveform (Kaldi's ``FrameExtractionOptions``).

    Attributes
    ----------
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
    """

    sample_frequency: float = 16000.0
    frame_length: float = 25.0
    frame_shift: float = 10.0
    dither: float = 1.0
    seed: int | np.random.Generator | None = 0
    preemphasis_coefficient: float = 0.97
    remove_dc_offset: bool = True
    window_type: str = "povey"
    blackman_coeff: float = 0.42
    round_to_power_of_two: bool = True
    snip_edges: bool = True


@dataclass(frozen=True)
class MelOptions:
    """The triangular mel filters (Kaldi's ``MelBanksOptions``).

    Attributes
    ----------
    low_freq, high_freq : mel band in Hz; ``high_freq <= 0`` means Nyquist + ``high_freq``.
    num_mel_bins : number of triangular mel filters.
    """

    low_freq: float = 20.0
    high_freq: float = 0.0
    num_mel_bins: int = 23


@dataclass(frozen=True)
class EnergyOptions:
    """How the log frame energy is measured (the same in all three Kaldi feature types).

    Attributes
    ----------
    raw_energy : energy before pre-emphasis and window (True) or after (False).
    energy_floor : floor on the energy (not on its log); 0 = none.
    """

    raw_energy: bool = True
    energy_floor: float = 0.0


# Base order puts the fields in Kaldi's order: frame, mel, energy, then the type's own.
@dataclass(frozen=True)
class FbankOptions(EnergyOptions, MelOptions, FrameOptions):
    """Options of :func:`speechrep.features.fbank` (Kaldi's ``FbankOptions``).

    Attributes
    ----------
    use_energy : prepend the log frame energy (column 0).
    use_log_fbank : log of the mel energies (floored at float32 epsilon).
    use_power : power spectrum (True) or magnitude (False).

    The other fields are those of :class:`FrameOptions`, :class:`MelOptions` and
    :class:`EnergyOptions`.
    """

    use_energy: bool = False
    use_log_fbank: bool = True
    use_power: bool = True


@dataclass(frozen=True)
class MfccOptions(EnergyOptions, MelOptions, FrameOptions):
    """Options of :func:`speechrep.features.mfcc` (Kaldi's ``MfccOptions``).

    Attributes
    ----------
    num_ceps : number of cepstra kept (<= ``num_mel_bins``).
    cepstral_lifter : liftering coefficient ``Q`` (0 = none).
    use_energy : replace C0 by the log frame energy.

    The other fields are those of :class:`FrameOptions`, :class:`MelOptions` and
    :class:`EnergyOptions`.
    """

    num_ceps: int = 13
    cepstral_lifter: float = 22.0
    use_energy: bool = True


@dataclass(frozen=True)
class SpectrogramOptions(EnergyOptions, FrameOptions):
    """Options of :func:`speechrep.features.spectrogram` (Kaldi's ``SpectrogramOptions``):
    those of :class:`FrameOptions` and :class:`EnergyOptions`."""


O = TypeVar("O", FbankOptions, MfccOptions, SpectrogramOptions)


def resolve_options(cls: type[O], options: O | None, overrides: dict[str, Any]) -> O:
    """``options`` (default: ``cls()``) with the keyword ``overrides`` replacing its fields.

    Raises
    ------
    TypeError
        ``options`` is not a ``cls``, or an override names no field of ``cls`` (as a
        misspelt keyword argument does).
    """
    if options is None:
        options = cls()
    elif not isinstance(options, cls):
        raise TypeError(f"options must be a {cls.__name__}, got {type(options).__name__}")
    if not overrides:
        return options
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise TypeError(f"unexpected keyword argument {unknown[0]!r} (not a field of {cls.__name__})")
    return dataclasses.replace(options, **overrides)
