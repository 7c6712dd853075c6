"""One static page (no network: every asset local, beside the page) summarising a run.

The page carries a small self-check script: once loaded it lists every image that failed
to decode and every audio element that failed to load in ``#selfcheck`` (``data-status``
``ok``/``broken``), which the tests read from a headless browser.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from speechrep.utils.io import output_dir

#: (column label, dotted key path in a results JSON); the first path found is shown.
DEFAULT_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ABX within (%)", ("abx.within",)),
    ("ABX across (%)", ("abx.across",)),
    ("PNMI", ("units.pnmi",)),
    ("Phone purity", ("units.phone_purity",)),
    ("Codes used", ("codebook.used_codes",)),
    ("Bitrate (bit/s)", ("bitrate.bitrate",)),
    ("Boundary F1", ("segmentation.f1",)),
    ("R-value", ("segmentation.r_value",)),
    ("Speaker probe acc", ("probes.speaker_probe.accuracy",)),
    ("Speaker chance", ("probes.speaker_probe.chance",)),
    ("Phone probe acc", ("probes.phone_probe.accuracy",)),
    ("Phone chance", ("probes.phone_probe.chance",)),
)


@dataclass
class ReportInputs:
    """What goes on the page.

    Attributes
    ----------
    title : page title.
    results : system name -> results JSON path or dict (phone-discovery metrics).
    baseline : name of the system in ``results`` to mark as the reference line.
    vc_results : family name -> VC scores dict/JSON path.
    histories : run name -> ``train_history.jsonl`` path (one JSON object per line with
        ``step`` and ``loss``) for the loss plots.
    alignment_png : a ready alignment figure (spectrogram + phones + units) to include.
    audio : rows of ``{"label": str, "files": {column: wav path}}`` for audio players.
    stage_times : ``(stage, description, seconds)`` rows.
    notes : free-text lines shown under the title.
    """

    title: str = "speechrep report"
    results: dict[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    vc_results: dict[str, Any] = field(default_factory=dict)
    histories: dict[str, Path] = field(default_factory=dict)
    alignment_png: Path | None = None
    audio: list[dict[str, Any]] = field(default_factory=list)
    stage_times: list[tuple[str, str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _load(obj: Any) -> dict:
    if isinstance(obj, (str, Path)):
        return json.loads(Path(obj).read_text(encoding="utf-8"))
    return dict(obj)


def _lookup(d: dict, path: str) -> Any:
    if path in d:  # flattened keys ("speaker.target_acc") of the VC scores
        return d[path]
    node: Any = d
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _fmt_plain(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    if isinstance(v, dict) and "mean" in v:
        return _fmt_plain(v["mean"])
    return str(v)


def _fmt(v: Any) -> str:
    return html.escape(_fmt_plain(v))


def _cells(res: dict, columns: Sequence[tuple[str, Sequence[str]]]) -> list[Any]:
    """The value of each column in one results dict (first path found, else None)."""
    return [next((v for v in (_lookup(res, p) for p in paths) if v is not None), None) for _, paths in columns]


def _table(rows: dict[str, dict], columns: Sequence[tuple[str, Sequence[str]]], *, baseline: str | None, css: str) -> str:
    head = "".join(f"<th>{html.escape(label)}</th>" for label, _ in columns)
    body = []
    for name, res in rows.items():
        cells = [f"<td>{_fmt(value)}</td>" for value in _cells(res, columns)]
        cls = ' class="baseline"' if name == baseline else ""
        body.append(f"<tr{cls}><th scope=row>{html.escape(name)}</th>{''.join(cells)}</tr>")
    return f'<table class="{css}"><thead><tr><th>system</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _vc_columns(vc: dict[str, dict]) -> list[tuple[str, tuple[str, ...]]]:
    keys: list[str] = []
    for res in vc.values():
        for k, v in res.items():
            if isinstance(v, (int, float)) and k not in keys:
                keys.append(k)
    return [(k, (k,)) for k in keys]


def _loss_plot(histories: dict[str, Path], out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {}
    for name, path in histories.items():
        steps, losses = [], []
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if rec.get("split", "train") == "train" and "loss" in rec and "step" in rec:
                steps.append(rec["step"])
                losses.append(rec["loss"])
        if steps:
            curves[name] = (steps, losses)
    if not curves:
        return False
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3), squeeze=False)
    for ax, (name, (s, l)) in zip(axes[0], curves.items()):
        ax.plot(s, l)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return True


_SELFCHECK = """
<script>
window.addEventListener('load', function () {
  var broken = [];
  document.querySelectorAll('img').forEach(function (im) {
    if (!im.complete || im.naturalWidth === 0) broken.push('img:' + im.getAttribute('src'));
  });
  var audios = Array.prototype.slice.call(document.querySelectorAll('audio'));
  var pending = audios.length;
  function done() {
    var el = document.getElementById('selfcheck');
    el.dataset.status = broken.length ? 'broken' : 'ok';
    el.textContent = broken.length ? ('broken: ' + broken.join(' ')) : ('all ' +
      document.querySelectorAll('img').length + ' images and ' + audios.length + ' audio files loaded');
  }
  if (!pending) { done(); return; }
  audios.forEach(function (a) {
    var settled = false;
    function fin(ok) { if (settled) return; settled = true; if (!ok) broken.push('audio:' + a.getAttribute('src')); if (--pending === 0) done(); }
    if (a.readyState >= 1) { fin(true); return; }
    a.addEventListener('loadedmetadata', function () { fin(true); });
    a.addEventListener('error', function () { fin(false); });
    a.load();
  });
});
</script>
"""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; display: block; max-width: 100%; overflow-x: auto; }  /* wide tables scroll */
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
thead th { background: #f0f0f0; }
tr.baseline { background: #fff7d6; }
th[scope=row] { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; }
audio { width: 220px; }
#selfcheck { color: #666; font-size: 0.85em; }
"""


