import math

import numpy as np
import pytest
import torch

from speechrep.models.pitch import (
    PitchFeatures,
    PitchTracker,
    convert_f0,
    estimate_f0,
    harmonic_excitation,
    log_f0_stats,
    normalised_log_f0,
)
from speechrep.features.logmel import VC_MEL, mel_filterbank

pytestmark = pytest.mark.usefixtures("torch_one_thread")

RATE = 16000


def _harmonic(f0_hz, seconds=0.5, rate=RATE, harmonics=8, noise=0.0, seed=0):
    """A voiced-like signal: harmonics of a (possibly time-varying) F0 with 1/k amplitudes."""
    n = int(seconds * rate)
    f0 = np.broadcast_to(np.asarray(f0_hz, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))
    x = 0.3 * x / np.abs(x).max()
    if noise:
        x = x + noise * np.random.default_rng(seed).standard_normal(n)
    return torch.from_numpy(x.astype(np.float32)), f0


@pytest.mark.parametrize("f0", [70.0, 100.0, 150.0, 220.0, 400.0])
def test_tracker_finds_constant_f0_within_half_a_percent(f0):
    wave, _ = _harmonic(f0)
    track = PitchTracker()(wave[None])[0]
    assert track.shape == (1 + wave.shape[0] // 160,)
    inner = track[4:-4]  # frames away from the reflected edges
    assert bool((inner > 0).all())
    assert float((inner / f0 - 1).abs().max()) < 0.005


def test_tracker_follows_a_glide_and_a_batch_matches_single_runs():
    glide, truth = _harmonic(np.linspace(100.0, 200.0, RATE), seconds=1.0)
    steady, _ = _harmonic(130.0, seconds=1.0, noise=0.01)
    tracker = PitchTracker()
    batch = tracker(torch.stack([glide, steady]))
    torch.testing.assert_close(batch[0], tracker(glide[None])[0])
    torch.testing.assert_close(batch[1], tracker(steady[None])[0])
    centres = np.arange(batch.shape[1]) * 160
    expected = truth[np.clip(centres, 0, len(truth) - 1)]
    got = batch[0].numpy()
    inner = slice(4, -4)
    cents = 1200 * np.abs(np.log2(got[inner] / expected[inner]))
    assert np.median(cents) < 10 and cents.max() < 50
    assert float((batch[1, 4:-4] / 130 - 1).abs().max()) < 0.01  # light noise: still the right period


def test_silence_and_noise_are_unvoiced():
    tracker = PitchTracker()
    silence = torch.zeros(1, 8000)
    assert bool((tracker(silence) == 0).all())
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 8000)).astype(np.float32)) * 0.1
    assert float((tracker(noise) > 0).float().mean()) < 0.1
    # a quiet stretch 60 dB below the loud one is unvoiced, the loud one voiced
    loud, _ = _harmonic(120.0, seconds=0.5)
    wave = torch.cat([loud, loud * 1e-3])[None]
    track = tracker(wave)[0]
    assert bool((track[5:45] > 0).all()) and bool((track[-40:-5] == 0).all())


def test_tracker_rejects_bad_shapes_and_ranges():
    with pytest.raises(ValueError, match="batch, samples"):
        PitchTracker()(torch.zeros(8000))
    with pytest.raises(ValueError, match="two periods"):
        PitchTracker(fmin=20.0, frame_length=1024)


def test_normalised_log_f0_hand_example():
    f0 = torch.tensor([[0.0, 100.0, 200.0, 0.0, 400.0], [100.0, 0.0, 0.0, 0.0, 0.0]])
    out = normalised_log_f0(f0, torch.tensor([5, 5]))
    # median log 200, median absolute deviation log 2
    z = torch.tensor([-1.0, 0.0, 1.0]) / 1.4826
    torch.testing.assert_close(out[0, [1, 2, 4], 0], z)
    assert out[0, [0, 3], 0].abs().sum() == 0
    torch.testing.assert_close(out[0, :, 1], torch.tensor([0.0, 1, 1, 0, 1]))
    # one voiced frame: no contour, voicing kept
    torch.testing.assert_close(out[1, :, 0], torch.zeros(5))
    torch.testing.assert_close(out[1, :, 1], torch.tensor([1.0, 0, 0, 0, 0]))
    # frames past the length are ignored: statistics of the first four frames only
    short = normalised_log_f0(torch.tensor([[100.0, 200.0, 400.0, 800.0, 5000.0]]), torch.tensor([4]))
    # lower median log 200, deviations (log 2, 0, log 2, 2 log 2) -> lower median log 2
    torch.testing.assert_close(short[0, :4, 0], torch.tensor([-1.0, 0.0, 1.0, 2.0]) / 1.4826)
    assert short[0, 4:].abs().sum() == 0
    # the same contour an octave higher gives the same features: the level is removed
    torch.testing.assert_close(normalised_log_f0(2 * f0), normalised_log_f0(f0))


def test_monotone_voice_keeps_a_flat_contour():
    f0 = torch.full((1, 50), 120.0) * (1 + 0.001 * torch.randn(1, 50, generator=torch.Generator().manual_seed(0)))
    assert float(normalised_log_f0(f0)[..., 0].abs().max()) < 0.1


