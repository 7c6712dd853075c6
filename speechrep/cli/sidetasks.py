"""``speechrep side ...``: the side recipes on images, text and trees."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

side_app = typer.Typer(
    help="Side recipes beyond speech: Deep InfoMax on digits, Quick Thought and seq2seq2seq on the "
    "Python docs, latent trees on ListOps.",
    no_args_is_help=True,
)

_CONFIG = typer.Argument(..., help="Recipe config YAML (see egs/*/*/conf/).")
_SET = typer.Option(None, "--set", help="Config override a.b=value (repeatable).")
_QUIET = typer.Option(False, "--quiet", help="No progress bars.")


@side_app.command("prepare-pydocs")
def prepare_pydocs_cmd(
    out: Path = typer.Argument(..., help="Output directory for train.jsonl and test.jsonl."),
    root: Path = typer.Option(Path("/usr/share/doc/python3.11/html"), help="HTML (or .txt) tree of the documentation."),
    subdirs: str = typer.Option("tutorial,library,howto,reference,faq,using,whatsnew", help="Comma-separated subdirectories to read ('' = all of ROOT)."),
    max_docs: Optional[int] = typer.Option(None, help="Read at most this many pages (a seeded random subset)."),
    test_fraction: float = typer.Option(0.1, help="Fraction of pages held out for testing."),
    seed: int = typer.Option(0, help="Seed of the page shuffle."),
) -> None:
    """Extract sections and paragraphs of the documentation pages, split by page into train/test."""
    from speechrep.sidetasks.pydocs import prepare_pydocs

    stats = prepare_pydocs(out, root=root, subdirs=[s for s in subdirs.split(",") if s.strip()], max_docs=max_docs,
                           test_fraction=test_fraction, seed=seed)
    typer.echo(f"{stats['train']} train / {stats['test']} test pages, {stats['paragraphs']} paragraphs, "
               f"{stats['skipped']} pages without text skipped -> {out}")


@side_app.command("digits-dim")
def digits_dim_cmd(config: Path = _CONFIG, overrides: Optional[list[str]] = _SET, quiet: bool = _QUIET) -> None:
    """Deep InfoMax / autoencoder / bottleneck variants on the 8x8 digits; probe table with baselines."""
    from speechrep.config import load_config
    from speechrep.sidetasks.digits import DigitsConfig, run_digits

    typer.echo(run_digits(load_config(DigitsConfig, config, overrides=overrides or []), progress=not quiet)["table"])


@side_app.command("quickthought")
def quickthought_cmd(config: Path = _CONFIG, overrides: Optional[list[str]] = _SET, quiet: bool = _QUIET) -> None:
    """Quick Thought sentence encoders; next-sentence retrieval table with baselines and the collapse run."""
    from speechrep.config import load_config
    from speechrep.sidetasks.quickthought import QuickThoughtConfig, run_quickthought

    typer.echo(run_quickthought(load_config(QuickThoughtConfig, config, overrides=overrides or []), progress=not quiet)["table"])


@side_app.command("seq2seq2seq")
def seq2seq2seq_cmd(config: Path = _CONFIG, overrides: Optional[list[str]] = _SET, quiet: bool = _QUIET) -> None:
    """Word-sequence codes of paragraphs, with and without the heading discriminator; ROUGE vs lead-N."""
    from speechrep.config import load_config
    from speechrep.sidetasks.seq2seq2seq import Seq2Seq2SeqConfig, run_seq2seq2seq

    typer.echo(run_seq2seq2seq(load_config(Seq2Seq2SeqConfig, config, overrides=overrides or []), progress=not quiet)["table"])


@side_app.command("listops-tree")
def listops_tree_cmd(config: Path = _CONFIG, overrides: Optional[list[str]] = _SET, quiet: bool = _QUIET) -> None:
    """Gumbel Tree-LSTM on ListOps; task accuracy and bracket F1 vs left/right/random trees."""
    from speechrep.config import load_config
    from speechrep.sidetasks.listops import ListOpsConfig, run_listops

    typer.echo(run_listops(load_config(ListOpsConfig, config, overrides=overrides or []), progress=not quiet)["table"])


def register(app: typer.Typer) -> None:
    """Add the ``side`` command group to the root app."""
    app.add_typer(side_app, name="side")

