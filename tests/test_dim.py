"""Deep InfoMax and its autoencoder special case."""

import dataclasses

import pytest
import torch

from speechrep.errors import ConfigError
from speechrep.models.critics import ReconstructionCritic, SeparableCritic
from speechrep.models.dim import DIM, DIMConfig
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny(**kw):
    base = dict(dim=16, code_dim=8, critic_dim=16, max_frames=48, feat_layers=2)
    base.update(kw)
    return DIMConfig(**base)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"feats": torch.randn(4, 16, 10, generator=g).cumsum(1) * 0.3}


#: every (critic, estimator) pair a config may name; the separable critic needs negatives
COMBINATIONS = [("separable", e) for e in ("jsd", "dv", "infonce")] + [("reconstruction", e) for e in ("jsd", "dv", "infonce", "positive")]


@pytest.mark.parametrize("critic,estimator", COMBINATIONS)
def test_forward_backward_and_logged_terms(critic, estimator):
    torch.manual_seed(0)
    model = DIM(tiny(critic=critic, estimator=estimator, prior_weight=0.1), input_dim=10)
    out = model(_batch())
    out["loss"].backward()
    assert all(v.dim() == 0 for v in out.values())
    assert {"loss/local", "loss/prior", "acc/local", "collapse/var", "collapse/eff_rank", "collapse/acc_vs_chance"} <= set(out)
    assert ("loss/global" in out) == (critic == "separable")
    assert all(p.grad is not None for p in model.parameters())


def test_critic_switch_swaps_only_the_critic():
    dim_model = DIM(tiny(), input_dim=10)
    ae_model = DIM(tiny(critic="reconstruction", estimator="positive"), input_dim=10)
    assert isinstance(dim_model.local_critic, SeparableCritic)
    assert isinstance(ae_model.local_critic, ReconstructionCritic)
    # same encoder and code head architecture: their weights are interchangeable
    ae_model.encoder.load_state_dict(dim_model.encoder.state_dict())
    ae_model.code_head.load_state_dict(dim_model.code_head.state_dict())
    batch = _batch()
    assert torch.equal(ae_model.encode(batch), dim_model.encode(batch))


def test_autoencoder_preset_is_dim_with_two_other_config_lines():
    _, dim_cfg = build_model("dim", {}, input_dim=10)
    _, ae_cfg = build_model("autoencoder", {}, input_dim=10)
    a, b = dataclasses.asdict(dim_cfg), dataclasses.asdict(ae_cfg)
    assert {k for k in a if a[k] != b[k]} == {"critic", "estimator"}
    assert (b["critic"], b["estimator"]) == ("reconstruction", "positive")


def test_autoencoder_loss_is_reconstruction_mse():
    torch.manual_seed(0)
    model = DIM(tiny(critic="reconstruction", estimator="positive", max_frames=64), input_dim=10)  # all 4 x 16 frames
    batch = _batch()
    out = model(batch)
    codes = model.encode(batch)  # (B, T, G)
    decoded = model.local_critic.decoder(codes)
    mse = torch.nn.functional.mse_loss(decoded, batch["feats"])
    assert float(out["loss"].detach()) == pytest.approx(float(mse.detach()), rel=1e-5)


