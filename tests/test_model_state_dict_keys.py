"""Checkpoints keep loading across refactors: the parameter names and the saved arguments of
every model family.

``fixtures/state_dict_keys.json`` was recorded from the models before ``models/vc.py`` and
``models/bottlenecks.py`` were split and the options that recorded failed experiments were
deleted (issue 38): per case the arguments given, the state_dict keys, and ``saved_args``,
the resolved arguments that a checkpoint's ``state.json`` held then (with every option of
that time at its value). A checkpoint saved then must still build the same model.
"""

import json
from pathlib import Path

import pytest

from speechrep.errors import ConfigError
from speechrep.models.registry import build_model

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "state_dict_keys.json").read_text())


def _build(spec, args):
    extra = {"input_dim": spec["input_dim"], "num_speakers": 3} if spec["model"] in ("vqcpc", "vqvae") else {}
    return build_model(spec["model"], args, **extra)[0]


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_state_dict_keys_are_those_recorded_before_the_split(case):
    spec = RECORDED[case]
    assert sorted(_build(spec, spec["args"]).state_dict()) == spec["keys"]


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_arguments_saved_before_the_split_build_the_same_model(case):
    spec = RECORDED[case]
    assert sorted(_build(spec, spec["saved_args"]).state_dict()) == spec["keys"]


@pytest.mark.parametrize("model, key, value", [("vc_adain", "detail_weight", 0.5), ("vc_vq", "content_downsample", 2),
                                               ("vqcpc", "smooth_weight", 4.0), ("vqcpc", "feat_warp", 0.1),
                                               ("vc_adain", "speaker_encoder", "table"), ("vqvae", "loss", "l1")])
def test_a_deleted_option_is_refused_unless_at_the_value_that_is_now_the_only_behaviour(model, key, value):
    spec = next(s for s in RECORDED.values() if s["model"] == model)
    with pytest.raises(ConfigError, match="negative_results") as err:
        _build(spec, {**spec["saved_args"], key: value})
    assert err.value.field == f"model.args.{key}"


@pytest.mark.parametrize("name, args, expect", [
    ("cpc", {"objective": "infonce", "dim": 8, "context_dim": 8}, {"critic": "separable", "estimator": "infonce"}),
    ("cpc", {"objective": "positive_only", "dim": 8, "context_dim": 8}, {"critic": "reconstruction", "estimator": "positive"}),
    ("dim", {"objective": "dim", "estimator": "dv", "dim": 8, "code_dim": 4}, {"critic": "separable", "estimator": "dv"}),
    ("dim", {"objective": "autoencoder", "estimator": "jsd", "dim": 8, "code_dim": 4},
     {"critic": "reconstruction", "estimator": "positive"}),
])
def test_the_former_objective_key_loads_as_critic_and_estimator(name, args, expect):
    from speechrep.models.registry import build_model

    _, cfg = build_model(name, dict(args), input_dim=10)
    assert {k: getattr(cfg, k) for k in expect} == expect


def test_an_unknown_former_objective_is_refused():
    from speechrep.errors import ConfigError
    from speechrep.models.registry import build_model

    with pytest.raises(ConfigError, match="model.args.objective: option renamed"):
        build_model("cpc", {"objective": "mine"}, input_dim=10)
