"""``speechrep extract``: a tiny trained CPC/DIM written as Kaldi ark/scp, and bad input."""

from __future__ import annotations

import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import yaml

from speechrep.extract import extract_representations
from speechrep.errors import CheckpointError, ConfigError, DataError
from speechrep.train.trainer import train
from tests.test_train_data import write_config, write_feats_dir, write_wave_dir


def _train(tmp_path, name, args, *, input="feats"):
    data = write_feats_dir(tmp_path) if input == "feats" else write_wave_dir(tmp_path)
    cfg = write_config(
        tmp_path / f"{name}.yaml",
        exp_dir=tmp_path / f"exp_{name}",
        data_dir=data,
        input=input,
        crop=16 if input == "feats" else 3200,
        model={"name": name, "args": args},
        optim={"max_steps": 3, "warmup_steps": 1},
        train={"ckpt_every": 3, "valid_every": 3},
    )
    return train(cfg), data


@pytest.fixture(scope="module")
def cpc_feats(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cpc")
    args = {"dim": 8, "context_dim": 6, "num_steps": 2, "num_negatives": 3, "feat_layers": 1}
    return _train(tmp, "cpc", args)


@pytest.mark.parametrize("layer, dim", [("context", 6), ("encoder", 8)])
def test_extract_writes_ark_scp_and_frame_times(cpc_feats, tmp_path, layer, dim):
    exp, data = cpc_feats
    scp = extract_representations(exp, data, tmp_path / "out", layer=layer, which="last", progress=False)
    feats = dict(kaldiio.load_scp(str(scp)))
    inputs = dict(kaldiio.load_scp(str(data / "feats.scp")))
    assert sorted(feats) == sorted(inputs)
    for utt, x in feats.items():
        assert x.shape == (inputs[utt].shape[0], dim) and np.isfinite(x).all()
    out = scp.parent
    assert float((out / "frame_shift").read_text()) == 0.01
    assert float((out / "frame_offset").read_text()) == 0.0125
    assert (out / "utt2num_frames").read_text().split("\n")[0].split()[1] == str(feats[sorted(feats)[0]].shape[0])
    info = yaml.safe_load((out / "feats_config.yaml").read_text())
    assert info["layer"] == layer and info["dim"] == dim and info["model_name"] == "cpc"


def test_extract_matches_model_encode(cpc_feats, tmp_path):
    import torch

    from speechrep.train.checkpoint import load_model

    exp, data = cpc_feats
    scp = extract_representations(exp, data, tmp_path / "out", which="last", progress=False)
    model, _, _ = load_model(exp, which="last")
    utt, x = next(iter(kaldiio.load_scp_sequential(str(data / "feats.scp"))))
    with torch.no_grad():
        expect = model.encode({"feats": torch.tensor(x)[None]})[0].numpy()
    np.testing.assert_allclose(dict(kaldiio.load_scp(str(scp)))[utt], expect, atol=1e-6)


def test_extract_wave_dim_model(tmp_path):
    exp, data = _train(tmp_path, "dim", {"dim": 8, "code_dim": 4, "critic_dim": 8, "max_frames": 16}, input="wave")
    scp = extract_representations(exp, data, tmp_path / "out", which="last", progress=False)
    feats = dict(kaldiio.load_scp(str(scp)))
    assert len(feats) == 9 and all(x.shape[1] == 4 for x in feats.values())
    assert feats["spkA-u0"].shape[0] == 4800 // 160
    assert float((scp.parent / "frame_offset").read_text()) == pytest.approx(0.005, abs=1e-4)


def test_bad_input_leaves_no_output(cpc_feats, tmp_path):
    exp, data = cpc_feats
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="--layer"):
        extract_representations(exp, data, out, layer="decoder", progress=False)
    with pytest.raises(CheckpointError):
        extract_representations(tmp_path / "no_exp", data, out, progress=False)
    (data.parent / "nofeats").mkdir()
    for name in ("wav.scp", "utt2spk"):
        (data.parent / "nofeats" / name).write_text((data / name).read_text())
    with pytest.raises(DataError, match="feats.scp"):
        extract_representations(exp, data.parent / "nofeats", out, which="last", progress=False)
    assert not out.exists()


def test_cli_extract_and_error_exit(cpc_feats, tmp_path):
    exp, data = cpc_feats
    run = lambda *a: subprocess.run([sys.executable, "-m", "speechrep", "extract", *map(str, a)], capture_output=True, text=True)  # noqa: E731
    r = run("--model", exp, "--layer", "encoder", "--which", "last", data, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "feats.scp").is_file()
    r = run("--model", tmp_path / "missing", data, tmp_path / "out2")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "out2").exists()


def test_extract_computes_the_models_input_features_when_feats_scp_is_absent(tmp_path):
    # a model trained on make-fbank features knows its front end (the training data's
    # conf/fbank.yaml): a data directory with audio only is featurised the same way
    import shutil

    from speechrep.data.make_features import make_features

    data = write_wave_dir(tmp_path)
    make_features(data, tmp_path / "fbank", kind="fbank", progress=False)
    cfg = write_config(tmp_path / "cpc.yaml", exp_dir=tmp_path / "exp", data_dir=data, input="feats", crop=16,
                       model={"name": "cpc", "args": {"dim": 8, "context_dim": 6, "num_steps": 2, "num_negatives": 3,
                                                      "feat_layers": 1}},
                       optim={"max_steps": 3, "warmup_steps": 1}, train={"ckpt_every": 3, "valid_every": 3})
    exp = train(cfg)
    audio_only = tmp_path / "audio_only"
    audio_only.mkdir()
    for name in ("wav.scp", "utt2spk"):
        shutil.copy(data / name, audio_only / name)
    with_feats = dict(kaldiio.load_scp(str(extract_representations(exp, data, tmp_path / "a", which="last",
                                                                   progress=False))))
    computed = dict(kaldiio.load_scp(str(extract_representations(exp, audio_only, tmp_path / "b", which="last",
                                                                 progress=False))))
    assert sorted(computed) == sorted(with_feats)
    for utt in with_feats:
        np.testing.assert_allclose(computed[utt], with_feats[utt], atol=1e-5)


@pytest.mark.parametrize("exc", [RuntimeError("Argument #4: Padding size should be less than the input"),
                                 ValueError("Expected more than 1 spatial element when training, got input size "
                                            "torch.Size([1, 23, 1])")])
def test_refused_input_names_the_utterance(exc, tmp_path):
    """A network's failure on one input (a padding error, an instance norm over one frame) becomes
    one DataError naming the utterance and the data directory."""
    from speechrep.errors import DataError
    from speechrep.train.inputs import refused_input

    with pytest.raises(DataError, match=rf"^{tmp_path}: utterance u1: the model cannot take this input of shape "
                                        r"\(1, 23\) \(too short\?\): "):
        with refused_input("u1", np.zeros((1, 23)), tmp_path):
            raise exc
    with pytest.raises(KeyError):  # anything else is not the input's fault
        with refused_input("u1", np.zeros((1, 23)), tmp_path):
            raise KeyError("x")
