import math

import numpy as np
import pytest
import torch

from speechrep.models.pitch import PitchFeatures, PitchTracker, normalised_log_f0

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
    logs = torch.log(torch.tensor([100.0, 200.0, 400.0]))
    z = (logs - logs.mean()) / logs.std(unbiased=False)
    torch.testing.assert_close(out[0, [1, 2, 4], 0], z)
    assert out[0, [0, 3], 0].abs().sum() == 0
    torch.testing.assert_close(out[0, :, 1], torch.tensor([0.0, 1, 1, 0, 1]))
    # one voiced frame: no contour, voicing kept
    torch.testing.assert_close(out[1, :, 0], torch.zeros(5))
    torch.testing.assert_close(out[1, :, 1], torch.tensor([1.0, 0, 0, 0, 0]))
    # frames past the length are ignored: statistics of the first three frames only
    short = normalised_log_f0(f0[:1], torch.tensor([3]))
    two = torch.log(torch.tensor([100.0, 200.0]))
    torch.testing.assert_close(short[0, 1:3, 0], (two - two.mean()) / two.std(unbiased=False))
    assert short[0, 3:].abs().sum() == 0
    # the same contour an octave higher gives the same features: the level is removed
    torch.testing.assert_close(normalised_log_f0(2 * f0), normalised_log_f0(f0))


def test_monotone_voice_keeps_a_flat_contour():
    f0 = torch.full((1, 50), 120.0) * (1 + 0.001 * torch.randn(1, 50, generator=torch.Generator().manual_seed(0)))
    assert float(normalised_log_f0(f0)[..., 0].abs().max()) < 0.1


def test_pitch_features_shape_follows_sample_lengths():
    wave, _ = _harmonic(150.0, seconds=0.5)
    batch = torch.stack([wave, wave])
    feats = PitchFeatures()(batch, torch.tensor([8000, 4000]))
    assert feats.shape == (2, 51, 2)
    assert feats[1, 26:].abs().sum() == 0  # frames after 4000 samples (25 hops) are outside the utterance
    assert bool((feats[0, 4:-4, 1] == 1).all())
    assert math.isclose(float(feats[0, 4:-4, 0].abs().max()), 0.0, abs_tol=0.2)
