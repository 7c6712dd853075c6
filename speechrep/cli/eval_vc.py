"""``speechrep eval vc`` (added to the eval group)."""

from __future__ import annotations

import typer

from speechrep.cli.eval import app as eval_app  # noqa: F401  (commands attach to this group)


def register(app: typer.Typer) -> None:
    """Nothing at the root: the commands here attach to the ``eval`` group on import."""