def test_autoencoder_on_waveform_reconstructs_10ms_chunks():
    model = DIM(tiny(critic="reconstruction", estimator="positive"))
    assert model.local_critic.decoder[-1].out_features == 160
    out = model({"wave": torch.randn(2, 1600)})
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize("critic,estimator", COMBINATIONS)
def test_loss_falls(critic, estimator):
    torch.manual_seed(0)
    model = DIM(tiny(critic=critic, estimator=estimator), input_dim=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _batch()
    losses = []
    for _ in range(30):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.8 * losses[0]


def test_encode_layers():
    model = DIM(tiny(), input_dim=10)
    assert model.encode(_batch(), layer="encoder").shape == (4, 16, 16)
    assert model.encode(_batch(), layer="context").shape == (4, 16, 8)
    assert model.frame_shift == 0.01


def test_bad_config_and_batch():
    with pytest.raises(ConfigError, match="prior_weight"):
        DIMConfig(prior_weight=-1)
    with pytest.raises(ConfigError, match="model.args.estimator.*separable critic needs negatives"):
        DIMConfig(critic="separable", estimator="positive")
    with pytest.raises(ConfigError, match="critic"):
        build_model("dim", {"critic": "dot"})
    with pytest.raises(ConfigError, match="data.batch_size"):
        DIM(tiny(), input_dim=10)({"feats": torch.randn(1, 16, 10)})
    with pytest.raises(ConfigError, match="data.input"):
        DIM(tiny(), input_dim=10)({"wave": torch.randn(2, 1600)})


def test_registry_names():
    model, cfg = build_model("autoencoder", {"dim": 16, "code_dim": 4}, input_dim=10)
    assert isinstance(model.local_critic, ReconstructionCritic) and model.global_critic is None
    model, cfg = build_model("dim", {"dim": 16, "code_dim": 4, "estimator": "dv"}, input_dim=10)
    assert cfg.critic == "separable" and cfg.estimator == "dv"
    # the former switch reads as the two lines that say it now (checkpoints saved before hold it)
    _, cfg = build_model("dim", {"objective": "autoencoder"})
    assert (cfg.critic, cfg.estimator) == ("reconstruction", "positive")
    with pytest.raises(ConfigError, match="objective"):
        build_model("dim", {"objective": "infomax"})
    with pytest.raises(ConfigError, match="estimator"):
        build_model("dim", {"estimator": "mine"})


def test_neighbour_frames_never_pair_a_frame_with_itself():
    from speechrep.models.dim import neighbour_frames

    torch.manual_seed(0)
    for T in (2, 3, 5, 40):
        t = torch.randint(0, T, (64, 8))
        n = neighbour_frames(t, T, max_offset=3)
        assert ((n >= 0) & (n < T)).all() and (n != t).all()
        assert ((n - t).abs() <= 3).all()
    assert torch.equal(neighbour_frames(t, 40, max_offset=0), t)


def _identity_dim():
    """A DIM whose encoder, code head and critic embeddings are identity maps (D = G = P = F)."""
    model = DIM(tiny(dim=64, code_dim=64, critic_dim=64, estimator="infonce", global_weight=0.0), input_dim=64)
    model.encoder = torch.nn.Identity()
    model.code_head = torch.nn.Identity()
    model.local_critic.phi = torch.nn.Identity()
    model.local_critic.psi = torch.nn.Identity()
    return model


def test_identity_map_wins_the_self_pairing_but_not_the_local_objective(monkeypatch):
    # i.i.d. frames: neighbouring frames share nothing, so no encoder can pick l_{t+k} among
    # the negatives. Pairing y_t with its own l_t (the former local term) is won by the
    # identity map: the trivial solution the objective must not admit.
    import speechrep.models.dim as dim_module

    feats = torch.randn(8, 50, 64, generator=torch.Generator().manual_seed(0))
    model = _identity_dim()
    chance = 1 / 48  # max_frames 48 over 8 utterances: 48 candidates per code
    torch.manual_seed(0)
    new = model({"feats": feats})
    assert float(new["acc/local"]) < 5 * chance
    assert float(new["loss/local"]) > 0.5 * float(torch.log(torch.tensor(48.0)))
    monkeypatch.setattr(dim_module, "neighbour_frames", lambda t, T, max_offset: t)  # the former pairing
    torch.manual_seed(0)
    old = model({"feats": feats})
    assert float(old["acc/local"]) > 0.95
    assert float(old["loss/local"]) < 0.1 * float(new["loss/local"])


def test_local_objective_learns_what_neighbours_share():
    # smooth inputs (neighbours share content): the local InfoNCE loss falls well below
    # log(48), where the i.i.d. test above keeps even a perfect-memory identity map
    torch.manual_seed(0)
    model = DIM(tiny(estimator="infonce", global_weight=0.0), input_dim=10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for step in range(60):
        out = model(_batch(step % 2))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss/local"]))
    assert sum(losses[-5:]) / 5 < 0.85 * float(torch.log(torch.tensor(48.0)))
