"""Commands the recipes call between stages (each a thin wrapper of one library function):
``data make-pairs``, ``eval table``, ``eval collect-vc``, ``eval vc-examples`` and
``eval resynth`` (added to the ``data`` and ``eval`` groups), and ``package-knn`` (at the
root: the last step of the recipe that ships the default conversion model)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from speechrep.cli.data import app as data_app
from speechrep.cli.eval import app as eval_app


def _names(items: list[str]) -> dict[str, Path]:
    from speechrep.errors import ConfigError

    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"expected NAME=RESULT.json, got '{item}'", field="RESULTS")
        out[name] = Path(path)
    return out


@data_app.command("make-pairs")
def make_pairs_command(
    out: Path = typer.Argument(..., help="Pairs file to write (tab-separated, for convert --pairs and eval vc)."),
    data_dirs: List[Path] = typer.Argument(..., help="Data directories of the held-out utterances "
                                           "(utterance ids <speaker>-<sentence>)."),
    ctm: List[Path] = typer.Option(..., "--ctm", help="Phone CTM of the data directories (repeat it)."),
    speakers: str = typer.Option("", "--speakers", help="Comma-separated source/target speakers (default: all)."),
    unseen: str = typer.Option("", "--unseen", help="Comma-separated target-only speakers (zero-shot)."),
    sources: str = typer.Option("", "--sources", help="Comma-separated source-only speakers: pairs from them to "
                                "the --speakers and --unseen, none from the --speakers."),
    per_pair: int = typer.Option(1, "--per-pair", help="Sentences per ordered speaker pair."),
    targets: int = typer.Option(2, "--targets", help="Target utterances per pair (more than 2 keep the sentences)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the draws."),
    unused_out: Optional[Path] = typer.Option(
        None, "--unused-out", help="Also write a data directory of the utterances no pair uses (none when the pairs "
        "use every utterance)."),
    nonparallel: bool = typer.Option(
        False, "--nonparallel", help="Also pair targets that read none of the source's sentences (other corpora or "
        "languages): no reference, and no phones where the source has no CTM."),
) -> None:
    """Conversion pairs of held-out sentences: every ordered speaker pair, the source's reading, the
    target speaker's reading of the same sentence (reference) and other utterances of the target."""
    from speechrep.data.pairs import make_pairs

    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    n, unused = make_pairs(out, data_dirs, ctm, speakers=split(speakers), unseen=split(unseen), per_pair=per_pair,
                           targets=targets, seed=seed, unused_out=unused_out, nonparallel=nonparallel,
                           sources=split(sources))
    typer.echo(f"{out}: {n} pairs")
    if unused_out is not None:
        typer.echo(f"{unused_out}: {unused} utterances no pair uses" if unused else
                   f"{unused_out}: not written: the pairs use every utterance")


