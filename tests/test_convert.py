import numpy as np
import pytest
import soundfile as sf
import torch

from speechrep.cli import main
from speechrep.convert import convert_file, convert_pairs, load_converter
from speechrep.data.pairs import read_input_audio, read_pairs
from speechrep.errors import CheckpointError, ConfigError, DataError, SpeechrepError
from speechrep.train.checkpoint import save_checkpoint
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


TINY = dict(channels=8, blocks=1, content_dim=4, speaker_dim=8, num_speakers=2, min_speaker_frames=20)


def _save_exp(path, name, args, *, saved_args=None):
    """An experiment of model ``name`` built with ``args``; its checkpoint says ``saved_args``
    (default ``args``), as one saved by an older version with other options does."""
    torch.manual_seed(0)
    module, _ = build_model(name, args)
    save_checkpoint(path / "checkpoints", 1, module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
                    state={"model": {"name": name, "args": args if saved_args is None else saved_args, "input_dim": None}})
    return path


def _tone(path, seconds, rate, f0=150.0, amp=0.3, subtype="PCM_16"):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (amp * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32),
             rate, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("convert")
    return {
        "model": _save_exp(d / "vc", "vc_adain", TINY),
        # saved before speaker_encoder: table (a learnt vector per training speaker) was deleted
        "table": _save_exp(d / "vc_table", "vc_adain", TINY, saved_args={**TINY, "speaker_encoder": "table"}),
        "pitch": _save_exp(d / "vc_pitch", "vc_adain", {**TINY, "pitch": "excitation"}),
        "src": _tone(d / "src_22k.wav", 0.4, 22050),  # resampled to 16 kHz
        "tgt": _tone(d / "tgt.flac", 0.4, 16000, f0=220.0),
        "tgt2": _tone(d / "tgt2.wav", 0.3, 48000, f0=260.0, subtype="FLOAT"),
        "short": _tone(d / "short.wav", 0.15, 16000),  # 16 frames < 20
        "blip": _tone(d / "blip.wav", 0.02, 16000),
        "silent": _tone(d / "silent.wav", 0.4, 16000, amp=0.0),
        "lowrate": _tone(d / "low.wav", 0.4, 4000, f0=100.0),
        "corrupt": _write_bytes(d / "corrupt.wav", b"RIFF\x00\x00not a wave at all"),
        "empty": _tone(d / "empty.wav", 0.0, 16000),
        "dir": d,
    }


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def test_convert_file_writes_wav_at_model_rate(env, tmp_path):
    out = convert_file(env["model"], env["src"], [env["tgt"], env["tgt2"]], tmp_path / "out.wav")
    wave, rate = sf.read(out)
    assert rate == 16000
    # 0.4 s at 22.05 kHz -> 6400 samples at 16 kHz -> 41 frames -> 40 hops of 160
    assert len(wave) == 6400
    assert sf.info(str(out)).subtype == "PCM_16"


def test_pitch_model_converts_with_the_source_contour(env, tmp_path):
    out = convert_file(env["pitch"], env["src"], [env["tgt"]], tmp_path / "out.wav")
    wave, rate = sf.read(out)
    assert rate == 16000 and len(wave) == 6400 and np.isfinite(wave).all()
    conv = load_converter(env["pitch"])
    assert conv.model.pitch is not None
    src = np.sin(2 * np.pi * 150 * np.arange(6400) / 16000).astype(np.float32) * 0.3
    spk, stats = conv.target_voice([env["tgt"]])
    assert torch.equal(spk, conv.speaker_code([env["tgt"]]))
    # the target is a 220 Hz tone: its log-F0 mean
    assert float(stats[0, 0]) == pytest.approx(np.log(220.0), abs=0.01)
    glide = np.sin(2 * np.pi * np.cumsum(np.linspace(100, 250, 6400)) / 16000).astype(np.float32) * 0.3
    assert not np.allclose(conv.convert_wave(src, spk, stats), conv.convert_wave(glide, spk, stats))
    # the source F0 is mapped to the target's statistics: other statistics, another output
    assert not np.allclose(conv.convert_wave(src, spk, stats), conv.convert_wave(src, spk, stats - 0.5))
    assert load_converter(env["model"]).target_voice([env["tgt"]])[1] is None


