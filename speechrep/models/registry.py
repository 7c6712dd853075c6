"""Model registry: config name -> (builder, config dataclass).

A model module registers its builder on import::

    @register_model("cpc", config=CPCConfig)
    def build_cpc(cfg: CPCConfig, *, input_dim: int | None) -> torch.nn.Module: ...

``input_dim`` is the feature dimension when the data input is ``feats`` and ``None`` for
waveform input. If the config dataclass has a ``num_speakers`` field left at ``None`` (or 0),
the Trainer fills it with the number of speakers in the experiment's speaker list.

The registry imports the module of a known model lazily, by name (:data:`MODEL_MODULES`),
so that only the model a run needs is imported.

Model contract: ``forward(batch: dict[str, Tensor]) -> dict[str, Tensor]`` with a scalar
``"loss"`` and any other 0-dim tensors to log; batch keys ``"wave"`` (B, T) or ``"feats"``
(B, T, D), ``"speaker"`` (B,) int64, ``"lengths"`` (B,) int64. Optional: ``encode(batch)``
-> (B, T', D'), a ``frame_shift`` attribute (seconds), ``on_step_end(step: int)``, called
after every optimizer step on every rank (a hook that edits weights from local data, such
as a VQ dead-code restart, must make the same edit on all ranks, e.g. by broadcasting
rank 0's choice), and ``frozen_models()`` (:class:`speechrep.models.frozen.FrozenModels`):
frozen helper models (a judge, a teacher) that the Trainer loads and attaches before the
experiment directory is written; a model never loads a checkpoint itself.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from speechrep.config import from_dict
from speechrep.errors import ConfigError

__all__ = ["MODEL_MODULES", "register_model", "get_model_entry", "build_model", "known_models", "drop_retired"]

#: Where each known model name is registered (imported on first use).
MODEL_MODULES: dict[str, str] = {
    "toy": "speechrep.train.toy",
    "cpc": "speechrep.models.cpc",
    "vqcpc": "speechrep.models.vqcpc",
    "speaker_tdnn": "speechrep.models.speaker",
    "phone_ctc": "speechrep.models.phone_ctc",
    "dim": "speechrep.models.dim",
    "autoencoder": "speechrep.models.dim",
    "vqvae": "speechrep.models.vqvae",
    "vc_adain": "speechrep.models.vc_adain",
    "vc_adversarial": "speechrep.models.vc_adversarial",
    "vc_vq": "speechrep.models.vc_vq",
    "vocoder": "speechrep.vocoder.neural",
}

Builder = Callable[..., Any]
_REGISTRY: dict[str, tuple[Builder, type]] = {}


def register_model(name: str, *, config: type) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(cfg, *, input_dim) -> nn.Module`` under ``name``.

    Parameters
    ----------
    name : the ``model.name`` of experiment configs.
    config : dataclass validating ``model.args``.
    """

    def decorate(builder: Builder) -> Builder:
        _REGISTRY[name] = (builder, config)
        return builder

    return decorate


def known_models() -> list[str]:
    """Names that configs may use (registered or importable on demand), sorted."""
    return sorted(set(MODEL_MODULES) | set(_REGISTRY))


def get_model_entry(name: str) -> tuple[Builder, type]:
    """Return ``(builder, config_cls)`` for ``name``, importing its module if needed.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones), or its module is missing.
    """
    if name not in _REGISTRY:
        module = MODEL_MODULES.get(name)
        if module is None:
            raise ConfigError(f"unknown model '{name}' (known models: {', '.join(known_models())})", field="model.name")
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            # Only a missing model module is a config problem; a missing dependency inside
            # the module is a bug that should show its traceback.
            if e.name is None or not module.startswith(e.name):
                raise
            raise ConfigError(
                f"model '{name}' is provided by {module}, which is not available", field="model.name"
            ) from None
        if name not in _REGISTRY:
            raise ConfigError(f"module {module} does not register model '{name}'", field="model.name")
    return _REGISTRY[name]


def drop_retired(config_cls: type, args: dict[str, Any], *, source: str = "<config>") -> dict[str, Any]:
    """``args`` less the options deleted from ``config_cls`` that old configs and checkpoints still hold.

    ``config_cls.retired_options`` maps each deleted option (one that only recorded an
    experiment that did not help, docs/results/negative_results.md) to the value that is
    now the only behaviour, or to None where any value is (an option that did nothing
    without another retired one). Every checkpoint saved before the deletion names the
    option at that value, so it is dropped there; any other value asks for what no longer
    exists and is refused. ``config_cls.renamed_options`` maps an option whose vocabulary
    changed to ``{old value: the options that now say it}``, or to a function of the old
    value that returns them (an option of any value that moved into a new block).

    Raises
    ------
    ConfigError
        A retired option at another value, or a renamed option given with what replaces
        it (the field and ``source`` named).
    """
    renamed: dict[str, dict[Any, dict[str, Any]] | Callable[[Any], dict[str, Any]]] = getattr(
        config_cls, "renamed_options", {})
    for key in [k for k in args if k in renamed]:
        value = args.pop(key)
        rename = renamed[key]
        if callable(rename):
            new = rename(value)
            both = sorted(set(new) & set(args))
            if both:
                raise ConfigError(f"option renamed to {both[0]}: give only {both[0]}", path=source,
                                  field=f"model.args.{key}")
            args.update(new)
            continue
        if value not in rename:
            raise ConfigError(f"option renamed; its old values are {', '.join(map(repr, rename))}, got {value!r}",
                              path=source, field=f"model.args.{key}")
        args.update(rename[value])
    retired: dict[str, Any] = getattr(config_cls, "retired_options", {})
    for key in [k for k in args if k in retired]:
        value = args.pop(key)
        if retired[key] is not None and value != retired[key]:
            raise ConfigError(f"option removed (an experiment that did not help: docs/results/negative_results.md); "
                              f"only {retired[key]!r} is accepted, got {value!r}", path=source, field=f"model.args.{key}")
    return args


def build_model(
    name: str,
    args: dict[str, Any] | None,
    *,
    input_dim: int | None = None,
    num_speakers: int | None = None,
    source: str = "<config>",
) -> tuple[Any, Any]:
    """Validate ``args`` with the model's config dataclass and build the module.

    Parameters
    ----------
    name : registered model name.
    args : model-specific keys (``model.args`` of the experiment config).
    input_dim : feature dimension D for ``feats`` input, None for waveform.
    num_speakers : fills a ``num_speakers`` config field that is left at None or 0.
    source : file named in config errors.

    Returns
    -------
    (module, cfg) : the ``torch.nn.Module`` and its validated config dataclass.
    """
    builder, config_cls = get_model_entry(name)
    cfg = from_dict(config_cls, drop_retired(config_cls, dict(args or {}), source=source), source=source,
                    prefix="model.args.")
    if num_speakers is not None and hasattr(cfg, "num_speakers") and not getattr(cfg, "num_speakers"):
        cfg.num_speakers = num_speakers
    return builder(cfg, input_dim=input_dim), cfg
