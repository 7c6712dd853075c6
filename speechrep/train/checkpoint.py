"""Checkpoints: safetensors for tensors, JSON for everything else; never unpickled.

Layout of ``exp_dir/checkpoints/``::

    step_{N}/model.safetensors   model weights (state_dict of the unwrapped module)
    step_{N}/optim.safetensors   optimizer tensors, keys ``state.{param}.{name}``
    step_{N}/state.json          step, optimizer hyper-parameters, sampler position, RNG
                                 states (lists of ints), model name/args/input_dim,
                                 speaker list, SHA-256 of both safetensors files
    best.json                    {"step": N, "valid_loss": x} of the best validation loss

Each ``step_{N}`` directory is built under a temporary name and renamed when complete, so
a killed run leaves either a whole checkpoint or none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from speechrep.errors import CheckpointError, ConfigError
from speechrep.utils.io import atomic_dir, atomic_write_json

__all__ = [
    "weights_bytes",
    "save_checkpoint",
    "list_checkpoints",
    "find_checkpoint",
    "read_state",
    "check_resume_state",
    "load_weights",
    "load_optimizer",
    "prune_checkpoints",
    "write_best",
    "read_best",
    "load_model",
]

log = logging.getLogger("speechrep.train")
FORMAT = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses tensors sharing storage (tied weights): copy the repeats.
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        v = v.detach().to("cpu").contiguous()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen else v
        seen.add(ptr)
    return out


def weights_bytes(module: torch.nn.Module) -> bytes:
    """The ``model.safetensors`` bytes of ``module``'s state_dict (deterministic)."""
    from safetensors.torch import save

    return save(_unshared(module.state_dict()))


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                plain.setdefault(str(pid), {})[name] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return _unshared(tensors), {"param_groups": groups, "state": plain}


def save_checkpoint(
    root: str | Path, step: int, *, module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]
) -> Path:
    """Write ``root/step_{step}`` atomically and return its path.

    Parameters
    ----------
    root : the ``checkpoints`` directory.
    step : optimizer steps done.
    module : the unwrapped model.
    optimizer : its optimizer.
    state : JSON-serialisable training state (step, sampler, RNG, model spec, ...).
    """
    from safetensors.torch import save

    opt_tensors, opt_plain = _optimizer_split(optimizer)
    blobs = {"model.safetensors": weights_bytes(module), "optim.safetensors": save(opt_tensors)}
    state = {**state, "format": FORMAT, "step": step, "optimizer": opt_plain,
             "files": {name: hashlib.sha256(b).hexdigest() for name, b in blobs.items()}}
    with atomic_dir(Path(root) / f"step_{step}") as tmp:
        for name, b in blobs.items():
            (tmp / name).write_bytes(b)
        atomic_write_json(tmp / "state.json", state)
    return Path(root) / f"step_{step}"


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root`` as ``(step, path)``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def write_best(root: str | Path, step: int, valid_loss: float) -> None:
    """Point ``root/best.json`` at ``step_{step}``."""
    atomic_write_json(Path(root) / "best.json", {"step": step, "valid_loss": valid_loss, "path": f"step_{step}"})


def read_best(root: str | Path) -> dict[str, Any] | None:
    """Content of ``root/best.json``, or None when there is none."""
    path = Path(root) / "best.json"
    if not path.is_file():
        return None
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        int(best["step"])
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"corrupt best-checkpoint pointer ({e})", path=path) from None
    return best


