"""Binary trees over token sequences as sets of spans, and unlabeled bracket F1.

A binary tree over ``n`` tokens is built by ``n - 1`` merges of adjacent nodes; merge
``k`` joins the current nodes ``k`` and ``k + 1``. A tree is identified by its
constituents, the spans ``(start, end)`` (inclusive token indices) of its internal nodes.
Bracket F1 compares the non-trivial spans (at least 2 tokens, not the whole sentence),
as in the latent-tree literature, and averages the sentence-level scores.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "Span",
    "spans_from_merges",
    "left_branching_merges",
    "right_branching_merges",
    "random_merges",
    "bracket_f1",
    "mean_bracket_f1",
    "format_tree",
]

Span = tuple[int, int]


def spans_from_merges(n: int, merges: Sequence[int]) -> set[Span]:
    """Constituents of the tree built by ``merges`` over ``n`` tokens.

    Parameters
    ----------
    n : number of tokens (>= 1).
    merges : ``n - 1`` positions; merge ``k`` joins current nodes ``k`` and ``k + 1``.

    Returns
    -------
    set of ``(start, end)`` spans of the internal nodes (the root is ``(0, n - 1)``).
    """
    if len(merges) != n - 1:
        raise ValueError(f"a binary tree over {n} tokens needs {n - 1} merges, got {len(merges)}")
    nodes: list[Span] = [(i, i) for i in range(n)]
    spans: set[Span] = set()
    for k in merges:
        if not 0 <= k < len(nodes) - 1:
            raise ValueError(f"merge position {k} out of range for {len(nodes)} nodes")
        new = (nodes[k][0], nodes[k + 1][1])
        nodes[k : k + 2] = [new]
        spans.add(new)
    return spans


def left_branching_merges(n: int) -> list[int]:
    """``((a b) c) d``: always merge the first two nodes."""
    return [0] * (n - 1)


def right_branching_merges(n: int) -> list[int]:
    """``a (b (c d))``: always merge the last two nodes."""
    return [n - 2 - t for t in range(n - 1)]


def random_merges(n: int, rng: np.random.Generator) -> list[int]:
    """Uniformly random adjacent merges (the process the latent-tree encoder follows)."""
    return [int(rng.integers(0, n - 1 - t)) for t in range(n - 1)]


def _nontrivial(spans: Iterable[Span], n: int) -> set[Span]:
    return {s for s in spans if s[1] > s[0] and not (s[0] == 0 and s[1] == n - 1)}


def bracket_f1(pred: Iterable[Span], gold: Iterable[Span], n: int) -> float | None:
    """Unlabeled bracket F1 of one sentence over its non-trivial spans.

    Returns None when neither tree has a non-trivial span (sentences of <= 2 tokens).
    """
    p, g = _nontrivial(pred, n), _nontrivial(gold, n)
    if not p and not g:
        return None
    hit = len(p & g)
    if hit == 0:
        return 0.0
    precision, recall = hit / len(p), hit / len(g)
    return 2 * precision * recall / (precision + recall)


def mean_bracket_f1(preds: Sequence[Iterable[Span]], golds: Sequence[Iterable[Span]], lengths: Sequence[int]) -> float:
    """Mean sentence-level :func:`bracket_f1` over the sentences where it is defined."""
    scores = [f for p, g, n in zip(preds, golds, lengths) if (f := bracket_f1(p, g, n)) is not None]
    return float(np.mean(scores)) if scores else float("nan")


def format_tree(tokens: Sequence[str], spans: Iterable[Span]) -> str:
    """Bracketed string of the binary tree with constituents ``spans``: ``( ( a b ) c )``."""
    opens = [0] * len(tokens)
    closes = [0] * len(tokens)
    for s, e in spans:
        if e > s:
            opens[s] += 1
            closes[e] += 1
    return " ".join("( " * opens[i] + t + " )" * closes[i] for i, t in enumerate(tokens))
