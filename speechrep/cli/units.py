"""``speechrep units``: discrete units of a trained model; ``speechrep ablation``: bottleneck comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speechrep.cli.options import check_device, check_threads


def units_cmd(
    data_dir: Path = typer.Argument(..., help="Kaldi data directory (wav.scp, or feats.scp for feature models)."),
    out: Path = typer.Argument(..., help="Output directory for units.txt, units_dedup.txt, boundaries.txt, frame_shift."),
    model: Path = typer.Option(..., "--model", help="Experiment directory (or checkpoint) of a vqvae/vqcpc model."),
    which: str = typer.Option("best", "--which", help="Checkpoint to use: best or last."),
    device: str = typer.Option(
        "cpu", "--device", help="Torch device: cpu, cuda, cuda:N or auto.", callback=check_device
    ),
    threads: Optional[int] = typer.Option(
        None, "--threads", help="Torch CPU threads (default: torch's choice).", callback=check_threads
    ),
    segment_penalty: Optional[float] = typer.Option(
        None, "--segment-penalty",
        help="Duration-penalised units (DPDP): cost of starting a segment, in frames' worth of the utterance's mean "
        "quantisation error (default: nearest code per frame).",
    ),
    max_segment: int = typer.Option(50, "--max-segment", help="Longest segment in unit frames (with --segment-penalty)."),
) -> None:
    """Write frame-level units, deduplicated unit sequences and unit boundaries of DATA_DIR."""
    from speechrep.units import extract_units, write_units

    unit_set = extract_units(
        model, data_dir, which=which, device=device, threads=threads, segment_penalty=segment_penalty, max_segment=max_segment
    )
    write_units(unit_set, out)
    frames = sum(len(u) for u in unit_set.units.values())
    used = len(set().union(*(set(u.tolist()) for u in unit_set.units.values()))) if unit_set.units else 0
    typer.echo(
        f"{len(unit_set.units)} utterances, {frames} frames of {unit_set.frame_shift * 1000:g} ms, "
        f"{used}/{unit_set.num_codes} units used -> {out}"
    )


def ablation_cmd(
    config: Path = typer.Argument(..., help="Base experiment config YAML (a vqvae model)."),
    ali: Path = typer.Argument(..., help="Phone CTM of the evaluation data."),
    out: Path = typer.Argument(..., help="Output directory: one experiment per variant, ablation.json, ablation.md."),
    eval_data: Path = typer.Option(..., "--eval-data", help="Data directory to extract units from (evaluation set)."),
    bits: str = typer.Option("4,6", "--bits", help="Comma-separated bit budgets per frame."),
    kinds: str = typer.Option("onehot,binary,vq", "--kinds", help="Comma-separated bottlenecks: onehot, binary, vq, gumbel."),
    overrides: Optional[list[str]] = typer.Option(None, "--set", help="Config override a.b=value (repeatable)."),
) -> None:
    """Train one model per bottleneck and bit budget, then compare their units in one table."""
    from speechrep.ablation import format_table, run_ablation

    rows = run_ablation(
        config,
        eval_data=eval_data,
        ali=ali,
        out_dir=out,
        bits=[int(b) for b in bits.split(",") if b.strip()],
        kinds=[k.strip() for k in kinds.split(",") if k.strip()],
        overrides=overrides or [],
    )
    typer.echo(format_table(rows))


def register(app: typer.Typer) -> None:
    """Add ``units`` and ``ablation`` to the root app."""
    app.command("units")(units_cmd)
    app.command("ablation")(ablation_cmd)
