"""``speechrep convert``: voice conversion of one pair or a batch of pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speechrep.cli.options import check_device


def convert(
    model: Optional[Path] = typer.Option(
        None, "--model", help="Experiment (or checkpoint) directory of a trained vc_* model; or of a self-supervised "
        "feature model (cpc, dim, vqcpc), or a directory packaged by 'speechrep package-knn', for zero-shot kNN "
        "conversion. Default: the packaged model in speechrep/pretrained/knn_vc (when one ships)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Source utterance: what is said."),
    target: Optional[list[Path]] = typer.Option(
        None, "--target", help="Target utterance: who says it. Repeat for several (vc_*: speaker codes averaged; kNN: frames pooled)."
    ),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Output audio (single-pair mode): 16-bit WAV, or FLAC for a name ending in .flac."
    ),
    pairs: Optional[Path] = typer.Option(
        None, "--pairs", help="Batch mode: tab-separated pairs file with a header line (columns id, source, target, ...)."
    ),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="Batch mode: directory receiving <id>.wav per pair."),
    force: bool = typer.Option(
        False, "--force", help="Batch mode: replace an earlier output of speechrep convert at --out-dir "
        "(other data is never replaced)."
    ),
    vocoder: Optional[str] = typer.Option(
        None, "--vocoder", help="'griffinlim' or a trained neural vocoder experiment directory. Default: the vocoder "
        "packaged with a kNN model (the default model's), else griffinlim."),
    device: str = typer.Option(
        "cpu", "--device", help="Torch device: cpu, cuda, cuda:N or auto.", callback=check_device
    ),
    layer: Optional[str] = typer.Option(
        None, "--layer", help="kNN conversion: layer of the feature model to match frames in, context or encoder "
        "(default: the packaged model's, else context)."),
    k: Optional[int] = typer.Option(
        None, "--k", help="kNN conversion: target frames averaged per source frame (default: the packaged model's, "
        "else 4)."),
    pitch_weight: Optional[float] = typer.Option(
        None, "--pitch-weight", help="kNN conversion: weight of intonation in the matching distance (standardised "
        "log F0 and voicing beside the features' cosine; 0: features alone; default: the packaged model's, else 1.5)."),
    match_weight: Optional[float] = typer.Option(
        None, "--match-weight", help="vc_* models: frame matching (default 0): move each converted frame this far (0-1) towards the mean of the "
        "target frames whose model reconstructions are nearest (kNN-VC style; more of the target voice, fewer phones)."
    ),
    match_k: Optional[int] = typer.Option(
        None, "--match-k", help="vc_* models: target frames averaged per converted frame (--match-weight; default 4)."),
    exaggerate: Optional[float] = typer.Option(
        None, "--exaggerate", help="vc_* models (default 0): move the target's speaker code this many times its distance from the mean code "
        "of --population, away from it (a caricature: similar voices come out further apart)."
    ),
    population: Optional[Path] = typer.Option(
        None, "--population", help="Data directory of the population for --exaggerate (e.g. the model's training set)."
    ),
    resynthesize: bool = typer.Option(
        False, "--resynthesize", help="Batch mode without a model: vocode each source unchanged (the scoring baseline)."
    ),
) -> None:
    """Convert SOURCE to the voice of TARGET(s); output at the vocoder's sample rate.

    A trained vc_* model converts; a self-supervised feature model converts zero-shot (no
    conversion training): each source frame becomes the mean of the log-mel frames of its
    k nearest target frames (kNN-VC), several targets pooled. Inputs of any sample rate and
    format that soundfile reads are resampled. Either --source/--target/--out (one pair) or
    --pairs/--out-dir (batch, with a progress bar).
    """
    from speechrep.errors import ConfigError

    # only the options given: the other family's are refused rather than ignored
    given = dict(match_weight=match_weight, match_k=match_k, exaggerate=exaggerate, population=population,
                 layer=layer, k=k, pitch_weight=pitch_weight)
    options = {name: value for name, value in given.items() if value is not None}
    single = source is not None or target or out is not None
    if pairs is not None or out_dir is not None:
        if single or pairs is None or out_dir is None:
            raise ConfigError("batch mode takes --pairs and --out-dir, without --source/--target/--out", field="--pairs")
        if resynthesize:
            from speechrep.convert import resynthesize_pairs

            written = resynthesize_pairs(pairs, out_dir, vocoder=vocoder, device=device, force=force)
        else:
            from speechrep.convert import convert_pairs

            written = convert_pairs(model, pairs, out_dir, vocoder=vocoder, device=device, force=force, **options)
        typer.echo(f"wrote {len(written)} utterances to {out_dir}")
        return
    if resynthesize:
        raise ConfigError("--resynthesize works in batch mode (--pairs, --out-dir)", field="--resynthesize")
    if source is None or not target or out is None:
        raise ConfigError("give --source, at least one --target and --out (or --pairs and --out-dir)", field="--source")
    from speechrep.convert import convert_file

    written = convert_file(model, source, target, out, vocoder=vocoder, device=device, **options)
    typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    """Add ``convert`` to the root app."""
    app.command("convert")(convert)
