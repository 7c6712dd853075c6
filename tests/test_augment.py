"""Waveform augmentation: each transform measured doing what it says, the data.augment
config (errors naming the key), per-crop seeding, resume, and the CPC augmented past."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from speechrep.data.augment import (Augmenter, add_noise, band_reject, change_speed, colored_noise, formant_shift,
                                    parse_augment, pitch_shift, reverberate, room_impulse_response)
from speechrep.errors import ConfigError, DataError
from speechrep.models.pitch import PitchTracker
from speechrep.train.config import resolve_config
from speechrep.train.data import CropDataset, load_corpus
from speechrep.train.sampler import CropSampler
from speechrep.train.logging import read_history
from speechrep.train.trainer import train
from tests.test_train_data import write_config, write_wave_dir

SR = 16000


def _harmonic(f0: float, seconds: float = 1.0) -> np.ndarray:
    """Sum of 10 harmonics of ``f0`` with amplitudes 1/k."""
    t = np.arange(int(seconds * SR)) / SR
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11)).astype(np.float32) * 0.2


def _f0(x: np.ndarray) -> float:
    """Median F0 of the voiced frames (the project's YIN tracker), edges left out."""
    f0 = PitchTracker(sample_rate=SR)(torch.from_numpy(np.asarray(x, dtype=np.float32))[None])[0, 10:-10]
    assert (f0 > 0).float().mean() > 0.9
    return float(f0[f0 > 0].median())


def _formant_voice(f0: float = 120.0, formants=(700.0, 1800.0), seconds: float = 1.0) -> np.ndarray:
    """Impulse train at ``f0`` through two-pole resonators (bandwidth 100 Hz) in cascade."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    x = np.zeros(n)
    x[:: int(SR / f0)] = 1.0
    for f in formants:
        r = np.exp(-np.pi * 100.0 / SR)
        x = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (x / np.abs(x).max() * 0.5).astype(np.float32)


def _lpc_peaks(x: np.ndarray, order: int = 8) -> np.ndarray:
    """Frequencies (Hz) of the LPC envelope's peaks: the formants."""
    from scipy.linalg import solve_toeplitz
    from scipy.signal import find_peaks, freqz

    x = x.astype(np.float64) * np.hanning(len(x))
    r = np.correlate(x, x, "full")[len(x) - 1 : len(x) + order]
    a = np.concatenate([[1.0], solve_toeplitz(r[:-1], -r[1:])])  # autocorrelation method
    w, h = freqz([1.0], a, worN=4096, fs=SR)
    peaks, _ = find_peaks(20 * np.log10(np.abs(h)))
    return w[peaks]


@pytest.mark.parametrize("semitones", [-3.0, 3.0])
def test_pitch_shift_moves_f0_by_the_semitone_ratio_and_keeps_the_length(semitones):
    x = _harmonic(150.0)
    y = pitch_shift(x, SR, semitones)
    assert len(y) == len(x)
    assert _f0(y) / _f0(x) == pytest.approx(2 ** (semitones / 12), rel=0.02)


@pytest.mark.parametrize("factor", [0.85, 1.2])
def test_formant_shift_moves_the_envelope_peaks_and_keeps_f0(factor):
    x = _formant_voice()
    y = formant_shift(x, SR, factor)
    before, after = _lpc_peaks(x), _lpc_peaks(y)
    assert len(before) >= 2 and len(after) >= 2
    assert before[:2] == pytest.approx([700.0, 1800.0], rel=0.05)
    assert after[:2] == pytest.approx(before[:2] * factor, rel=0.06)
    assert _f0(y) == pytest.approx(_f0(x), rel=0.02)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_divides_the_duration_and_scales_f0(factor):
    x = _harmonic(150.0)
    y = change_speed(x, SR, factor)
    assert len(y) == pytest.approx(len(x) / factor, abs=1)
    assert _f0(y) / _f0(x) == pytest.approx(factor, rel=0.02)


@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr", [0.0, 10.0])
def test_noise_is_added_at_the_drawn_snr(kind, snr):
    x = _harmonic(150.0)
    y = add_noise(x, colored_noise(len(x), kind, np.random.default_rng(0)), snr)
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert measured == pytest.approx(snr, abs=0.5)


def test_pink_noise_has_equal_power_per_octave_and_white_doubles():
    from scipy.signal import welch

    def octave_ratio_db(kind: str) -> float:
        f, p = welch(colored_noise(4 * SR, kind, np.random.default_rng(1)), fs=SR, nperseg=2048)
        band = lambda lo: p[(f >= lo) & (f < 2 * lo)].sum()  # noqa: E731
        return 10 * np.log10(band(2000.0) / band(500.0))  # two octaves apart

    assert octave_ratio_db("pink") == pytest.approx(0.0, abs=1.0)
    assert octave_ratio_db("white") == pytest.approx(10 * np.log10(4), abs=1.0)


def _schroeder_rt60(h: np.ndarray) -> float:
    """RT60 from the energy decay curve (backward integration), T20 fit from -5 to -25 dB."""
    edc = np.cumsum((h**2)[::-1])[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    sel = (edc_db <= -5) & (edc_db >= -25)
    t = np.flatnonzero(sel) / SR
    slope = np.polyfit(t, edc_db[sel], 1)[0]  # dB per second
    return -60.0 / slope


@pytest.mark.parametrize("rt60", [0.2, 0.5, 1.0])
def test_room_impulse_response_has_the_target_rt60(rt60):
    h = room_impulse_response(rt60, SR, np.random.default_rng(2))
    assert _schroeder_rt60(h) == pytest.approx(rt60, rel=0.2)
    x = _harmonic(150.0)
    y = reverberate(x, h)
    assert len(y) == len(x) and np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-3)
    assert np.abs(y - x).max() > 0.05  # the tail smears the signal


def test_band_reject_removes_the_band_and_keeps_the_rest():
    from scipy.signal import welch

    x = np.random.default_rng(3).standard_normal(SR).astype(np.float32)
    y = band_reject(x, SR, 1000.0, 1500.0)

    def band_db(sig, lo, hi):
        f, p = welch(sig, fs=SR, nperseg=1024)
        return 10 * np.log10(p[(f >= lo) & (f <= hi)].sum())

    assert band_db(x, 1000, 1500) - band_db(y, 1000, 1500) > 20
    assert band_db(y, 3000, 5000) == pytest.approx(band_db(x, 3000, 5000), abs=0.5)


# -- the chain, seeding and the data pipeline ----------------------------------------------

ALL = [{"name": "pitch", "semitones": [-2, 2], "p": 0.5}, {"name": "formant", "factor": [0.9, 1.1], "p": 0.5},
       {"name": "speed", "factor": [0.95, 1.05]}, {"name": "noise", "snr": [10, 20], "kind": "pink"},
       {"name": "reverb", "rt60": [0.2, 0.4], "p": 0.5}, {"name": "bandreject", "freq": [500, 3000],
                                                          "width": [100, 400]}]


def test_augmenter_draws_depend_only_on_seed_and_key():
    x = _harmonic(150.0, 0.5)
    aug = Augmenter(parse_augment(ALL, sample_rate=SR), sample_rate=SR, seed=7)
    same = Augmenter(parse_augment(ALL, sample_rate=SR), sample_rate=SR, seed=7)
    other = Augmenter(parse_augment(ALL, sample_rate=SR), sample_rate=SR, seed=8)
    a = aug(x, 5)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, same(x, 5))
    np.testing.assert_array_equal(aug(x, 6), aug(x, 6))
    assert not np.array_equal(a, aug(x, 6)) and not np.array_equal(a, other(x, 5))
    assert aug.input_length(1000) == 1051  # reads enough for the fastest speed


