import pytest
import torch

from speechrep.errors import ConfigError, SpeechrepError
from speechrep.models.speaker import _TDNN_LAYERS, SpeakerVerifier, SpeakerVerifierConfig
from speechrep.models.bottlenecks import BottleneckConfig
from speechrep.models.vc import denormalise_mel, normalise_mel, others_mean
from speechrep.models.vc_adain import VCAdaIN, VCAdaINConfig
from speechrep.models.vc_adversarial import VCAdversarial, VCAdversarialConfig
from speechrep.models.vc_vq import VCVQ, VCVQConfig
from speechrep.objectives.adversarial import grad_reverse
from speechrep.objectives.speaker_consistency import speaker_consistency
from speechrep.train.checkpoint import attach_frozen_models

pytestmark = pytest.mark.usefixtures("torch_one_thread")


FAMILIES = {"vc_adain": VCAdaIN, "vc_adversarial": VCAdversarial, "vc_vq": VCVQ}
TINY = dict(channels=16, blocks=1, content_dim=4, speaker_dim=8, num_speakers=2, min_speaker_frames=5)


def _batch(n=4, samples=3200):
    g = torch.Generator().manual_seed(0)
    # two "speakers": different spectral tilt (low-passed vs white noise)
    wave = torch.randn(n, samples, generator=g) * 0.1
    wave[1::2] = torch.nn.functional.avg_pool1d(wave[1::2, None], 5, 1, 2)[:, 0]
    return {"wave": wave, "speaker": torch.arange(n) % 2, "lengths": torch.full((n,), samples)}


