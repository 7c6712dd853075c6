"""Summaries of a voice-conversion recipe: the scores of every system in one table, and the
examples of the report's audio players."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechrep.errors import DataError
from speechrep.eval.vc import format_by_target, format_vc_table

__all__ = ["collect_vc_scores", "demo_examples"]


def collect_vc_scores(scores_dir: str | Path) -> tuple[dict[str, Any], str]:
    """Gather the ``speechrep eval vc`` outputs ``<scores_dir>/<family>_<vocoder>.json``.

    Returns
    -------
    (summary, table) : ``{"families": {"<family>+<vocoder>": summary}}`` (the layout
        ``speechrep report`` reads from ``exp/eval/vc*.json``) and the plain-text table of
        all systems side by side, then each system's rates and misses per target speaker.

    Raises
    ------
    DataError
        No ``*.json`` in ``scores_dir``.
    """
    from speechrep.eval.judges import format_independent

    results = {}
    for path in sorted(Path(scores_dir).glob("*.json")):
        family, _, vocoder = path.stem.rpartition("_")
        results[f"{family}+{vocoder}"] = json.loads(path.read_text(encoding="utf-8"))
    if not results:
        raise DataError("no scores (*.json of speechrep eval vc) here", path=scores_dir)
    inhouse = {name: r for name, r in results.items() if "summary" in r}
    per_target = [f"\n{name}, per target speaker:\n{format_by_target(r)}" for name, r in inhouse.items()
                  if "by_target" in r]
    independent = [f"\n{name}, independent judges:\n{format_independent(r['independent'])}"
                   for name, r in results.items() if "independent" in r]
    table = (format_vc_table(inhouse) + "\n" if inhouse else "") + "".join(t + "\n" for t in per_target + independent)
    # the report's columns: the in-house summary, and the independent judges' as judge.<key>
    summary = {name: {**r.get("summary", {}), **{f"judge.{k}": v for k, v in r.get("independent", {})
                                                  .get("summary", {}).items()}} for name, r in results.items()}
    return {"families": summary}, table


def demo_examples(pairs: str | Path, convert_dir: str | Path, *, per_kind: int = 2,
                  real: Sequence[str] = ()) -> str:
    """The report's audio examples (``speechrep report --audio``) as TSV text.

    Takes the first ``per_kind`` pairs to a seen target speaker and the first ``per_kind`` to
    an unseen one (zero-shot: target speaker absent from the source speakers); with ``real``
    speakers, the first ``per_kind`` from a real speaker to a synthetic one and the first
    ``per_kind`` from a synthetic speaker to a real one instead. The columns are
    ``label``, ``source``, ``target``, then one per directory of ``convert_dir``
    (``<family>_<vocoder>``, ``resynth_<vocoder>``) holding ``<id>.wav`` (empty when absent).

    Raises
    ------
    DataError
        A missing pairs file or conversion directory.
    """
    from speechrep.data.pairs import read_pairs

    convert_dir = Path(convert_dir)
    if not convert_dir.is_dir():
        raise DataError("conversion directory not found", path=convert_dir)
    chosen = read_pairs(pairs)
    if real:
        groups = {"real -> synthetic": [p for p in chosen if p.source_speaker in real and p.target_speaker not in real],
                  "synthetic -> real": [p for p in chosen if p.source_speaker not in real and p.target_speaker in real]}
    else:
        sources = {p.source_speaker for p in chosen}
        groups = {"seen": [p for p in chosen if p.target_speaker in sources],
                  "unseen": [p for p in chosen if p.target_speaker not in sources]}
    systems = sorted(d for d in convert_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    rows = ["\t".join(["label", "source", "target"] + [d.name for d in systems])]
    for kind, group in groups.items():
        for p in group[:per_kind]:
            files = [str(Path(p.source).resolve()), str(Path(p.targets[0]).resolve())]
            files += [str((d / f"{p.id}.wav").resolve()) if (d / f"{p.id}.wav").is_file() else "" for d in systems]
            rows.append("\t".join([f"{p.source_speaker} -> {p.target_speaker} ({kind})"] + files))
    return "\n".join(rows) + "\n"