@eval_app.command("table")
def table_command(
    results: List[str] = typer.Argument(..., help="NAME=RESULT.json of eval features/units; of an eval baseline "
                                        "report, NAME picks the representation (mfcc=baseline.json)."),
    ratio_to: Optional[str] = typer.Option(None, "--ratio-to", help="Row whose ABX-across error is the reference."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the table to this file (atomically)."),
) -> None:
    """Markdown table of phone-discovery results side by side (ABX, probe accuracies)."""
    from speechrep.eval.tables import phone_discovery_table
    from speechrep.utils.io import atomic_write_text

    table = phone_discovery_table(_names(results), ratio_to=ratio_to)
    if out is not None:
        atomic_write_text(out, table)
    typer.echo(table, nl=False)


@eval_app.command("collect-vc")
def collect_vc_command(
    scores_dir: Path = typer.Argument(..., help="Directory of <family>_<vocoder>.json written by eval vc."),
    out_json: Path = typer.Argument(..., help="Summary JSON ({families: {<family>+<vocoder>: summary}})."),
    out_table: Path = typer.Argument(..., help="Plain-text table of every system and its per-target rates."),
) -> None:
    """Gather the eval vc scores of every system into one JSON (read by report) and one table."""
    from speechrep.eval.vc_summary import collect_vc_scores
    from speechrep.utils.io import atomic_write_json, atomic_write_text

    summary, table = collect_vc_scores(scores_dir)
    atomic_write_json(out_json, summary)
    atomic_write_text(out_table, table)
    typer.echo(table, nl=False)


@eval_app.command("vc-examples")
def vc_examples_command(
    pairs: Path = typer.Argument(..., help="Pairs file of the conversions."),
    convert_dir: Path = typer.Argument(..., help="Directory of <family>_<vocoder>/ and resynth_<vocoder>/ outputs."),
    out: Path = typer.Argument(..., help="Audio TSV for report --audio."),
    per_kind: int = typer.Option(2, "--per-kind", help="Pairs to a seen and to an unseen target speaker."),
    real: Optional[str] = typer.Option(None, "--real", help="Comma-separated real speakers: examples real -> "
                                       "synthetic and synthetic -> real instead of seen and unseen targets."),
) -> None:
    """List conversion examples (seen and unseen target speakers) for the report's audio players."""
    from speechrep.eval.vc_summary import demo_examples
    from speechrep.utils.io import atomic_write_text

    atomic_write_text(out, demo_examples(pairs, convert_dir, per_kind=per_kind,
                                         real=real.split(",") if real else ()))


@eval_app.command("resynth")
def resynth_command(
    data_dir: Path = typer.Argument(..., help="Data directory of held-out utterances."),
    out_dir: Path = typer.Argument(..., help="Output: <name>/<utt>.wav, scores.json, scores.txt."),
    vocoders: List[str] = typer.Argument(..., help="griffinlim or neural-vocoder experiment directories (one neural "
                                         "vocoder is named 'neural', several by their folder names)."),
    max_utts: int = typer.Option(20, "--max-utts", help="Utterances to resynthesise (the first ones; 0: all)."),
    judges: bool = typer.Option(False, "--judges", help="Also score the copies with the independent judges (pip "
                                "install 'speechrep\\[judges]'): verification as their own voice, WER beside the "
                                "originals'."),
    judge_data: List[Path] = typer.Option([], "--judge-data", help="With --judges: data directories of more "
                                          "voices to enrol, and of the English texts for the WER (default DATA_DIR's)."),
) -> None:
    """Copy-synthesis quality of vocoders: MCD, log-F0 RMSE/correlation, spectral convergence, real-time factor."""
    from speechrep.eval.resynth import format_resynth_table, score_copy_synthesis
    from speechrep.utils.io import atomic_write_json, atomic_write_text

    results = score_copy_synthesis(data_dir, out_dir, vocoders, max_utts=max_utts, judges=judges,
                                   judge_data=judge_data, progress=judges)
    table = format_resynth_table(results)
    atomic_write_json(out_dir / "scores.json", results)
    atomic_write_text(out_dir / "scores.txt", table)
    typer.echo(table, nl=False)


def package_knn_command(
    exp_dir: Path = typer.Argument(..., help="Experiment (or checkpoint) directory of a feature model (cpc, dim, vqcpc)."),
    out_dir: Path = typer.Argument(..., help="Directory to write (e.g. speechrep/pretrained/knn_vc, the default model)."),
    layer: str = typer.Option("context", "--layer", help="Layer to match frames in: context or encoder."),
    k: int = typer.Option(4, "--k", help="Target frames averaged per source frame."),
    pitch_weight: Optional[float] = typer.Option(
        None, "--pitch-weight", help="Weight of intonation in the matching distance (0: the features alone; "
        "default: speechrep.convert_knn.DEFAULT_PITCH_WEIGHT)."),
    which: str = typer.Option("best", "--which", help="Checkpoint of the experiment: best or last."),
    vocoder: Optional[Path] = typer.Option(
        None, "--vocoder", help="Experiment directory of a trained neural vocoder to package with it (its best "
        "checkpoint; convert then vocodes with it by default). Default: none, Griffin-Lim."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier output of package-knn at OUT_DIR."),
) -> None:
    """Package a feature model for zero-shot kNN conversion (speechrep convert --model OUT_DIR): its weights,
    feature configuration, layer, k and pitch weight, the vocoder's weights, and a model card."""
    from speechrep.package_knn import package_knn_model

    out = package_knn_model(exp_dir, out_dir, layer=layer, k=k, which=which, vocoder=vocoder, force=force,
                            **({} if pitch_weight is None else {"pitch_weight": pitch_weight}))
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    """Add ``package-knn`` at the root; the other commands attach to the ``data`` and ``eval``
    groups on import."""
    app.command("package-knn")(package_knn_command)
