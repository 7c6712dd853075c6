"""Configurations of the feature types: one dataclass per feature function, whose fields are
those of the function's option struct (same names, types and defaults), plus the extraction's
own options (``wave_scale``, ``allow_downsample``, ``allow_upsample``)."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import numpy as np

from speechrep.config import OVERRIDE_SOURCE, load_config
from speechrep.errors import ConfigError
from speechrep.features.kaldi import fbank, mfcc, spectrogram
from speechrep.features.kaldi_options import FbankOptions, MfccOptions, SpectrogramOptions

__all__ = ["FbankConfig", "MfccConfig", "SpectrogramConfig", "FEATURE_KINDS", "feature_config", "feature_kind", "function_options"]

# options of the extraction itself, after those of the feature function
_EXTRACTION_FIELDS = [("wave_scale", float, 32768.0), ("allow_downsample", bool, False), ("allow_upsample", bool, False)]


def _options_dataclass(name: str, func: Any, options: type) -> type:
    """A config dataclass whose fields are those of the option struct ``options`` of ``func``
    (same names, types and defaults, so the two cannot drift apart) plus the extraction
    options."""
    hints = typing.get_type_hints(options)
    fields = []
    for f in dataclasses.fields(options):
        # a config file holds an integer seed, never a Generator
        fields.append((f.name, int if f.name == "seed" else hints[f.name], f.default))
    fields += _EXTRACTION_FIELDS
    cls = dataclasses.make_dataclass(name, [(n, t, dataclasses.field(default=d)) for n, t, d in fields])
    cls.__module__ = __name__
    cls.__doc__ = (
        f"Options of :func:`speechrep.features.{func.__name__}` (see there), plus ``wave_scale`` "
        "(factor applied to audio in [-1, 1]; 32768 reproduces Kaldi on 16-bit audio) and Kaldi's "
        "``allow_downsample``/``allow_upsample`` (resample audio whose rate differs from "
        "``sample_frequency`` instead of failing)."
    )
    return cls


FbankConfig = _options_dataclass("FbankConfig", fbank, FbankOptions)
MfccConfig = _options_dataclass("MfccConfig", mfcc, MfccOptions)
SpectrogramConfig = _options_dataclass("SpectrogramConfig", spectrogram, SpectrogramOptions)

FEATURE_KINDS: dict[str, tuple[type, Any]] = {
    "fbank": (FbankConfig, fbank),
    "mfcc": (MfccConfig, mfcc),
    "spectrogram": (SpectrogramConfig, spectrogram),
}


def feature_kind(kind: str) -> tuple[type, Any]:
    """``(config dataclass, feature function)`` of ``kind``."""
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"unknown feature type {kind!r} (choose from {', '.join(FEATURE_KINDS)})", field="kind")
    return FEATURE_KINDS[kind]


def feature_config(kind: str, path: str | Path | None = None, *, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Load and check the configuration of a feature type.

    Parameters
    ----------
    kind : ``fbank``, ``mfcc`` or ``spectrogram``.
    path : YAML file (None: defaults).
    overrides : ``key=value`` strings applied after the file.

    Raises
    ------
    ConfigError
        Unknown key (naming key and file), wrong type, or options the feature function
        rejects (tried on a short signal, so that no job starts with a bad config).
    """
    cls, func = feature_kind(kind)
    cfg = load_config(cls, path, overrides=overrides)
    try:
        func(np.zeros(int(cfg.sample_frequency * 0.1) + 1, np.float32), **function_options(cfg))
    except ConfigError as e:
        # without a file, what the defaults do not allow came from --set
        raise ConfigError(str(e), path=path if path is not None else OVERRIDE_SOURCE) from None
    return cfg


def function_options(cfg: Any) -> dict[str, Any]:
    """The options of ``cfg`` that its feature function takes (the extraction's own left out)."""
    extra = {name for name, _, _ in _EXTRACTION_FIELDS}
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in extra}