def _train(model, batch, steps=10, lr=3e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    return losses, out


def test_mel_normalisation_roundtrip():
    m = torch.randn(2, 3, 80) * 3 - 5
    torch.testing.assert_close(denormalise_mel(normalise_mel(m)), m)


@pytest.mark.parametrize(
    "family,cfg",
    [("vc_adain", VCAdaINConfig(**TINY)), ("vc_adversarial", VCAdversarialConfig(**TINY)),
     ("vc_vq", VCVQConfig(**TINY, bottleneck=BottleneckConfig(num_codes=8, code_dim=4, restart_every=0)))],
)
def test_vc_family_shapes_backward_loss_falls(family, cfg):
    torch.manual_seed(0)
    model = FAMILIES[family](cfg)
    batch = _batch()
    losses, out = _train(model, batch)
    assert losses[-1] < 0.8 * losses[0]
    assert all(v.dim() == 0 for v in out.values())
    if family == "vc_adversarial":
        assert {"adv/ce", "adv/acc"} <= set(out)
        # the classifier and the encoder both receive gradients (the encoder's through the reversal)
        assert model.classifier.out.weight.grad is not None
    mel = model.mel(batch["wave"])  # (4, 21, 80)
    assert model.content_code(mel).shape == (4, mel.shape[1], cfg.content_dim)
    assert model.encode(batch).shape == (4, mel.shape[1], cfg.content_dim)
    if family == "vc_vq":
        assert {"vq/perplexity", "vq/used_codes"} <= set(out)
        units = model.units(mel)
        assert units.shape == mel.shape[:2] and int(units.max()) < 8
        model.on_step_end(1)
    else:
        with pytest.raises(SpeechrepError, match="no discrete units"):
            model.units(mel)
    spk = model.speaker_code(mel)
    assert spk.shape == (4, cfg.speaker_dim)
    assert model.convert(mel[:1], spk[1:2]).shape == (1, mel.shape[1], 80)


def test_adversarial_gradient_reaches_encoder_reversed():
    torch.manual_seed(0)
    cfg = VCAdversarialConfig(**TINY, adv_weight=1.0)
    model = VCAdversarial(cfg)
    batch = _batch()
    mel = normalise_mel(model.mel(batch["wave"]))
    content = model.content_encoder(mel).detach().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(model.classifier(grad_reverse(content), None), batch["speaker"])
    ce.backward()
    reversed_grad = content.grad.clone()
    content.grad = None
    torch.nn.functional.cross_entropy(model.classifier(content, None), batch["speaker"]).backward()
    torch.testing.assert_close(reversed_grad, -content.grad)


def test_speaker_code_errors():
    model = VCAdaIN(VCAdaINConfig(**TINY))
    with pytest.raises(SpeechrepError, match="shorter than the speaker encoder's minimum"):
        model.speaker_code(torch.zeros(1, 4, 80))


def test_vc_config_errors():
    with pytest.raises(ConfigError, match="num_speakers"):
        VCAdversarial(VCAdversarialConfig(**{**TINY, "num_speakers": 0}))
    with pytest.raises(ConfigError, match="kernel_size"):
        VCAdaIN(VCAdaINConfig(**TINY, kernel_size=4))
    model = VCAdversarial(VCAdversarialConfig(**TINY))
    with pytest.raises(ConfigError, match="num_speakers"):
        model({**_batch(), "speaker": torch.tensor([0, 1, 2, 0])})
    with pytest.raises(ConfigError, match="data.input"):
        model({"feats": torch.zeros(1, 10, 80)})
    with pytest.raises(ConfigError, match="speaker labels"):
        model({k: v for k, v in _batch().items() if k != "speaker"})
    with pytest.raises(ConfigError, match="estimator"):
        VCVQ(VCVQConfig(**TINY, bottleneck=BottleneckConfig(kind="onehot", estimator="reinforce")))


@pytest.mark.parametrize("family, cfg_cls", [("vc_vq", VCVQConfig), ("vc_adain", VCAdaINConfig)])
def test_content_norm_chooses_the_content_encoders_normalisation(family, cfg_cls):
    mel = FAMILIES[family](cfg_cls(**TINY)).mel(_batch()["wave"])
    x = normalise_mel(mel)
    for norm, expected in (("auto", family == "vc_adain"), ("instance", True), ("batch", False)):
        torch.manual_seed(0)
        model = FAMILIES[family](cfg_cls(**TINY, content_norm=norm)).eval()
        assert isinstance(model.content_encoder.blocks[0].norm, torch.nn.InstanceNorm1d) == expected
        code = model.content_encoder(x)  # (B, T, content_dim) before any quantiser
        normalised = torch.allclose(code.mean(1), torch.zeros(()), atol=1e-4) and torch.allclose(
            code.std(1, unbiased=False), torch.ones(()), atol=1e-2)
        assert normalised == expected, (family, norm)  # instance: each utterance's channels at mean 0, scale 1
        if family == "vc_vq":
            assert model.units(mel).shape == code.shape[:2]
    with pytest.raises(ConfigError, match="content_norm"):
        FAMILIES[family](cfg_cls(**TINY, content_norm="layer"))


def test_speaker_verifier_learns_and_embeds():
    torch.manual_seed(0)
    model = SpeakerVerifier(SpeakerVerifierConfig(num_speakers=2, channels=16, embedding_dim=8, min_frames=5))
    losses, out = _train(model, _batch(), steps=8)
    assert losses[-1] < 0.5 * losses[0]
    assert model.embed(torch.zeros(3, 20, 80)).shape == (3, 8)
    with pytest.raises(SpeechrepError, match="minimum"):
        model.embed(torch.zeros(1, 4, 80))


def _voiced_batch(n=4, samples=3200):
    """Harmonic waves whose F0 rises in half of them and falls in the other half."""
    t = torch.arange(samples) / 16000
    waves = []
    for k in range(n):
        f0 = 120 + 60 * (t / t[-1]) * (1 if k % 2 else -1) + 20 * k
        phase = 2 * torch.pi * torch.cumsum(f0, 0) / 16000
        waves.append(sum(torch.sin(h * phase) / h for h in range(1, 6)) * 0.2)
    return {"wave": torch.stack(waves), "speaker": torch.arange(n) % 2, "lengths": torch.full((n,), samples)}


@pytest.mark.parametrize("mode,channels", [("contour", 2), ("excitation", 81)])
def test_pitch_input_feeds_the_source_f0_to_the_decoder(mode, channels):
    torch.manual_seed(0)
    model = VCAdaIN(VCAdaINConfig(**TINY, pitch=mode))
    assert model.decoder.conv_in.in_channels == TINY["content_dim"] + channels
    batch = _voiced_batch()
    losses, _ = _train(model, batch, steps=30)
    assert losses[-1] < 0.8 * losses[0]
    mel = model.mel(batch["wave"])
    pitch = model.pitch_features(batch["wave"])
    assert pitch.shape == (4, mel.shape[1], channels)
    assert float(pitch[:, 4:-4, -1].min()) == 1.0  # harmonic waves are voiced
    if mode == "contour":  # rising and falling contours: opposite signs at the ends
        assert float(pitch[1, -5, 0]) > 0 > float(pitch[0, -5, 0])
    spk = model.speaker_code(mel)
    out = model.convert(mel[:1], spk[1:2], pitch=pitch[:1])
    assert out.shape == (1, mel.shape[1], 80)
    # the decoder reads the pitch input: another F0 gives another output
    assert not torch.allclose(out, model.convert(mel[:1], spk[1:2], pitch=pitch[1:2]))
    with pytest.raises(SpeechrepError, match="source pitch"):
        model.convert(mel[:1], spk[1:2])
    with pytest.raises(SpeechrepError, match="source pitch"):
        model.convert(mel[:1], spk[1:2], pitch=pitch[:1, :-1])
    with pytest.raises(SpeechrepError, match="source pitch"):  # the other mode's channels
        model.convert(mel[:1], spk[1:2], pitch=torch.zeros(1, mel.shape[1], 83 - channels))
    stats = model.pitch_stats(batch["wave"])
    assert stats.shape == (4, 2)
    # the target's statistics move an excitation model's F0; a contour model ignores them
    up = stats + torch.tensor([0.7, 0.0])
    moved = model.pitch_features(batch["wave"], target=up)
    assert torch.equal(moved, pitch) == (mode == "contour")


def test_reconstruct_decodes_a_wave_with_its_own_speaker_code_and_pitch():
    torch.manual_seed(0)
    model = VCAdaIN(VCAdaINConfig(**TINY, pitch="excitation")).eval()
    batch = _voiced_batch()
    wave, lengths = batch["wave"], batch["lengths"] - 800
    with torch.no_grad():
        out = model.reconstruct(wave, lengths)
        mel = model.mel(wave)
        frames = model.mel.frame_lengths(lengths)
        expected = model.convert(mel, model.speaker_code(mel, frames), pitch=model.pitch_features(wave, lengths))
        torch.testing.assert_close(out, expected)
        assert out.shape == mel.shape
        # the speaker code is the wave's own: another wave's code gives another output
        assert not torch.allclose(out, model.convert(mel, model.speaker_code(mel, frames).roll(1, 0),
                                                     pitch=model.pitch_features(wave, lengths)))


def test_model_without_pitch_input_needs_none():
    plain = VCAdaIN(VCAdaINConfig(**TINY))
    wave = _voiced_batch()["wave"]
    assert plain.pitch_features(wave) is None and plain.pitch_stats(wave) is None
    assert plain.decoder.conv_in.in_channels == TINY["content_dim"]
    with pytest.raises(ConfigError, match="pitch"):
        VCAdaIN(VCAdaINConfig(**TINY, pitch=True))


def test_speaker_code_from_the_other_crops_of_the_speaker(monkeypatch):
    codes = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0], [7.0, 7.0]])
    mean, share = others_mean(codes, torch.tensor([0, 0, 0, 1]))
    torch.testing.assert_close(mean, torch.tensor([[4.0, 3.0], [3.0, 2.0], [2.0, 1.0], [7.0, 7.0]]))
    assert share.item() == 0.75  # the lone crop of speaker 1 keeps its own code
    torch.manual_seed(0)
    model = VCAdaIN(VCAdaINConfig(**TINY, speaker_from="others"))
    batch = _batch()  # speakers 0 1 0 1
    seen = []
    decode = model.decoder.forward
    monkeypatch.setattr(model.decoder, "forward", lambda code, spk: seen.append(spk) or decode(code, spk))
    out = model(batch)
    own = model.speaker_encoder(normalise_mel(model.mel(batch["wave"])), model.mel.frame_lengths(batch["lengths"]))
    torch.testing.assert_close(seen[0], own[[2, 3, 0, 1]])  # each crop decoded with its partner's code
    assert out["spk/others"] == 1.0
    out["loss"].backward()
    assert model.speaker_encoder.parameters().__next__().grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="speaker_from"):
        VCAdaIN(VCAdaINConfig(**TINY, speaker_from="other"))


