"""``speechrep eval vc`` (added to the eval group)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from speechrep.cli.eval import app as eval_app


@eval_app.command("vc")
def eval_vc(
    pairs: Path = typer.Option(..., "--pairs", help="Pairs file used for conversion (needs source_speaker, "
                               "target_speaker; phones for the PER; reference for MCD/F0 against parallel speech)."),
    converted: Path = typer.Option(..., "--converted", help="Directory with the converted <id>.wav of every pair."),
    speaker_model: Optional[Path] = typer.Option(
        None, "--speaker-model", help="Experiment dir of a speaker_tdnn model (the in-house speaker judge)."),
    phone_model: Optional[List[Path]] = typer.Option(
        None, "--phone-model", help="Experiment dir of a phone_ctc model (PER); repeat it to average the PERs "
        "of several recognisers."),
    resynth: Optional[Path] = typer.Option(None, "--resynth", help="Directory of vocoded sources <id>.wav (PER/MCD baseline)."),
    out: Path = typer.Option(..., "--out", help="Output JSON (written atomically)."),
    name: str = typer.Option("converted", "--name", help="System name in the printed table."),
    no_f0: bool = typer.Option(False, "--no-f0", help="Skip the log-F0 measures (F0 tracking of every converted and reference utterance)."),
    enrol_targets: Optional[int] = typer.Option(
        None, "--enrol-targets", help="Enrol target speakers with only the first N targets of each pair (default: all)."),
    seen_data: Optional[Path] = typer.Option(
        None, "--seen-data", help="Data directory the VC model was trained on: the pairs whose target speaker is in it "
        "are also scored apart (seen targets) from the others (unseen: zero-shot conversion)."),
    judges: Optional[str] = typer.Option(
        None, "--judges", help="independent (pretrained on real speech: Resemblyzer, pocketsphinx; "
        "pip install 'speechrep\\[judges]'), inhouse (--speaker-model, --phone-model) or both. Default: inhouse when "
        "--speaker-model is given, else independent when installed."),
    judge_data: Optional[List[Path]] = typer.Option(
        None, "--judge-data", help="Data directory of real utterances of the test voices (repeatable): the independent "
        "judges enrol the voices with the utterances a pair does not use, and read the source texts (text) for the WER."),
    judge_cache: Optional[Path] = typer.Option(
        None, "--judge-cache", help="Directory where the independent judges keep their embeddings and transcripts, "
        "keyed by the audio's content: later calls on the same voices (other systems) do not enrol them again."),
) -> None:
    """Score voice conversion: speaker similarity/accuracy/EER, PER, MCD and log-F0; JSON + table
    (with --seen-data also for seen and unseen targets apart; and the rates and misses per target speaker).
    The independent judges add verification accept, identification and WER per target voice."""
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.eval.judges import format_independent, score_vc
    from speechrep.eval.vc import format_by_target, format_vc_table
    from speechrep.utils.io import atomic_write_json

    seen = None if seen_data is None else DataDir.load(seen_data).speakers
    result = score_vc(pairs, converted, judges=judges, speaker_model=speaker_model, phone_model=phone_model or None,
                      judge_data=judge_data or (), resynth_dir=resynth, f0=not no_f0, enrol_targets=enrol_targets,
                      seen_speakers=seen, judge_cache=judge_cache)
    atomic_write_json(out, result)
    if "summary" in result:
        typer.echo(format_vc_table({name: result}))
        typer.echo(format_by_target(result))
    if "independent" in result:
        typer.echo(format_independent(result["independent"]))


def register(app: typer.Typer) -> None:
    """Nothing at the root: ``eval vc`` attaches to the ``eval`` group on import."""
