"""Kaldi-compatible fbank/MFCC/spectrogram: parity with kaldi-native-fbank, kernels vs plain numpy.

Parity tolerances (kaldi-native-fbank computes in float32, dither 0): max |diff| <= 5e-3 and
mean |diff| <= 1e-4 on log-fbank and MFCC, with the same number of frames.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import scipy.signal

from speechrep.errors import ConfigError, DataError
from speechrep.features import fbank, feature_window, kaldi_mel_banks, mfcc, spectrogram
from speechrep.features.framing import ENERGY_RAW, ENERGY_WINDOWED, extract_frames, num_frames
from speechrep.features.kaldi import dct_matrix, lifter_coefficients
from speechrep.features.mel import apply_filters

knf = pytest.importorskip("kaldi_native_fbank")

MAX_DIFF, MEAN_DIFF = 5e-3, 1e-4
SR = 16000


def _random(seconds: float = 0.5, seed: int = 0) -> np.ndarray:
    return (3000 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(np.float32)


def _speech_like(seconds: float = 0.6, seed: int = 1) -> np.ndarray:
    """A vowel-like sound as a 16-bit recording holds it: a 120 Hz pulse train through
    three formant resonators, a soft onset, a faint noise floor, rounded to integers, with
    a silent gap (exact zeros) in the middle."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    source = np.zeros(n)
    period = SR / 120.0
    t = 0.0
    while t < n:
        source[int(t)] = 1.0
        t += period * (1.0 + 0.01 * rng.standard_normal())
    y = source
    for freq, bw in ((700, 80), (1200, 90), (2600, 120)):
        r = np.exp(-np.pi * bw / SR)
        y = scipy.signal.lfilter([1.0 - r], [1.0, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], y)
    y = y / np.abs(y).max() * 8000 * np.minimum(1.0, np.arange(n) / 1600) + 3.0 * rng.standard_normal(n)
    y = np.round(y)
    y[n // 2 : n // 2 + 800] = 0.0
    return y.astype(np.float32)


def _knf(cls, opts, wave: np.ndarray) -> np.ndarray:
    comp = cls(opts)
    comp.accept_waveform(SR, wave.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float32)


def _frame_opts(opts, window_type: str, snip_edges: bool) -> None:
    opts.frame_opts.dither = 0.0
    opts.frame_opts.window_type = window_type
    opts.frame_opts.snip_edges = snip_edges


def _assert_parity(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == ref.shape
    diff = np.abs(ours - ref)
    assert diff.max() <= MAX_DIFF, diff.max()
    assert diff.mean() <= MEAN_DIFF, diff.mean()


ENERGY = [(False, True), (True, True), (True, False)]  # (use_energy, raw_energy)


@pytest.mark.parametrize("signal", [_random, _speech_like], ids=["random", "speech_like"])
@pytest.mark.parametrize("window_type", ["povey", "hamming", "hanning", "rectangular", "blackman"])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_fbank_and_mfcc_match_kaldi_native_fbank(signal, window_type, snip_edges):
    wave = signal()
    # cycle the energy settings over the cases instead of multiplying them
    use_energy, raw_energy = ENERGY[(len(window_type) + snip_edges) % 3]
    opts = knf.FbankOptions()
    _frame_opts(opts, window_type, snip_edges)
    opts.mel_opts.num_bins = 40
    opts.use_energy, opts.raw_energy = use_energy, raw_energy
    ours = fbank(wave, dither=0.0, window_type=window_type, snip_edges=snip_edges, num_mel_bins=40,
                 use_energy=use_energy, raw_energy=raw_energy)
    _assert_parity(ours, _knf(knf.OnlineFbank, opts, wave))

    opts = knf.MfccOptions()
    _frame_opts(opts, window_type, snip_edges)
    opts.use_energy, opts.raw_energy = use_energy, raw_energy
    ours = mfcc(wave, dither=0.0, window_type=window_type, snip_edges=snip_edges, use_energy=use_energy, raw_energy=raw_energy)
    _assert_parity(ours, _knf(knf.OnlineMfcc, opts, wave))


@pytest.mark.parametrize(
    "options",
    [
        dict(low_freq=64.0, high_freq=-400.0, num_mel_bins=80, preemphasis_coefficient=0.0),
        dict(frame_length=20.0, frame_shift=12.5, round_to_power_of_two=False, remove_dc_offset=False, num_mel_bins=30),
        dict(use_power=False, use_energy=True, energy_floor=1e9, high_freq=7000.0),
        dict(use_log_fbank=False),
    ],
)
def test_fbank_options_match_kaldi_native_fbank(options):
    wave = _speech_like()
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    for key, value in options.items():
        target = {
            "low_freq": opts.mel_opts, "high_freq": opts.mel_opts,
            "frame_length": opts.frame_opts, "frame_shift": opts.frame_opts,
            "round_to_power_of_two": opts.frame_opts, "remove_dc_offset": opts.frame_opts,
            "preemphasis_coefficient": opts.frame_opts,
        }.get(key, opts)
        name = {"num_mel_bins": "num_bins", "frame_length": "frame_length_ms", "frame_shift": "frame_shift_ms",
                "preemphasis_coefficient": "preemph_coeff"}.get(key, key)
        setattr(opts.mel_opts if key == "num_mel_bins" else target, name, value)
    ours = fbank(wave, dither=0.0, **options)
    ref = _knf(knf.OnlineFbank, opts, wave)
    if not options.get("use_log_fbank", True):
        ours, ref = np.log(ours + 1.0), np.log(ref + 1.0)  # compare linear energies on a log scale
    _assert_parity(ours, ref)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
def test_fbank_matches_on_synthesised_speech(tmp_path):
    import soundfile as sf

    path = tmp_path / "x.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "hello world", "-o", str(path)], check=True)
    wave, rate = sf.read(path, dtype="int16")
    wave = wave.astype(np.float32)
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = rate
    opts.mel_opts.num_bins = 80
    comp = knf.OnlineFbank(opts)
    comp.accept_waveform(rate, wave.tolist())
    comp.input_finished()
    ref = np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float32)
    _assert_parity(fbank(wave, sample_frequency=rate, dither=0.0, num_mel_bins=80), ref)


def test_mel_banks_match_kaldi_native_fbank():
    opts = knf.MelBanksOptions()
    opts.num_bins = 23
    frame = knf.FrameExtractionOptions()
    ref = np.asarray(knf.MelBanks(opts, frame, 1.0).get_matrix())
    ours = kaldi_mel_banks(23, 512)
    assert ours.shape == (23, 257)
    # Kaldi computes the weights in float32
    np.testing.assert_allclose(ours[:, : ref.shape[1]], ref, atol=1e-5)
    # triangles: each FFT bin belongs to at most two filters, the Nyquist bin to none
    assert ((ours > 0).sum(axis=0) <= 2).all() and (ours[:, -1] == 0).all()


def test_dither_is_seeded_and_on_by_default():
    wave = _speech_like()
    a, b = fbank(wave), fbank(wave)
    np.testing.assert_array_equal(a, b)  # seed 0 by default
    assert not np.array_equal(a, fbank(wave, dither=0.0))
    assert not np.array_equal(a, fbank(wave, seed=1))
    g = np.random.default_rng(5)
    np.testing.assert_array_equal(fbank(wave, seed=g), fbank(wave, seed=np.random.default_rng(5)))
    # on a 16-bit scale signal dither 1.0 barely changes voiced frames; silent frames
    # (log of float32 epsilon without dither) are what it is for
    diff = np.abs(a - fbank(wave, dither=0.0))
    assert np.median(diff) < 0.1 and diff.max() > 10.0


def test_spectrogram_is_log_power_with_energy_in_column_zero():
    wave = _random(0.2)
    spec = spectrogram(wave, dither=0.0)
    window = feature_window("povey", 400)
    frames, log_energy = extract_frames(wave, frame_length=400, frame_shift=160, padded_length=512, window=window, energy=ENERGY_RAW)
    power = np.abs(np.fft.rfft(frames.astype(np.float64), axis=1)) ** 2
    assert spec.shape == (num_frames(wave.size, frame_length=400, frame_shift=160), 257)
    np.testing.assert_allclose(spec[:, 1:], np.log(np.maximum(power[:, 1:], np.finfo(np.float32).eps)), atol=2e-3)
    np.testing.assert_allclose(spec[:, 0], log_energy, rtol=1e-6)


def _reference_frames(wave, *, length, shift, padded, snip_edges, remove_dc, preemph, window):
    """Kaldi's ExtractWindow + ProcessWindow, written plainly in float64."""
    n = wave.size
    count = num_frames(n, frame_length=length, frame_shift=shift, snip_edges=snip_edges)
    first = 0 if snip_edges else shift // 2 - length // 2
    out = np.zeros((count, padded))
    raw = np.zeros(count)
    windowed = np.zeros(count)
    for f in range(count):
        idx = first + f * shift + np.arange(length)
        for _ in range(3):  # reflect at both ends
            idx = np.where(idx < 0, -idx - 1, idx)
            idx = np.where(idx >= n, 2 * n - 1 - idx, idx)
        x = wave[idx].astype(np.float64)
        if remove_dc:
            x = x - x.mean()
        raw[f] = np.log(max(np.dot(x, x), np.finfo(np.float32).eps))
        x = np.concatenate([[x[0] - preemph * x[0]], x[1:] - preemph * x[:-1]])
        out[f, :length] = x * window
        windowed[f] = np.log(max(np.dot(out[f], out[f]), np.finfo(np.float32).eps))
    return out, raw, windowed


@pytest.mark.nojit
@pytest.mark.parametrize("snip_edges", [True, False])
@pytest.mark.parametrize("remove_dc,preemph", [(True, 0.97), (False, 0.0)])
def test_frame_kernel_matches_plain_reference(snip_edges, remove_dc, preemph):
    wave = _speech_like(0.06) + 100.0  # a DC offset, and the silent gap
    window = feature_window("hamming", 300)
    ref, raw, windowed = _reference_frames(
        wave, length=300, shift=110, padded=512, snip_edges=snip_edges, remove_dc=remove_dc, preemph=preemph, window=window
    )
    common = dict(frame_length=300, frame_shift=110, padded_length=512, window=window, snip_edges=snip_edges,
                  remove_dc_offset=remove_dc, preemphasis_coefficient=preemph)
    frames, e_raw = extract_frames(wave, energy=ENERGY_RAW, **common)
    _, e_win = extract_frames(wave, energy=ENERGY_WINDOWED, **common)
    assert frames.shape == ref.shape and frames.dtype == np.float32
    scale = np.abs(ref).max()
    np.testing.assert_allclose(frames, ref, atol=1e-5 * scale)
    np.testing.assert_allclose(e_raw, raw, rtol=1e-6)
    np.testing.assert_allclose(e_win, windowed, rtol=1e-6)


@pytest.mark.nojit
def test_frames_of_a_signal_shorter_than_a_frame_reflect_repeatedly():
    wave = np.arange(1, 6, dtype=np.float32)  # 5 samples, frames of 8
    frames, _ = extract_frames(wave, frame_length=8, frame_shift=4, padded_length=8, window=np.ones(8, np.float32),
                               snip_edges=False, remove_dc_offset=False, preemphasis_coefficient=0.0)
    # frame 0 starts at 4 // 2 - 8 // 2 = -2: samples -2..5 reflect to 1 0 0 1 2 3 4 4
    np.testing.assert_array_equal(frames[0], [2, 1, 1, 2, 3, 4, 5, 5])
    assert frames.shape == (1, 8)


@pytest.mark.nojit
def test_mel_and_dct_kernels_match_dense_products():
    rng = np.random.default_rng(0)
    spec = (rng.standard_normal((7, 257)) + 1j * rng.standard_normal((7, 257))).astype(np.complex64)
    banks = kaldi_mel_banks(23, 512)
    power = np.abs(spec.astype(np.complex128)) ** 2
    np.testing.assert_allclose(apply_filters(spec, banks), power @ banks.T, rtol=1e-5)
    np.testing.assert_allclose(apply_filters(spec, banks, use_power=False), np.sqrt(power) @ banks.T, rtol=1e-5)
    logmel = apply_filters(spec, banks, use_log=True, offset=1)[:, 1:]
    np.testing.assert_allclose(logmel, np.log(power @ banks.T), atol=1e-5)
    # orthonormal DCT-II (scipy's) with Kaldi's lifter
    dct = dct_matrix(13, 23)
    np.testing.assert_allclose(dct @ dct.T, np.eye(13), atol=1e-12)
    import scipy.fft

    x = rng.standard_normal(23)
    np.testing.assert_allclose(dct @ x, scipy.fft.dct(x, norm="ortho")[:13], atol=1e-12)
    np.testing.assert_allclose(lifter_coefficients(3, 22.0), 1 + 11 * np.sin(np.pi * np.arange(3) / 22))


def test_frame_counts_follow_kaldi():
    assert num_frames(399, frame_length=400, frame_shift=160) == 0
    assert num_frames(400, frame_length=400, frame_shift=160) == 1
    assert num_frames(16000, frame_length=400, frame_shift=160) == 98
    assert num_frames(16000, frame_length=400, frame_shift=160, snip_edges=False) == 100
    assert fbank(np.zeros(399, np.float32)).shape == (0, 23)
    assert mfcc(_random(0.1), dither=0.0).shape == (8, 13)


@pytest.mark.parametrize(
    "options,field",
    [
        (dict(window_type="kaiser"), "window_type"),
        (dict(low_freq=9000.0), "low_freq"),
        (dict(high_freq=-9000.0), "high_freq"),
        (dict(num_mel_bins=400), "num_mel_bins"),
        (dict(frame_shift=0.0), "frame_shift"),
    ],
)
def test_bad_options_name_the_option(options, field):
    with pytest.raises(ConfigError, match=field):
        fbank(_random(0.1), **options)


def test_bad_waves_are_rejected():
    wave = _random(0.1)
    wave[10] = np.nan
    with pytest.raises(DataError, match="NaN"):
        fbank(wave)
    with pytest.raises(DataError, match="1-D"):
        mfcc(np.zeros((2, 800), np.float32))
    with pytest.raises(ConfigError, match="num_ceps"):
        mfcc(_random(0.1), num_ceps=30)


def test_warmup_compiles_every_kernel():
    from speechrep.features import warmup
    from speechrep.features.deltas import _deltas_kernel
    from speechrep.features.framing import _frames_kernel
    from speechrep.features.kaldi import _dct_kernel
    from speechrep.features.mel import _mel_kernel, _power_kernel

    warmup()
    for kernel in (_frames_kernel, _mel_kernel, _power_kernel, _dct_kernel, _deltas_kernel):
        assert kernel.signatures, kernel


@pytest.mark.parametrize("func", [fbank, mfcc, spectrogram])
def test_block_processing_matches_one_block(func, monkeypatch):
    import speechrep.features.kaldi as kaldi

    wave = _speech_like(0.3)
    whole = func(wave, snip_edges=False, energy_floor=10.0)  # dither on: the noise stream continues across blocks
    monkeypatch.setattr(kaldi, "BLOCK_FRAMES", 7)
    np.testing.assert_array_equal(func(wave, snip_edges=False, energy_floor=10.0), whole)
