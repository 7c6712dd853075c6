import numpy as np
import pytest
import torch

from speechrep.errors import ConfigError, DataError
from speechrep.train.pretrained import load_vocoder
from speechrep.vocoder.griffinlim import GriffinLim, griffin_lim, mel_to_linear
from speechrep.features.logmel import VC_MEL, log_mel, mel_filterbank, num_frames, stft_magnitude
from speechrep.models.frontend import LogMel
from speechrep.vocoder.neural import NeuralVocoder, NeuralVocoderConfig, build_vocoder, multi_resolution_stft_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")


SR = VC_MEL.sample_rate


def _harmonic(seconds=0.5, f0=200.0):
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 6)).astype(np.float32)


def _sc(a, b):
    n = min(len(a), len(b))
    return float(np.linalg.norm(a[:n] - b[:n]) / np.linalg.norm(b[:n]))


def test_log_mel_numpy_and_torch_agree():
    wave = np.random.default_rng(0).normal(scale=0.1, size=4000).astype(np.float32)
    a = log_mel(wave)
    b = LogMel()(torch.from_numpy(wave)[None])[0].numpy()
    assert a.shape == (num_frames(4000), VC_MEL.n_mels) == b.shape
    np.testing.assert_allclose(a, b, atol=1e-4)
    assert np.all(log_mel(np.zeros(1600, np.float32)) == pytest.approx(VC_MEL.log_silence))


def test_mel_to_linear_solves_nnls():
    mag = stft_magnitude(_harmonic())
    mel = mag @ mel_filterbank().T
    lin = mel_to_linear(mel)
    assert lin.shape == mag.shape and lin.min() >= 0
    # the mel of the inverse matches the target mel (to 1%); the pseudo-inverse alone would not be >= 0
    assert _sc(lin @ mel_filterbank().T, mel) < 0.01


def test_griffin_lim_reconstructs_harmonic_signal():
    wave = _harmonic()
    mag = stft_magnitude(wave)
    rebuilt = griffin_lim(mag, n_iter=60)
    assert rebuilt.shape == ((len(mag) - 1) * VC_MEL.hop_length,)
    # spectral convergence of the linear magnitude: < 0.15 (measured 0.09 with momentum 0.99)
    assert _sc(stft_magnitude(rebuilt), mag) < 0.15


def test_griffin_lim_vocoder_from_log_mel():
    wave = _harmonic()
    mel = log_mel(wave)
    out = load_vocoder("griffinlim").mel_to_wave(mel)
    assert out.dtype == np.float32 and out.shape == ((len(mel) - 1) * VC_MEL.hop_length,)
    assert np.abs(out).max() <= 1.0
    # spectral convergence of the mel magnitude: < 0.2 (measured 0.13)
    assert _sc(np.exp(log_mel(out)), np.exp(mel)) < 0.2


@pytest.mark.parametrize("bad", [np.zeros((10, 3)), np.zeros(80), np.full((5, 80), np.nan), np.zeros((1, 80))])
def test_vocoder_rejects_bad_mel(bad):
    with pytest.raises(DataError):
        GriffinLim().mel_to_wave(bad)


def test_load_vocoder_unknown(tmp_path):
    with pytest.raises(ConfigError, match="vocoder"):
        load_vocoder(tmp_path / "nope")


def test_mr_stft_loss_zero_for_identical_positive_otherwise():
    res = [[256, 64, 256], [512, 128, 512]]
    x = torch.randn(2, 2048)
    sc, mag = multi_resolution_stft_loss(x, x.clone(), res)
    assert float(sc) == 0.0 and float(mag) == 0.0
    sc, mag = multi_resolution_stft_loss(x + 0.1 * torch.randn_like(x), x, res)
    assert float(sc) > 0 and float(mag) > 0


def _tiny_vocoder(generator="hifigan"):
    cfg = NeuralVocoderConfig(generator=generator, channels=16, resblock_kernel_sizes=[3], resblock_dilations=[1, 3],
                              layers=2, stft_resolutions=[[256, 64, 256], [512, 128, 512]])
    return build_vocoder(cfg)


@pytest.mark.parametrize("generator", ["hifigan", "istft"])
def test_neural_vocoder_shapes_backward_and_loss_falls(generator):
    torch.manual_seed(0)
    model = _tiny_vocoder(generator)
    wave = torch.from_numpy(_harmonic(0.1))[None].repeat(2, 1)
    mel = model.mel(wave)
    assert model.generator(mel).shape == (2, mel.shape[1] * VC_MEL.hop_length)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        out = model({"wave": wave})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert all(p.grad is not None for p in model.generator.parameters())
    assert losses[-1] < 0.8 * losses[0]
    voc = NeuralVocoder(model)
    y = voc.mel_to_wave(log_mel(_harmonic(0.1)))
    assert y.shape == ((mel.shape[1] - 1) * VC_MEL.hop_length,) and np.isfinite(y).all()