def test_noise_recordings_from_a_data_dir(tmp_path):
    d = write_wave_dir(tmp_path)
    [t] = parse_augment([{"name": "noise", "kind": "recordings", "dir": str(d), "snr": [5, 5]}], sample_rate=SR)
    aug = Augmenter([t], sample_rate=SR, seed=0)
    x = _harmonic(150.0, 0.5)  # longer than every recording: they repeat
    y = aug(x, 0)
    measured = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean((y - x).astype(np.float64) ** 2))
    assert measured == pytest.approx(5.0, abs=0.5)
    noise = y - x  # a recording (a sine of 200, 300 or 400 Hz), not white noise
    spec = np.abs(np.fft.rfft(noise))
    peak = np.fft.rfftfreq(len(noise), 1 / SR)[spec.argmax()]
    assert min(abs(peak - f) for f in (200, 300, 400)) < 3


def _corpus(tmp_path):
    d = write_wave_dir(tmp_path, lengths=(6400, 5600, 4800))
    return load_corpus(d, input="wave", crop=3200, speakers=["spkA", "spkB", "spkC"])


def test_dataset_sides_both_and_past(tmp_path):
    c = _corpus(tmp_path)
    spec = (np.array([0, 4]), np.array([100, 0]), np.array([10, 11]))
    clean = CropDataset(c, input="wave", crop=3200)[spec[:2]]
    aug = Augmenter(parse_augment([{"name": "noise", "snr": [0, 0]}], sample_rate=SR), sample_rate=SR, seed=0)
    both = CropDataset(c, input="wave", crop=3200, augment=aug)[spec]
    past = CropDataset(c, input="wave", crop=3200, augment=aug, augment_side="past")[spec]
    assert "wave_aug" not in both and set(past) == {"wave", "wave_aug", "speaker", "lengths"}
    torch.testing.assert_close(past["wave"], clean["wave"])
    torch.testing.assert_close(past["wave_aug"], both["wave"])
    noise = both["wave"] - clean["wave"]
    snr = 10 * torch.log10(clean["wave"].pow(2).mean(1) / noise.pow(2).mean(1))
    assert snr.tolist() == pytest.approx([0.0, 0.0], abs=0.5)


