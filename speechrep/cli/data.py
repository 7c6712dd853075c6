"""`speechrep data ...` commands: check and reshape Kaldi data directories."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(
    help="Kaldi data directories: validate, fix, subset, split, combine; CTM <-> TextGrid.", no_args_is_help=True
)


@app.command("validate")
def validate(
    data_dir: Path = typer.Argument(..., help="Data directory (wav.scp, utt2spk, ...)."),
    check_audio: bool = typer.Option(
        False, "--check-audio",
        help="Also decode every utterance's audio and check it as make-fbank/make-mfcc would (sample rate, "
        "at least one frame, no truncated file). This runs wav.scp pipe commands.",
    ),
    config: Optional[Path] = typer.Option(
        None, "--config",
        help="Feature config the audio must suit with --check-audio (default: DATA_DIR/conf/<kind>.yaml if there, "
        "else the fbank defaults: 16 kHz).",
    ),
    no_pipes: bool = typer.Option(False, "--no-pipes", help="Report every wav.scp pipe command as a problem."),
) -> None:
    """Print every problem of a data directory as FILE:LINE: MESSAGE; exit 1 if there is any.

    A wav.scp line ending in '|' is a shell command run by /bin/sh (as in Kaldi) when its
    audio is read: it is code. Use --no-pipes for data directories you do not trust.
    """
    from speechrep.data.audio import AudioRule
    from speechrep.data.validate import validate_data_dir
    from speechrep.data.make_features import audio_rule, feature_config_for_audio

    if check_audio:
        rule = audio_rule(feature_config_for_audio(data_dir, config), allow_pipes=not no_pipes)
    else:
        rule = AudioRule(allow_pipes=not no_pipes)
    problems = validate_data_dir(data_dir, check_audio=check_audio, rule=rule, progress=check_audio)
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{data_dir}: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{data_dir}: OK")


@app.command("fix")
def fix(data_dir: Path = typer.Argument(..., help="Data directory to repair in place.")) -> None:
    """Sort every file, drop inconsistent entries, rebuild spk2utt; print kept/dropped counts.

    As Kaldi's fix_data_dir.sh, the previous version of every file it changes is kept in
    DATA_DIR/.backup/ (the backup of an earlier fix moves to .backup.1, .backup.2, ...).
    Exits 1, naming the first problem, if `data validate` would still fail afterwards
    (e.g. an utterance id that does not start with its speaker id).
    """
    from speechrep.data.validate import fix_data_dir

    counts = fix_data_dir(data_dir)
    for name, (kept, dropped) in counts.items():
        typer.echo(f"{name:16s} kept {kept:8d}  dropped {dropped:8d}")


@app.command("subset")
def subset(
    src: Path = typer.Argument(..., help="Input data directory."),
    dst: Path = typer.Argument(..., help="Output data directory (replaced)."),
    utt_list: Optional[Path] = typer.Option(None, "--utt-list", help="File of utterance ids (first column)."),
    first: Optional[int] = typer.Option(None, "--first", help="The first N utterances (C order)."),
    last: Optional[int] = typer.Option(None, "--last", help="The last N utterances (C order)."),
    spk_list: Optional[Path] = typer.Option(None, "--spk-list", help="File of speaker ids (first column)."),
) -> None:
    """Copy the utterances selected by exactly one option from SRC to DST."""
    from speechrep.data.dir_ops import subset_data_dir

    out = subset_data_dir(src, dst, utt_list=utt_list, first=first, last=last, spk_list=spk_list)
    typer.echo(str(out))


@app.command("split")
def split(
    data_dir: Path = typer.Argument(..., help="Data directory to split."),
    num_parts: int = typer.Argument(..., help="Number of parts (jobs)."),
    by_speaker: bool = typer.Option(False, "--by-speaker", help="Keep each speaker in one part."),
) -> None:
    """Split DATA_DIR into DATA_DIR/splitN/1..N for parallel jobs (reused when up to date)."""
    from speechrep.data.dir_ops import split_data_dir

    for part in split_data_dir(data_dir, num_parts, by_speaker=by_speaker):
        typer.echo(str(part))


@app.command("combine")
def combine(
    dst: Path = typer.Argument(..., help="Output data directory (replaced)."),
    srcs: List[Path] = typer.Argument(..., help="Input data directories."),
) -> None:
    """Combine data directories SRC... into DST; a repeated utterance id is an error."""
    from speechrep.data.dir_ops import combine_data_dirs

    typer.echo(str(combine_data_dirs(dst, srcs)))


@app.command("utt2dur")
def utt2dur(data_dir: Path = typer.Argument(..., help="Data directory.")) -> None:
    """Write DATA_DIR/utt2dur from segments or the audio headers."""
    from speechrep.data.audio import write_utt2dur

    durations = write_utt2dur(data_dir, progress=True)
    typer.echo(f"{data_dir}/utt2dur: {len(durations)} utterances, {sum(durations.values()) / 3600:.3f} h")


@app.command("textgrid-to-ctm")
def textgrid_to_ctm(
    textgrid_dir: Path = typer.Argument(..., help="Directory of <utt>.TextGrid files."),
    ctm: Path = typer.Argument(..., help="Output CTM file."),
    tier: str = typer.Option("phones", "--tier", help="Interval tier to convert."),
) -> None:
    """Convert a directory of Praat TextGrids (one per utterance) to one CTM file."""
    from speechrep.data.textgrid import textgrids_to_ctm

    typer.echo(f"{ctm}: {textgrids_to_ctm(textgrid_dir, ctm, tier=tier)} utterances")


@app.command("ctm-to-textgrid")
def ctm_to_textgrid(
    ctm: Path = typer.Argument(..., help="Input CTM file."),
    out_dir: Path = typer.Argument(..., help="Output directory of <utt>.TextGrid files (replaced)."),
    tier: str = typer.Option("phones", "--tier", help="Name of the interval tier to write."),
) -> None:
    """Write one Praat TextGrid per utterance of a CTM file."""
    from speechrep.data.textgrid import ctm_to_textgrids

    typer.echo(f"{out_dir}: {ctm_to_textgrids(ctm, out_dir, tier=tier)} TextGrids")
