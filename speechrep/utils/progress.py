"""Progress bars that suit both a terminal and a log file.

On a terminal, :func:`progress_bar` is a tqdm bar. Anywhere else (a recipe's log, a Slurm
output file, a pipe), a redrawn bar is thousands of ``\\r``-joined copies of itself; there
it is :class:`LineProgress`, which writes one plain line every :data:`LOG_INTERVAL`
seconds and one at the end; a task done within the first interval writes nothing (a
command that fails fast still prints its one error line alone).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TextIO

__all__ = ["LOG_INTERVAL", "LineProgress", "progress_bar"]

#: seconds between two progress lines in a non-terminal stream
LOG_INTERVAL = 5.0


class LineProgress:
    """A progress report as plain lines: at most one per ``interval`` seconds, and a last
    one when any was written (nothing for a task shorter than ``interval``).

    The part of tqdm's interface the library uses: iteration, :meth:`update`,
    :meth:`set_postfix`, :meth:`close` and the context manager.

    Parameters
    ----------
    iterable : items to pass through (None: count with :meth:`update`).
    total : number of items expected (default: ``len(iterable)`` when it has one).
    desc, unit : the line's label and unit.
    initial : count to start from (a resumed run).
    file : stream to write to.
    interval : least seconds between two lines.
    """

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        file: TextIO,
        interval: float = LOG_INTERVAL,
    ):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit.strip()
        self.n, self.initial, self.file, self.interval = initial, initial, file, interval
        self.postfix = ""
        self.start = self._last = time.monotonic()
        self._closed = False
        self._written = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress without an iterable: count with update()")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __len__(self) -> int:
        return int(self.total or 0)

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Count ``n`` more items; write a line when ``interval`` has passed since the last."""
        self.n += n
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._write(now)

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        """Values shown after the count (the latest loss, ...); ``refresh`` is tqdm's, ignored."""
        values = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        """Write the last line (once), if the task lasted long enough to report."""
        if not self._closed:
            self._closed = True
            if self._written:
                self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._last, self._written = now, True
        elapsed = now - self.start
        count = f"{self.n:g}/{self.total:g}" if self.total else f"{self.n:g}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        line = f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}, {elapsed:.0f} s, {rate:.3g} {self.unit}/s"
        if self.postfix:
            line += f", {self.postfix}"
        self.file.write(line + "\n")
        self.file.flush()


def _isatty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    leave: bool = True,
    enabled: bool = True,
    file: TextIO | None = None,
) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere, a silent bar when not ``enabled``.

    Parameters
    ----------
    iterable, total, desc, unit, initial : as tqdm's.
    leave : keep the terminal bar when done (tqdm's; a log keeps its last line anyway).
    enabled : False: report nothing.
    file : stream (default ``sys.stderr``, looked up at the call).
    """
    from tqdm import tqdm

    stream = sys.stderr if file is None else file
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if _isatty(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=stream, dynamic_ncols=True)
    return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial, file=stream)
