"""The side recipes (digits, ListOps, Python docs) number their stages as recipes/lib.sh
does for every recipe: 0 corpus, 3 train (here train and evaluate in one command)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# run.sh -> the stages it runs, in order, with the word that says what kind each is
SIDE_RECIPES = {
    "egs/digits/dim/run.sh": [("3", "Train and evaluate")],
    "egs/listops/tree/run.sh": [("3", "Generate, train and evaluate")],
    "egs/pydocs/quickthought/run.sh": [("0", "Corpus"), ("3", "Train and evaluate quickthought")],
    "egs/pydocs/seq2seq2seq/run.sh": [("0", "Corpus"), ("3", "Train and evaluate seq2seq2seq")],
}


def _dry_run(recipe: str, exp: Path, *opts: str) -> list[tuple[str, str]]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run(["bash", str(ROOT / recipe), "--quick", "--dry-run", "--exp", str(exp), *opts],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return re.findall(r"^Stage (\d+): ([^:]+):", r.stdout, flags=re.M)


@pytest.mark.parametrize("recipe", sorted(SIDE_RECIPES))
def test_side_recipes_use_the_shared_stage_numbers(recipe, tmp_path):
    assert _dry_run(recipe, tmp_path) == SIDE_RECIPES[recipe]
    # --stage selects by those numbers: from 3 on, only the training; after it, nothing
    assert _dry_run(recipe, tmp_path, "--stage", "3") == [s for s in SIDE_RECIPES[recipe] if s[0] == "3"]
    assert _dry_run(recipe, tmp_path, "--stage", "4") == []
    header = (ROOT / recipe).read_text(encoding="utf-8").split("\ncd ", 1)[0]
    assert "Stage 1" not in header and "Stage 2" not in header
