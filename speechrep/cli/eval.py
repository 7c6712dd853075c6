"""``speechrep eval ...``: phone-discovery evaluation (ABX, unit quality, boundaries, bitrate, probes)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from speechrep.cli.options import check_threads

app = typer.Typer(
    help="Evaluate representations: phone discovery (ABX, purity/PNMI, boundaries, bitrate, probes).",
    no_args_is_help=True,
)

_CONFIG = typer.Option(None, "--config", help="YAML file of evaluation options (PhoneDiscoveryConfig).")
_SET = typer.Option([], "--set", help="Override a config key, e.g. --set abx.max_size_group=null (repeatable).")
_ALI = typer.Option(..., "--ali", help="Reference phone alignment (CTM), e.g. ali/test/phones.ctm.")
_ALI_OR_NONE = typer.Option(None, "--ali", help="Reference phone alignment (CTM), e.g. ali/test/phones.ctm; without "
                            "it (speech with no alignment), the speaker probe alone.")
_UTT2SPK = typer.Option(None, "--utt2spk", help="utt2spk file (default: utt2spk beside the CTM).")
_ITEMS = typer.Option(None, "--items", help="ZeroSpeech .item file (default: triphone items built from the CTM).")
_OUT = typer.Option(..., "--out", help="JSON file to write (atomically).")
_SHIFT = typer.Option(None, "--frame-shift", help="Seconds between frames (default: from the feature config).")
_OFFSET = typer.Option(
    None,
    "--frame-offset",
    help="Centre of frame 0 in seconds: 0.0125 for Kaldi 25/10 ms snip_edges, 0 for librosa center=True "
    "(default: from the feature config).",
)
_EXACT = typer.Option(False, "--exact", help="ABX without subsampling (slower; default: ZeroSpeech 2021 subsampling).")
_THREADS = typer.Option(None, "--threads", help="Threads for ABX (default: all cores).", callback=check_threads)
_CONTEXT = typer.Option(
    None, "--context", help="ABX context: 'within' (A, B, X share the triphone context; default) or 'any' (phone-only)."
)


def _config(config: Optional[Path], overrides: list[str], *, exact: bool = False, **options):
    """Config file, then --set overrides, then the explicit options of the command."""
    from speechrep.config import load_config
    from speechrep.eval.phone_discovery import PhoneDiscoveryConfig

    extra = [f"{key}={value}" for key, value in options.items() if value is not None]
    if exact:
        extra += ["abx.max_size_group=null", "abx.max_x_across=null"]
    return load_config(PhoneDiscoveryConfig, config, overrides=[*overrides, *extra])


def _check_out(out: Path, *inputs: Optional[Path]) -> None:
    """Refuse a directory or an input as --out before the evaluation runs (minutes)."""
    from speechrep.utils.io import check_output_file

    check_output_file(out, field="--out", inputs=inputs)


def _print(tables: dict, out: Path) -> None:
    from rich.console import Console

    from speechrep.eval.report import results_table

    console = Console()
    for title, metrics in tables.items():
        console.print(results_table(metrics, title=title))
    console.print(f"wrote {out}")


@app.command("make-items")
def make_items_cmd(
    ctm: Path = typer.Argument(..., help="Phone alignment (CTM)."),
    out: Path = typer.Argument(..., help="Item file to write."),
    utt2spk: Optional[Path] = _UTT2SPK,
    level: str = typer.Option("triphone", "--level", help="'triphone' (whole triphone) or 'phone' (centre phone)."),
) -> None:
    """Build a ZeroSpeech ABX .item file from a phone CTM."""
    from speechrep.eval.items import make_item_file

    _check_out(out, ctm, utt2spk)
    items = make_item_file(ctm, out, utt2spk=utt2spk, level=level)
    typer.echo(f"wrote {len(items)} {level} items to {out}")


@app.command("features")
def features_cmd(
    feats: Path = typer.Option(..., "--feats", help="Features: Kaldi .scp/.ark, or a directory of <utt>.npy."),
    ali: Optional[Path] = _ALI_OR_NONE,
    out: Path = _OUT,
    utt2spk: Optional[Path] = _UTT2SPK,
    items: Optional[Path] = _ITEMS,
    frame_shift: Optional[float] = _SHIFT,
    frame_offset: Optional[float] = _OFFSET,
    distance: Optional[str] = typer.Option(
        None, "--distance", help="ABX frame distance: cosine (default) or kl (posteriorgrams)."
    ),
    context: Optional[str] = _CONTEXT,
    exact: bool = _EXACT,
    threads: Optional[int] = _THREADS,
    config: Optional[Path] = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Evaluate continuous features: ABX within/across speakers and linear phone/speaker probes."""
    _evaluate("features", feats, ali, out, utt2spk, items, config, overrides, exact=exact, frame_shift=frame_shift,
              frame_offset=frame_offset, threads=threads, **{"abx.distance": distance, "abx.context": context})


