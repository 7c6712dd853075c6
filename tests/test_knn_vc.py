"""Zero-shot voice conversion by kNN matching (speechrep.convert_knn) through convert and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import speechrep.convert_knn as knn
from speechrep.convert import convert_file, convert_pairs, load_converter
from speechrep.convert_knn import FeatureModel, KnnConverter, model_layers, nearest_frames
from speechrep.package_knn import package_knn_model
from speechrep.data.pairs import read_input_audio
from speechrep.errors import CheckpointError, ConfigError, DataError
from speechrep.features.logmel import VC_MEL, log_mel
from speechrep.models.frame_matching import match_frames
from speechrep.models.registry import build_model
from speechrep.train.checkpoint import save_checkpoint
from speechrep.vocoder.griffinlim import GriffinLim
from tests.test_convert import _cli  # main() run as the CLI: its exit code

pytestmark = pytest.mark.usefixtures("torch_one_thread")

CPC = {"dim": 16, "context_dim": 16, "num_steps": 2, "num_negatives": 2}
#: fbank of the feature-input model's training data (10 ms frames, no dither: reproducible)
FBANK = {"num_mel_bins": 10, "dither": 0.0}


def _save_exp(path, name, args, *, input_dim=None, train_dir=None):
    torch.manual_seed(0)
    module, _ = build_model(name, args, input_dim=input_dim)
    save_checkpoint(path / "checkpoints", 1, module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
                    state={"model": {"name": name, "args": args, "input_dim": input_dim}})
    if train_dir is not None:
        (path / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(train_dir)}}))
    return path


def _tones(path, freqs, seconds, rate=16000, amp=0.3):
    """Consecutive tones of ``freqs``, ``seconds`` each."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    wave = np.concatenate([amp * np.sin(2 * np.pi * f * t) * (1 + 0.3 * np.sin(2 * np.pi * 4 * t)) for f in freqs])
    sf.write(path, wave.astype(np.float32), rate, subtype="FLOAT")
    return path


def _padded(path):
    """1.5 s of tone, then 2 s of near silence (60 dB below it: room noise)."""
    wave, rate = sf.read(_tones(path, [250], 1.5))
    noise = 3e-4 * np.random.default_rng(0).standard_normal(2 * rate)
    sf.write(path, np.concatenate([wave, noise]).astype(np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("knn")
    train = d / "train"
    (train / "conf").mkdir(parents=True)
    (train / "conf" / "fbank.yaml").write_text(yaml.safe_dump(FBANK))
    return {
        "wave": _save_exp(d / "cpc_wave", "cpc", CPC),
        # 20 ms frames from 10 ms fbank: frames and log-mel frames differ in shift and count
        "feats": _save_exp(d / "cpc_feats", "cpc", {**CPC, "feat_stride": 2, "feat_layers": 1}, input_dim=10,
                           train_dir=train),
        "vc": _save_exp(d / "vc", "vc_adain", dict(channels=8, blocks=1, content_dim=4, speaker_dim=8, num_speakers=2,
                                                   min_speaker_frames=20)),
        "toy": _save_exp(d / "toy", "toy", {}),
        "src": _tones(d / "src.wav", [300, 900], 0.5),
        "tgt_a": _tones(d / "tgt_a.wav", [250, 280, 310], 0.8),  # 2.4 s
        "tgt_b": _tones(d / "tgt_b.wav", [800, 950, 1100], 0.8),
        "short": _tones(d / "short.wav", [250], 1.5),
        "padded": _padded(d / "padded.wav"),
        "silent": _tones(d / "silent.wav", [250], 3.0, amp=0.0),
        "lowrate": _tones(d / "low.wav", [250], 3.0, rate=4000),
        "dir": d,
    }


def _capture_mel(conv, monkeypatch):
    """Make the vocoder record the log-mel it is given (and return a short wave)."""
    seen = []
    monkeypatch.setattr(type(conv.vocoder), "mel_to_wave", lambda self, mel: seen.append(mel) or np.zeros(160, np.float32))
    return seen


def _mel(path):
    return log_mel(read_input_audio(path, sample_rate=16000), VC_MEL)


def test_match_frames_cosine_by_hand():
    keys = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0]])
    values = torch.tensor([[1.0], [2.0], [3.0]])
    frames = torch.tensor([[2.0, 0.1]])
    # Euclidean: [1, 0] is nearest; cosine: the direction of [10, 1] is nearest
    torch.testing.assert_close(match_frames(frames, keys, values, 1), torch.tensor([[1.0]]))
    torch.testing.assert_close(match_frames(frames, keys, values, 1, metric="cosine"), torch.tensor([[2.0]]))
    torch.testing.assert_close(match_frames(frames, keys, values, 2, metric="cosine"), torch.tensor([[1.5]]))
    with pytest.raises(ConfigError, match="unknown metric"):
        match_frames(frames, keys, values, 1, metric="manhattan")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_match_frames_in_blocks(monkeypatch, metric):
    import speechrep.models.frame_matching as fm

    gen = torch.Generator().manual_seed(0)
    frames, keys, values = (torch.randn(n, 3, generator=gen) for n in (50, 20, 20))
    whole = match_frames(frames, keys, values, 3, metric=metric)
    monkeypatch.setattr(fm, "_BLOCK_ELEMENTS", 7 * 20)  # blocks of 7 frames, the last one shorter
    torch.testing.assert_close(match_frames(frames, keys, values, 3, metric=metric), whole)