def text_summary(inputs: ReportInputs) -> str:
    """The page's result tables as plain text for the terminal (empty columns left out)."""
    blocks = []
    results = {name: _load(r) for name, r in inputs.results.items()}
    vc = {name: _load(r) for name, r in inputs.vc_results.items()}
    for title, rows, columns in (("Phone discovery", results, DEFAULT_COLUMNS), ("Voice conversion", vc, _vc_columns(vc))):
        if not rows:
            continue
        values = {name: _cells(res, columns) for name, res in rows.items()}
        keep = [i for i in range(len(columns)) if any(v[i] is not None for v in values.values())]
        table = [["system"] + [columns[i][0] for i in keep]]
        for name, vals in values.items():
            mark = " *" if name == inputs.baseline else ""
            table.append([name + mark] + [_fmt_plain(vals[i]) for i in keep])
        widths = [max(len(r[j]) for r in table) for j in range(len(table[0]))]
        lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))) for r in table]
        note = f" (* = {inputs.baseline}, the reference line)" if title == "Phone discovery" and inputs.baseline else ""
        blocks.append(f"{title}{note}\n" + "\n".join(lines))
    return "\n\n".join(blocks)


def build_report(
    inputs: ReportInputs,
    out_dir: str | Path,
    *,
    force: bool = False,
    sources: Iterable[str | Path | None] = (),
    containers: Iterable[str | Path | None] = (),
) -> Path:
    """Write ``out_dir/index.html`` with its assets under ``out_dir`` (atomically).

    ``out_dir`` is refused when it holds anything but an earlier report (replaced only
    with ``force``), is one of ``sources`` or lies inside one, or is or holds one of
    ``containers`` (see :func:`speechrep.utils.io.check_output_dir`). Returns the path of
    ``index.html``.
    """
    out_dir = Path(out_dir)
    audio = [f for row in inputs.audio for f in row["files"].values()]
    with output_dir(out_dir, command="report", field="--out", force=force, inputs=[*sources, *audio],
                    containers=containers) as tmp:
        (tmp / "img").mkdir()
        (tmp / "audio").mkdir()
        parts = [f"<h1>{html.escape(inputs.title)}</h1>"]
        parts += [f"<p>{html.escape(n)}</p>" for n in inputs.notes]

        results = {name: _load(r) for name, r in inputs.results.items()}
        if results:
            parts.append("<h2>Phone discovery</h2>")
            if inputs.baseline:
                parts.append(f"<p>Highlighted: the reference line ({html.escape(inputs.baseline)}).</p>")
            parts.append(_table(results, DEFAULT_COLUMNS, baseline=inputs.baseline, css="results"))
        vc = {name: _load(r) for name, r in inputs.vc_results.items()}
        if vc:
            parts.append("<h2>Voice conversion</h2>")
            parts.append(_table(vc, _vc_columns(vc), baseline=None, css="vc"))

        if inputs.histories and _loss_plot(inputs.histories, tmp / "img" / "loss.png"):
            parts.append('<h2>Training loss</h2><img src="img/loss.png" alt="training loss curves">')
        if inputs.alignment_png is not None:
            shutil.copyfile(inputs.alignment_png, tmp / "img" / "alignment.png")
            parts.append(
                "<h2>Units vs phones</h2>"
                '<img src="img/alignment.png" alt="spectrogram, reference phones and discovered units">'
            )

        if inputs.audio:
            columns: list[str] = []
            for row in inputs.audio:
                columns += [c for c in row["files"] if c not in columns]
            head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
            rows = []
            for i, row in enumerate(inputs.audio):
                cells = []
                for c in columns:
                    src = row["files"].get(c)
                    if src is None:
                        cells.append("<td>—</td>")
                        continue
                    name = f"{i:03d}_{_slug(c)}{Path(src).suffix}"
                    shutil.copyfile(src, tmp / "audio" / name)
                    cells.append(f'<td><audio controls preload="metadata" src="audio/{name}"></audio></td>')
                rows.append(f"<tr><th scope=row>{html.escape(row['label'])}</th>{''.join(cells)}</tr>")
            parts.append(
                f'<h2>Listen</h2><table class="audio"><thead><tr><th></th>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>"
            )

        if inputs.stage_times:
            body = "".join(
                f"<tr><td>{html.escape(str(s))}</td><th scope=row>{html.escape(d)}</th><td>{t:.1f}</td></tr>"
                for s, d, t in inputs.stage_times
            )
            total = sum(t for _, _, t in inputs.stage_times)
            parts.append(
                "<h2>Stage times</h2><table class=\"times\"><thead><tr><th>stage</th><th>what</th><th>seconds</th>"
                f"</tr></thead><tbody>{body}<tr><td></td><th scope=row>total</th><td>{total:.1f}</td></tr></tbody></table>"
            )
        parts.append('<p id="selfcheck" data-status="pending">checking assets…</p>')
        page = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(inputs.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(parts)
            + _SELFCHECK
            + "</body></html>\n"
        )
        (tmp / "index.html").write_text(page, encoding="utf-8")
    return out_dir / "index.html"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text.lower()).strip("_") or "x"