def test_speed_up_reads_a_longer_span_and_fills_the_crop(tmp_path):
    c = _corpus(tmp_path)
    aug = Augmenter(parse_augment([{"name": "speed", "factor": [1.5, 1.5]}], sample_rate=SR), sample_rate=SR, seed=0)
    n = int(c.lengths[0])
    # a crop at the very end of the utterance is moved back to fit the longer read
    batch = CropDataset(c, input="wave", crop=3200, augment=aug)[(np.array([0]), np.array([n - 3200]), np.array([0]))]
    assert batch["lengths"].tolist() == [3200]
    x = c.span(0, n - 4801, n).numpy()
    np.testing.assert_allclose(batch["wave"][0].numpy(), change_speed(x, SR, 1.5)[:3200], atol=1e-6)


def test_resumed_sampler_gives_the_same_augmented_batches(tmp_path):
    c = _corpus(tmp_path)
    aug = Augmenter(parse_augment(ALL, sample_rate=SR), sample_rate=SR, seed=3)
    ds = CropDataset(c, input="wave", crop=3200, augment=aug)
    kw = dict(crop=3200, batch_size=2, seed=3, numbered=True)

    def stream(sampler, n):
        it = iter(sampler)
        return [ds[next(it)]["wave"] for _ in range(n)]

    full = stream(CropSampler(c.lengths, c.speaker, **kw), 6)
    resumed = stream(CropSampler(c.lengths, c.speaker, start=4, **kw), 2)
    for a, b in zip(full[4:], resumed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # one batch of 4 = two batches of 2 (accumulation): positions number the global stream
    big = stream(CropSampler(c.lengths, c.speaker, **{**kw, "batch_size": 4}), 1)[0]
    torch.testing.assert_close(big, torch.cat(full[:2]), rtol=0, atol=0)


# -- config and Trainer ----------------------------------------------------------------------

def _yaml(tmp_path: Path, augment, **data) -> Path:
    cfg = {"exp_dir": str(tmp_path / "exp"), "data": {"train": str(tmp_path), "input": "wave", "augment": augment,
                                                       **data},
           "model": {"name": "toy"}}
    path = tmp_path / "conf.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("augment, data, field, words", [
    ([{"name": "pitch"}, {"name": "echo"}], {}, "data.augment[1].name", "unknown augmentation 'echo'"),
    ([{"semitones": [0, 1]}], {}, "data.augment[0].name", "missing"),
    ([{"name": "pitch"}, {"name": "reverb", "rt60": [0.2, 5.0]}], {}, "data.augment[1].rt60", "<= 2"),
    ([{"name": "pitch", "semitones": [3, -3]}], {}, "data.augment[0].semitones", "low <= high"),
    ([{"name": "noise", "p": 1.5}], {}, "data.augment[0].p", "[0, 1]"),
    ([{"name": "noise", "kind": "recordings"}], {}, "data.augment[0].dir", "noise data directory"),
    ([{"name": "pitch", "semitone": [0, 1]}], {}, "data.augment[0].semitone", "unknown config key"),
    ([{"name": "speed", "factor": 1.1}], {}, "data.augment[0].factor", "a list of 2 values"),
    (["reverb"], {}, "data.augment[0]", "expected a mapping"),
    ([{"name": "bandreject", "freq": [100, 7000], "width": [100, 2000]}], {}, "data.augment[0].width", "8000 Hz"),
    ([{"name": "reverb"}], {"input": "feats"}, "data.augment", "needs data.input: wave"),
    ([{"name": "speed"}], {"augment_side": "past"}, "data.augment_side", "no speed"),
])
def test_config_errors_name_the_key(tmp_path, augment, data, field, words):
    path = _yaml(tmp_path, augment, **data)
    with pytest.raises(ConfigError) as e:
        resolve_config(path)
    # one line: the file, the key (as the field, or quoted in the project's unknown-key message), the problem
    assert str(e.value).startswith(f"{path}: {field}: ") or f"unknown config key '{field}'" in str(e.value)
    assert str(e.value).startswith(f"{path}: ") and words in str(e.value)
    assert "\n" not in str(e.value)


