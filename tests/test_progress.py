"""Progress bars: a bounded number of plain lines in a log, tqdm on a terminal."""

import io

import pytest

from speechrep.utils import progress as progress_module
from speechrep.utils.progress import LOG_INTERVAL, LineProgress, progress_bar


class _Clock:
    """A fake ``time.monotonic`` that advances ``step`` seconds at every reading."""

    def __init__(self, step: float):
        self.t, self.step = 1000.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_gets_a_line_every_few_seconds_not_every_update(monkeypatch):
    # 12,000 items read 10 ms apart: 120 s, so about 120 / 5 lines, not 12,000 bars
    monkeypatch.setattr(progress_module.time, "monotonic", _Clock(0.01))
    out = io.StringIO()
    items = list(progress_bar(range(12_000), desc="extract", unit="utt", file=out))
    assert items == list(range(12_000))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 20 <= len(lines) <= 120 / LOG_INTERVAL + 2
    assert lines[0].startswith("extract: ") and " utt" in lines[0]
    assert lines[-1].startswith("extract: 12000/12000 (100%) utt")


def test_update_counting_postfix_and_one_last_line(monkeypatch):
    monkeypatch.setattr(progress_module.time, "monotonic", _Clock(1.0))
    out = io.StringIO()
    with progress_bar(total=40, desc="train", unit="step", initial=10, file=out) as bar:
        bar.set_postfix({"loss": "0.5"}, refresh=False)
        for _ in range(30):
            bar.update(1)
    bar.close()  # closing twice writes nothing more
    lines = out.getvalue().splitlines()
    assert len(lines) == 30 // 5 + 1
    assert lines[-1].startswith("train: 40/40 (100%) step") and lines[-1].endswith("loss=0.5")


def test_a_task_shorter_than_the_interval_writes_nothing(monkeypatch):
    # e.g. a command that fails at once: its one error line stays alone on stderr
    monkeypatch.setattr(progress_module.time, "monotonic", _Clock(0.001))
    out = io.StringIO()
    with progress_bar(total=3, desc="make_fbank", unit="job", file=out) as bar:
        for _ in range(3):
            bar.update(1)
    assert list(progress_bar(range(100), file=out)) == list(range(100))
    assert out.getvalue() == ""


def test_terminal_gets_tqdm_and_disabled_writes_nothing():
    from tqdm import tqdm

    tty = _Tty()
    bar = progress_bar(range(3), desc="x", file=tty)
    assert isinstance(bar, tqdm) and list(bar) == [0, 1, 2]
    quiet = io.StringIO()
    assert list(progress_bar(range(3), enabled=False, file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""
    assert isinstance(progress_bar(range(3), file=io.StringIO()), LineProgress)


def test_line_progress_without_iterable_cannot_be_iterated():
    with pytest.raises(TypeError, match="update"):
        list(LineProgress(file=io.StringIO()))


def test_library_bars_go_through_progress_bar():
    """Every progress bar of the library is progress_bar's, so that a log file gets plain
    lines: a tqdm bar made directly writes thousands of redrawn copies into a recipe's log
    (the judges' enrolment did, before)."""
    import re
    from pathlib import Path

    root = Path(progress_module.__file__).resolve().parents[1]
    direct = [f"{p.relative_to(root)}:{i}" for p in sorted(root.rglob("*.py")) if p != Path(progress_module.__file__)
              for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if re.search(r"\btqdm\(", line)]
    assert not direct, direct
