"""Headless Chromium for the report tests (Debian's chromium, installed by tools/setup.sh --dev)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--allow-file-access-from-files",
    "--autoplay-policy=no-user-gesture-required",
    "--virtual-time-budget=8000",
]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(page: Path, extra: list[str]) -> str:
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return r.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM after its scripts ran."""
    return _run(page, ["--dump-dom"])


def selfcheck(page: Path) -> tuple[str, str]:
    """(status, message) of the report's ``#selfcheck`` element."""
    dom = dump_dom(page)
    m = re.search(r'<p id="selfcheck" data-status="(\w+)">(.*?)</p>', dom, re.S)
    assert m, "no #selfcheck element in the rendered page"
    return m.group(1), m.group(2)


def screenshot(page: Path, out: Path, *, size: str = "1280,1800") -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(page, [f"--screenshot={out.resolve()}", f"--window-size={size}", "--hide-scrollbars"])
    return out
