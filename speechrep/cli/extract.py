"""``speechrep extract``: representations of a trained model as Kaldi ark/scp."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``speechrep extract`` to the root app."""

    @app.command("extract")
    def extract(
        data_dir: Path = typer.Argument(..., help="Kaldi data directory (wav.scp, or feats.scp for feature models)."),
        out_dir: Path = typer.Argument(..., help="Output directory: feats.ark/scp, utt2num_frames, frame_shift."),
        model: Path = typer.Option(..., "--model", help="Experiment directory (or checkpoint) of speechrep train."),
        layer: str = typer.Option("context", "--layer", help="Representation to write: context or encoder."),
        which: str = typer.Option("best", "--which", help="Checkpoint of the experiment: best or last."),
        force: bool = typer.Option(
            False, "--force", help="Replace an earlier output of speechrep extract at OUT_DIR (other data is never replaced)."
        ),
    ) -> None:
        """Write a trained model's representations of DATA_DIR as Kaldi ark/scp in OUT_DIR."""
        from speechrep.extract import extract_representations

        scp = extract_representations(model, data_dir, out_dir, layer=layer, which=which, force=force)
        typer.echo(f"wrote {scp}")