def test_neural_vocoder_config_errors():
    with pytest.raises(ConfigError, match="upsample_rates"):
        build_vocoder(NeuralVocoderConfig(upsample_rates=[4, 4]))
    with pytest.raises(ConfigError, match="data.input"):
        _tiny_vocoder()({"feats": torch.zeros(1, 10, 80)})
    with pytest.raises(ConfigError, match="unknown generator 'vocos'"):
        build_vocoder(NeuralVocoderConfig(generator="vocos"))
    with pytest.raises(ConfigError, match="n_fft >= the hop 160") as e:
        build_vocoder(NeuralVocoderConfig(generator="istft", n_fft=128))
    assert e.value.field == "model.args.n_fft"
    build_vocoder(NeuralVocoderConfig(generator="istft", channels=16, layers=1, upsample_rates=[4, 4]))  # not its


def test_istft_generator_places_each_frame_at_its_centre():
    """The head's STFT frame t is centred on sample t * hop, where the log-mel frame t of the
    input was (both ``center=True``): a generator that predicts energy in one frame only puts
    the wave's energy around that sample."""
    from speechrep.vocoder.istft import IstftGenerator

    gen = IstftGenerator(n_mels=80, dim=8, intermediate=8, layers=1, n_fft=640, hop=160)
    with torch.no_grad():  # every bin of every frame silent (log-magnitude -30), phase 0 ...
        gen.head.weight.zero_()
        gen.head.bias.zero_()
        gen.head.bias[:321] = -30.0
    # ... but frame 10, set by the hook: magnitude 1 and phase pi * k in bin k, an impulse at
    # sample n_fft / 2 of the frame, its centre
    k = torch.arange(321, dtype=torch.float32)
    gen.head.register_forward_hook(lambda m, i, out: out.index_put(
        (torch.tensor([0]), torch.tensor([10]), torch.arange(642)), torch.cat([torch.zeros(321), torch.pi * k])))
    wave = gen(torch.zeros(1, 21, 80))[0].detach().numpy()
    assert wave.shape == (21 * 160,)
    energy = wave**2
    assert int(np.argmax(energy)) == 10 * 160
    assert energy[10 * 160 - 2: 10 * 160 + 3].sum() > 0.999 * energy.sum()


def _save_tiny_vocoder(exp, args=None):
    """A tiny untrained neural vocoder saved as an experiment directory; returns the model."""
    from speechrep.train.checkpoint import save_checkpoint
    from speechrep.models.registry import build_model

    args = args or {"channels": 16, "resblock_kernel_sizes": [3], "resblock_dilations": [1]}
    model, _ = build_model("vocoder", args)
    save_checkpoint(exp / "checkpoints", 1, module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    state={"model": {"name": "vocoder", "args": args, "input_dim": None}})
    return model


@pytest.mark.parametrize("args", [None, {"generator": "istft", "channels": 16, "layers": 2}])
def test_neural_vocoder_checkpoint_roundtrip(tmp_path, args):
    model = _save_tiny_vocoder(tmp_path, args)
    voc = load_vocoder(tmp_path)
    assert isinstance(voc, NeuralVocoder) and voc.sample_rate == 16000
    mel = log_mel(_harmonic(0.1))
    with torch.no_grad():
        expected = model.generator(torch.from_numpy(mel)[None])[0, : (len(mel) - 1) * VC_MEL.hop_length].numpy()
    np.testing.assert_allclose(voc.mel_to_wave(mel), expected, atol=1e-6)


def test_the_deleted_adversarial_options_load_at_their_old_default_only():
    from speechrep.models.registry import build_model

    retired = {"adv_weight": 0.0, "fm_weight": 0.0, "disc_periods": [2, 3, 5, 7, 11], "disc_scales": 3, "disc_channels": 16}
    model, cfg = build_model("vocoder", {"channels": 16, **retired})  # what every checkpoint saved before holds
    assert not hasattr(cfg, "adv_weight") and not any(n.startswith("discriminator") for n in model.state_dict())
    with pytest.raises(ConfigError, match="negative_results.md.*got 1.0") as err:
        build_model("vocoder", {"channels": 16, "adv_weight": 1.0})
    assert err.value.field == "model.args.adv_weight"


