"""Errors a user can cause.

Library code raises :class:`SpeechrepError` (or a subclass) with one line that names the
file and the field at fault; the CLI prints that line and exits non-zero instead of
showing a traceback.
"""

from __future__ import annotations

from pathlib import Path


class SpeechrepError(Exception):
    """A problem with user input: a file, a field, a config key, a checkpoint."""

    def __init__(self, message: str, *, path: str | Path | None = None, field: str | None = None):
        where = []
        if path is not None:
            where.append(str(path))
        if field is not None:
            where.append(field)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.path = None if path is None else Path(path)
        self.field = field


class ConfigError(SpeechrepError):
    """Bad configuration: unknown key, wrong type, unparsable override."""


class DataError(SpeechrepError):
    """Bad data: missing/corrupt/empty audio, inconsistent data directory, bad alignment."""


class CheckpointError(SpeechrepError):
    """Missing, truncated, corrupt or incompatible checkpoint."""
