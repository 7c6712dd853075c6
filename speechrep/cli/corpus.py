"""``speechrep data make-synth`` and ``speechrep data prepare`` (added to the data group)."""

from __future__ import annotations

import typer

from speechrep.cli.data import app as data_app  # noqa: F401  (commands attach to this group)


def register(app: typer.Typer) -> None:
    """Nothing at the root: the commands here attach to the ``data`` group on import."""
