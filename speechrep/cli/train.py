"""``speechrep train``: run the Trainer on an experiment config."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``speechrep train`` to the root app."""

    @app.command("train")
    def train_command(
        config: Path = typer.Argument(..., help="Experiment config YAML (exp_dir, data, model, optim, train)."),
        set_: list[str] = typer.Option([], "--set", help="Override a config value, e.g. --set optim.lr=1e-3 "
                                       "(repeatable)."),
        resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in exp_dir."),
    ) -> None:
        """Train a registered model (CPC, DIM, VQ-VAE, VC, ...) on a Kaldi data directory.

        Writes config.yaml, log/, train_history.jsonl, tensorboard/, checkpoints/ in exp_dir.

        Under torchrun it runs DistributedDataParallel: torchrun --nproc_per_node N -m speechrep train CONFIG
        """
        from speechrep.train.trainer import train

        import os

        exp_dir = train(config, overrides=set_, resume=resume)
        if os.environ.get("RANK", "0") == "0":  # one line per run, not per torchrun rank
            typer.echo(f"trained: {exp_dir}")
