"""``speechrep align``: phone CTM of an English data directory by forced alignment."""

from __future__ import annotations

from pathlib import Path

import typer


def align_cmd(
    data_dir: Path = typer.Argument(..., help="English Kaldi data directory (wav.scp, text)."),
    out: Path = typer.Argument(..., help="Output directory: OUT/phones.ctm (written atomically)."),
) -> None:
    """Write OUT/phones.ctm by forced alignment with pocketsphinx's en-us model (pip install 'speechrep\\[judges]').

    Phones are lowercase ARPAbet, silences 'pau'; utterances with a word outside the CMU dictionary, or that do not align, are left out and listed.
    """
    from speechrep.data.align import align_data_dir

    stats = align_data_dir(data_dir, out)
    typer.echo(f"{stats['aligned']} utterances aligned, {len(stats['skipped'])} skipped -> {stats['ctm']}")
    for utt, reason in stats["skipped"].items():
        typer.echo(f"skipped {utt}: {reason}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``align`` to the root app."""
    app.command("align")(align_cmd)
