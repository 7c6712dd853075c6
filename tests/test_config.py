from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from speechrep.config import load_config, save_config, to_dict
from speechrep.errors import ConfigError


@dataclass
class Inner:
    dim: int = 8
    lr: float = 1e-3
    kind: Literal["gru", "lstm"] = "gru"


@dataclass
class Outer:
    name: str = "x"
    inner: Inner = field(default_factory=Inner)
    layers: list[int] = field(default_factory=lambda: [1, 2])
    seed: Optional[int] = None


def test_defaults_and_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: run\ninner:\n  dim: 16\n  lr: 1e-4\nlayers: [3]\n")
    cfg = load_config(Outer, p)
    assert cfg.name == "run" and cfg.inner.dim == 16 and cfg.inner.lr == 1e-4 and cfg.layers == [3]
    assert cfg.inner.kind == "gru" and cfg.seed is None


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  dimm: 16\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*inner\.dimm"):
        load_config(Outer, p)


def test_overrides(tmp_path):
    cfg = load_config(Outer, None, overrides=["inner.dim=64", "inner.kind=lstm", "seed=3", "layers=[4, 5]"])
    assert cfg.inner.dim == 64 and cfg.inner.kind == "lstm" and cfg.seed == 3 and cfg.layers == [4, 5]
    with pytest.raises(ConfigError, match="inner.nope"):
        load_config(Outer, None, overrides=["inner.nope=1"])
    with pytest.raises(ConfigError, match="--set"):
        load_config(Outer, None, overrides=["nonsense"])


def test_type_errors(tmp_path):
    with pytest.raises(ConfigError, match="inner.dim"):
        load_config(Outer, None, overrides=["inner.dim=abc"])
    with pytest.raises(ConfigError, match="inner.kind"):
        load_config(Outer, None, overrides=["inner.kind=rnn"])


def test_roundtrip(tmp_path):
    cfg = load_config(Outer, None, overrides=["inner.dim=5"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(Outer, tmp_path / "out" / "config.yaml")
    assert to_dict(again) == to_dict(cfg)


def test_missing_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Outer, bad)


@dataclass
class WithOptional:
    inner: Optional[Inner] = None
    mode: Optional[Literal["a", "b"]] = None
    size: int | float = 1


@pytest.mark.parametrize(
    "cls, yaml_text, overrides, message",
    [
        # the file, or --set when an override gave the value (or one of its parents)
        (Outer, "inner:\n  kind: rnn\n", [], "c.yaml: inner.kind: expected one of gru, lstm, got 'rnn'"),
        (Outer, "", ["inner.kind=rnn"], "--set: inner.kind: expected one of gru, lstm, got 'rnn'"),
        (Outer, "inner:\n  dim: 3\n", ["inner={dim: x}"], "--set: inner.dim: expected an integer, got 'x'"),
        (Outer, "", ["inner.dimm=3"], "--set: unknown config key 'inner.dimm' (known keys here: dim, kind, lr)"),
        # Optional[...]: the inner type in plain words, choices listed, "or null"
        (WithOptional, "mode: c\n", [], "c.yaml: mode: expected one of a, b (or null), got 'c'"),
        (Outer, "seed: [1]\n", [], "c.yaml: seed: expected an integer (or null), got [1]"),
        (WithOptional, "size: x\n", [], "c.yaml: size: expected an integer or a number, got 'x'"),
        (Outer, "inner: 3\n", [], "c.yaml: inner: expected a mapping of keys to values, got 3"),
        (Outer, "name: [a]\n", [], "c.yaml: name: expected a string, got ['a']"),
        # a nested key under an Optional section keeps its own message
        (WithOptional, "inner:\n  lr: fast\n", [], "c.yaml: inner.lr: expected a number, got 'fast'"),
    ],
)
def test_type_errors_say_where_and_what_in_plain_words(tmp_path, cls, yaml_text, overrides, message):
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError) as e:
        load_config(cls, p, overrides=overrides)
    assert str(e.value).replace(str(tmp_path) + "/", "") == message
