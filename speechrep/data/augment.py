"""Waveform augmentation of training crops (data-augmented CPC, Kharitonov et al. 2021).

Six transforms, each a config entry of ``data.augment`` with a parameter *range* from
which every crop draws its own value (uniformly), and a probability ``p`` of being applied:

``pitch``   ``semitones: [lo, hi]`` in [-12, 12]. Pitch shift that keeps the duration:
            a phase-vocoder time stretch by ``2 ** (-s / 12)`` then a resampling by
            ``2 ** (s / 12)`` (``librosa.effects.pitch_shift``, soxr resampler); formants
            move with the pitch, as in WavAugment's ``pitch`` (sox) effect.
``formant`` ``factor: [lo, hi]`` in [0.5, 2]. Vocal-tract (formant / VTLP) warp that keeps
            the pitch: in each STFT frame the LPC envelope ``E(f)`` (order 16) is replaced
            by ``E(f / factor)`` (the magnitude is multiplied by ``E(f / factor) / E(f)``);
            the phase and the harmonics are kept.
``speed``   ``factor: [lo, hi]`` in [0.5, 2]. Resampling (soxr): duration / factor, pitch
            and formants x factor (Ko et al. 2015's speed perturbation). The crop is read
            ``max(factor)`` times longer so that the result still fills it.
``noise``   ``snr: [lo, hi]`` dB in [-20, 80]; ``kind: white | pink | recordings``;
            ``dir``: a Kaldi data directory of noise recordings (``kind: recordings``,
            a random stretch of a random recording, repeated if shorter than the crop).
            The noise is scaled so that the crop's SNR is exactly the drawn value.
``reverb``  ``rt60: [lo, hi]`` seconds in [0.05, 2]. Convolution with a simulated room
            impulse response: a unit direct path followed by exponentially decaying
            Gaussian noise (Polack's statistical model of a diffuse field) whose energy
            falls 60 dB in ``rt60`` and equals the direct path's (direct-to-reverberant
            ratio 0 dB); the output keeps the input's RMS level.
``bandreject`` ``freq: [lo, hi]`` Hz, lower edge of the band; ``width: [lo, hi]`` Hz.
            The band ``[freq, freq + width]`` is removed from the crop's spectrum (one FFT
            of the crop, bins in the band set to zero, 50 Hz raised-cosine edges outside
            it), as WavAugment's ``band_reject``.

Randomness is a :class:`numpy.random.Generator` per crop, seeded with
``(seed, key)`` where ``key`` is the crop's position in the training stream: a resumed
run (or one with DataLoader workers, or another split of the batch into accumulation
steps) draws exactly the same augmentations as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Iterable, Literal

import numpy as np

from speechrep.config import dataclass, from_dict, source_of
from speechrep.errors import ConfigError, DataError

__all__ = [
    "Pitch", "Formant", "Speed", "Noise", "Reverb", "BandReject", "TRANSFORMS", "Augmenter", "parse_augment",
    "pitch_shift", "formant_shift", "change_speed", "colored_noise", "add_noise", "room_impulse_response",
    "reverberate", "band_reject",
]

# Separates the augmentation streams from the sampler's (which seeds with [seed, epoch]).
_STREAM = 0x617567  # "aug"


# -- the transforms as functions ---------------------------------------------------------

def pitch_shift(x: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift the pitch of ``x`` (samples,) by ``semitones``, same length (phase vocoder + soxr)."""
    import librosa

    if len(x) < 2048 or semitones == 0.0:  # shorter than one phase-vocoder frame
        return x
    return librosa.effects.pitch_shift(x, sr=sample_rate, n_steps=semitones, res_type="soxr_hq")


def _lpc_log_envelope(frames: np.ndarray, order: int, n_fft: int) -> np.ndarray:
    """Log LPC envelope ``-log|A|`` (n_fft // 2 + 1, F) of windowed frames (n, F).

    Autocorrelation method, Levinson-Durbin run on all frames at once; silent frames get a
    flat envelope.
    """
    from scipy.fft import irfft, rfft

    r = irfft(np.abs(rfft(frames, 2 * frames.shape[0], axis=0)) ** 2, axis=0)[: order + 1]
    r[0] *= 1.0 + 1e-9  # white-noise correction: keeps the recursion stable
    silent = r[0] <= 1e-12
    r[:, silent] = np.eye(order + 1, 1)  # unit impulse autocorrelation: A = 1
    a = np.zeros_like(r)
    a[0] = 1.0
    err = r[0].copy()
    for i in range(1, order + 1):
        k = -(r[i] + np.einsum("jf,jf->f", a[1:i], r[i - 1 : 0 : -1])) / err
        a[1 : i + 1] = a[1 : i + 1] + k * a[i - 1 :: -1][:i]
        err *= 1.0 - k * k
    return -np.log(np.abs(rfft(a, n_fft, axis=0)) + 1e-12)