def test_init_from_fine_tunes_a_trained_generator(tmp_path):
    from speechrep.errors import CheckpointError
    from speechrep.train.checkpoint import load_model
    from speechrep.train.trainer import train
    from tests.test_train_data import write_config, write_feats_dir, write_wave_dir

    d = write_wave_dir(tmp_path)
    args = {"channels": 16, "resblock_kernel_sizes": [3], "resblock_dilations": [1], "stft_resolutions": [[256, 64, 256]]}

    def config(name, model_args, **optim):
        return write_config(tmp_path / f"{name}.yaml", exp_dir=tmp_path / name, data_dir=d, input="wave",
                            model={"name": "vocoder", "args": model_args},
                            optim={"lr": 2e-3, "warmup_steps": 0, "max_steps": 3, **optim})

    first = train(config("first", args))
    trained = load_model(first, which="best")[0].generator.state_dict()
    tune = config("tune", args, lr=1e-12, max_steps=1)
    tuned = load_model(train(tune, overrides=[f"train.init_from={first}"]), which="last")[0]
    for k, v in tuned.generator.state_dict().items():
        torch.testing.assert_close(v, trained[k], atol=1e-6, rtol=0)  # started from the trained weights
    log_text = (tmp_path / "tune" / "log" / "train.log").read_text()
    assert f"initialised from {first}/checkpoints/step_3:" in log_text and " 0 new" in log_text
    fresh = load_model(train(tune, overrides=[f"exp_dir={tmp_path / 'fresh'}"]), which="last")[0]
    assert max((v - trained[k]).abs().max().item() for k, v in fresh.generator.state_dict().items()) > 1e-3

    with pytest.raises(ConfigError, match=r"nope: train\.init_from: not found"):
        train(tune, overrides=[f"train.init_from={tmp_path / 'nope'}", f"exp_dir={tmp_path / 'e1'}"])
    toy = train(write_config(tmp_path / "toy.yaml", exp_dir=tmp_path / "toy", data_dir=d, input="wave",
                             optim={"max_steps": 1, "warmup_steps": 0}))
    with pytest.raises(ConfigError, match=r"train\.init_from: holds a 'toy' model, this run trains 'vocoder'"):
        train(tune, overrides=[f"train.init_from={toy}", f"exp_dir={tmp_path / 'e2'}"])
    with pytest.raises(CheckpointError, match="wrong architecture: tensor 'generator.conv_pre.weight' has shape"):
        train(tune, overrides=[f"train.init_from={first}", "model.args.channels=32", f"exp_dir={tmp_path / 'e3'}"])
    assert not any((tmp_path / e).exists() for e in ("e1", "e2", "e3"))

    # a module the checkpoint lacks (here a speaker adversary added to a trained CPC) keeps its initialisation
    feats = write_feats_dir(tmp_path)
    cpc = {"dim": 8, "context": "gru", "context_dim": 6, "num_steps": 2, "num_negatives": 2}

    def cpc_config(name, model_args):
        return write_config(tmp_path / f"{name}.yaml", exp_dir=tmp_path / name, data_dir=feats,
                            model={"name": "cpc", "args": model_args}, optim={"max_steps": 2, "warmup_steps": 0})

    plain = train(cpc_config("cpc", cpc))
    adv = train(cpc_config("cpc_adv", {**cpc, "speaker_adversary": {"weight": 0.1, "layer": "context"}}),
                overrides=[f"train.init_from={plain}"])
    log_text = (adv / "log" / "train.log").read_text()
    assert f"initialised from {plain}/checkpoints/" in log_text and " new (first: speaker_adversary." in log_text


