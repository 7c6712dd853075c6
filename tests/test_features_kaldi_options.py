"""Kaldi's option structs: declared once, shared by fbank/MFCC/spectrogram, and equal to the
flat keyword API and to the flat keys of the shipped feature configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from speechrep.features import fbank, mfcc, spectrogram
from speechrep.features.kaldi_options import (
    EnergyOptions,
    FbankOptions,
    FrameOptions,
    MelOptions,
    MfccOptions,
    SpectrogramOptions,
)
from speechrep.features.options import feature_config, function_options

ROOT = Path(__file__).resolve().parents[1]


def _wave() -> np.ndarray:
    return (3000 * np.random.default_rng(0).standard_normal(4000)).astype(np.float32)


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def test_feature_options_are_the_shared_structs_in_kaldi_order():
    frame, mel, energy = _names(FrameOptions), _names(MelOptions), _names(EnergyOptions)
    assert _names(FbankOptions) == frame + mel + energy + ["use_energy", "use_log_fbank", "use_power"]
    assert _names(MfccOptions) == frame + mel + energy + ["num_ceps", "cepstral_lifter", "use_energy"]
    assert _names(SpectrogramOptions) == frame + energy
    # Kaldi's defaults, including the one default the two types disagree on
    assert FbankOptions().num_mel_bins == MfccOptions().num_mel_bins == 23
    assert FbankOptions().use_energy is False and MfccOptions().use_energy is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        FbankOptions().dither = 0.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("func", "cls", "opts"),
    [
        (fbank, FbankOptions, {"num_mel_bins": 40, "use_energy": True, "window_type": "hamming"}),
        (mfcc, MfccOptions, {"num_ceps": 20, "num_mel_bins": 30, "cepstral_lifter": 0.0}),
        (spectrogram, SpectrogramOptions, {"frame_length": 20.0, "raw_energy": False}),
    ],
)
def test_a_struct_and_keywords_give_the_same_features(func, cls, opts):
    wave = _wave()
    flat = func(wave, dither=0.0, **opts)
    assert np.array_equal(func(wave, options=cls(dither=0.0, **opts)), flat)
    # keywords replace the struct's fields
    assert np.array_equal(func(wave, options=cls(**opts), dither=0.0), flat)
    assert not np.array_equal(func(wave, dither=0.0), flat)


def test_a_misspelt_keyword_or_another_struct_is_refused():
    with pytest.raises(TypeError, match="num_mel_bin'.*FbankOptions"):
        fbank(_wave(), num_mel_bin=40)
    with pytest.raises(TypeError, match="num_ceps'.*FbankOptions"):
        fbank(_wave(), num_ceps=13)  # an MFCC option
    with pytest.raises(TypeError, match="must be a FbankOptions, got MfccOptions"):
        fbank(_wave(), options=MfccOptions())


@pytest.mark.parametrize(("kind", "func", "cls"), [("fbank", fbank, FbankOptions), ("mfcc", mfcc, MfccOptions)])
def test_shipped_flat_configs_load_into_the_structs(kind, func, cls):
    cfg = feature_config(kind, ROOT / "conf" / f"{kind}.yaml")
    options = function_options(cfg)
    assert set(options) == set(_names(cls))
    struct = cls(**options)
    assert struct.sample_frequency == 16000 and struct.num_mel_bins == (80 if kind == "fbank" else 23)
    wave = _wave()
    assert np.array_equal(func(wave, **options), func(wave, options=struct))
