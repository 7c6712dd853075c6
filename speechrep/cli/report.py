"""``speechrep report``: the static HTML page of a pipeline run."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add ``report`` to the root app."""

    @app.command("report")
    def report(
        exp_dir: Path = typer.Argument(..., help="Experiment directory of the run (eval/*.json, */train_history.jsonl)."),
        out: Optional[Path] = typer.Option(None, help="Output directory (default EXP_DIR/report)."),
        data: Optional[Path] = typer.Option(None, help="Data dir of the utterance shown in the alignment plot."),
        ali: Optional[Path] = typer.Option(None, help="Phone CTM for the alignment plot."),
        units: Optional[Path] = typer.Option(None, help="Frame-level units file (utt u1 u2 ...) for the plot."),
        unit_frame_shift: float = typer.Option(0.02, help="Seconds per unit frame."),
        unit_frame_offset: Optional[float] = typer.Option(None, help="Centre of unit frame 0 in seconds (default: half a shift)."),
        audio: Optional[List[Path]] = typer.Option(
            None, help="TSV of audio examples: header of column names, rows of wav paths (repeat it: one table)."
        ),
        baseline: str = typer.Option("mfcc", help="System name of the reference line."),
        force: bool = typer.Option(
            False, "--force", help="Replace an earlier report at --out (other data is never replaced)."
        ),
    ) -> None:
        """Write EXP_DIR/report/index.html: results table, loss plots, alignment plot, audio players.

        The result tables are also printed (the run's final summary in the terminal).
        """
        from speechrep.report.pipeline import build_pipeline_report

        page, summary = build_pipeline_report(
            exp_dir, out, data_dir=data, ctm=ali, units=units, unit_frame_shift=unit_frame_shift,
            unit_frame_offset=unit_frame_offset, audio_tsv=audio or None, baseline=baseline, force=force,
        )
        if summary:
            typer.echo(summary)
        typer.echo(f"report: {page}")