def test_pitch_features_shape_follows_sample_lengths():
    wave, _ = _harmonic(150.0, seconds=0.5)
    batch = torch.stack([wave, wave])
    pf = PitchFeatures("contour", spec=VC_MEL)
    feats = pf(*pf.track(batch, torch.tensor([8000, 4000])))
    assert feats.shape == (2, 51, 2)
    assert feats[1, 26:].abs().sum() == 0  # frames after 4000 samples (25 hops) are outside the utterance
    assert bool((feats[0, 4:-4, 1] == 1).all())
    assert math.isclose(float(feats[0, 4:-4, 0].abs().max()), 0.0, abs_tol=0.2)


def test_log_f0_stats_and_convert_f0():
    f0 = torch.tensor([[0.0, 100.0, 200.0, 400.0, 0.0], [0.0] * 5])
    stats = log_f0_stats(f0)
    torch.testing.assert_close(stats[0], torch.tensor([math.log(200.0), 1.4826 * math.log(2.0)]))
    torch.testing.assert_close(stats[1], torch.tensor([0.0, 0.05]))  # nothing voiced
    # a tracker's octave errors barely move the statistics: one frame of ten at twice the F0
    steady = torch.tensor([[120.0, 121, 119, 122, 118, 120, 240, 121, 119, 120]])
    robust = log_f0_stats(steady)
    assert abs(float(robust[0, 0]) - math.log(120.0)) < 0.01 and float(robust[0, 1]) < 0.06
    # mapped to a voice one octave lower with half the spread
    target = torch.tensor([[math.log(100.0), 0.5 * 1.4826 * math.log(2.0)]])
    out = convert_f0(f0[:1], target)
    torch.testing.assert_close(out[0, 1:4], torch.tensor([100.0 / 2 ** 0.5, 100.0, 100.0 * 2 ** 0.5]))
    assert out[0, 0] == 0 and out[0, 4] == 0
    torch.testing.assert_close(convert_f0(f0[:1], stats[:1]), f0[:1])  # its own statistics: unchanged


def test_harmonic_excitation_is_a_pulse_train_at_f0():
    hop = 160
    f0 = torch.tensor([[100.0] * 20 + [0.0] * 10 + [250.0] * 21])
    exc = harmonic_excitation(f0, hop_length=hop, sample_rate=RATE)
    assert exc.shape == (1, 50 * hop)
    first = torch.nonzero(exc[0, : 19 * hop]).flatten()
    torch.testing.assert_close(torch.diff(first).float(), torch.full((len(first) - 1,), 160.0))  # 100 Hz: every 160 samples
    assert exc[0, 21 * hop: 29 * hop].sum() == 0  # unvoiced: silent
    last = torch.nonzero(exc[0, 31 * hop:]).flatten()
    assert set(torch.diff(last).tolist()) <= {64, 65}  # 250 Hz: every 64 samples
    pf = PitchFeatures("excitation", spec=VC_MEL)
    feats = pf(f0)
    assert feats.shape == (1, 51, 81) and pf.channels == 81
    torch.testing.assert_close(feats[0, :, -1], (f0[0] > 0).float())
    # the comb: at 250 Hz, the log-mel of a voiced frame peaks in the band of the fundamental, not below it
    centres = np.argmax(mel_filterbank(VC_MEL), axis=1) * RATE / VC_MEL.n_fft
    band_f0 = int(np.argmin(np.abs(centres - 250.0)))
    frame = feats[0, 40, :-1]
    assert float(frame[band_f0]) > float(frame[band_f0 // 2]) + 1.0
    # a few frames only still give one feature frame per F0 frame
    assert PitchFeatures("excitation", spec=VC_MEL)(f0[:, :3]).shape == (1, 3, 81)
    with pytest.raises(ValueError, match="unknown pitch mode"):
        PitchFeatures("melody", spec=VC_MEL)


def _pyin(wave: np.ndarray) -> np.ndarray:
    """The evaluation's former F0 tracker (librosa pYIN, same frames), NaN where unvoiced."""
    import librosa

    f0, voiced, _ = librosa.pyin(wave, fmin=60.0, fmax=500.0, sr=RATE, frame_length=1024, hop_length=160, center=True)
    return np.where(voiced, f0, np.nan)


def test_estimate_f0_keeps_the_values_of_the_former_pyin_tracker():
    # a glide 120 -> 240 Hz with a quarter second of silence in the middle
    wave, _ = _harmonic(np.linspace(120.0, 240.0, RATE), seconds=1.0)
    wave = wave.numpy()
    wave = np.concatenate([wave[: RATE // 2], np.zeros(RATE // 4, np.float32), wave[RATE // 2 :]])
    new, old = estimate_f0(wave), _pyin(wave)
    assert new.shape == old.shape == (1 + len(wave) // 160,) and new.dtype == np.float64
    assert (np.isfinite(new) == np.isfinite(old)).mean() > 0.95  # the same frames voiced
    both = np.isfinite(new) & np.isfinite(old)
    cents = 1200 * np.abs(np.log2(new[both] / old[both]))
    assert np.median(cents) < 5 and cents.max() < 15
    assert np.isnan(new[int(0.55 * RATE) // 160 : int(0.7 * RATE) // 160]).all()  # the silence


def test_estimate_f0_equals_the_batched_tracker_and_handles_short_waves():
    wave, _ = _harmonic(150.0)
    track = PitchTracker()(wave[None])[0].double().numpy()
    np.testing.assert_array_equal(estimate_f0(wave.numpy()), np.where(track > 0, track, np.nan))
    short = estimate_f0(np.zeros(300, np.float32))
    assert short.shape == (1 + 300 // 160,) and np.isnan(short).all()
