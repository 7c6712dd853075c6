"""Run logs (rank 0 only): ``log/train.log``, ``train_history.jsonl``, TensorBoard
scalars under ``tensorboard/`` and a tqdm progress bar with loss and throughput.

``train_history.jsonl`` has one JSON object per line, ``{"step": N, "split": "train" |
"valid", "loss": ..., <metric>: ...}``, so recipes and reports can plot a run without
TensorBoard.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from speechrep.utils.io import atomic_write_text

__all__ = ["RunLogger", "read_history"]

log = logging.getLogger("speechrep.train")


class _TqdmHandler(logging.StreamHandler):
    # Messages printed through tqdm.write keep the progress bar intact.
    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record))


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``train_history.jsonl`` (a torn last line of a killed run is skipped)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class RunLogger:
    """Everything a run writes besides checkpoints.

    Parameters
    ----------
    exp_dir : experiment directory.
    enabled : false on ranks other than 0 (then every method is a no-op).
    start_step : first step of this run; history past it (from a killed run being resumed)
        is dropped so the curve is continuous.
    max_steps : length of the progress bar.
    tensorboard, progress : switch TensorBoard / the progress bar off.
    unit : what throughput counts (``"samples"`` of audio or feature ``"frames"``).
    """

    def __init__(self, exp_dir: Path, *, enabled: bool, start_step: int, max_steps: int, tensorboard: bool = True,
                 progress: bool = True, unit: str = "samples"):
        self.enabled, self.unit = enabled, unit
        self._handler: logging.Handler | None = None
        self._stream: logging.Handler | None = None
        self._tb = None
        self._bar = None
        if not enabled:
            return
        (exp_dir / "log").mkdir(parents=True, exist_ok=True)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
        self._handler = logging.FileHandler(exp_dir / "log" / "train.log", encoding="utf-8")
        self._handler.setFormatter(fmt)
        self._stream = _TqdmHandler()
        self._stream.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(self._handler)
        log.addHandler(self._stream)
        log.setLevel(logging.INFO)
        log.propagate = False
        self.history_path = exp_dir / "train_history.jsonl"
        if self.history_path.exists():
            kept = [r for r in read_history(self.history_path) if r.get("step", 0) <= start_step]
            atomic_write_text(self.history_path, "".join(json.dumps(r) + "\n" for r in kept))
        self._history = open(self.history_path, "a", encoding="utf-8")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events a killed run wrote past the resumed checkpoint
            self._tb = SummaryWriter(str(exp_dir / "tensorboard"), purge_step=start_step + 1 if start_step else None)
        if progress:
            from speechrep.utils.progress import progress_bar

            self._bar = progress_bar(total=max_steps, initial=start_step, unit="step", leave=False)

    def scalars(self, step: int, split: str, values: dict[str, float]) -> None:
        """Record ``values`` of ``split`` at ``step`` in the history and TensorBoard."""
        if not self.enabled:
            return
        self._history.write(json.dumps({"step": step, "split": split, **values}) + "\n")
        self._history.flush()
        if self._tb is not None:
            for k, v in values.items():
                self._tb.add_scalar(f"{split}/{k}", v, step)
        shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
        log.info("step %d %s: %s", step, split, shown)

    def advance(self, steps: int, *, loss: float | None = None, rate: float | None = None) -> None:
        """Move the progress bar; show the latest loss and throughput."""
        if self._bar is None:
            return
        if loss is not None:
            shown = {"loss": f"{loss:.4g}"}
            if rate:
                shown[f"{self.unit}/s"] = f"{rate:.4g}"
            self._bar.set_postfix(shown, refresh=False)
        self._bar.update(steps)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        self._history.close()
        for h in (self._handler, self._stream):
            log.removeHandler(h)
            h.close()
