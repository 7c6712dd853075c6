"""Dataclass configs <-> YAML.

Every configurable part of speechrep is a (nested) dataclass. :func:`load_config` reads a
YAML file into it, rejects unknown keys naming the key and the file, checks value types,
applies ``--set a.b=value`` overrides (values parsed as YAML scalars/lists), and
:func:`save_config` writes the resolved config next to the results. An error names where
the bad value came from (the YAML file, or ``--set`` for an override), the key, and what
was expected in plain words (the choices, for a fixed set of values).

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

__all__ = [
    "load_config",
    "from_dict",
    "to_dict",
    "save_config",
    "apply_overrides",
    "OVERRIDE_SOURCE",
    "override_keys",
    "source_of",
    "dataclass",
    "field",
]

#: What errors name as the file when a value came from a ``--set key=value`` override.
OVERRIDE_SOURCE = "--set"


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
    overrides = list(overrides)
    data = apply_overrides(data, overrides)
    return from_dict(cls, data, source=source, overridden=override_keys(overrides))


def override_keys(overrides: Iterable[str]) -> frozenset[str]:
    """The dotted keys that ``"a.b=value"`` overrides set (malformed items are skipped)."""
    return frozenset(item.partition("=")[0].strip() for item in overrides if "=" in item)


def source_of(key: str, source: str, overridden: Iterable[str]) -> str:
    """Where the value of dotted ``key`` came from: ``--set`` when an override set it or
    one of its parents (``model.args=...`` sets ``model.args.dim``), else ``source``."""
    base = key.split("[", 1)[0]  # "optim.betas[0]" was set by "optim.betas=..."
    parts = base.split(".")
    prefixes = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return OVERRIDE_SOURCE if prefixes & set(overridden) else source


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


def from_dict(
    cls: type[T], data: dict[str, Any], *, source: str = "<dict>", prefix: str = "", overridden: Iterable[str] = ()
) -> T:
    """Build dataclass ``cls`` from a mapping, recursively, with strict key and type checks.

    ``source`` is the file errors name; a key in ``overridden`` (dotted, see
    :func:`override_keys`) or below one is named as ``--set`` instead.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    overridden = frozenset(overridden)
    key = prefix.rstrip(".")
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys to values, got {_describe(data)}",
            path=source_of(key, source, overridden) if key else source,
            field=key or None,
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        key = prefix + str(unknown[0])
        known = ", ".join(sorted(fields))
        raise ConfigError(
            f"unknown config key '{key}' (known keys here: {known})", path=source_of(key, source, overridden)
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source=source, key=prefix + name, overridden=overridden)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, *, source: str, key: str, overridden: frozenset[str] = frozenset()) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value

    def fail(expected: str) -> ConfigError:
        return ConfigError(
            f"expected {expected}, got {_describe(value)}", path=source_of(key, source, overridden), field=key
        )

    def coerce(inner: Any, item: Any, inner_key: str) -> Any:
        return _coerce(inner, item, source=source, key=inner_key, overridden=overridden)

    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(a, value, key)
            except ConfigError as e:
                if e.field != key:
                    raise  # a key inside a mapping or list: its own message says more
        raise fail(_expected(tp))
    if origin is typing.Literal:
        if value in args:
            return value
        raise fail(_expected(tp))
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, source=source, prefix=key + ".", overridden=overridden)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
            if args and len(args) != len(value):
                raise fail(f"a list of {len(args)} values")
            return tuple(coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return [coerce(inner, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail(_expected(tp))
        vt = args[1] if args else Any
        return {k: coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail(_expected(tp))
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail(_expected(tp))
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML 1.1 reads "1e-3" as a string
            except ValueError:
                pass
        raise fail(_expected(tp))
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise fail(_expected(tp))
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise fail(_expected(tp))
    return value


#: Plain words for the types configs use.
_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}


def _expected(tp: Any) -> str:
    """What a value of type ``tp`` must be, in plain words (choices listed)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        words = " or ".join(dict.fromkeys(_expected(a) for a in args if a is not type(None)))
        return f"{words} (or null)" if type(None) in args else words
    if origin is typing.Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (list, tuple):
        return "a list"
    if origin is dict or dataclasses.is_dataclass(tp):
        return "a mapping of keys to values"
    return _WORDS.get(tp, getattr(tp, "__name__", str(tp)))


def _describe(value: Any) -> str:
    """A value about as the user wrote it in YAML: ``'x'``, ``3``, ``null``, ``[1, 2]``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    return repr(list(value) if isinstance(value, tuple) else value)


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