def test_target_codes_are_averaged(env):
    conv = load_converter(env["model"])
    a = conv.speaker_code([env["tgt"]])
    b = conv.speaker_code([env["tgt2"]])
    both = conv.speaker_code([env["tgt"], env["tgt2"]])
    torch.testing.assert_close(both, (a + b) / 2)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "role,key,match",
    [("target", "short", "shorter than the speaker encoder's minimum"), ("source", "silent", "silent"),
     ("target", "silent", "silent"), ("source", "lowrate", "below the 8000 Hz"), ("source", "corrupt", "unreadable"),
     ("source", "empty", "empty"), ("source", "missing", "not found"), ("source", "blip", "shorter than the 0.1 s")],
)
def test_bad_input_clear_error_no_output(env, tmp_path, role, key, match):
    bad = env.get(key, env["dir"] / "missing.wav")
    src, tgt = (bad, env["tgt"]) if role == "source" else (env["src"], bad)
    out = tmp_path / "out.wav"
    with pytest.raises(DataError, match=match) as err:
        convert_file(env["model"], src, [tgt], out)
    assert str(bad) in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_model_saved_with_the_deleted_speaker_table_is_refused(env, tmp_path):
    with pytest.raises(ConfigError, match=r"model\.args\.speaker_encoder: option removed.*negative_results.*'table'"):
        convert_file(env["table"], env["src"], [env["tgt"]], tmp_path / "o.wav")
    assert list(tmp_path.iterdir()) == []


def test_not_a_vc_model(tmp_path):
    exp = _save_exp(tmp_path / "toy", "toy", {})
    with pytest.raises(CheckpointError, match="not a voice-conversion model"):
        load_converter(exp)
    with pytest.raises(CheckpointError, match="no such model"):
        load_converter(tmp_path / "nothing")
    with pytest.raises(ConfigError, match="vocoder"):
        load_converter(tmp_path / "toy", vocoder=str(tmp_path / "no_vocoder"))


def _pairs(path, rows, header="id\tsource\ttarget"):
    path.write_text(header + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_read_pairs_and_errors(env, tmp_path):
    p = _pairs(tmp_path / "p.tsv", [("a", env["src"], f"{env['tgt']},{env['tgt2']}", "s1", "s2", "x y z")],
               header="id\tsource\ttarget\tsource_speaker\ttarget_speaker\tphones")
    (pair,) = read_pairs(p)
    assert pair.targets == [str(env["tgt"]), str(env["tgt2"])] and pair.phones == ["x", "y", "z"]
    assert pair.target_speaker == "s2" and pair.reference is None
    with pytest.raises(DataError, match="lacks column"):
        read_pairs(_pairs(tmp_path / "q.tsv", [], header="id\tsource"))
    with pytest.raises(DataError, match="line 3: duplicate id"):
        read_pairs(_pairs(tmp_path / "r.tsv", [("a", "x", "y"), ("a", "x", "y")]))
    with pytest.raises(DataError, match="line 2: 2 fields"):
        read_pairs(_pairs(tmp_path / "s.tsv", [("a", "x")]))
    with pytest.raises(DataError, match="unknown column 'speaker'"):
        read_pairs(_pairs(tmp_path / "t.tsv", [], header="id\tsource\ttarget\tspeaker"))


def test_convert_pairs_all_or_nothing(env, tmp_path):
    out = tmp_path / "out"
    good = _pairs(tmp_path / "good.tsv", [("p1", env["src"], env["tgt"]), ("p2", env["tgt"], env["tgt2"])])
    written = convert_pairs(env["model"], good, out, progress=False)
    assert [w.name for w in written] == ["p1.wav", "p2.wav"]
    assert sorted(x.name for x in out.iterdir()) == [".speechrep_output", "p1.wav", "p2.wav"]
    bad = _pairs(tmp_path / "bad.tsv", [("p3", env["src"], env["tgt"]), ("p4", env["silent"], env["tgt"])])
    with pytest.raises(DataError, match="pair 'p4'"):
        convert_pairs(env["model"], bad, out, progress=False, force=True)
    assert sorted(x.name for x in out.iterdir()) == [".speechrep_output", "p1.wav", "p2.wav"]  # no p3, no temp dir
    assert sorted(x.name for x in tmp_path.iterdir() if x.name.startswith(".")) == []


def _cli(*args):
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    return e.value.code


def test_cli_convert(env, tmp_path, capsys):
    out = tmp_path / "cli.wav"
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--target", env["tgt"],
                "--target", env["tgt2"], "--out", out) == 0
    assert sf.info(str(out)).samplerate == 16000
    bad = tmp_path / "bad.wav"
    assert _cli("convert", "--model", env["model"], "--source", env["silent"], "--target", env["tgt"], "--out", bad) == 1
    assert "error:" in capsys.readouterr().err and not bad.exists()
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--out", tmp_path / "x.wav") == 1
    assert "--target" in capsys.readouterr().err
    pairs = _pairs(tmp_path / "p.tsv", [("q1", env["src"], env["tgt"])])
    assert _cli("convert", "--model", env["model"], "--pairs", pairs, "--out-dir", tmp_path / "dir") == 0
    assert (tmp_path / "dir" / "q1.wav").is_file()
    assert _cli("convert", "--model", env["model"], "--pairs", pairs, "--out", tmp_path / "y.wav") == 1


