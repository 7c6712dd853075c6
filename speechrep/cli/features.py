"""`speechrep features ...` commands: Kaldi-style feature extraction and CMVN statistics."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="Kaldi-compatible features for data directories: fbank, MFCC, CMVN statistics.", no_args_is_help=True
)

_DATA_DIR = typer.Argument(..., help="Data directory (wav.scp, utt2spk, optional segments).")
_OUT_DIR = typer.Argument(..., help="Output directory for the ark/scp files, logs and resolved config.")


_LOG_DIR = typer.Option(None, "--log-dir", help="Directory of the job logs (default: OUT_DIR/log).")
_NO_PIPES = typer.Option(
    False, "--no-pipes",
    help="Refuse wav.scp pipe commands ('cmd |', run by /bin/sh as in Kaldi): for data directories you do not trust.",
)


def _make(
    kind: str, data_dir: Path, out_dir: Path, nj: int, cmd: str, config: Optional[Path], overrides: List[str],
    log_dir: Optional[Path], no_pipes: bool,
) -> None:
    from speechrep.data.make_features import make_features

    feats_scp = make_features(
        data_dir, out_dir, kind=kind, config=config, overrides=overrides, nj=nj, cmd=cmd, log_dir=log_dir,
        allow_pipes=not no_pipes,
    )
    typer.echo(f"wrote {feats_scp}")


def _register_make(kind: str, doc: str) -> None:
    """Add ``make-<kind>``: the same options for every feature type."""

    def make(
        data_dir: Path = _DATA_DIR,
        out_dir: Path = _OUT_DIR,
        nj: int = typer.Option(1, "--nj", help="Number of parallel jobs."),
        cmd: str = typer.Option("local", "--cmd", help="Where jobs run: local, slurm[:key=value,...] or dask://HOST:PORT."),
        config: Optional[Path] = typer.Option(None, "--config", help=f"Feature config YAML (e.g. conf/{kind}.yaml)."),
        overrides: List[str] = typer.Option([], "--set", help="Override a config value, key=value (repeatable)."),
        log_dir: Optional[Path] = _LOG_DIR,
        no_pipes: bool = _NO_PIPES,
    ) -> None:
        _make(kind, data_dir, out_dir, nj, cmd, config, overrides, log_dir, no_pipes)

    make.__doc__ = doc
    app.command(f"make-{kind}")(make)


_register_make("fbank", "Log mel filter-bank features of DATA_DIR (Kaldi compute-fbank-feats) into OUT_DIR.")
_register_make("mfcc", "MFCC features of DATA_DIR (Kaldi compute-mfcc-feats) into OUT_DIR.")


@app.command("compute-cmvn")
def compute_cmvn(
    data_dir: Path = typer.Argument(..., help="Data directory with feats.scp."),
    out_dir: Path = typer.Argument(..., help="Output directory for cmvn_<data>.ark/.scp."),
    per_utt: bool = typer.Option(False, "--per-utt", help="Statistics per utterance instead of per speaker."),
) -> None:
    """CMVN statistics of DATA_DIR's features (Kaldi compute-cmvn-stats); writes DATA_DIR/cmvn.scp."""
    from speechrep.data.make_features import compute_cmvn as _compute

    typer.echo(f"wrote {_compute(data_dir, out_dir, per_utt=per_utt)}")