def _evaluate(kind: str, inputs: Path, ali: Optional[Path], out: Path, utt2spk: Optional[Path], items: Optional[Path],
              config: Optional[Path], overrides: list[str], **values: object) -> None:
    """``eval features`` / ``eval units``: check OUT, resolve the config, evaluate, print."""
    from speechrep.eval.phone_discovery import run_phone_discovery

    _check_out(out, inputs, ali, utt2spk, items, config)
    cfg = _config(config, overrides, **values)
    report = run_phone_discovery(inputs, ali, kind=kind, out=out, utt2spk=utt2spk, items=items, config=cfg)
    _print({f"{kind} {inputs}": report}, out)


@app.command("units")
def units_cmd(
    units: Path = typer.Option(
        ..., "--units", "--feats", help="Units: text file 'utt u1 u2 ...', Kaldi .scp/.ark or a directory of .npy."
    ),
    ali: Optional[Path] = _ALI_OR_NONE,
    out: Path = _OUT,
    utt2spk: Optional[Path] = _UTT2SPK,
    items: Optional[Path] = _ITEMS,
    frame_shift: Optional[float] = _SHIFT,
    frame_offset: Optional[float] = _OFFSET,
    codebook_size: Optional[int] = typer.Option(None, "--codebook-size", help="Number of codes (default: max unit + 1)."),
    distance: Optional[str] = typer.Option(None, "--distance", help="ABX distance: onehot (default) or edit."),
    context: Optional[str] = _CONTEXT,
    exact: bool = _EXACT,
    threads: Optional[int] = _THREADS,
    config: Optional[Path] = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Evaluate discrete units: ABX, purity/PNMI/V-measure, codebook use, bitrate, boundaries."""
    _evaluate("units", units, ali, out, utt2spk, items, config, overrides, exact=exact, frame_shift=frame_shift,
              frame_offset=frame_offset, codebook_size=codebook_size, threads=threads,
              **{"abx.distance": distance, "abx.context": context})


@app.command("baseline")
def baseline_cmd(
    data_dir: Path = typer.Argument(..., help="Kaldi data directory (wav.scp, utt2spk, ...)."),
    ali: Optional[Path] = _ALI_OR_NONE,
    out: Path = _OUT,
    items: Optional[Path] = _ITEMS,
    exact: bool = _EXACT,
    threads: Optional[int] = _THREADS,
    config: Optional[Path] = _CONFIG,
    overrides: list[str] = _SET,
) -> None:
    """Evaluate MFCC (+deltas) and fbank features of DATA_DIR, each utterance mean-normalised: the reference line."""
    from speechrep.eval.phone_discovery import run_baseline

    _check_out(out, data_dir, ali, items, config)
    cfg = _config(config, overrides, exact=exact, threads=threads)
    report = run_baseline(data_dir, ali, out=out, items=items, config=cfg)
    _print({f"baseline {name}": metrics for name, metrics in report["baselines"].items()}, out)
