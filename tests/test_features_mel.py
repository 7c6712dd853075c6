"""librosa-compatible mel mode: filters and mel spectrogram within 1e-4 relative of librosa."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from speechrep.errors import ConfigError
from speechrep.features import mel_filters, melspectrogram
from speechrep.features.mel import hz_to_mel, kaldi_inverse_mel_scale, kaldi_mel_scale, mel_to_hz

librosa = pytest.importorskip("librosa")

RTOL = 1e-4


def _assert_close(ours: np.ndarray, ref: np.ndarray) -> None:
    # relative to each entry, with a floor at 1e-6 of the largest one (float32 rounding of
    # near-zero entries is not a difference)
    assert ours.shape == ref.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize("htk", [False, True])
@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filters_match_librosa(htk, norm):
    ours = mel_filters(sample_rate=16000, n_fft=512, n_mels=64, fmin=50.0, fmax=7600.0, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=64, fmin=50.0, fmax=7600.0, htk=htk, norm=norm)
    _assert_close(ours, ref)


@pytest.mark.parametrize(
    "options",
    [
        dict(sr=16000, n_fft=512, hop_length=160, n_mels=80),
        dict(sr=22050, n_fft=1024, hop_length=256, win_length=800, window="hamming", n_mels=40, htk=True, norm=None),
        dict(sr=16000, n_fft=400, hop_length=100, center=False, power=1.0, n_mels=30, fmin=20.0, fmax=6000.0),
        dict(sr=16000, n_fft=256, hop_length=64, pad_mode="reflect", n_mels=20),
    ],
)
def test_melspectrogram_matches_librosa(options):
    y = np.random.default_rng(0).standard_normal(8000).astype(np.float32) * 0.1
    ours = melspectrogram(y, **options)
    ref = librosa.feature.melspectrogram(y=y, **options).T
    _assert_close(ours, ref)


def test_mel_scales_round_trip():
    f = np.array([0.0, 200.0, 999.0, 1000.0, 4000.0, 8000.0])
    for htk in (False, True):
        np.testing.assert_allclose(mel_to_hz(hz_to_mel(f, htk=htk), htk=htk), f, atol=1e-9)
        np.testing.assert_allclose(hz_to_mel(f, htk=htk), librosa.hz_to_mel(f, htk=htk))
    np.testing.assert_allclose(kaldi_inverse_mel_scale(kaldi_mel_scale(f)), f, atol=1e-9)
    assert kaldi_mel_scale(700.0) == pytest.approx(1127.0 * np.log(2.0))


def test_bad_mel_options():
    with pytest.raises(ConfigError, match="norm"):
        mel_filters(sample_rate=16000, n_fft=512, norm="l2")
    with pytest.raises(ConfigError, match="power"):
        melspectrogram(np.zeros(4000, np.float32), power=3.0)


@pytest.mark.parametrize("num_samples", [2, 700, 16000])
def test_vc_log_mel_matches_librosa(num_samples):
    # the VC log-mel (features/logmel.py) on the filterbank and STFT of this module: within
    # 1e-5 absolute of librosa's magnitude mel, logged with the same floor
    from speechrep.features.logmel import VC_MEL, log_mel

    y = np.random.default_rng(num_samples).standard_normal(num_samples).astype(np.float32) * 0.1
    s = VC_MEL
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa warns on signals shorter than n_fft
        ref = librosa.feature.melspectrogram(
            y=y, sr=s.sample_rate, n_fft=s.n_fft, hop_length=s.hop_length, win_length=s.win_length, window="hann",
            center=True, pad_mode="reflect", power=1.0, n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax, norm="slaney",
        ).T
    np.testing.assert_allclose(log_mel(y), np.log(np.maximum(ref, s.log_floor)), atol=1e-5)
