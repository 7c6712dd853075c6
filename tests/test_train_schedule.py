"""Learning-rate schedule: linear warmup, cosine decay to a floor."""

import math

import pytest

from speechrep.train.schedule import lr_at


def test_warmup_then_cosine():
    kw = dict(lr=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    assert [lr_at(s, **kw) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lr_at(4, **kw) == pytest.approx(1.0)
    assert lr_at(9, **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert lr_at(14, **kw) == pytest.approx(0.1) and lr_at(100, **kw) == pytest.approx(0.1)
    curve = [lr_at(s, **kw) for s in range(4, 15)]
    assert all(a >= b for a, b in zip(curve, curve[1:]))
    assert lr_at(5, **kw) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 10)))


def test_no_warmup():
    assert lr_at(0, lr=2.0, warmup_steps=0, max_steps=10) == pytest.approx(2.0)
    assert lr_at(10, lr=2.0, warmup_steps=0, max_steps=10) == pytest.approx(0.0)