def test_two_player_terms_train_but_do_not_score_in_evaluation():
    """The speaker classifier's term is in the training loss only: in evaluation (what picks
    the best checkpoint) a content code the classifier cannot read must not score worse."""
    batch = _batch()
    for family, cfg, game in (
        ("vc_adversarial", VCAdversarialConfig(**TINY, adv_weight=0.5), lambda o: 0.5 * o["adv/ce"]),
    ):
        torch.manual_seed(0)
        model = FAMILIES[family](cfg)
        torch.manual_seed(1)
        train = model(batch)
        torch.testing.assert_close(train["loss"], train["loss/recon"] + game(train))
        model.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            valid = model(batch)
        assert float(game(valid)) > 0.01
        torch.testing.assert_close(valid["loss"], valid["loss/recon"])


def _judge_dir(path):
    from speechrep.train.checkpoint import save_checkpoint
    from speechrep.models.registry import build_model

    torch.manual_seed(3)
    args = {"num_speakers": 2, "channels": 8, "embedding_dim": 4, "min_frames": 5}
    module, _ = build_model("speaker_tdnn", args)
    save_checkpoint(path / "checkpoints", 1, module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
                    state={"model": {"name": "speaker_tdnn", "args": args, "input_dim": None}})
    return path


def test_layer_statistics_end_in_the_embedding():
    torch.manual_seed(0)
    judge = SpeakerVerifier(SpeakerVerifierConfig(num_speakers=2, channels=8, embedding_dim=4, min_frames=5)).eval()
    mel = torch.randn(3, 40, 80)
    lengths = torch.tensor([40, 30, 20])
    stats, emb = judge.encoder.layer_statistics(judge.mean_normalised(mel, lengths), lengths)
    assert len(stats) == len(_TDNN_LAYERS) and all(s.shape == (3, 16) for s in stats)
    torch.testing.assert_close(emb, judge.embed(mel, lengths))


