"""Checkpoints keep loading across refactors: the parameter names of every model family.

``fixtures/state_dict_keys.json`` was recorded from the models before ``models/vc.py`` and
``models/bottlenecks.py`` were split (issue 38); a checkpoint saved then names its tensors
by these keys, so a model built from the same arguments must name them the same way.
"""

import json
from pathlib import Path

import pytest

from speechrep.models.registry import build_model

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "state_dict_keys.json").read_text())


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_state_dict_keys_are_those_recorded_before_the_split(case):
    spec = RECORDED[case]
    extra = {"input_dim": spec["input_dim"], "num_speakers": 3} if spec["model"] in ("vqcpc", "vqvae") else {}
    model, _ = build_model(spec["model"], spec["args"], **extra)
    assert sorted(model.state_dict()) == spec["keys"]
