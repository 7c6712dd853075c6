"""``speechrep data make-synth`` and ``speechrep data prepare`` (added to the data group)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speechrep.cli.data import app as data_app


def register(app: typer.Typer) -> None:
    """Nothing at the root: the commands here attach to the ``data`` group on import."""


@data_app.command("make-synth")
def make_synth(
    out_dir: Path = typer.Argument(..., help="Output corpus directory (data/, ali/, wav/, phones.txt, stats.json)."),
    size: str = typer.Option("default", "--size", help="tiny (tests, seconds), small, or default (demo, ~1 min)."),
    nj: int = typer.Option(1, "--nj", help="Parallel synthesizer jobs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sentence and speaker draw."),
    frame_labels: bool = typer.Option(False, "--frame-labels", help="Also write ali/<split>/frame_labels (10 ms)."),
    sentences: Optional[Path] = typer.Option(
        None, "--sentences", help="Text file, one sentence a line, read instead of the fortunes."
    ),
) -> None:
    """Generate the embedded multi-speaker corpus with exact phone alignments (flite, festival)."""
    from speechrep.data.synth import make_synth as build
    from speechrep.errors import DataError

    lines = None
    if sentences is not None:
        try:
            lines = [line for line in sentences.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read sentences: {e}", path=sentences) from None
    stats = build(out_dir, size=size, nj=nj, seed=seed, write_frame_labels=frame_labels, sentences=lines, progress=True)
    for split, s in stats["splits"].items():
        typer.echo(f"{split:16s} {s['utterances']:6d} utts {s['hours'] * 60:7.1f} min  skipped {s['skipped']}")
    typer.echo(f"{out_dir}: {stats['utterances']} utterances, {stats['hours']:.2f} h")
