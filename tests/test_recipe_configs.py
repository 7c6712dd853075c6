"""Every Trainer config shipped under egs/synth and egs/librispeech loads and builds its model.

Full-size configs run only in the recipes (too slow for the suite); this catches a
misspelt key or an invalid value in them before a user's long run does.
"""

from pathlib import Path

import pytest

from speechrep.train.config import resolve_config
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "egs").glob("synth/*/conf/*.yaml")) + sorted((ROOT / "egs").glob("librispeech/*/conf/*.yaml"))


def test_configs_found():
    assert len(CONFIGS) >= 15


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "egs")))
def test_shipped_config_loads_and_builds(path):
    cfg, _ = resolve_config(path)
    input_dim = 40 if cfg.data.input == "feats" else None
    args = dict(cfg.model.args)
    if cfg.data.phones:  # the inventory comes from the CTMs of data.phones when training starts
        args.setdefault("phones", ["a", "b"])
    module, _ = build_model(cfg.model.name, args, input_dim=input_dim, num_speakers=4, source=str(path))
    assert sum(p.numel() for p in module.parameters()) > 0
    assert cfg.optim.max_steps > 0