def test_speaker_consistency_loss(tmp_path):
    judge_dir = _judge_dir(tmp_path / "judge")
    torch.manual_seed(0)
    model = VCAdaIN(VCAdaINConfig(**TINY, speaker_loss_weight=0.5,
                                                           speaker_loss_model=str(judge_dir)))
    batch = _batch()
    with pytest.raises(ConfigError, match="speaker_loss_model: frozen model 'judge' was not loaded"):
        model(batch)  # a model never loads a checkpoint itself
    attach_frozen_models(model)
    out = model(batch)
    torch.testing.assert_close(out["loss"], out["loss/recon"] + 0.5 * out["loss/speaker"])
    assert out["loss/speaker"] > 0
    out["loss"].backward()
    assert model.decoder.conv_out.weight.grad.abs().sum() > 0
    judge = model.frozen("judge", torch.device("cpu"))
    # frozen, and neither trained nor saved with the model
    assert all(p.grad is None and not p.requires_grad for p in judge.parameters())
    assert not any(k.startswith("_frozen") for k in model.state_dict())
    # zero for the real log-mel itself, positive for another
    mel = model.mel(batch["wave"])
    assert speaker_consistency(judge, mel, mel).item() == pytest.approx(0.0, abs=1e-5)
    assert speaker_consistency(judge, mel.flip(0), mel).item() > 1e-3
    # without the layers: the embeddings' cosine alone
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(judge.embed(mel.flip(0)), judge.embed(mel), dim=-1)
    torch.testing.assert_close(speaker_consistency(judge, mel.flip(0), mel, layers=False), (1 - cos).mean())
    # training lowers it; validation (eval mode) leaves it out
    first = out["loss/speaker"].item()
    _, last = _train(model, batch, steps=30)
    assert last["loss/speaker"] < first
    assert "loss/speaker" not in model.eval()(batch)
    with pytest.raises(ConfigError, match="speaker_loss_weight"):
        VCAdaIN(VCAdaINConfig(**TINY, speaker_loss_weight=0.5))
    missing = VCAdaIN(VCAdaINConfig(**TINY, speaker_loss_weight=0.5,
                                                             speaker_loss_model=str(tmp_path / "none")))
    with pytest.raises(ConfigError, match="speaker_loss_model"):
        attach_frozen_models(missing)