def test_override_errors_name_set(tmp_path):
    path = _yaml(tmp_path, [])
    with pytest.raises(ConfigError, match=r"^--set: data.augment\[0\].rt60: "):
        resolve_config(path, ["data.augment=[{name: reverb, rt60: [0, 1]}]"])


def _losses(exp: Path) -> list[float]:
    return [r["loss"] for r in read_history(exp / "train_history.jsonl") if r["split"] == "train"]


def test_trainer_resume_draws_the_same_augmentations(tmp_path):
    d = write_wave_dir(tmp_path)
    common = dict(data_dir=d, input="wave", data={"augment": ALL}, optim={"max_steps": 6}, train={"ckpt_every": 3})
    ref = train(write_config(tmp_path / "ref.yaml", exp_dir=tmp_path / "ref", **common))
    clean = train(write_config(tmp_path / "clean.yaml", exp_dir=tmp_path / "clean",
                               **{**common, "data": {}}))
    cfg = write_config(tmp_path / "run.yaml", exp_dir=tmp_path / "run", **{**common, "optim": {"max_steps": 3}})
    train(cfg)
    run = train(cfg, overrides=["optim.max_steps=6"], resume=True)
    assert _losses(run) == _losses(ref) and _losses(ref) != _losses(clean)
    digest = lambda e: json.loads((e / "train_summary.json").read_text())["weights_sha256"]  # noqa: E731
    assert digest(run) == digest(ref)


def test_past_side_needs_a_model_that_reads_wave_aug(tmp_path):
    d = write_wave_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, input="wave",
                       data={"augment": [{"name": "reverb"}], "augment_side": "past"})
    with pytest.raises(ConfigError, match=r"data.augment_side: past needs a model that reads"):
        train(cfg)
    assert not (tmp_path / "exp").exists()


