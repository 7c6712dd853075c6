"""``speechrep data make-synth`` and ``speechrep data prepare`` (added to the data group)."""

from __future__ import annotations

from pathlib import Path

import typer

from speechrep.cli.data import app as data_app


def register(app: typer.Typer) -> None:
    """Nothing at the root: the commands here attach to the ``data`` group on import."""


@data_app.command("make-synth")
def make_synth(
    out_dir: Path = typer.Argument(..., help="Output corpus directory (data/, ali/, wav/, phones.txt, stats.json)."),
    size: str = typer.Option(
        "default",
        "--size",
        help="tiny (tests, seconds), small, default (demo, ~1 min), or the many-voice corpus: many (every "
        "flite/festival voice, pseudo-speakers, real Asterisk prompts; a few minutes) or large "
        "(needs 'bash tools/setup.sh --voices').",
    ),
    nj: int = typer.Option(1, "--nj", help="Parallel synthesizer jobs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sentence and speaker draw."),
    frame_labels: bool = typer.Option(False, "--frame-labels", help="Also write ali/<split>/frame_labels (10 ms)."),
    sentences: Path | None = typer.Option(
        None, "--sentences", help="Text file, one sentence a line, read instead of the fortunes."
    ),
) -> None:
    """Generate the embedded multi-speaker corpus with exact phone alignments (flite, festival)."""
    from speechrep.data.synth import make_synth as build
    from speechrep.errors import DataError

    lines = None
    if sentences is not None:
        try:
            lines = [line for line in sentences.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read sentences: {e}", path=sentences) from None
    stats = build(out_dir, size=size, nj=nj, seed=seed, write_frame_labels=frame_labels, sentences=lines, progress=True)
    for split, s in stats["splits"].items():
        typer.echo(f"{split:16s} {s['utterances']:6d} utts {s['hours'] * 60:7.1f} min  skipped {s['skipped']}")
    typer.echo(f"{out_dir}: {stats['utterances']} utterances, {stats['hours']:.2f} h")


@data_app.command("prepare")
def prepare(
    corpus: str = typer.Argument(
        ...,
        help="librispeech, zerospeech2019, vctk, timit, buckeye, ljspeech, asterisk (Debian's G.722 prompts of "
        "real voices; SRC /usr/share/asterisk/sounds) or folder (audio + optional transcripts).",
    ),
    src: Path = typer.Argument(..., help="The corpus as distributed (e.g. LibriSpeech/, english/, TIMIT/)."),
    out: Path = typer.Argument(..., help="Output directory (data/<set>/, ali/<set>/, prepare.json)."),
    subsets: str | None = typer.Option(
        None, "--subsets", help="librispeech: comma-separated subsets, e.g. dev-clean,test-clean."
    ),
    abx_items: Path | None = typer.Option(None, "--abx-items", help="librispeech: folder of ABX .item files to copy."),
    mic: str | None = typer.Option(None, "--mic", help="vctk: mic1 (default) or mic2."),
    include_sa: bool | None = typer.Option(None, "--include-sa/--no-sa", help="timit: keep the SA sentences."),
    min_pause: float | None = typer.Option(None, "--min-pause", help="buckeye: pause (s) that ends an utterance."),
    max_duration: float | None = typer.Option(None, "--max-duration", help="buckeye: longest utterance (s)."),
    speaker_from: str | None = typer.Option(None, "--speaker-from", help="folder: dir, prefix or single."),
    pack: str | None = typer.Option(None, "--pack", help="asterisk: allison_en (default), allison_es, june_fr, ivr_ru."),
    transcripts: Path | None = typer.Option(
        None, "--transcripts", help="asterisk: core-sounds-<lang>.txt.gz (default: searched in /usr/share/doc)."
    ),
    min_duration: float | None = typer.Option(None, "--min-duration", help="asterisk: shortest prompt kept (s)."),
) -> None:
    """Prepare a real corpus as Kaldi data directories; print the sets and what was skipped."""
    from speechrep.data.corpora import prepare as run

    options = {
        "subsets": subsets.split(",") if subsets else None,
        "abx_items": abx_items,
        "mic": mic,
        "include_sa": include_sa,
        "min_pause": min_pause,
        "max_duration": max_duration,
        "speaker_from": speaker_from,
        "pack": pack,
        "transcripts": transcripts,
        "min_duration": min_duration,
    }
    result = run(corpus, src, out, **{k: v for k, v in options.items() if v is not None})
    typer.echo(result.summary())
    typer.echo(f"{result.out}: {sum(result.sets.values())} utterances in {len(result.sets)} set(s)")