def test_speaker_consistency_on_conversions(tmp_path):
    judge_dir = _judge_dir(tmp_path / "judge")
    torch.manual_seed(0)
    cfg = dict(TINY, speaker_loss_weight=0.5, speaker_loss_model=str(judge_dir), speaker_loss_on="conversion",
               pitch="excitation", speaker_from="others")
    model = attach_frozen_models(VCAdaIN(VCAdaINConfig(**cfg)))
    batch = _batch()
    batch["speaker"] = torch.tensor([0, 0, 1, 1])
    out = model(batch)
    torch.testing.assert_close(out["loss"], out["loss/recon"] + 0.5 * out["loss/speaker"])
    assert out["loss/speaker"] > 0
    out["loss"].backward()
    assert model.decoder.conv_out.weight.grad.abs().sum() > 0
    first = out["loss/speaker"].item()
    _, last = _train(model, batch, steps=30)
    assert last["loss/speaker"] < first
    with pytest.raises(ConfigError, match="speaker_loss_on"):
        VCAdaIN(VCAdaINConfig(**{**cfg, "speaker_loss_on": "both"}))
    with pytest.raises(ConfigError, match="speaker_loss_features"):
        VCAdaIN(VCAdaINConfig(**{**cfg, "speaker_loss_features": "stats"}))
    torch.manual_seed(0)
    emb = attach_frozen_models(VCAdaIN(VCAdaINConfig(**{**cfg, "speaker_loss_features": "embedding"})))
    assert 0 < emb(batch)["loss/speaker"] < out["loss/speaker"]  # the same model less the layer term


def test_content_term_on_conversions(tmp_path):
    judge_dir = _judge_dir(tmp_path / "judge")
    cfg = dict(TINY, speaker_loss_weight=0.5, speaker_loss_model=str(judge_dir), speaker_loss_on="conversion",
               speaker_loss_features="embedding", pitch="excitation", speaker_from="others")
    batch = _batch()
    batch["speaker"] = torch.tensor([0, 0, 1, 1])
    torch.manual_seed(0)
    model = attach_frozen_models(VCAdaIN(VCAdaINConfig(**cfg, speaker_loss_content_weight=2.0)))
    grads, values = {}, {}
    for weight in (0.0, 2.0):
        model.cfg.speaker_loss_content_weight = weight
        model.zero_grad()
        torch.manual_seed(1)
        out = model(batch)
        out["loss"].backward()
        grads[weight] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        values[weight] = out
    out = values[2.0]
    torch.testing.assert_close(out["loss"], out["loss/recon"] + 0.5 * out["loss/speaker"]
                               + 2.0 * out["loss/speaker_content"])
    assert out["loss/speaker_content"] > 0 and "loss/speaker_content" not in values[0.0]
    # the term trains the decoder only: the code it decodes, the target's speaker code and the
    # source's content code are detached, and the content encoder judges with frozen weights
    moved = {n.split(".")[0] for n in grads[2.0] if not torch.allclose(grads[2.0][n], grads[0.0][n])}
    assert moved == {"decoder"}
    # training the decoder on it brings the conversions' content codes nearer the sources'
    after = {}
    for weight in (0.0, 2.0):
        torch.manual_seed(0)
        model = attach_frozen_models(VCAdaIN(VCAdaINConfig(**cfg, speaker_loss_content_weight=2.0)))
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("decoder."))
        model.cfg.speaker_loss_content_weight = weight
        torch.manual_seed(1)
        _train(model, batch, steps=30)
        model.cfg.speaker_loss_content_weight = 1.0
        torch.manual_seed(2)
        after[weight] = model(batch)["loss/speaker_content"].item()
    assert after[2.0] < after[0.0]
    for bad in ({"speaker_loss_content_weight": -1.0},
                {"speaker_loss_content_weight": 1.0, "speaker_loss_on": "reconstruction"},
                {"speaker_loss_content_weight": 1.0, "speaker_loss_weight": 0.0}):
        with pytest.raises(ConfigError, match="speaker_loss_content_weight"):
            VCAdaIN(VCAdaINConfig(**{**cfg, **bad}))


def test_missing_judge_stops_training_before_it_writes(tmp_path):
    from speechrep.train.trainer import train
    from tests.test_train_data import write_config, write_wave_dir

    args = dict(TINY, num_speakers=0, speaker_loss_weight=0.1, speaker_loss_model=str(tmp_path / "no_judge"),
                speaker_loss_on="conversion")
    cfg = write_config(tmp_path / "c.yaml", exp_dir=tmp_path / "exp", data_dir=write_wave_dir(tmp_path),
                       input="wave", model={"name": "vc_adain", "args": args})
    with pytest.raises(ConfigError, match="model.args.speaker_loss_model"):
        train(cfg)
    assert not (tmp_path / "exp").exists()
    # with the judge there, the same config trains
    _judge_dir(tmp_path / "no_judge")
    train(cfg, overrides=["optim.max_steps=2"])
    assert (tmp_path / "exp" / "checkpoints").is_dir()