def _tiny_cpc(**extra):
    from speechrep.models.cpc import CPC, CPCConfig

    torch.manual_seed(0)
    return CPC(CPCConfig(dim=16, context="gru", context_dim=16, num_steps=2, num_negatives=4, negatives="batch",
                         **extra))


def test_cpc_context_reads_wave_aug_and_targets_stay_clean():
    model = _tiny_cpc()
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3200, generator=g), torch.randn(2, 3200, generator=g)
    neg = torch.randint(0, 2 * 20, (2, 18, 4), generator=g)

    def loss(batch):
        return float(model(batch, neg_idx=neg)["loss"].detach())

    z_a, z_b = model.encoder(a), model.encoder(b)
    assert z_a.shape[1] == 20  # the fixed negatives index 2 x 20 frames
    assert loss({"wave": a, "wave_aug": a}) == loss({"wave": a})
    mixed = loss({"wave": a, "wave_aug": b})
    assert mixed not in (loss({"wave": a}), loss({"wave": b}))
    # by hand: predictions from the context of b, scored against the codes of a
    from speechrep.objectives.infonce import infonce_from_logits, infonce_logits

    pred = model.predictor(model.context(z_b)[:, :18])
    expected = infonce_from_logits(infonce_logits(pred, z_a, neg, within_sequence=False))[0]
    assert mixed == pytest.approx(float(expected.detach()), rel=1e-6)


CPC_ARGS = {"dim": 16, "context": "gru", "context_dim": 16, "num_steps": 2, "num_negatives": 4, "negatives": "batch"}


@pytest.mark.parametrize("name, args, side", [
    ("cpc", CPC_ARGS, "past"),
    ("vqcpc", {**CPC_ARGS, "bottleneck": {"kind": "vq", "code_dim": 16, "num_codes": 8}}, "past"),
    ("dim", {"dim": 16, "code_dim": 8, "critic_dim": 16}, "both"),
    ("autoencoder", {"dim": 16, "code_dim": 8, "critic_dim": 16}, "both"),
])
def test_trainer_models_train_on_augmented_crops(tmp_path, name, args, side):
    d = write_wave_dir(tmp_path, lengths=(6400, 5600, 4800))
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, input="wave", crop=3200,
                       data={"augment": [{"name": "pitch"}, {"name": "reverb", "p": 0.5}], "augment_side": side},
                       model={"name": name, "args": args}, optim={"max_steps": 2})
    exp = train(cfg)
    assert len(_losses(exp)) == 2 and all(np.isfinite(_losses(exp)))


def test_vqcpc_adds_the_bottleneck_loss_of_the_augmented_pass():
    from speechrep.models.registry import build_model

    torch.manual_seed(0)
    args = {"dim": 16, "context": "gru", "context_dim": 16, "num_steps": 2, "num_negatives": 4, "negatives": "batch",
            "bottleneck": {"kind": "vq", "code_dim": 16, "num_codes": 8}}
    model, _ = build_model("vqcpc", args, input_dim=None, num_speakers=2)
    model.eval()  # no codebook updates between the calls
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3200, generator=g), torch.randn(2, 3200, generator=g)
    neg = torch.randint(0, 40, (2, 18, 4), generator=g)
    clean = model({"wave": a}, neg_idx=neg)
    mixed = model({"wave": a, "wave_aug": b}, neg_idx=neg)
    bottleneck_b = model.codes({"wave": b})[1]["loss"]
    expected = float(clean["loss/bottleneck"] + bottleneck_b.detach())
    assert float(mixed["loss/bottleneck"]) == pytest.approx(expected, rel=1e-5)


def test_missing_noise_dir_stops_the_run_before_anything_is_written(tmp_path):
    d = write_wave_dir(tmp_path)
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=d, input="wave",
                       data={"augment": [{"name": "reverb"}, {"name": "noise", "kind": "recordings",
                                                              "dir": str(tmp_path / "nowhere")}]})
    with pytest.raises(DataError, match=r"nowhere: data.augment\[1\].dir: noise data directory not found"):
        train(cfg)
    assert not (tmp_path / "exp").exists()