def test_match_frames_by_hand():
    from speechrep.models.frame_matching import match_frames

    keys = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [6.0, 5.0]])
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    frames = torch.tensor([[0.2, 0.0], [5.9, 5.0]])
    torch.testing.assert_close(match_frames(frames, keys, values, 1), torch.tensor([[10.0], [40.0]]))
    torch.testing.assert_close(match_frames(frames, keys, values, 2), torch.tensor([[15.0], [35.0]]))
    torch.testing.assert_close(match_frames(frames, keys, values, 9), torch.tensor([[25.0], [25.0]]))  # all rows
    with pytest.raises(ConfigError, match="k must be >= 1"):
        match_frames(frames, keys, values, 0)
    with pytest.raises(ValueError, match="same number"):
        match_frames(frames, keys, values[:3], 1)


def test_frame_matching_pulls_the_conversion_to_target_frames(env, tmp_path, monkeypatch):
    from speechrep.features.logmel import log_mel

    plain = load_converter(env["pitch"])
    full = load_converter(env["pitch"], match_weight=1.0, match_k=1)
    half = load_converter(env["pitch"], match_weight=0.5, match_k=1)
    spk, stats = full.target_voice([env["tgt"]])
    keys, values = full.target_frames([env["tgt"]], spk)
    tgt_mel = torch.from_numpy(log_mel(read_input_audio(env["tgt"], sample_rate=16000), full.model.spec))
    torch.testing.assert_close(values, tgt_mel)  # the values are the target's real frames
    with torch.no_grad():  # the keys are the model's reconstruction of the target with its own F0
        wave = full._wave(read_input_audio(env["tgt"], sample_rate=16000))
        torch.testing.assert_close(keys, full.model.convert(tgt_mel[None], spk, pitch=full.model.pitch_features(wave))[0])
    seen = []
    monkeypatch.setattr(type(full.vocoder), "mel_to_wave", lambda self, mel: seen.append(mel) or np.zeros(10, np.float32))
    src = read_input_audio(env["src"], sample_rate=16000)
    for conv in (plain, full, half):
        conv.convert_wave(src, spk, stats, (keys, values))
    converted, matched, blend = (torch.from_numpy(m) for m in seen)
    # weight 1, k 1: every output frame is a real target frame; weight 0.5: halfway
    assert all(any(torch.allclose(f, v) for v in values) for f in matched)
    torch.testing.assert_close(blend, (converted + matched) / 2)
    assert not torch.allclose(converted, matched)
    with pytest.raises(ConfigError, match="needs the target frames"):
        full.convert_wave(src, spk, stats)
    with pytest.raises(ConfigError, match="weight in") as err:
        load_converter(env["model"], match_weight=1.5)
    assert "--match-weight" in str(err.value)
    with pytest.raises(ConfigError, match="k >= 1") as err:
        load_converter(env["model"], match_k=0)
    assert "--match-k" in str(err.value)


def test_frame_matching_file_and_pairs_agree(env, tmp_path):
    one = convert_file(env["model"], env["src"], [env["tgt"], env["tgt2"]], tmp_path / "one.wav", match_weight=0.5)
    pairs = _pairs(tmp_path / "p.tsv", [("b", env["src"], f"{env['tgt']},{env['tgt2']}")])
    (two,) = convert_pairs(env["model"], pairs, tmp_path / "dir", progress=False, match_weight=0.5)
    plain = convert_file(env["model"], env["src"], [env["tgt"], env["tgt2"]], tmp_path / "plain.wav")
    np.testing.assert_allclose(sf.read(one)[0], sf.read(two)[0], atol=1e-4)
    assert not np.allclose(sf.read(one)[0], sf.read(plain)[0], atol=1e-3)


