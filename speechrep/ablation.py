"""One-hot vs binary vs vector-quantised bottlenecks at the same bit budget.

For a budget of ``b`` bits per frame the variants are: a one-hot layer over ``2^b``
classes, a binary layer of ``b`` bits and a VQ codebook of ``2^b`` codes (and optionally a
Gumbel VQ of ``2^b`` codes). Each variant is trained from one base experiment config
(``model.name: vqvae``), its units of an evaluation set are extracted and scored with the
phone-discovery evaluation, and all variants land in one JSON list and one Markdown
table::

    OUT/<kind>_<b>bit/            experiment (config.yaml, checkpoints/, units/, eval.json)
    OUT/ablation.json             [{"variant", "kind", "bits", "num_codes", "pnmi", ...}]
    OUT/ablation.md               the same as a table

A variant whose ``eval.json`` exists is not retrained (rerun to add variants). ``OUT``
must be new, empty or an earlier ablation output (its marker file says so), and none of
the inputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from speechrep.errors import ConfigError
from speechrep.utils.io import atomic_write_json, atomic_write_text, check_output_dir, write_output_marker

__all__ = ["variant_overrides", "summarise_report", "run_ablation", "format_table"]

KINDS = ("onehot", "binary", "vq", "gumbel")
_B = "model.args.bottleneck"

#: (column, key path in the evaluation report) of the summary rows
_COLUMNS = (
    ("pnmi", ("units", "pnmi")),
    ("phone_purity", ("units", "phone_purity")),
    ("abx_within", ("abx", "within")),
    ("abx_across", ("abx", "across")),
    ("bitrate", ("bitrate", "bitrate")),
    ("used_codes", ("codebook", "used_codes")),
    ("perplexity", ("codebook", "perplexity")),
    ("boundary_f1", ("segmentation", "f1")),
)


def variant_overrides(kind: str, bits: int) -> list[str]:
    """Config overrides giving bottleneck ``kind`` a budget of ``bits`` bits per frame."""
    if kind not in KINDS:
        raise ConfigError(f"unknown bottleneck kind {kind!r} (known: {', '.join(KINDS)})", field="--kinds")
    if bits < 1:
        raise ConfigError(f"a bit budget must be >= 1, got {bits}", field="--bits")
    if kind == "binary":
        return [f"{_B}.kind=binary", f"{_B}.num_bits={bits}"]
    return [f"{_B}.kind={kind}", f"{_B}.num_codes={2**bits}"]


def _get(report: dict[str, Any], path: Sequence[str]) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def summarise_report(report: dict[str, Any]) -> dict[str, Any]:
    """The table columns of one phone-discovery report (missing metrics are None)."""
    return {name: _get(report, path) for name, path in _COLUMNS}


def run_ablation(
    config: str | Path,
    *,
    eval_data: str | Path,
    ali: str | Path,
    out_dir: str | Path,
    bits: Iterable[int] = (4, 6),
    kinds: Iterable[str] = ("onehot", "binary", "vq"),
    overrides: Iterable[str] = (),
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train, extract and evaluate every (kind, bits) variant; write the comparison.

    Parameters
    ----------
    config : base experiment YAML of a ``vqvae`` model.
    eval_data : data directory whose units are scored (its ``utt2spk`` names the speakers).
    ali : phone CTM of ``eval_data``.
    out_dir : where the variants' experiments and the summary go: new, empty, or an
        earlier ablation output (which this run adds to).
    bits, kinds : the grid of bit budgets and bottleneck kinds.
    overrides : ``a.b=value`` applied to the base config of every variant.

    Returns
    -------
    One row per variant: ``variant``, ``kind``, ``bits``, ``num_codes`` and the columns
    of :func:`summarise_report`.

    Raises
    ------
    SpeechrepError
        ``out_dir`` is an input or holds other data
        (:func:`speechrep.utils.io.check_output_dir`).
    """
    from speechrep.eval.phone_discovery import PhoneDiscoveryConfig, run_phone_discovery
    from speechrep.train.trainer import train
    from speechrep.units import extract_units, write_units

    # an earlier ablation is added to, not replaced: resume, no --force
    out = check_output_dir(out_dir, command="ablation", field="OUT", inputs=[config, eval_data, ali], resume=True)
    bits, kinds = list(bits), list(kinds)
    grid = [(kind, b, variant_overrides(kind, b)) for b in bits for kind in kinds]  # validates first
    out.mkdir(parents=True, exist_ok=True)
    write_output_marker(out, "ablation")
    rows = []
    for kind, b, changes in grid:
        name = f"{kind}_{b}bit"
        exp = out / name
        report_path = exp / "eval.json"
        if not report_path.is_file():
            train(config, overrides=[*overrides, f"exp_dir={exp}", *changes])
            unit_set = extract_units(exp, eval_data, which="last", progress=progress)
            write_units(unit_set, exp / "units", force=True)  # a run stopped after this step left them
            eval_cfg = PhoneDiscoveryConfig(codebook_size=unit_set.num_codes)
            run_phone_discovery(
                exp / "units" / "units.txt",
                ali,
                kind="units",
                out=report_path,
                utt2spk=Path(eval_data) / "utt2spk",
                config=eval_cfg,
                progress=progress,
            )
        report = json.loads(report_path.read_text(encoding="utf-8"))
        num_codes = _get(report, ("codebook", "codebook_size"))
        rows.append({"variant": name, "kind": kind, "bits": b, "num_codes": num_codes, **summarise_report(report)})
    atomic_write_json(out / "ablation.json", rows)
    atomic_write_text(out / "ablation.md", format_table(rows))
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of ablation rows (numbers to 3 decimals, missing as '-')."""
    if not rows:
        return "(no variants)\n"
    cols = list(rows[0])

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"
