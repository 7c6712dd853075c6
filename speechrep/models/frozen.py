"""Frozen helper models (a judge, a teacher) that a model uses in training without training them.

A model that needs one declares it in :meth:`FrozenModels.frozen_models` (name -> where it
lies, the config field that named it, the class it must be); the caller (the Trainer, through
:func:`speechrep.train.checkpoint.attach_frozen_models`) loads each and hands it over with
:meth:`FrozenModels.attach_frozen`. Models never load checkpoints themselves. A frozen model
is kept out of the module tree, so that it is neither trained nor saved with its user.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

from speechrep.errors import ConfigError

__all__ = ["FrozenSpec", "FrozenModels"]


class FrozenSpec(NamedTuple):
    """What a model needs loaded: ``path`` of the experiment, the config ``field`` that gave
    it (named in errors) and the class ``kind`` the loaded module must be."""

    path: str
    field: str
    kind: type


class FrozenModels:
    """Mixin of :class:`torch.nn.Module` subclasses that use frozen helper models."""

    def frozen_models(self) -> dict[str, FrozenSpec]:
        """The frozen models this configuration needs, by name (none by default)."""
        return {}

    def attach_frozen(self, name: str, module: nn.Module) -> None:
        """Hand over the frozen model ``name``: gradients off, outside the module tree."""
        spec = self.frozen_models().get(name)
        if spec is None:
            raise ConfigError(f"{type(self).__name__} needs no frozen model '{name}'", field=name)
        if not isinstance(module, spec.kind):
            raise ConfigError(f"not a {spec.kind.__name__}", path=spec.path, field=spec.field)
        self.__dict__[f"_frozen_{name}"] = module.requires_grad_(False).eval()

    def frozen(self, name: str, device: torch.device) -> nn.Module:
        """The attached frozen model ``name`` on ``device``, in eval mode."""
        module = self.__dict__.get(f"_frozen_{name}")
        if module is None:
            spec = self.frozen_models().get(name)
            field = spec.field if spec else name
            raise ConfigError(f"frozen model '{name}' was not loaded (speechrep train loads it; elsewhere call "
                              "speechrep.train.checkpoint.attach_frozen_models first)", field=field)
        return module.to(device).eval()
