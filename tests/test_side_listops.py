"""ListOps generator and parser, tree spans and bracket F1, the Gumbel Tree-LSTM recipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrep.errors import DataError
from speechrep.sidetasks.listops import (
    TOKENS,
    GumbelTreeEncoder,
    encode_examples,
    generate_listops,
    parse_expression,
    read_listops,
)
from speechrep.sidetasks.trees import (
    bracket_f1,
    format_tree,
    left_branching_merges,
    mean_bracket_f1,
    random_merges,
    right_branching_merges,
    spans_from_merges,
)

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_parse_expression_value_and_gold_tree():
    ex = parse_expression("[MAX 2 9 [MIN 4 7 ] 0 ]".split())
    assert ex.value == 9
    assert format_tree(ex.tokens, ex.gold) == "( ( ( ( ( [MAX 2 ) 9 ) ( ( ( [MIN 4 ) 7 ) ] ) ) 0 ) ] )"
    assert parse_expression("[MED 1 9 5 2 ]".split()).value == 2  # lower median
    assert parse_expression("[SM 7 8 [MAX 1 2 ] ]".split()).value == 7


@pytest.mark.parametrize(
    "text, message",
    [("[MAX 1 2", "missing ']'"), ("[MAX ]", "no arguments"), ("[MAX 1 2 ] 3", "extra tokens"), ("[FOO 1 ]", "unexpected token"), ("", "empty")],
)
def test_malformed_expressions(text, message):
    with pytest.raises(DataError, match=f"<expression>: expression: .*{message}"):
        parse_expression(text.split())


def test_generator_is_seeded_and_consistent():
    a = generate_listops(50, seed=3, max_depth=3, max_args=4, max_len=30)
    b = generate_listops(50, seed=3, max_depth=3, max_args=4, max_len=30)
    assert [e.tokens for e in a] == [e.tokens for e in b]
    assert all(len(e.tokens) <= 30 and set(e.tokens) <= set(TOKENS) for e in a)
    # every gold tree is a full binary tree: n - 1 constituents
    assert all(len(e.gold) == len(e.tokens) - 1 for e in a)
    assert len({e.value for e in a}) > 3


def test_read_listops_file(tmp_path):
    good = tmp_path / "train.tsv"
    good.write_text("Source\tTarget\n9\t( ( [MAX 2 ) 9 ] )\n3\t[MIN 3 4 ]\n")
    assert [e.value for e in read_listops(good)] == [9, 3]
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("9\t[MIN 3 4 ]\n")
    with pytest.raises(DataError, match="wrong.tsv: line 1: value 9 but the expression evaluates to 3"):
        read_listops(wrong)
    fields = tmp_path / "fields.tsv"
    fields.write_text("[MIN 3 4 ]\n")
    with pytest.raises(DataError, match="line 1: expected 'value<TAB>expression'"):
        read_listops(fields)
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(DataError, match="empty.tsv: file is empty"):
        read_listops(tmp_path / "empty.tsv")
    (tmp_path / "bin.tsv").write_bytes(b"9\t[MAX \xff ]\n")
    with pytest.raises(DataError, match="bin.tsv: not UTF-8"):
        read_listops(tmp_path / "bin.tsv")


def test_spans_and_baseline_trees():
    assert spans_from_merges(4, left_branching_merges(4)) == {(0, 1), (0, 2), (0, 3)}
    assert spans_from_merges(4, right_branching_merges(4)) == {(2, 3), (1, 3), (0, 3)}
    assert spans_from_merges(4, [1, 0, 0]) == {(1, 2), (0, 2), (0, 3)}
    rng = np.random.default_rng(0)
    for n in range(1, 12):
        assert len(spans_from_merges(n, random_merges(n, rng))) == n - 1
    with pytest.raises(ValueError, match="needs 3 merges"):
        spans_from_merges(4, [0])


def test_bracket_f1_hand_example():
    # non-trivial spans: pred {(0,1), (0,2)}, gold {(0,1), (2,3)} over 5 tokens -> P = R = 1/2
    assert bracket_f1({(0, 1), (0, 2), (0, 4)}, {(0, 1), (2, 3), (0, 4)}, 5) == 0.5
    assert bracket_f1({(0, 1)}, {(0, 1)}, 2) is None  # nothing but the whole sentence
    assert mean_bracket_f1([{(0, 1)}, {(1, 2)}], [{(0, 1)}, {(0, 1)}], [3, 3]) == 0.5


def test_encoder_builds_valid_trees_for_ragged_batches():
    torch.manual_seed(0)
    model = GumbelTreeEncoder(len(TOKENS), hidden=8)
    exs = generate_listops(5, seed=0, max_depth=2, max_args=3, max_len=15)
    batch = encode_examples(exs)
    out = model(batch)
    out["loss"].backward()
    assert model.query.grad.abs().sum() > 0  # the merge choices receive a gradient (ST-Gumbel)
    model.eval()
    root, merges = model.encode(batch["ids"], batch["lengths"])
    assert root.shape == (5, 8)
    for e, m in zip(exs, merges.tolist()):
        n = len(e.tokens)
        assert len(spans_from_merges(n, m[: n - 1])) == n - 1  # raises on an invalid merge


def test_tiny_recipe_through_run_sh(tmp_path):
    # the speechrep of this interpreter, also where the checkout has no .venv of its own
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", str(ROOT / "egs/listops/tree/run.sh"), "--quick", "--exp", str(tmp_path)],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Stage 3: Generate, train and evaluate" in r.stdout
    text = (tmp_path / "listops_tree/results.txt").read_text()
    assert "gumbel_tree_lstm" in text and "right_branching" in text and "induced:" in text
    res = json.loads((tmp_path / "listops_tree/results.json").read_text())
    s = res["systems"]
    assert s["gumbel_tree_lstm"]["accuracy"][0] > res["majority"] + 0.15  # above the majority class
    # the metric orders the baselines: gold lists are left-branching folds, so left-branching
    # trees score 1, right-branching 0 and random trees in between (the tiny model's own F1
    # is not asserted: 150 steps do not induce trees reliably better than random ones)
    assert s["left_branching"]["bracket_f1"][0] == 1.0 and s["right_branching"]["bracket_f1"][0] == 0.0
    assert 0.2 < s["random_tree"]["bracket_f1"][0] < 0.6
    assert "bracket_f1" in s["gumbel_tree_lstm"]
    rerun = subprocess.run(["bash", str(ROOT / "egs/listops/tree/run.sh"), "--quick", "--exp", str(tmp_path)],
                           capture_output=True, text=True, env=env)
    assert "done before; skipped" in rerun.stdout