def prune_checkpoints(root: str | Path, *, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and the best one; return deleted.

    Half-written ``.step_N.*.tmp`` directories of a killed run go as well.
    """
    for partial in Path(root).glob(".step_*.tmp"):
        shutil.rmtree(partial, ignore_errors=True)
    best = read_best(root)
    best_step = None if best is None else int(best["step"])
    ckpts = list_checkpoints(root)
    removed = []
    for step, path in ckpts[: max(0, len(ckpts) - keep_last)]:
        if step != best_step:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def find_checkpoint(path: str | Path, *, which: str = "last") -> Path:
    """Resolve an experiment directory (or a checkpoint directory) to a checkpoint.

    Parameters
    ----------
    path : ``exp_dir``, ``exp_dir/checkpoints`` or ``exp_dir/checkpoints/step_N``.
    which : ``"last"`` or ``"best"`` (best validation loss; the last checkpoint when the
        run had no validation set).

    Raises
    ------
    CheckpointError
        No checkpoint there, or ``which`` unknown.
    """
    path = Path(path)
    if which not in ("last", "best"):
        raise CheckpointError(f"which must be 'last' or 'best', not {which!r}", path=path)
    if (path / "state.json").is_file():
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    ckpts = list_checkpoints(root)
    if not ckpts:
        raise CheckpointError("no checkpoint found (expected checkpoints/step_N/state.json)", path=path)
    if which == "best":
        best = read_best(root)
        if best is not None:
            target = root / f"step_{int(best['step'])}"
            if not (target / "state.json").is_file():
                raise CheckpointError(f"best checkpoint step_{best['step']} is missing", path=root / "best.json")
            return target
    return ckpts[-1][1]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return _is_int(value) and value >= 0


#: Fields of ``state.json`` that readers use: dotted key -> (test, what it must be).
#: Checked when present (``step`` always), so a hand-edited file fails with its field.
_STATE_FIELDS: dict[str, tuple[Any, str]] = {
    "step": (_is_count, "a non-negative integer"),
    "files": (lambda v: isinstance(v, dict) and all(isinstance(h, str) for h in v.values()),
              "a mapping of file names to SHA-256 strings"),
    "model": (lambda v: isinstance(v, dict), "a mapping (name, args, input_dim)"),
    "model.name": (lambda v: isinstance(v, str), "a string"),
    "model.args": (lambda v: v is None or isinstance(v, dict), "a mapping or null"),
    "model.input_dim": (lambda v: v is None or _is_count(v), "a non-negative integer or null"),
    "speakers": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of speaker ids"),
}

#: What resuming a run reads besides :data:`_STATE_FIELDS`; all required but the last three.
_RESUME_FIELDS: dict[str, tuple[Any, str]] = {
    "optimizer": (lambda v: isinstance(v, dict), "a mapping (param_groups, state)"),
    "optimizer.param_groups": (lambda v: isinstance(v, list) and all(isinstance(g, dict) for g in v),
                               "a list of mappings"),
    "sampler": (lambda v: isinstance(v, dict), "a mapping (batches, world_size, batch_size)"),
    "sampler.batches": (_is_count, "a non-negative integer"),
    "sampler.world_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "sampler.batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "rng": (lambda v: v is None or (isinstance(v, list) and all(isinstance(r, dict) for r in v)),
            "a list of RNG states (one mapping per rank) or null"),
    "best": (lambda v: v is None or (isinstance(v, dict) and _is_count(v.get("step"))
                                     and _is_number(v.get("valid_loss"))),
             "null or a mapping with an integer step and a number valid_loss"),
    "valid_loss": (lambda v: v is None or _is_number(v), "a number or null"),
    "scaler": (lambda v: v is None or isinstance(v, dict), "a mapping or null"),
}
_RESUME_OPTIONAL = ("rng", "best", "valid_loss", "scaler")

_MISSING = object()


def _lookup(state: dict[str, Any], key: str) -> Any:
    node: Any = state
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _check_fields(state: dict[str, Any], fields: dict[str, tuple[Any, str]], path: Path, *,
                  required: tuple[str, ...] = ()) -> None:
    for key, (ok, words) in fields.items():
        value = _lookup(state, key)
        if value is _MISSING:
            if key in required:
                raise CheckpointError("missing", path=path, field=key)
            continue
        if not ok(value):
            shown = json.dumps(value)
            shown = shown if len(shown) <= 40 else shown[:37] + "..."
            raise CheckpointError(f"must be {words}, got {shown}", path=path, field=key)


def read_state(ckpt: str | Path) -> dict[str, Any]:
    """``state.json`` of checkpoint directory ``ckpt``.

    Raises
    ------
    CheckpointError
        Missing, truncated or otherwise unreadable file, or a field of the wrong type
        (naming the file and the field).
    """
    path = Path(ckpt) / "state.json"
    if not path.is_file():
        raise CheckpointError("missing file", path=path)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"corrupt or truncated JSON ({e})", path=path) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"not a speechrep checkpoint state (format {FORMAT} expected)", path=path)
    _check_fields(state, _STATE_FIELDS, path, required=("step",))
    return state


def check_resume_state(ckpt: str | Path, state: dict[str, Any]) -> None:
    """Check that ``state`` (read by :func:`read_state`) holds what resuming training reads.

    Raises
    ------
    CheckpointError
        A missing field or one of the wrong type, naming ``state.json`` and the field.
    """
    required = tuple(k for k in _RESUME_FIELDS if k.split(".")[0] not in _RESUME_OPTIONAL)
    _check_fields(state, _RESUME_FIELDS, Path(ckpt) / "state.json", required=required)


def _read_tensors(ckpt: Path, name: str, state: dict[str, Any]) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    path = ckpt / name
    if not path.is_file():
        raise CheckpointError("missing file", path=path)
    blob = path.read_bytes()
    expected = state.get("files", {}).get(name)
    if expected is not None and hashlib.sha256(blob).hexdigest() != expected:
        raise CheckpointError("corrupt or truncated file (SHA-256 differs from state.json)", path=path)
    try:
        return load(blob)
    except Exception as e:  # safetensors raises its own error types for bad headers/data
        raise CheckpointError(f"corrupt or truncated safetensors file ({e})", path=path) from None


def load_weights(
    module: torch.nn.Module, ckpt: str | Path, *, state: dict[str, Any] | None = None, allow_missing: bool = False
) -> list[str]:
    """Load ``ckpt/model.safetensors`` into ``module`` after checking it matches.

    ``allow_missing``: tensors of ``module`` that the checkpoint lacks keep their values
    (initialising part of a larger model, e.g. a vocoder that gains a discriminator).

    Returns
    -------
    The names of the tensors of ``module`` not in the checkpoint (empty unless ``allow_missing``).

    Raises
    ------
    CheckpointError
        Corrupt/truncated file, or a different architecture: names the file and the first
        missing, unexpected or wrongly shaped tensor.
    """
    ckpt = Path(ckpt)
    state = read_state(ckpt) if state is None else state
    tensors = _read_tensors(ckpt, "model.safetensors", state)
    path = ckpt / "model.safetensors"
    expected = module.state_dict()
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    if missing and not allow_missing:
        raise CheckpointError(
            f"wrong architecture: tensor '{missing[0]}' is missing ({len(missing)} missing)", path=path
        )
    if unexpected:
        raise CheckpointError(
            f"wrong architecture: unexpected tensor '{unexpected[0]}' ({len(unexpected)} unexpected)", path=path
        )
    for k, v in expected.items():
        if k in tensors and tuple(tensors[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"wrong architecture: tensor '{k}' has shape {tuple(tensors[k].shape)}, "
                f"the model expects {tuple(v.shape)}",
                path=path,
            )
    module.load_state_dict(tensors, strict=not missing)
    return missing


def load_optimizer(optimizer: torch.optim.Optimizer, ckpt: str | Path, *, state: dict[str, Any]) -> None:
    """Restore optimizer tensors and hyper-parameters from checkpoint ``ckpt``."""
    ckpt = Path(ckpt)
    tensors = _read_tensors(ckpt, "optim.safetensors", state)
    plain = state.get("optimizer") or {}
    entries: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        entries.setdefault(int(pid), {})[name] = value
    for pid, extra in plain.get("state", {}).items():
        entries.setdefault(int(pid), {}).update(extra)
    try:
        optimizer.load_state_dict({"state": entries, "param_groups": plain["param_groups"]})
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"optimizer state does not fit the model ({e})", path=ckpt / "optim.safetensors"
        ) from None


def load_model(exp_dir_or_ckpt: str | Path, *, which: str = "best", map_location: str = "cpu"):
    """Rebuild a trained model through the registry and load its weights.

    Parameters
    ----------
    exp_dir_or_ckpt : experiment directory or checkpoint directory.
    which : ``"best"`` or ``"last"`` (ignored for a checkpoint directory).
    map_location : device of the returned module.

    Returns
    -------
    (module, model_name, model_cfg) : the module in eval mode, its registered name and its
    config dataclass.
    """
    from speechrep.models.registry import build_model

    ckpt = find_checkpoint(exp_dir_or_ckpt, which=which)
    state = read_state(ckpt)
    spec = state.get("model")
    if not isinstance(spec, dict) or "name" not in spec:
        raise CheckpointError("no model name in checkpoint state", path=ckpt / "state.json")
    module, cfg = build_model(
        spec["name"], spec.get("args") or {}, input_dim=spec.get("input_dim"), source=str(ckpt / "state.json")
    )
    load_weights(module, ckpt, state=state)
    return module.to(map_location).eval(), spec["name"], cfg


def load_frozen_model(path: str | Path, kind: type, *, field: str) -> torch.nn.Module:
    """A trained model that another model uses without training it (a judge, a teacher).

    Loads the best checkpoint of experiment ``path`` (:func:`load_model`), checks that it is
    an instance of ``kind`` and turns its gradients off. Problems are :class:`ConfigError`
    naming the config ``field`` that gave the path, so that they stop a run before it writes.
    """
    try:
        module, name, _ = load_model(path)
    except CheckpointError as e:
        raise ConfigError(str(e), field=field) from None
    if not isinstance(module, kind):
        raise ConfigError(f"{path} holds a '{name}' model, not a {kind.__name__}", field=field)
    return module.requires_grad_(False)


def attach_frozen_models(module: torch.nn.Module) -> torch.nn.Module:
    """Load every frozen helper model that ``module`` declares
    (:meth:`speechrep.models.frozen.FrozenModels.frozen_models`) and attach it.

    Problems are :class:`ConfigError` naming the config field that gave the path; the Trainer
    calls this before it writes anything, so that a missing judge stops a run cleanly.
    """
    declared = getattr(module, "frozen_models", None)
    for name, spec in (declared() if declared else {}).items():
        module.attach_frozen(name, load_frozen_model(spec.path, spec.kind, field=spec.field))
    return module