def formant_shift(x: np.ndarray, sample_rate: int, factor: float, *, n_fft: int = 512,
                  order: int = 16) -> np.ndarray:
    """Move the spectral envelope of ``x`` (samples,) up by ``factor``, keeping pitch and phase.

    The envelope of each STFT frame is its LPC envelope of ``order`` (16 at 16 kHz: eight
    resonances up to 8 kHz); the magnitude is multiplied by ``env(f / factor) / env(f)``.
    """
    import librosa

    if len(x) < n_fft or factor == 1.0:
        return x
    hop = n_fft // 4
    spec = librosa.stft(x, n_fft=n_fft, hop_length=hop)  # centred frames, reflect padding
    frames = librosa.util.frame(np.pad(x, n_fft // 2, mode="reflect"), frame_length=n_fft, hop_length=hop)
    env = _lpc_log_envelope(frames[:, : spec.shape[1]] * np.hanning(n_fft)[:, None], order, n_fft)
    src = np.arange(env.shape[0]) / factor  # bin f takes the envelope of bin f / factor
    lo = np.clip(np.floor(src).astype(np.int64), 0, env.shape[0] - 1)
    hi = np.minimum(lo + 1, env.shape[0] - 1)
    frac = np.clip(src - lo, 0.0, 1.0)[:, None]
    warped = env[lo] * (1 - frac) + env[hi] * frac
    gain = np.exp(np.clip(warped - env, -10.0, 10.0))  # +-87 dB: spectral holes stay bounded
    y = librosa.istft(spec * gain, hop_length=hop, n_fft=n_fft, length=len(x))
    return y.astype(np.float32)


def change_speed(x: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Play ``x`` ``factor`` times faster: ``len(x) / factor`` samples, pitch x ``factor``."""
    import soxr

    if factor == 1.0:
        return x
    return soxr.resample(x, sample_rate * factor, sample_rate, quality="HQ").astype(np.float32)


def colored_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of white (flat) or pink (power ~ 1/f) Gaussian noise."""
    from scipy.fft import irfft, next_fast_len, rfft

    if kind == "white":
        return rng.standard_normal(n)
    m = next_fast_len(n, real=True)  # FFTs of prime lengths are slow
    spec = rfft(rng.standard_normal(m))
    spec[1:] /= np.sqrt(np.arange(1, len(spec), dtype=np.float64))
    spec[0] = 0.0
    return irfft(spec, m)[:n]


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``x + a * noise`` with ``a`` such that ``10 log10(mean(x^2) / mean((a noise)^2)) = snr_db``."""
    px, pn = float(np.mean(np.square(x, dtype=np.float64))), float(np.mean(np.square(noise, dtype=np.float64)))
    if px == 0.0 or pn == 0.0:  # silence has no SNR to set
        return x
    return (x + noise * math.sqrt(px / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def room_impulse_response(rt60: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Impulse response (samples,) of a simulated room with reverberation time ``rt60`` s.

    A unit direct path, then Gaussian noise under an envelope whose energy falls 60 dB in
    ``rt60`` (amplitude ``10 ** (-3 t / rt60)``), scaled to the direct path's energy;
    ``rt60`` seconds long.
    """
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10.0 ** (-3.0 * t / rt60)
    tail[0] = 0.0
    tail /= math.sqrt(float(np.sum(tail**2)))
    tail[0] = 1.0
    return tail


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` (cut to ``len(x)``), at ``x``'s RMS level."""
    from scipy.signal import fftconvolve

    y = fftconvolve(x, rir)[: len(x)]
    rms_x, rms_y = math.sqrt(float(np.mean(x.astype(np.float64) ** 2))), math.sqrt(float(np.mean(y**2)))
    return (y * (rms_x / rms_y) if rms_y > 0 else y).astype(np.float32)


def band_reject(x: np.ndarray, sample_rate: int, low: float, high: float, *, edge: float = 50.0) -> np.ndarray:
    """``x`` without the frequencies in ``[low, high]`` Hz.

    Spectral bins in the band are set to zero, with raised-cosine edges ``edge`` Hz wide
    outside it (a brick wall would ring in time and leak into any windowed analysis).
    """
    from scipy.fft import irfft, next_fast_len, rfft

    m = next_fast_len(len(x), real=True)  # FFTs of prime lengths are slow
    spec = rfft(x, m)
    f = np.fft.rfftfreq(m, 1.0 / sample_rate)
    # distance outside the band in units of the edge width: 0 inside, 1 and more far away
    d = np.clip(np.maximum(low - f, f - high) / edge, 0.0, 1.0)
    spec *= 0.5 - 0.5 * np.cos(np.pi * d)
    return irfft(spec, m)[: len(x)].astype(np.float32)


# -- the transforms as config entries ------------------------------------------------------

@dataclass
class _Transform:
    """Base of the config entries: ``name``, ``p`` and the [lo, hi] ranges of ``LIMITS``."""

    #: ranged field -> (smallest, largest allowed value)
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {}

    def input_ratio(self) -> float:
        """Largest input/output length ratio (a speed-up reads a longer crop)."""
        return 1.0

    def check(self, sample_rate: int) -> Iterable[tuple[str, str]]:
        """(field, message) of every out-of-range value."""
        if not 0.0 <= self.p <= 1.0:
            yield "p", f"must be in [0, 1], got {self.p}"
        for name, (least, most) in self.LIMITS.items():
            lo, hi = getattr(self, name)
            if not least <= lo <= hi <= most:
                yield name, f"must be [low, high] with {least:g} <= low <= high <= {most:g}, got [{lo:g}, {hi:g}]"

    def prepare(self, sample_rate: int, *, field: str) -> None:
        """Load what the transform needs (noise recordings)."""

    def apply(self, x: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
        """Transformed ``x`` (samples,), with parameters drawn from ``rng``."""
        raise NotImplementedError


@dataclass
class Pitch(_Transform):
    """Pitch shift keeping the duration (see the module docstring)."""

    name: str = "pitch"
    semitones: tuple[float, float] = (-3.0, 3.0)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"semitones": (-12.0, 12.0)}

    def apply(self, x, rng, sample_rate):
        return pitch_shift(x, sample_rate, rng.uniform(*self.semitones))


@dataclass
class Formant(_Transform):
    """Spectral-envelope (vocal-tract) warp keeping the pitch."""

    name: str = "formant"
    factor: tuple[float, float] = (0.9, 1.1)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"factor": (0.5, 2.0)}

    def apply(self, x, rng, sample_rate):
        return formant_shift(x, sample_rate, rng.uniform(*self.factor))


@dataclass
class Speed(_Transform):
    """Speed change by resampling (duration / factor)."""

    name: str = "speed"
    factor: tuple[float, float] = (0.9, 1.1)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"factor": (0.5, 2.0)}

    def input_ratio(self) -> float:
        return self.factor[1] if self.p > 0 else 1.0

    def apply(self, x, rng, sample_rate):
        return change_speed(x, sample_rate, rng.uniform(*self.factor))


@dataclass
class Noise(_Transform):
    """Additive noise at an SNR drawn from ``snr``."""

    name: str = "noise"
    snr: tuple[float, float] = (5.0, 20.0)
    kind: Literal["white", "pink", "recordings"] = "white"
    dir: str | None = None  #: Kaldi data directory of noise recordings (kind: recordings)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"snr": (-20.0, 80.0)}

    def __post_init__(self) -> None:
        self._recordings: list[np.ndarray] = []

    def check(self, sample_rate):
        yield from super().check(sample_rate)
        if (self.kind == "recordings") != (self.dir is not None):
            yield "dir", "a noise data directory is needed with kind: recordings, and only then"

    def prepare(self, sample_rate: int, *, field: str) -> None:
        if self.kind != "recordings":
            return
        from speechrep.data.audio import load_audio
        from pathlib import Path

        from speechrep.data.kaldi_dir import DataDir

        if not Path(self.dir).is_dir():
            raise DataError("noise data directory not found", path=self.dir, field=f"{field}.dir")
        dd = DataDir.load(self.dir)
        self._recordings = [x for x in (load_audio(spec, sample_rate=sample_rate, name=rec)
                                        for rec, spec in sorted(dd.wav_scp.items())) if np.any(x)]
        if not self._recordings:
            raise DataError("no recording with a non-zero sample", path=self.dir, field=f"{field}.dir")

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind != "recordings":
            return colored_noise(n, self.kind, rng)
        rec = self._recordings[rng.integers(len(self._recordings))]
        start = int(rng.integers(len(rec)))
        return np.resize(np.roll(rec, -start), n)  # np.resize repeats a short recording

    def apply(self, x, rng, sample_rate):
        return add_noise(x, self._noise(len(x), rng), rng.uniform(*self.snr))


@dataclass
class Reverb(_Transform):
    """Reverberation by a simulated room impulse response of RT60 drawn from ``rt60``."""

    name: str = "reverb"
    rt60: tuple[float, float] = (0.2, 0.6)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"rt60": (0.05, 2.0)}

    def apply(self, x, rng, sample_rate):
        return reverberate(x, room_impulse_response(rng.uniform(*self.rt60), sample_rate, rng))


@dataclass
class BandReject(_Transform):
    """Removal of the band ``[freq, freq + width]`` Hz."""

    name: str = "bandreject"
    freq: tuple[float, float] = (100.0, 6000.0)
    width: tuple[float, float] = (100.0, 800.0)
    p: float = 1.0
    LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"freq": (0.0, math.inf), "width": (1.0, math.inf)}

    def check(self, sample_rate):
        yield from super().check(sample_rate)
        if self.freq[1] + self.width[1] > sample_rate / 2:
            yield "width", (f"the band [freq, freq + width] must stay below {sample_rate / 2:g} Hz "
                            f"(half data.sample_rate), up to {self.freq[1] + self.width[1]:g} Hz here")

    def apply(self, x, rng, sample_rate):
        low = rng.uniform(*self.freq)
        return band_reject(x, sample_rate, low, low + rng.uniform(*self.width))


#: ``name`` of a ``data.augment`` entry -> its config class
TRANSFORMS: dict[str, type[_Transform]] = {
    cls.name: cls for cls in (Pitch, Formant, Speed, Noise, Reverb, BandReject)  # type: ignore[misc]
}


def parse_augment(items: list[Any], *, sample_rate: int, source: str = "<config>", overridden: Iterable[str] = (),
                  key: str = "data.augment") -> list[_Transform]:
    """Config entries ``[{name: ..., <range>: [lo, hi], p: ...}, ...]`` -> transforms.

    Raises
    ------
    ConfigError
        An entry that is not a mapping, an unknown ``name`` or key, a value of the wrong
        type or out of range, named as ``data.augment[i].<key>``.
    """
    overridden = frozenset(overridden)
    out = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("expected a mapping such as {name: reverb, rt60: [0.2, 0.6]}",
                              path=source_of(where, source, overridden), field=where)
        name = item.get("name")
        if name not in TRANSFORMS:
            said = "missing" if name is None else f"unknown augmentation {name!r}"
            raise ConfigError(f"{said} (known: {', '.join(sorted(TRANSFORMS))})",
                              path=source_of(f"{where}.name", source, overridden), field=f"{where}.name")
        t = from_dict(TRANSFORMS[name], item, source=source, prefix=where + ".", overridden=overridden)
        for name_, message in t.check(sample_rate):
            field = f"{where}.{name_}"
            raise ConfigError(message, path=source_of(field, source, overridden), field=field)
        out.append(t)
    return out


class Augmenter:
    """A chain of transforms applied to one crop at a time, seeded per crop.

    Parameters
    ----------
    transforms : from :func:`parse_augment`; applied in order, each with probability ``p``.
    sample_rate : Hz of the crops.
    seed : run seed; crop ``key``'s draws come from ``default_rng([seed, _STREAM, key])``.
    key : config key the transforms came from (named in errors loading noise recordings).
    """

    def __init__(self, transforms: list[_Transform], *, sample_rate: int, seed: int, key: str = "data.augment"):
        self.transforms = [dataclasses.replace(t) for t in transforms]
        self.sample_rate, self.seed = sample_rate, seed
        for i, t in enumerate(self.transforms):
            t.prepare(sample_rate, field=f"{key}[{i}]")
        self.input_ratio = math.prod(t.input_ratio() for t in self.transforms)

    @property
    def changes_length(self) -> bool:
        """Whether some transform changes the time axis (no sample-aligned clean copy)."""
        return self.input_ratio != 1.0

    def input_length(self, crop: int) -> int:
        """Samples to read so that the augmented crop still holds ``crop`` samples."""
        return crop if self.input_ratio == 1.0 else math.ceil(crop * self.input_ratio) + 1

    def __call__(self, x: np.ndarray, key: int) -> np.ndarray:
        """Augmented copy of ``x`` (samples,) float32 for the crop at stream position ``key``."""
        rng = np.random.default_rng([self.seed, _STREAM, int(key)])
        x = np.asarray(x, dtype=np.float32)
        for t in self.transforms:
            if rng.random() < t.p:
                x = t.apply(x, rng, self.sample_rate)
        return np.asarray(x, dtype=np.float32)
