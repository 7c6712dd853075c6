"""Where results live: READMEs say how to use a thing, configs say what they are, and every
measured figure is a dated row of a table in docs/results/ (DESIGN.md, "docs/results/").

The tree checks run on the repository as it is; the checkers themselves are tested on small
bad examples, so that a check that could never fail would show.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"

#: A README is a usage page; a longer one has turned into a lab notebook again.
MAX_README_LINES = 150

DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")
#: A score in a config comment: "81.7 %", "332 bit/s", "12.9 dB", "39 cents", "PNMI 0.54",
#: "ABX-across 8.0", "0.384 +- 0.006".
SCORE = re.compile(
    r"\d(\.\d+)?\s?%|\d\s?(bit/s|dB\b|cents\b)|\+-\s?\d"
    r"|\b(PNMI|ABX[-a-z ]*|MCD|EER|PER|accuracy|retrieval|log-F0 RMSE)\s*[:=]?\s*\d",
)

#: Directories that hold runs, corpora or installed packages, never the project's pages.
SKIP_DIRS = {"venv", "node_modules", "__pycache__", "exp", "db", "dist", "build"}


def _repo_files(pattern: str) -> list[Path]:
    """Files of the working tree matching a glob, tracked or new (ignored files left out)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", pattern],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout
        paths = [ROOT / line for line in out.splitlines() if line]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. a tarball)
        paths = list(ROOT.glob(pattern) if "/" in pattern else ROOT.rglob(pattern))
    return sorted(p for p in paths if p.is_file() and not _skipped(p.relative_to(ROOT).parts))


def _skipped(parts: tuple[str, ...]) -> bool:
    """Inside a run, corpus or package directory, or a hidden one (.pytest_cache, .git)."""
    return any(part in SKIP_DIRS or part.startswith(".") for part in parts[:-1])


def readme_problem(text: str) -> str | None:
    """Why a README breaks the rule, or None."""
    n = len(text.splitlines())
    return f"{n} lines (at most {MAX_README_LINES})" if n > MAX_README_LINES else None


def config_header_problems(text: str) -> list[str]:
    """Results in a YAML config's comments: table lines anywhere, scores in the header.

    The header is the block of comment lines at the top of the file.
    """
    problems = []
    in_header = True
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue  # blank lines do not end the header
        if not stripped.startswith("#"):
            in_header = False
            continue
        comment = stripped.lstrip("#").strip()
        if comment.startswith("|"):
            problems.append(f"line {number}: a results table in a comment")
        elif in_header and SCORE.search(comment):
            problems.append(f"line {number}: a score in the header ({comment!r})")
    return problems


def undated_rows(text: str) -> list[str]:
    """Body rows of the Markdown tables in ``text`` that carry no YYYY-MM-DD date."""
    lines = text.splitlines()
    bad = []
    for i, line in enumerate(lines):
        if not line.lstrip().startswith("|") or SEPARATOR.match(line.strip()):
            continue
        is_header = i + 1 < len(lines) and SEPARATOR.match(lines[i + 1].strip())
        if not is_header and not DATE.search(line):
            bad.append(f"line {i + 1}: {line[:80]}")
    return bad


def _results_pages() -> list[Path]:
    return sorted(p for p in RESULTS.glob("*.md") if p.name != "README.md")


# --- the tree -------------------------------------------------------------------------


def test_readmes_are_short():
    readmes = _repo_files("*README.md")
    assert ROOT / "README.md" in readmes
    too_long = {str(p.relative_to(ROOT)): readme_problem(p.read_text()) for p in readmes}
    assert {k: v for k, v in too_long.items() if v} == {}


def test_config_headers_hold_no_results():
    configs = _repo_files("conf/*.yaml") + _repo_files("egs/*/*/conf/*.yaml")
    assert configs, "no configs found"
    problems = {str(p.relative_to(ROOT)): config_header_problems(p.read_text()) for p in configs}
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_results_row_is_dated():
    pages = _results_pages()
    assert pages, "docs/results/ has no pages"
    problems = {p.name: undated_rows(p.read_text()) for p in pages}
    assert {k: v for k, v in problems.items() if v} == {}


def test_results_index_lists_every_page():
    index = (RESULTS / "README.md").read_text()
    assert [p.name for p in _results_pages() if f"({p.name})" not in index] == []


# --- the checkers on bad examples ---------------------------------------------------------


def test_readme_check_counts_lines():
    assert readme_problem("line\n" * MAX_README_LINES) is None
    assert readme_problem("line\n" * (MAX_README_LINES + 1)) == "151 lines (at most 150)"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# AdaIN conversion, 6000 steps.\nexp_dir: x\n", []),
        ("# AdaIN conversion.\n# | seed | as target |\n# |---|---|\nexp_dir: x\n", [2, 3]),
        ("# AdaIN, seeds 0 / 1: 81.7 / 86.7 % as target.\nexp_dir: x\n", [1]),
        ("# VQ-VAE: PNMI 0.54, 332 bit/s.\n# Copy synthesis MCD 12.9 dB.\n# ABX-across 8.0 on test\nexp_dir: x\n", [1, 2, 3]),
        ("# Retrieval 0.384 +- 0.006 in 2000 steps.\nexp_dir: x\n", [1]),
        # after the header a percentage may describe an option; a table may not
        ("# header\nexp_dir: x\nmodel:  # drop 10 % of frames\n  a: 1\n# | a | b |\n", [5]),
    ],
)
def test_config_header_check(text, expected):
    found = [int(p.split(":")[0].split()[1]) for p in config_header_problems(text)]
    assert found == expected


def test_undated_rows_finds_rows_without_a_date():
    page = (
        "# page\n\n"
        "| date | run | PER |\n|---|---|---|\n"
        "| 2026-11-26 | `vc_adain` | 29.0 % |\n"
        "| | `vc_vq` | 27.2 % |\n"
    )
    assert undated_rows(page) == ["line 6: | | `vc_vq` | 27.2 % |"]
    assert undated_rows(page.replace("| | `vc_vq`", "| 2026-11-27 | `vc_vq`")) == []


def test_file_listing_without_git_finds_the_same_pages(monkeypatch):
    with_git = _repo_files("*README.md")

    def no_git(*args, **kwargs):
        raise OSError("git: not found")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert _repo_files("*README.md") == with_git
