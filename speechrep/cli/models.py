"""Top-level model commands: ``train``, ``extract``, ``units``, ``convert``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the model commands to the root app."""
