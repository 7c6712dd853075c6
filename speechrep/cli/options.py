"""Checks of options that several commands share (``--threads``, ``--device``).

They run as Typer callbacks, while the command line is parsed: a bad value stops the
command with one line naming the option (``error: --threads: ...``) before any input is
read or output written.
"""

from __future__ import annotations

from typing import Optional

from speechrep.errors import ConfigError

__all__ = ["check_device", "check_threads"]


def check_threads(value: Optional[int]) -> Optional[int]:
    """``--threads``: None (the library's default) or at least 1."""
    if value is not None and value < 1:
        raise ConfigError(f"must be at least 1, got {value}", field="--threads")
    return value


def check_device(value: str) -> str:
    """``--device``: a torch device this machine has (``auto`` resolved), as a string."""
    from speechrep.train.distributed import resolve_device

    return str(resolve_device(value, field="--device"))