@pytest.mark.slow
def test_vocoder_recipe_quick_trains_compares_and_scores(tmp_path, synth_tiny_db):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from speechrep.train.logging import read_history

    recipe = Path(__file__).resolve().parents[1] / "egs" / "synth" / "vocoder" / "run.sh"
    env = {**os.environ, "DB": str(synth_tiny_db), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "COMPARE": "true"}
    exp = tmp_path / "exp"
    r = subprocess.run(["bash", str(recipe), "--quick", "--exp", str(exp)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    plain = [h for h in read_history(exp / "vocoder" / "train_history.jsonl") if h["split"] == "train"]
    assert plain and all("loss/mel" in h for h in plain)
    scores = json.loads((exp / "resynth" / "scores.json").read_text())
    assert set(scores) == {"griffinlim", "vocoder", "vocoder_hifigan"}
    import yaml

    assert yaml.safe_load((exp / "vocoder" / "config.yaml").read_text())["model"]["args"]["generator"] == "istft"
    assert yaml.safe_load((exp / "vocoder_hifigan" / "config.yaml").read_text())["model"]["args"]["generator"] == "hifigan"
    assert all(s["utterances"] == 2 and s["mcd_db"] > 0 for s in scores.values())
    assert scores["griffinlim"]["mcd_db"] < scores["vocoder"]["mcd_db"]  # 20 tiny steps are not a vocoder yet
    assert sorted(p.name for p in (exp / "resynth" / "vocoder_hifigan").iterdir())  # its waves were written
    # without COMPARE the recipe trains and scores the default vocoder only
    plain_exp = tmp_path / "plain"
    env.pop("COMPARE")
    r = subprocess.run(["bash", str(recipe), "--quick", "--exp", str(plain_exp), "--stage", "1"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not (plain_exp / "vocoder_hifigan").exists()
    assert set(json.loads((plain_exp / "resynth" / "scores.json").read_text())) == {"griffinlim", "neural"}


def _save_tiny_vc(exp):
    """A tiny untrained vc_adain model (pitch input) saved as an experiment directory."""
    from speechrep.train.checkpoint import save_checkpoint
    from speechrep.models.registry import build_model

    torch.manual_seed(1)
    args = {"channels": 16, "blocks": 1, "content_dim": 4, "speaker_dim": 8, "num_speakers": 2,
            "min_speaker_frames": 5, "pitch": "excitation"}
    model, _ = build_model("vc_adain", args)
    save_checkpoint(exp / "checkpoints", 1, module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    state={"model": {"name": "vc_adain", "args": args, "input_dim": None}})
    return exp


def test_gta_vocoder_reads_the_vc_models_reconstructions_and_learns_the_real_wave(tmp_path, monkeypatch):
    import shutil

    from speechrep.train.checkpoint import attach_frozen_models, load_model, save_checkpoint

    vc_dir = _save_tiny_vc(tmp_path / "vc")
    cfg = NeuralVocoderConfig(channels=16, resblock_kernel_sizes=[3], resblock_dilations=[1],
                              stft_resolutions=[[256, 64, 256]], gta_model=str(vc_dir), gta_fraction=0.5)
    torch.manual_seed(0)
    model = build_vocoder(cfg)
    attach_frozen_models(model)
    wave = torch.from_numpy(np.stack([_harmonic(0.2, 150.0), _harmonic(0.2, 220.0)]))
    seen = []
    forward = model.generator.forward
    monkeypatch.setattr(model.generator, "forward", lambda mel: seen.append(mel) or forward(mel))
    out = model({"wave": wave})
    vc = load_model(vc_dir)[0]
    real = model.mel(wave)
    with torch.no_grad():
        recon = vc.reconstruct(wave[:1])
    # the first half of the batch reads the VC model's reconstruction, the rest its real log-mel
    torch.testing.assert_close(seen[0][:1], recon)
    torch.testing.assert_close(seen[0][1:], real[1:])
    assert (recon - real[:1]).abs().mean() > 0.1  # an untrained model: far from the real log-mel
    # the losses compare the output with the real wave and its log-mel, not with the input
    pred = forward(seen[0])[:, : wave.shape[1]]
    torch.testing.assert_close(out["loss/mel"], torch.nn.functional.l1_loss(model.mel(pred), real))
    out["loss"].backward()
    assert all(p.grad is not None for p in model.generator.parameters())
    frozen = model.frozen("gta", torch.device("cpu"))
    assert all(p.grad is None and not p.requires_grad for p in frozen.parameters())
    assert not any(k.startswith("_gta") for k in model.state_dict())

    # a share that rounds to no crop leaves the batch on real log-mels
    small = build_vocoder(NeuralVocoderConfig(**{**vars(cfg), "gta_fraction": 0.2}))
    small.load_state_dict(model.state_dict())
    torch.testing.assert_close(small({"wave": wave})["loss/mel"],
                               torch.nn.functional.l1_loss(model.mel(forward(real)[:, : wave.shape[1]]), real))
    # saved, it synthesises without its VC model (loaded for training only)
    save_checkpoint(tmp_path / "gta" / "checkpoints", 1, module=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                    state={"model": {"name": "vocoder", "args": vars(cfg), "input_dim": None}})
    shutil.rmtree(vc_dir)
    voc = load_vocoder(tmp_path / "gta")
    assert not any(k.startswith("_frozen") for k in voc.model.__dict__) and np.isfinite(voc.mel_to_wave(real[0].numpy())).all()

    def bad(match, **kw):
        with pytest.raises(ConfigError, match=match):
            attach_frozen_models(build_vocoder(NeuralVocoderConfig(**{**vars(cfg), **kw})))

    bad(r"model\.args\.gta_model: .*none: no checkpoint found", gta_model=str(tmp_path / "none"))
    bad(r"model\.args\.gta_model: .*vc: no checkpoint found", gta_model=str(vc_dir))  # removed above
    _save_tiny_vocoder(tmp_path / "voc")
    bad(r"holds a 'vocoder' model, not a VoiceConversionModel", gta_model=str(tmp_path / "voc"))
    bad(r"gta_fraction must be in \(0, 1\]", gta_fraction=0.0)
