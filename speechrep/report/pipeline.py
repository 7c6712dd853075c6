"""Collect a pipeline run's outputs into :class:`ReportInputs` and build the page.

Layout read (every part optional; what is missing is left off the page, never faked):

- ``EXP/eval/*.json``: phone-discovery results, one system per file (file stem = name), or
  ``{"baselines": {name: results}}`` from ``speechrep eval baseline``; ``<name>@<tag>.json``
  are results on another evaluation set (recipes/ssl.sh ``eval_tag``: ``baseline@unseen.json``
  gives the rows ``mfcc@unseen``, ``fbank@unseen``), listed after the untagged ones;
  ``EXP/eval/vc*.json``: voice-conversion scores (``{"families": {name: scores}}`` or one dict).
- ``EXP/*/train_history.jsonl`` (one level down, and ``EXP/*/*/``): loss curves.
- ``EXP/stage_times.tsv``: ``stage<TAB>description<TAB>seconds`` rows from recipes/lib.sh.
- alignment figure: an utterance of ``data_dir`` with its CTM segments and frame-level units.
- audio: TSVs with a header of column names and one row per example of wav paths (one
  table: the columns of all of them).

A missing experiment directory, a results JSON that does not parse or is not an object,
and an audio cell that soundfile cannot read are refused with the file named.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from speechrep.errors import DataError
from speechrep.report.html import ReportInputs, build_report, text_summary


def collect(
    exp_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    ctm: str | Path | None = None,
    units: str | Path | None = None,
    unit_frame_shift: float = 0.02,
    unit_frame_offset: float | None = None,
    audio_tsv: str | Path | Sequence[str | Path] | None = None,
    baseline: str = "mfcc",
    title: str = "speechrep: embedded-corpus pipeline",
) -> ReportInputs:
    """Gather the report inputs found under ``exp_dir`` (see the module docstring).

    Raises
    ------
    DataError
        ``exp_dir`` is not a directory; a results JSON is unreadable or not shaped as the
        evaluation writes it; an audio cell is missing or not audio.
    """
    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise DataError("experiment directory not found", path=exp_dir)
    inputs = ReportInputs(title=title)
    nested_vc = sorted(exp_dir.glob("*/eval/vc*.json"))  # a task recipe run inside this one
    for path in sorted((exp_dir / "eval").glob("*.json")) + nested_vc:
        doc = _read_results(path)
        if path.stem.startswith("vc"):
            families = _systems(doc["families"], path, "families") if "families" in doc else {path.stem: doc}
            for name, scores in families.items():
                inputs.vc_results[name] = _flat_numbers(scores)
        elif "baselines" in doc:  # `speechrep eval baseline`: several systems in one file
            tag = path.stem.partition("@")[2]  # baseline@unseen.json: mfcc@unseen, fbank@unseen
            inputs.results.update({f"{name}@{tag}" if tag else name: r
                                   for name, r in _systems(doc["baselines"], path, "baselines").items()})
        else:
            inputs.results[path.stem] = doc
    # the main evaluation set first, then each tagged one (<name>@<tag>: unseen voices, real speech)
    tags = ["", *_TAG_ORDER, *sorted(n.partition("@")[2] for n in inputs.results)]
    order = {tag: i for i, tag in enumerate(dict.fromkeys(tags))}
    inputs.results = dict(sorted(inputs.results.items(), key=lambda kv: order[kv[0].partition("@")[2]]))
    if baseline in inputs.results:
        inputs.baseline = baseline
    for hist in sorted(list(exp_dir.glob("*/train_history.jsonl")) + list(exp_dir.glob("*/*/train_history.jsonl"))):
        inputs.histories[str(hist.parent.relative_to(exp_dir))] = hist
    times = exp_dir / "stage_times.tsv"
    if times.is_file():
        for line in times.read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                inputs.stage_times.append((parts[0], parts[1], float(parts[2])))
    if data_dir is not None and ctm is not None:
        inputs.alignment_png = _alignment(
            exp_dir, Path(data_dir), Path(ctm), units, unit_frame_shift,
            unit_frame_shift / 2 if unit_frame_offset is None else unit_frame_offset,
        )
    if audio_tsv is not None:
        tsvs = [audio_tsv] if isinstance(audio_tsv, (str, Path)) else audio_tsv
        inputs.audio = [row for tsv in tsvs for row in _audio_rows(Path(tsv))]
    return inputs


#: Tagged evaluation sets of the demo, in the order of its tables (other tags follow by name).
_TAG_ORDER = ("unseen", "real")


def _read_results(path: Path) -> dict:
    """A results JSON object; anything else (cut off, a list, not UTF-8) names the file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataError(f"unreadable results JSON ({e})", path=path) from None
    if not isinstance(doc, dict):
        raise DataError(f"expected a JSON object of results, got a {type(doc).__name__}", path=path)
    return doc


