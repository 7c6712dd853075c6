"""Deep InfoMax on the 8x8 digits: input checks, model variants, the tiny recipe end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrep.errors import ConfigError, DataError
from speechrep.models.bottlenecks import BottleneckConfig
from speechrep.sidetasks.common import format_table, mean_std
from speechrep.sidetasks.digits import (
    DigitsConfig,
    DigitsSystem,
    ImageDIM,
    check_images,
    load_images,
    probe_scores,
    random_shift,
)

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "egs/digits/dim"


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_bundled_digits_load_scaled():
    d = load_images()
    assert d.images.shape == (1797, 8, 8) and d.images.dtype == np.float32
    assert d.images.min() == 0.0 and d.images.max() == 1.0
    assert set(np.unique(d.labels)) == set(range(10))


@pytest.mark.parametrize(
    "images, labels, field",
    [
        (np.zeros((5, 7, 7)), np.zeros(5, int), "images"),  # wrong shape
        (np.zeros((5, 63)), np.zeros(5, int), "images"),
        (np.full((5, 8, 8), np.nan), np.zeros(5, int), "images"),
        (np.full((5, 8, 8), 17.0), np.zeros(5, int), "images"),  # beyond the 0..16 range
        (np.zeros((5, 64)), np.zeros(4, int), "labels"),
        (np.zeros((5, 64)), np.zeros(5, float), "labels"),
    ],
)
def test_bad_images_are_clear_errors(images, labels, field):
    with pytest.raises(DataError, match=f"x.npz: {field}: "):
        check_images(images, labels, source="x.npz")


def test_npz_images(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, images=np.random.default_rng(0).integers(0, 17, (6, 64)), labels=np.arange(6))
    d = load_images(good)
    assert d.images.shape == (6, 8, 8) and d.labels.tolist() == list(range(6))
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((6, 64)))
    with pytest.raises(DataError, match="bad.npz.*'images' and 'labels'"):
        load_images(bad)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, images=np.zeros((6, 4, 16)), labels=np.arange(6))
    with pytest.raises(DataError, match=r"wrong.npz: images: .*\(6, 4, 16\)"):
        load_images(wrong)
    with pytest.raises(DataError, match="not found"):
        load_images(tmp_path / "missing.npz")


def test_invalid_system_combinations():
    with pytest.raises(ConfigError, match="needs negatives"):
        DigitsSystem(name="x", critic="separable", estimator="positive")
    with pytest.raises(ConfigError, match="mode global"):
        DigitsSystem(name="x", critic="reconstruction", estimator="positive", mode="local")


@pytest.mark.parametrize(
    "system",
    [
        DigitsSystem(name="g", estimator="dv", mode="global"),
        DigitsSystem(name="l", estimator="infonce", mode="local"),
        DigitsSystem(name="ae", critic="reconstruction", estimator="positive"),
        DigitsSystem(name="aejsd", critic="reconstruction", estimator="jsd"),
        DigitsSystem(name="oh", mode="local", bottleneck=BottleneckConfig(kind="onehot", num_codes=8)),
        DigitsSystem(name="bin", mode="global", bottleneck=BottleneckConfig(kind="binary", num_bits=5)),
    ],
    ids=lambda s: s.name,
)
def test_variants_forward_backward(system):
    torch.manual_seed(0)
    model = ImageDIM(system, channels=4, code_dim=6, critic_dim=8)
    x = torch.rand(5, 8, 8)
    out = model({"images": x})
    assert out["loss"].dim() == 0 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert model.encoder.local[0].weight.grad.abs().sum() > 0  # the encoder is trained by every objective
    model.eval()
    codes = model.encode({"images": x})
    width = {"oh": 8, "bin": 5}.get(system.name, 6)
    assert codes.shape == (5, width)
    if system.bottleneck is not None:
        assert set(codes.unique().tolist()) <= {0.0, 1.0}
    feats = model.features({"images": x})
    assert feats["prequant"].shape == (5, 6) and feats["map"].shape == (5, 4 * 16)
    assert torch.equal(feats["code"], codes)


#: every (critic, estimator) pair a system may name, as in DIM and CPC
COMBINATIONS = [("separable", e) for e in ("jsd", "dv", "infonce")] + [("reconstruction", e) for e in ("jsd", "dv", "infonce", "positive")]


@pytest.mark.parametrize("critic,estimator", COMBINATIONS)
def test_every_critic_and_estimator_trains(critic, estimator):
    torch.manual_seed(0)
    model = ImageDIM(DigitsSystem(name="s", critic=critic, estimator=estimator), channels=4, code_dim=6, critic_dim=16)
    x = torch.from_numpy(load_images().images[:32]).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model({"images": x})["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    # DV starts near 0, the others at their own scale: a fall of 5 % of that scale
    assert losses[-1] < losses[0] - 0.05 * max(abs(losses[0]), 1.0)


def test_random_shift_translates_by_at_most_shift():
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(200, 8, 8)
    x[:, 3, 4] = 1.0  # one lit pixel away from the border
    assert random_shift(x, 0, generator=gen) is x
    y = random_shift(x, 1, generator=gen)
    assert y.shape == x.shape and (y.sum((1, 2)) == 1).all()
    rows, cols = y.flatten(1).argmax(1) // 8, y.flatten(1).argmax(1) % 8
    assert set(rows.tolist()) == {2, 3, 4} and set(cols.tolist()) == {3, 4, 5}  # all 9 offsets drawn


def test_second_view_feeds_the_critic():
    torch.manual_seed(0)
    model = ImageDIM(DigitsSystem(name="g", estimator="infonce"), channels=4, code_dim=6, critic_dim=8)
    x = torch.rand(6, 8, 8)
    same = model({"images": x})["loss"]
    assert torch.equal(model({"images": x, "views": x})["loss"], same)
    # at initialisation the scores are near 0 and the loss near ln 6, so compare exactly
    assert not torch.equal(model({"images": x, "views": x.roll(1, 0)})["loss"], same)
    with pytest.raises(ConfigError, match="shift"):
        DigitsConfig(shift=5)


def test_probe_separates_separable_features():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 4)) + 5 * np.eye(3, 4)[y]
    s = probe_scores(x[::2], y[::2], x[1::2], y[1::2])
    assert s["linear"] > 0.95 and s["knn"] > 0.95
    noise = probe_scores(rng.normal(size=(45, 4)), y[::2], rng.normal(size=(45, 4)), y[1::2])
    assert noise["linear"] < 0.7


def test_table_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    t = format_table("T", {"a": {"x": [0.5, 0.7]}, "b": {"x": 0.25}}, ["x", "y"])
    assert "0.600 ± 0.141" in t and "0.250" in t and t.splitlines()[0] == "T"
    assert t.splitlines()[-1].split() == ["b", "0.250", "-"]


def test_tiny_recipe_end_to_end(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    run = subprocess.run(["bash", str(RECIPE / "run.sh"), "--quick", "--exp", str(tmp_path)], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Stage 3: Train and evaluate: sklearn digits" in run.stdout
    exp = tmp_path / "digits_dim"
    r = json.loads((exp / "results.json").read_text())
    s = r["systems"]
    assert {"raw_pixels", "pca_16", "untrained_encoder", "dim_jsd_global", "autoencoder", "dim_infonce_local_vq"} <= set(s)
    # every trained system also has its conv map probed; the bottleneck its pre-quantisation code
    assert all("linear_map" in s[k] for k in ("untrained_encoder", "dim_jsd_global", "autoencoder"))
    vq = s["dim_infonce_local_vq"]
    # the 16-code bottleneck discards what the code before it holds: its probe is far better
    assert vq["linear_prequant"][0] > max(vq["linear"][0] + 0.2, 3 * r["chance"])
    assert 1 < vq["distinct_codes"][0] <= 16
    assert "linear_prequant" not in s["dim_jsd_global"]
    assert r["chance"] < 0.11
    # DIM codes beat chance (0.10) by a wide margin
    assert s["dim_jsd_global"]["linear"][0] > 0.5 and s["dim_jsd_global"]["knn"][0] > 0.5
    assert s["autoencoder"]["final_loss"][0] < s["autoencoder"]["first_loss"][0]
    assert s["dim_jsd_global"]["final_loss"][0] < s["dim_jsd_global"]["first_loss"][0]
    assert s["raw_pixels"]["linear"][0] > 0.9
    assert "dim_jsd_global" in (exp / "results.txt").read_text()
    png = (exp / "plots/dim_jsd_global.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (exp / "config.yaml").is_file()
    rerun = subprocess.run(["bash", str(RECIPE / "run.sh"), "--quick", "--exp", str(tmp_path)], capture_output=True,
                           text=True, env=env)
    assert rerun.returncode == 0 and "Stage 3: Train and evaluate: sklearn digits -> " in rerun.stdout
    assert "done before; skipped" in rerun.stdout


def test_cli_bad_config_is_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("steps: 5\nbogus: 1\n")
    r = subprocess.run([sys.executable, "-m", "speechrep", "side", "digits-dim", str(cfg)], capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [f"error: {cfg}: unknown config key 'bogus' (known keys here: " + r.stderr.split("known keys here: ")[1].strip()]
    bad = tmp_path / "imgs.npz"
    np.savez(bad, images=np.zeros((4, 9, 9)), labels=np.arange(4))
    r = subprocess.run([sys.executable, "-m", "speechrep", "side", "digits-dim", str(RECIPE / "conf/tiny.yaml"),
                        "--set", f"images={bad}", "--set", f"exp_dir={tmp_path / 'exp'}"], capture_output=True, text=True)
    assert r.returncode == 1 and "images: expected images of shape (N, 8, 8)" in r.stderr
    assert not (tmp_path / "exp").exists()  # no partial output