def test_nearest_frames_by_hand():
    # frames of 20 ms centred at 17.5 ms + j * 20 ms; log-mel frames at i * 10 ms
    times = np.arange(7) * 0.01
    np.testing.assert_array_equal(nearest_frames(times, num_frames=3, shift=0.02, offset=0.0175), [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(nearest_frames([0.5], num_frames=3, shift=0.02, offset=0.0175), [2])  # past the end


def test_layers_of_the_models(env):
    from speechrep.train.checkpoint import load_model

    assert model_layers(load_model(env["wave"])[0]) == ("context", "encoder")
    assert model_layers(load_model(env["toy"])[0]) == ()


def test_k1_every_output_frame_is_a_target_frame(env, monkeypatch):
    conv = load_converter(env["wave"], k=1)
    assert isinstance(conv, KnnConverter) and conv.k == 1 and conv.features.layer == "context"
    assert conv.pitch_weight == knn.DEFAULT_PITCH_WEIGHT > 0  # an experiment directory's default
    seen = _capture_mel(conv, monkeypatch)
    conv.convert(env["src"], [env["tgt_a"]])
    (out,) = seen
    target = _mel(env["tgt_a"])
    assert out.shape == _mel(env["src"]).shape  # the source's frames, timing and length
    dist = np.abs(out[:, None, :] - target[None]).max(-1)  # (T_out, T_target)
    assert (dist.min(1) < 1e-5).all()  # each output frame is one of the target's
    assert len(np.unique(dist.argmin(1))) > 5  # and not one frame repeated


def test_k4_output_frames_are_means_of_the_nearest_target_frames(env, monkeypatch):
    conv = load_converter(env["wave"], k=4, layer="encoder", pitch_weight=0)  # the features' cosine alone
    seen = _capture_mel(conv, monkeypatch)
    conv.convert(env["src"], [env["tgt_a"]])
    (out,) = seen
    # reference: cosine distances by numpy between the source's and the target's keys
    src_keys = conv.frames(env["src"], field_name="source")[0].numpy()
    tgt_keys, tgt_mel = (x.numpy() for x in conv.frames(env["tgt_a"], field_name="target"))
    np.testing.assert_allclose(tgt_mel, _mel(env["tgt_a"]), atol=1e-5)
    cos = (src_keys / np.linalg.norm(src_keys, axis=1, keepdims=True)) @ (
        tgt_keys / np.linalg.norm(tgt_keys, axis=1, keepdims=True)).T
    nearest = np.argsort(-cos, axis=1, kind="stable")[:, :4]
    gaps = np.sort(-cos, axis=1)
    clear = gaps[:, 4] - gaps[:, 3] > 1e-5  # frames whose 4th and 5th neighbours do not tie
    assert clear.mean() > 0.5
    np.testing.assert_allclose(out[clear], tgt_mel[nearest].mean(1)[clear], atol=1e-4)


def _glide(path, start, end, seconds, rate=16000):
    """A harmonic tone whose F0 glides log-linearly from ``start`` to ``end`` Hz."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = start * (end / start) ** (t / seconds)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(h * phase) / h for h in range(1, 6))
    sf.write(path, (0.2 * wave).astype(np.float32), rate, subtype="FLOAT")
    return path


def test_pitch_weight_matches_frames_of_the_same_relative_pitch(env, tmp_path, monkeypatch):
    """Source gliding up 150 -> 300 Hz, target gliding down 400 -> 200 Hz: with a large pitch
    weight the end of the source (the top of its range, 300 Hz) takes the start of the target
    (the top of its own, near 400 Hz), not the target's 300 Hz in the middle; the distance
    is that of the keys, which hold the pitch columns."""
    src, tgt = _glide(tmp_path / "s.wav", 150, 300, 2.0), _glide(tmp_path / "t.wav", 400, 200, 2.5)
    conv = load_converter(env["wave"], k=1, pitch_weight=10.0)
    keys, values = conv.matching_set([tgt])
    reps, _ = conv.frames(tgt, field_name="target")
    assert keys.shape == (reps.shape[0], reps.shape[1] + 2)
    torch.testing.assert_close(keys[:, :-2].norm(dim=1), torch.ones(len(keys)))  # unit features, then w [z, v]
    n = values.shape[0]
    z = keys[5:-5, -2] / 10
    assert z[: n // 5].min() > 0.6 and z[-n // 5:].max() < -0.6  # standardised: high first, low last
    assert (keys[5:-5, -1] == 10).all()  # voiced
    seen = _capture_mel(conv, monkeypatch)
    conv.convert(src, [tgt])
    src_from = np.abs(seen[0][:, None, :] - values.numpy()[None]).max(-1).argmin(1)  # target frame of each output frame
    m = len(src_from)
    assert (src_from[m - m // 6: m - 3] < n // 4).mean() > 0.9  # the source's top -> the target's top
    assert (src_from[3: m // 6] > n - n // 4).mean() > 0.9  # the source's bottom -> the target's bottom
    plain = load_converter(env["wave"], k=1, pitch_weight=0)
    assert plain.matching_set([tgt])[0].shape[1] == reps.shape[1]  # no pitch columns without the weight


def test_frames_and_log_mel_aligned_by_time(env):
    """A model of 20 ms frames (offset 17.5 ms) keys 10 ms log-mel frames by the nearest in time."""
    conv = load_converter(env["feats"])
    assert conv.features.frame_shift == pytest.approx(0.02)
    assert conv.features.frame_offset == pytest.approx(0.0175)
    wave = read_input_audio(env["tgt_a"], sample_rate=16000)
    reps = conv.features.encode(wave)
    keys, mel = conv.frames(env["tgt_a"], field_name="target")
    assert mel.shape[0] == 1 + len(wave) // 160 and reps.shape[0] < mel.shape[0] // 2 + 1
    assert keys.shape[0] == mel.shape[0]
    expect = [0, 0, 0, 1, 1, 2, 2, 3]  # by hand: round((0.01 i - 0.0175) / 0.02)
    torch.testing.assert_close(keys[:8], reps[expect])
    torch.testing.assert_close(keys[-1], reps[-1])
    # the features are the training data's fbank, computed from the audio
    assert conv.features.inputs(wave).shape[1] == 10


@pytest.mark.parametrize("name, args", [
    ("dim", {"dim": 8, "code_dim": 4, "critic_dim": 8, "max_frames": 16}),
    ("vqcpc", {**CPC, "bottleneck": {"kind": "vq", "num_codes": 8, "code_dim": 16}}),
])
def test_other_feature_models_convert(env, tmp_path, name, args):
    exp = _save_exp(tmp_path / name, name, args)
    for layer in ("context", "encoder"):
        out = convert_file(exp, env["src"], [env["tgt_a"]], tmp_path / f"{layer}.wav", layer=layer)
        wave, rate = sf.read(out)
        assert rate == 16000 and len(wave) == 16000 and np.isfinite(wave).all()


def test_several_targets_are_pooled(env, monkeypatch):
    conv = load_converter(env["wave"], k=1, pitch_weight=0)
    keys, values = conv.matching_set([env["tgt_a"], env["tgt_b"]])
    a, b = (conv.frames(t, field_name="target") for t in (env["tgt_a"], env["tgt_b"]))
    torch.testing.assert_close(keys, torch.cat([a[0], b[0]]))
    torch.testing.assert_close(values, torch.cat([a[1], b[1]]))
    seen = _capture_mel(conv, monkeypatch)
    conv.convert(env["src"], [env["tgt_a"], env["tgt_b"]])
    src_from = np.abs(seen[0][:, None, :] - values.numpy()[None]).max(-1).argmin(1)
    n_a = a[1].shape[0]
    # the source's low tone takes frames of the low target, its high tone of the high one
    assert (src_from < n_a).any() and (src_from >= n_a).any()


def test_batch_encodes_each_target_set_once(env, tmp_path, monkeypatch):
    pairs = tmp_path / "pairs.tsv"
    a, b, both = str(env["tgt_a"]), str(env["tgt_b"]), f"{env['tgt_a']},{env['tgt_b']}"
    rows = [("p1", env["src"], both), ("p2", env["tgt_a"], b), ("p3", env["tgt_b"], both), ("p4", env["src"], a)]
    pairs.write_text("id\tsource\ttarget\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    built = []
    original = KnnConverter.matching_set
    monkeypatch.setattr(KnnConverter, "matching_set", lambda self, t: built.append(tuple(t)) or original(self, t))
    written = convert_pairs(env["wave"], pairs, tmp_path / "out", progress=False)
    assert [w.name for w in written] == ["p1.wav", "p2.wav", "p3.wav", "p4.wav"]  # the pairs' order
    assert len(built) == 3 and len(set(built)) == 3  # p1 and p3 share their targets
    one = convert_file(env["wave"], env["src"], [env["tgt_a"], env["tgt_b"]], tmp_path / "one.wav")
    np.testing.assert_allclose(sf.read(one)[0], sf.read(written[0])[0], atol=1e-4)


def test_cli_converts_zero_shot(env, tmp_path, capsys):
    out = tmp_path / "o.wav"
    assert _cli("convert", "--model", env["feats"], "--source", env["src"], "--target", env["tgt_a"],
                "--target", env["tgt_b"], "--out", out, "--layer", "encoder", "--k", 2) == 0
    wave, rate = sf.read(out)
    assert rate == 16000 and len(wave) == 16000 and np.isfinite(wave).all() and np.abs(wave).max() > 0


@pytest.mark.parametrize("model, target, extra, match", [
    ("wave", "short", (), "1.51 s of non-silent target audio; kNN matching needs at least 2 s"),
    ("wave", "padded", (), "1.53 s of non-silent target audio"),  # 3.5 s, of which 2 s silence
    ("wave", "silent", (), "silent"),
    ("wave", "lowrate", (), "below the 8000 Hz"),
    ("wave", "tgt_a", ("--layer", "transformer"), "no layer 'transformer' (it offers context, encoder)"),
    ("wave", "tgt_a", ("--k", 0), "k >= 1"),
    ("wave", "tgt_a", ("--pitch-weight", -1), "--pitch-weight: must be a number >= 0, got -1"),
    ("vc", "tgt_a", ("--pitch-weight", 1), "vc: --pitch-weight: does not apply"),
    ("vc", "tgt_a", ("--layer", "context"), "vc: --layer: does not apply to a trained 'vc_adain' converter"),
    ("vc", "tgt_a", ("--k", 4), "vc: --k: does not apply"),
    ("wave", "tgt_a", ("--match-weight", 0.5), "cpc_wave: --match-weight: does not apply to zero-shot kNN conversion"),
    ("toy", "tgt_a", (), "not a voice-conversion model"),
])
def test_cli_bad_input_one_line_no_output(env, tmp_path, capsys, model, target, extra, match):
    out = tmp_path / "o.wav"
    assert _cli("convert", "--model", env[model], "--source", env["src"], "--target", env[target], "--out", out,
                *extra) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0]
    assert list(tmp_path.iterdir()) == []


def test_short_targets_pass_once_pooled(env, tmp_path):
    out = convert_file(env["wave"], env["src"], [env["short"], env["short"]], tmp_path / "o.wav")
    assert out.is_file()


def test_default_model_lookup(env, tmp_path, monkeypatch, capsys):
    packaged = tmp_path / "pretrained" / "knn_vc"
    monkeypatch.setattr(knn, "DEFAULT_MODEL_DIR", packaged)
    out = tmp_path / "o.wav"
    args = ("convert", "--source", env["src"], "--target", env["tgt_a"], "--out", out)
    assert _cli(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--model: is required: no default model is packaged in {packaged}" in err[0]
    assert not out.exists()
    package_knn_model(env["wave"], packaged, layer="encoder", k=2)
    assert _cli(*args) == 0 and out.is_file()
    conv = load_converter(None)
    assert conv.features.layer == "encoder" and conv.k == 2
    with pytest.raises(ConfigError, match="does not apply to a packaged zero-shot kNN model") as err:
        load_converter(None, match_weight=0.5)
    assert "--match-weight" in str(err.value)
    # batch mode uses it as well
    pairs = tmp_path / "p.tsv"
    pairs.write_text(f"id\tsource\ttarget\nq\t{env['src']}\t{env['tgt_a']}\n")
    assert _cli("convert", "--pairs", pairs, "--out-dir", tmp_path / "dir") == 0 and (tmp_path / "dir" / "q.wav").is_file()


def test_package_round_trip(env, tmp_path, capsys):
    out = tmp_path / "pkg"
    assert _cli("package-knn", env["feats"], out, "--layer", "encoder", "--k", 3, "--pitch-weight", 0.5) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".speechrep_output", "MODEL_CARD.md", "checkpoint/model.safetensors", "checkpoint/state.json",
        "conf/fbank.yaml", "knn.json"]  # no optimizer state
    info = json.loads((out / "knn.json").read_text())
    assert info["layer"] == "encoder" and info["k"] == 3 and info["features"] == "conf/fbank.yaml"
    assert info["pitch_weight"] == 0.5
    card = (out / "MODEL_CARD.md").read_text()
    assert "layer encoder, k 3, pitch weight 0.5" in card and f"training data: {env['dir'] / 'train'}" in card
    packaged, original = load_converter(out), load_converter(env["feats"], layer="encoder", k=3, pitch_weight=0.5)
    assert packaged.features.layer == "encoder" and packaged.k == 3 and packaged.pitch_weight == 0.5
    wave = read_input_audio(env["src"], sample_rate=16000)
    torch.testing.assert_close(packaged.features.encode(wave), original.features.encode(wave))
    np.testing.assert_allclose(packaged.convert(env["src"], [env["tgt_a"]]), original.convert(env["src"], [env["tgt_a"]]),
                               atol=1e-5)
    assert load_converter(out, k=1).k == 1  # options override the package's
    assert load_converter(out, pitch_weight=0).pitch_weight == 0
    # a package written before pitch-aware matching (no pitch_weight) matches without it
    (out / "knn.json").write_text(json.dumps({key: v for key, v in info.items() if key != "pitch_weight"}))
    assert load_converter(out).pitch_weight == 0
    # a second packaging replaces it only with --force; another model than a feature model is refused
    assert _cli("package-knn", env["feats"], out) == 1 and "--force" in capsys.readouterr().err
    assert _cli("package-knn", env["vc"], tmp_path / "vc_pkg") == 1
    assert "not a voice-conversion model (vc_*), nor a feature model" in capsys.readouterr().err
    assert not (tmp_path / "vc_pkg").exists()
    # a feature-input model whose training features are unknown cannot be packaged
    with pytest.raises(CheckpointError, match="reads features"):
        load_converter(_save_exp(tmp_path / "lost", "cpc", CPC, input_dim=10))


@pytest.mark.parametrize("field, value, match", [
    ("k", 0, "must be an integer >= 1"), ("layer", None, "must be a layer name"),
    ("checkpoint", "nothing", "checkpoint directory inside"), ("format", 2, "not a packaged kNN model"),
    ("checkpoint", "../outside", "checkpoint directory inside"),  # a checkpoint, but not the package's
    ("features", "knn.json", "feature configuration inside"),
    ("vocoder", "../outside", "vocoder checkpoint directory inside"), ("vocoder", "conf", "vocoder checkpoint"),
    ("pitch_weight", -0.5, "must be a number >= 0"), ("pitch_weight", "1", "must be a number >= 0"),
    ("pitch_weight", True, "must be a number >= 0"),
])
def test_corrupt_package(env, tmp_path, field, value, match):
    out = package_knn_model(env["wave"], tmp_path / "pkg")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "state.json").write_text((out / "checkpoint" / "state.json").read_text())
    info = json.loads((out / "knn.json").read_text())
    (out / "knn.json").write_text(json.dumps({**info, field: value}))
    with pytest.raises(CheckpointError, match=match) as err:
        load_converter(out)
    assert "knn.json" in str(err.value) and field in str(err.value)


TINY_VOCODER = {"generator": "istft", "channels": 16, "layers": 2}


def test_package_with_vocoder(env, tmp_path, monkeypatch, capsys):
    """package-knn --vocoder copies the vocoder's weights (not its optimizer) into the package;
    convert vocodes with it unless --vocoder says otherwise, and the package needs nothing
    outside it."""
    from speechrep.train.checkpoint import load_model
    from speechrep.vocoder.neural import NeuralVocoder
    from tests.test_vocoder import _save_tiny_vocoder

    voc_exp = tmp_path / "voc"
    _save_tiny_vocoder(voc_exp, TINY_VOCODER)
    out = tmp_path / "pkg"
    assert _cli("package-knn", env["feats"], out, "--layer", "encoder", "--vocoder", voc_exp) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        ".speechrep_output", "MODEL_CARD.md", "checkpoint/model.safetensors", "checkpoint/state.json",
        "conf/fbank.yaml", "knn.json", "vocoder/model.safetensors", "vocoder/state.json"]
    assert json.loads((out / "knn.json").read_text())["vocoder"] == "vocoder"
    assert f"- vocoder: `{voc_exp}`, step_1" in (out / "MODEL_CARD.md").read_text()
    expected = load_converter(env["feats"], layer="encoder", vocoder=voc_exp).convert(env["src"], [env["tgt_a"]])
    gl = load_converter(env["feats"], layer="encoder").convert(env["src"], [env["tgt_a"]])
    import shutil

    shutil.rmtree(voc_exp)  # the package holds all it needs
    packaged = load_converter(out)
    assert isinstance(packaged.vocoder, NeuralVocoder)
    wave = packaged.convert(env["src"], [env["tgt_a"]])
    np.testing.assert_allclose(wave, expected, atol=1e-5)
    assert np.abs(wave[: len(gl)] - gl[: len(wave)]).max() > 1e-2  # not Griffin-Lim's
    assert isinstance(load_converter(out, vocoder="griffinlim").vocoder, GriffinLim)
    # the default model's vocoder is the default vocoder, in both modes of the CLI
    monkeypatch.setattr(knn, "DEFAULT_MODEL_DIR", out)
    one = tmp_path / "one.wav"
    assert _cli("convert", "--source", env["src"], "--target", env["tgt_a"], "--out", one) == 0
    np.testing.assert_allclose(sf.read(one)[0], expected, atol=2e-4)  # 16-bit output
    pairs = tmp_path / "p.tsv"
    pairs.write_text(f"id\tsource\ttarget\nq\t{env['src']}\t{env['tgt_a']}\n")
    assert _cli("convert", "--pairs", pairs, "--out-dir", tmp_path / "dir", "--vocoder", "griffinlim") == 0
    np.testing.assert_allclose(sf.read(tmp_path / "dir" / "q.wav")[0], gl, atol=2e-4)
    # refused: a model that is no vocoder, and Griffin-Lim (which has nothing to package)
    capsys.readouterr()
    for bad, words in ((env["wave"], "not a 'vocoder'"), ("griffinlim", "leave it out for Griffin-Lim")):
        assert _cli("package-knn", env["feats"], tmp_path / "bad", "--vocoder", bad) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and not (tmp_path / "bad").exists()
    assert load_model(out / "vocoder")[1] == "vocoder"
    # weights changed after packaging: refused by their checksum, naming the file
    weights = out / "vocoder" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(CheckpointError) as err:
        load_converter(out)
    assert str(weights.parent) in str(err.value)


def test_feature_model_refuses_features_of_another_dimension(env):
    from speechrep.train.checkpoint import load_model

    module, name, _ = load_model(env["feats"])
    with pytest.raises(DataError, match="the model takes 12"):
        FeatureModel(module, name, "context", source=env["feats"], features=env["dir"] / "train" / "conf" / "fbank.yaml",
                     input_dim=12).encode(np.ones(8000, np.float32))


def test_griffin_lim_output_length(env, tmp_path):
    conv = KnnConverter(load_converter(env["wave"]).features, GriffinLim(), k=4)
    wave = conv.convert(env["src"], [env["tgt_a"]])
    assert len(wave) == (len(_mel(env["src"])) - 1) * 160


def test_packaged_models_are_package_data(env, tmp_path):
    """Non-editable installs carry speechrep/pretrained/: setuptools' package-data globs
    (expanded as its build_py does, recursive glob) match every file a package holds."""
    import glob
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["speechrep"]
    from tests.test_vocoder import _save_tiny_vocoder

    _save_tiny_vocoder(tmp_path / "voc", TINY_VOCODER)
    pkg = package_knn_model(env["feats"], tmp_path / "speechrep" / "pretrained" / "knn_vc", vocoder=tmp_path / "voc")
    matched = {Path(p) for pattern in patterns for p in glob.glob(str(tmp_path / "speechrep" / pattern), recursive=True)}
    files = {p for p in pkg.rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert len(files) == 7 and files <= matched
