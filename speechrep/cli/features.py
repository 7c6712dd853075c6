"""`speechrep features ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="features commands.", no_args_is_help=True)
