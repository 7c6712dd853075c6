"""Collapse monitors: hand-built codes, and a short training run with and without negatives."""

import pytest
import torch

from speechrep.models.cpc import CPC, CPCConfig
from speechrep.objectives.collapse import collapse_monitors, effective_rank, normalised_variance

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_effective_rank_of_known_spectra():
    assert float(effective_rank(torch.randn(1, 8).repeat(50, 1))) == pytest.approx(1.0, abs=1e-4)
    eye = torch.eye(6).repeat(3, 1)  # six equal singular values
    assert float(effective_rank(eye)) == pytest.approx(6.0, abs=1e-4)
    assert 40 < float(effective_rank(torch.randn(4000, 64, generator=torch.Generator().manual_seed(0)))) <= 64


def test_normalised_variance_zero_for_one_direction_one_for_isotropic():
    direction = torch.randn(16)
    scaled = direction * torch.rand(100, 1) + 0.0  # same direction, different norms
    assert float(normalised_variance(scaled)) == pytest.approx(0.0, abs=1e-6)
    iso = torch.randn(20000, 16, generator=torch.Generator().manual_seed(0))
    assert float(normalised_variance(iso)) == pytest.approx(1.0, abs=0.05)


def test_monitor_keys_and_chance_ratio():
    out = collapse_monitors(torch.randn(10, 4), accuracy=torch.tensor(0.25), num_candidates=8)
    assert set(out) == {"collapse/var", "collapse/eff_rank", "collapse/acc_vs_chance"}
    assert float(out["collapse/acc_vs_chance"]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="candidates"):
        collapse_monitors(torch.randn(10, 4), accuracy=torch.tensor(0.5), num_candidates=1)


def _train(critic: str, estimator: str, steps: int = 40) -> dict[str, float]:
    torch.manual_seed(0)
    cfg = CPCConfig(
        dim=16, context="gru", context_dim=16, num_steps=2, num_negatives=8, negatives="batch", critic=critic, estimator=estimator, feat_layers=2
    )
    model = CPC(cfg, input_dim=12)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 32, 12, generator=g).cumsum(1) * 0.3  # smooth, hence predictable, sequences
        out = model({"feats": x})
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return {k: float(v) for k, v in out.items() if k.startswith("collapse/")}


def test_positives_only_collapses_and_negatives_prevent_it():
    collapsed = _train("reconstruction", "positive")
    healthy = _train("separable", "infonce")
    # without negatives all codes drift to one direction: spread and rank fall, the
    # contrastive accuracy stays at chance; with negatives none of this happens
    assert collapsed["collapse/var"] < 0.2 * healthy["collapse/var"]
    assert collapsed["collapse/eff_rank"] < 0.7 * healthy["collapse/eff_rank"]
    assert collapsed["collapse/acc_vs_chance"] < 1.5 < healthy["collapse/acc_vs_chance"]
