"""The ``--cmd`` option of commands that run jobs (Kaldi's ``cmd.sh``): ``local``,
``slurm[:key=value,...]`` or ``dask://HOST:PORT``, parsed and checked before anything is
written (:func:`check_cmd` says when the ``cluster`` extra is missing)."""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

from speechrep.errors import ConfigError

__all__ = ["JobCommand", "check_cmd", "parse_cmd"]

_CMD_HELP = "expected local, slurm[:key=value,...] or dask://HOST:PORT"
# --cmd slurm:<key>=... -> submitit AutoExecutor parameter
_SLURM_KEYS = {
    "partition": "slurm_partition",
    "time": "timeout_min",
    "mem": "mem_gb",
    "cpus": "cpus_per_task",
    "gpus": "gpus_per_node",
    "account": "slurm_account",
    "qos": "slurm_qos",
    "constraint": "slurm_constraint",
}


@dataclass(frozen=True)
class JobCommand:
    """A parsed ``--cmd`` value.

    ``kind`` is ``"local"``, ``"slurm"`` or ``"dask"``; ``options`` holds the submitit
    parameters for Slurm; ``address`` the scheduler address (``tcp://HOST:PORT``) for Dask.
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    address: str | None = None


def _cmd_error(cmd: str, message: str) -> ConfigError:
    return ConfigError(f"{message} in {cmd!r}; {_CMD_HELP}", field="--cmd")


def _minutes(cmd: str, text: str) -> int:
    # Slurm's formats: MM, H:MM:SS (or MM:SS), D-HH[:MM[:SS]]
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise _cmd_error(cmd, f"bad time {text!r}")
    days, a, b, c = (int(g) if g is not None else None for g in match.groups())
    if days is not None:
        hours, minutes, seconds = a, b or 0, c or 0
    elif c is not None:
        hours, minutes, seconds = a, b, c
    elif b is not None:
        hours, minutes, seconds = 0, a, b
    else:
        hours, minutes, seconds = 0, a, 0
    total = (days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)  # type: ignore[operator]
    if total <= 0:
        raise _cmd_error(cmd, f"time {text!r} must be positive")
    return total


def _gigabytes(cmd: str, text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([MGT]?)B?", text, flags=re.IGNORECASE)
    if not match:
        raise _cmd_error(cmd, f"bad memory {text!r}")
    scale = {"": 1.0, "M": 1 / 1024, "G": 1.0, "T": 1024.0}[match.group(2).upper()]
    return float(match.group(1)) * scale


def _positive_int(cmd: str, key: str, text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise _cmd_error(cmd, f"{key} must be a positive integer, got {text!r}")
    return int(text)


def parse_cmd(cmd: str) -> JobCommand:
    """Parse a ``--cmd`` value (see the module docstring).

    Raises
    ------
    ConfigError
        Unknown kind, unknown or malformed Slurm option, bad Dask address; the message
        names ``--cmd``.
    """
    cmd = cmd.strip()
    if cmd == "local":
        return JobCommand("local")
    if cmd == "slurm" or cmd.startswith("slurm:"):
        options: dict[str, Any] = {}
        body = cmd[len("slurm:") :] if cmd.startswith("slurm:") else ""
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not value:
                raise _cmd_error(cmd, f"expected key=value, got {item!r}")
            if key not in _SLURM_KEYS:
                raise _cmd_error(cmd, f"unknown slurm option {key!r} (known: {', '.join(_SLURM_KEYS)})")
            if key == "time":
                options[_SLURM_KEYS[key]] = _minutes(cmd, value)
            elif key == "mem":
                options[_SLURM_KEYS[key]] = _gigabytes(cmd, value)
            elif key in ("cpus", "gpus"):
                options[_SLURM_KEYS[key]] = _positive_int(cmd, key, value)
            else:
                options[_SLURM_KEYS[key]] = value
        return JobCommand("slurm", options=options)
    if cmd.startswith("dask://"):
        match = re.fullmatch(r"dask://([A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]):(\d{1,5})", cmd)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise _cmd_error(cmd, "bad dask scheduler address (want dask://HOST:PORT)")
        return JobCommand("dask", address=f"tcp://{match.group(1)}:{match.group(2)}")
    raise _cmd_error(cmd, "unknown job command")


#: module each job engine imports (both come with the ``cluster`` extra)
_ENGINE_MODULES = {"slurm": "submitit", "dask": "distributed"}

def check_cmd(cmd: str) -> JobCommand:
    """Parse ``cmd`` (:func:`parse_cmd`) and check that its job engine is installed.

    Raises
    ------
    ConfigError
        A bad ``cmd``, or Slurm/Dask without the ``cluster`` extra (the message says how
        to install it).
    """
    command = parse_cmd(cmd)
    module = _ENGINE_MODULES.get(command.kind)
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError:
            raise ConfigError(
                f"{command.kind} jobs need the cluster extra ({module} is not installed): pip install '.[cluster]'",
                field="--cmd",
            ) from None
    return command