def test_cli_convert_frame_matching(env, tmp_path, capsys):
    out = tmp_path / "m.wav"
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--target", env["tgt"], "--out", out,
                "--match-weight", 0.5, "--match-k", 2) == 0
    assert out.is_file()
    bad = tmp_path / "b.wav"
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--target", env["tgt"], "--out", bad,
                "--match-weight", 2) == 1
    assert "frame matching needs" in capsys.readouterr().err and not bad.exists()


def _population(d):
    """Data directory of two speakers: a (two tones), b (a tone and, sorted first, one too short)."""
    d.mkdir()
    utts = {"a-1": (0.4, 150.0), "a-2": (0.4, 170.0), "b-0": (0.15, 200.0), "b-1": (0.4, 250.0)}
    for u, (seconds, f0) in utts.items():
        _tone(d / f"{u}.wav", seconds, 16000, f0=f0)
    (d / "wav.scp").write_text("".join(f"{u} {d / u}.wav\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in utts))
    return d


def test_exaggeration_moves_the_code_away_from_the_population(env, tmp_path):
    pop_dir = _population(tmp_path / "pop")
    plain = load_converter(env["model"])
    code = {u: plain.speaker_code([pop_dir / f"{u}.wav"]) for u in ("a-1", "a-2", "b-1")}
    # each speaker's mean, then the mean over speakers; b-0 is below the speaker encoder's minimum
    expected = ((code["a-1"] + code["a-2"]) / 2 + code["b-1"]) / 2
    torch.testing.assert_close(plain.population_code(pop_dir), expected)
    torch.testing.assert_close(plain.population_code(pop_dir, per_speaker=1), code["a-1"])  # b's first is too short
    conv = load_converter(env["model"], exaggerate=0.5, population=pop_dir)
    torch.testing.assert_close(conv.population, expected)
    spk = plain.speaker_code([env["tgt"]])
    torch.testing.assert_close(conv.exaggerated(spk), spk + 0.5 * (spk - expected))
    assert plain.exaggerated(spk) is spk
    src = read_input_audio(env["src"], sample_rate=16000)
    np.testing.assert_allclose(conv.convert(env["src"], [env["tgt"]]),
                               plain.convert_wave(src, spk + 0.5 * (spk - expected)), atol=1e-6)
    assert not np.allclose(conv.convert(env["src"], [env["tgt"]]), plain.convert(env["src"], [env["tgt"]]), atol=1e-3)


def test_exaggeration_errors(env, tmp_path, capsys):
    with pytest.raises(ConfigError, match="population") as err:
        load_converter(env["model"], exaggerate=0.5)
    assert "--exaggerate" in str(err.value)
    with pytest.raises(ConfigError, match="factor >= 0"):
        load_converter(env["model"], exaggerate=-1.0, population=tmp_path)
    with pytest.raises(DataError, match="missing"):
        load_converter(env["model"], exaggerate=0.5, population=tmp_path / "missing")
    short = tmp_path / "short"
    short.mkdir()
    _tone(short / "s.wav", 0.15, 16000)
    (short / "wav.scp").write_text(f"s {short / 's.wav'}\n")
    (short / "utt2spk").write_text("s s\n")
    with pytest.raises(DataError, match="no utterance of at least 20 frames") as err:
        load_converter(env["model"], exaggerate=0.5, population=short)
    assert str(short) in str(err.value)
    # CLI: works with a population, fails without one and writes nothing
    pop_dir = _population(tmp_path / "pop")
    out, bad = tmp_path / "e.wav", tmp_path / "bad.wav"
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--target", env["tgt"], "--out", out,
                "--exaggerate", 0.5, "--population", pop_dir, "--match-weight", 0.25) == 0
    assert out.is_file()
    capsys.readouterr()
    assert _cli("convert", "--model", env["model"], "--source", env["src"], "--target", env["tgt"], "--out", bad,
                "--exaggerate", 0.5) == 1
    assert "--population" in capsys.readouterr().err and not bad.exists()