def _systems(doc: object, path: Path, key: str) -> dict:
    """``{system: results}`` of a multi-system results file, each results an object."""
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise DataError("expected an object of system name -> results object", path=path, field=key)
    return doc


def _flat_numbers(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_numbers(v, key + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[key] = v
    return out


def _alignment(
    exp_dir: Path, data_dir: Path, ctm: Path, units: str | Path | None, shift: float, offset: float
) -> Path:
    from speechrep.data.audio import load_audio
    from speechrep.data.ctm import read_ctm
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.report.plots import plot_alignment

    ali = read_ctm(ctm)
    unit_seqs: dict[str, list[int]] = {}
    if units is not None:
        for line in Path(units).read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if parts:
                unit_seqs[parts[0]] = [int(u) for u in parts[1:]]
    data = DataDir.load(data_dir)
    candidates = [u for u in data.utts if u in ali and (not unit_seqs or u in unit_seqs)]
    if not candidates:
        raise DataError("no utterance has both an alignment and units", path=ctm)
    utt = candidates[0]
    wave = load_audio(data.wav_scp[utt], sample_rate=16000, name=utt)
    out = exp_dir / "report_assets" / "alignment.png"
    return plot_alignment(
        wave, 16000, ali[utt], unit_seqs.get(utt) if unit_seqs else None, out,
        unit_frame_shift=shift, unit_frame_offset=offset, title=utt,
    )


def _audio_rows(tsv: Path) -> list[dict]:
    rows = []
    with tsv.open(encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for i, rec in enumerate(reader):
            label = rec.pop("label", None) or f"example {i + 1}"
            files = {}
            for col, p in rec.items():
                if p:
                    path = Path(p) if Path(p).is_absolute() else tsv.parent / p
                    if not path.is_file():
                        raise DataError(f"audio file {path} not found", path=tsv, field=col)
                    _check_audio(path, tsv, col)
                    files[col] = path
            rows.append({"label": label, "files": files})
    return rows


def _check_audio(path: Path, tsv: Path, column: str) -> None:
    import soundfile as sf

    try:
        sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as e:
        raise DataError(f"{path} is not audio that soundfile reads ({e})", path=tsv, field=column) from None


def build_pipeline_report(
    exp_dir: str | Path, out_dir: str | Path | None = None, *, force: bool = False, **kwargs
) -> tuple[Path, str]:
    """Collect ``exp_dir`` and write ``out_dir`` (default ``exp_dir/report``)/index.html.

    ``force`` replaces an earlier report at ``out_dir``; ``out_dir`` may lie inside
    ``exp_dir`` but never be or hold it, nor any other input (see
    :func:`speechrep.utils.io.check_output_dir`). Returns the page and the result tables
    as plain text (for the terminal).
    """
    from speechrep.utils.io import check_output_dir

    out = Path(out_dir) if out_dir is not None else Path(exp_dir) / "report"
    audio = kwargs.get("audio_tsv")
    sources = [kwargs.get(k) for k in ("data_dir", "ctm", "units")]
    sources += [audio] if audio is None or isinstance(audio, (str, Path)) else list(audio)
    where = dict(force=force, sources=sources, containers=[exp_dir])
    # checked before anything is read or plotted, and again when the page is written
    check_output_dir(out, command="report", field="--out", force=force, inputs=sources, containers=[exp_dir])
    inputs = collect(exp_dir, **kwargs)
    return build_report(inputs, out, **where), text_summary(inputs)
