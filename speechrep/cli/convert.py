"""``speechrep convert``: voice conversion of one pair or a batch of pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speechrep.cli.options import check_device


def convert(
    model: Optional[Path] = typer.Option(None, "--model", help="Experiment (or checkpoint) directory of a trained vc_* model."),
    source: Optional[Path] = typer.Option(None, "--source", help="Source utterance: what is said."),
    target: Optional[list[Path]] = typer.Option(
        None, "--target", help="Target utterance: who says it. Repeat to average several target utterances."
    ),
    out: Optional[Path] = typer.Option(None, "--out", help="Output WAV (single-pair mode)."),
    pairs: Optional[Path] = typer.Option(
        None, "--pairs", help="Batch mode: tab-separated pairs file with a header line (columns id, source, target, ...)."
    ),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Batch mode: directory receiving <id>.wav per pair."),
    vocoder: str = typer.Option("griffinlim", "--vocoder", help="'griffinlim' or a trained neural vocoder experiment directory."),
    device: str = typer.Option(
        "cpu", "--device", help="Torch device: cpu, cuda, cuda:N or auto.", callback=check_device
    ),
    match_weight: float = typer.Option(
        0.0, "--match-weight", help="Frame matching: move each converted frame this far (0-1) towards the mean of the "
        "target frames whose model reconstructions are nearest (kNN-VC style; more of the target voice, fewer phones)."
    ),
    match_k: int = typer.Option(4, "--match-k", help="Target frames averaged per converted frame (--match-weight)."),
    exaggerate: float = typer.Option(
        0.0, "--exaggerate", help="Move the target's speaker code this many times its distance from the mean code "
        "of --population, away from it (a caricature: similar voices come out further apart)."
    ),
    population: Optional[Path] = typer.Option(
        None, "--population", help="Data directory of the population for --exaggerate (e.g. the model's training set)."
    ),
    resynthesize: bool = typer.Option(
        False, "--resynthesize", help="Batch mode without a model: vocode each source unchanged (the scoring baseline)."
    ),
) -> None:
    """Convert SOURCE to the voice of TARGET(s) with a trained model; output at the model's sample rate.

    Inputs of any sample rate and format that soundfile reads are resampled. Either
    --source/--target/--out (one pair) or --pairs/--out-dir (batch, with a progress bar).
    """
    from speechrep.errors import ConfigError

    options = dict(match_weight=match_weight, match_k=match_k, exaggerate=exaggerate, population=population)
    single = source is not None or target or out is not None
    if pairs is not None or out_dir is not None:
        if single or pairs is None or out_dir is None:
            raise ConfigError("batch mode takes --pairs and --out-dir, without --source/--target/--out", field="--pairs")
        if resynthesize:
            from speechrep.convert import resynthesize_pairs

            written = resynthesize_pairs(pairs, out_dir, vocoder=vocoder, device=device)
        else:
            from speechrep.convert import convert_pairs

            if model is None:
                raise ConfigError("--model is required (or --resynthesize)", field="--model")
            written = convert_pairs(model, pairs, out_dir, vocoder=vocoder, device=device, **options)
        typer.echo(f"wrote {len(written)} utterances to {out_dir}")
        return
    if resynthesize:
        raise ConfigError("--resynthesize works in batch mode (--pairs, --out-dir)", field="--resynthesize")
    if model is None:
        raise ConfigError("--model is required", field="--model")
    if source is None or not target or out is None:
        raise ConfigError("give --source, at least one --target and --out (or --pairs and --out-dir)", field="--source")
    from speechrep.convert import convert_file

    written = convert_file(model, source, target, out, vocoder=vocoder, device=device, **options)
    typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the root app."""
    app.command("convert")(convert)
