"""What the side recipes share: the in-memory training loop, seeding, result tables.

The speech Trainer (:mod:`speechrep.train`) draws random crops from Kaldi data
directories; the side recipes' datasets (8x8 images, sentences, expressions) are a few
megabytes held in memory, so they are batched by the recipe and trained by :func:`fit`,
which follows the same model contract (``forward(batch) -> {"loss": ..., other 0-dim
logs}``, optional ``on_step_end(step)``) and the Trainer's learning-rate schedule.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from speechrep.train.schedule import lr_at
from speechrep.utils.io import atomic_write_json, atomic_write_text

__all__ = ["seed_everything", "fit", "mean_std", "format_table", "write_results"]

Batch = dict[str, torch.Tensor]


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a torch generator seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fit(
    model: torch.nn.Module,
    next_batch: Callable[[int], Batch],
    *,
    steps: int,
    lr: float = 1e-3,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    log_every: int | None = None,
    desc: str = "train",
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` for ``steps`` Adam steps on batches from ``next_batch(step)``.

    Parameters
    ----------
    model : module whose ``forward(batch)`` returns a dict with a scalar ``"loss"`` and
        any other 0-dim tensors to log; ``on_step_end(step)`` is called after each step
        when the model has it.
    next_batch : ``step -> batch`` (the recipe draws it from its own generator, so a
        run is reproducible from the seed).
    steps : optimizer steps.
    lr, warmup_steps : peak rate and linear warmup; cosine decay to 0 afterwards
        (:func:`speechrep.train.schedule.lr_at`).
    weight_decay : AdamW weight decay.
    grad_clip : maximum gradient norm (0 disables clipping).
    log_every : steps averaged per history entry (default: ``steps // 20``, at least 1).
    desc : progress-bar label.
    progress : show a progress bar.

    Returns
    -------
    history : one dict per ``log_every`` steps, the means of the logged values plus
        ``"step"``.
    """
    from speechrep.utils.progress import progress_bar

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    log_every = log_every or max(1, steps // 20)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    model.train()
    history: list[dict[str, float]] = []
    sums: dict[str, float] = {}
    count = 0
    bar = progress_bar(range(steps), desc=desc, enabled=progress, leave=False)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr=lr, warmup_steps=warmup_steps, max_steps=steps)
        out = model(next_batch(step))
        loss = out["loss"]
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        hook = getattr(model, "on_step_end", None)
        if hook is not None:
            hook(step)
        for k, v in out.items():
            if isinstance(v, torch.Tensor) and v.dim() == 0:
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        if count == log_every or step == steps - 1:
            entry = {k: v / count for k, v in sums.items()}
            entry["step"] = step + 1
            history.append(entry)
            bar.set_postfix(loss=f"{entry['loss']:.3f}")
            sums, count = {}, 0
    model.eval()
    return history


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def format_table(title: str, rows: Mapping[str, Mapping[str, Sequence[float] | float | str]], columns: Sequence[str]) -> str:
    """Plain-text table, one row per system; lists of per-seed values print as mean ± std.

    Parameters
    ----------
    title : first line.
    rows : system name -> column name -> value (a number, a string or per-seed numbers).
    columns : column order; missing cells print as ``-``.
    """

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, str):
            return v
        if isinstance(v, (list, tuple, np.ndarray)):
            m, s = mean_std(v)
            return f"{m:.3f} ± {s:.3f}" if len(v) > 1 else f"{m:.3f}"
        return f"{float(v):.3f}"

    table = [["system", *columns]] + [[name, *(cell(r.get(c)) for c in columns)] for name, r in rows.items()]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = [title]
    for i, row in enumerate(table):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(exp_dir: str | Path, name: str, results: dict[str, Any], table: str) -> Path:
    """Write ``exp_dir/name.json`` and ``exp_dir/name.txt`` (the table) atomically."""
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(exp_dir / f"{name}.json", results)
    atomic_write_text(exp_dir / f"{name}.txt", table + "\n")
    return exp_dir / f"{name}.json"
