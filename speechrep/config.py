"""Dataclass configs <-> YAML.

Every configurable part of speechrep is a (nested) dataclass. :func:`load_config` reads a
YAML file into it, rejects unknown keys naming the key and the file, checks value types,
applies ``--set a.b=value`` overrides (values parsed as YAML scalars/lists), and
:func:`save_config` writes the resolved config next to the results.

Example
-------
>>> @dataclass
... class Model:
...     dim: int = 256
>>> @dataclass
... class Cfg:
...     model: Model = field(default_factory=Model)
>>> load_config(Cfg, None, overrides=["model.dim=64"]).model.dim
64
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field  # noqa: F401  (re-exported for config modules)
from pathlib import Path
from typing import Any, Iterable, TypeVar

import yaml

from speechrep.errors import ConfigError
from speechrep.utils.io import atomic_write_text

T = TypeVar("T")

__all__ = ["load_config", "from_dict", "to_dict", "save_config", "apply_overrides", "dataclass", "field"]


def load_config(cls: type[T], path: str | Path | None = None, *, overrides: Iterable[str] = ()) -> T:
    """Build ``cls`` from a YAML file (or defaults when ``path`` is None) plus overrides.

    Parameters
    ----------
    cls : dataclass type
    path : YAML file; missing keys take the dataclass defaults.
    overrides : ``"a.b=value"`` strings, applied after the file.

    Raises
    ------
    ConfigError
        Missing/unparsable file, unknown key, wrong value type, malformed override.
    """
    source = "<defaults>"
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file():
            raise ConfigError("config file not found", path=path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ConfigError(f"not valid YAML ({str(e).splitlines()[0]})", path=path) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("top level must be a mapping of keys to values", path=path)
        data = loaded
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, source=source)


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``"a.b=value"`` overrides merged in."""
    import copy

    data = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} must look like key.sub=value", field="--set")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {}
                node[p] = child
            node = child
        node[parts[-1]] = value
    return data


def from_dict(cls: type[T], data: dict[str, Any], *, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursively, with strict key and type checks."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", path=source, field=prefix.rstrip(".") or None)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = prefix + str(unknown[0])
        known = ", ".join(sorted(fields))
        raise ConfigError(f"unknown config key '{key}' (known keys here: {known})", path=source)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source=source, key=prefix + name)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, *, source: str, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, source=source, key=key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"value {value!r} does not fit type {_name(tp)}", path=source, field=key)
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"value {value!r} is not one of {list(args)}", path=source, field=key)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source=source, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_coerce(args[0], v, source=source, key=f"{key}[{i}]") for i, v in enumerate(value))
            if args and len(args) != len(value):
                raise ConfigError(f"expected {len(args)} values, got {len(value)}", path=source, field=key)
            return tuple(_coerce(a, v, source=source, key=f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return [_coerce(inner, v, source=source, key=f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"expected a mapping, got {value!r}", path=source, field=key)
        vt = args[1] if args else Any
        return {k: _coerce(vt, v, source=source, key=f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"expected true/false, got {value!r}", path=source, field=key)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"expected an integer, got {value!r}", path=source, field=key)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise ConfigError(f"expected a number, got {value!r}", path=source, field=key)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"expected a string, got {value!r}", path=source, field=key)
    if tp is Path:
        return Path(value)
    return value


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def to_dict(obj: Any) -> Any:
    """Plain (YAML-safe) dict of a dataclass config, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_config(obj: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    atomic_write_text(path, yaml.safe_dump(to_dict(obj), sort_keys=False))
