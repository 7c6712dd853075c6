"""``speechrep extract``: representations of a trained model as Kaldi ark/scp."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
