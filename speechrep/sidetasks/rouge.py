"""ROUGE-N and ROUGE-L (Lin, 2004) between token sequences, F-measure with beta = 1.

Tokens are compared as given (the caller lower-cases/tokenizes both sides the same way).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import numpy as np

__all__ = ["rouge_n", "rouge_l", "rouge_scores"]


def _f(overlap: float, cand: int, ref: int) -> dict[str, float]:
    p = overlap / cand if cand else 0.0
    r = overlap / ref if ref else 0.0
    return {"p": p, "r": r, "f": 2 * p * r / (p + r) if p + r else 0.0}


def rouge_n(candidate: Sequence[str], reference: Sequence[str], n: int) -> dict[str, float]:
    """Clipped n-gram overlap: precision, recall and F of ``candidate`` against ``reference``.

    Example
    -------
    >>> rouge_n("the cat sat".split(), "the cat ran".split(), 2)["f"]
    0.5
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    c = Counter(tuple(candidate[i : i + n]) for i in range(len(candidate) - n + 1))
    r = Counter(tuple(reference[i : i + n]) for i in range(len(reference) - n + 1))
    overlap = sum((c & r).values())
    return _f(overlap, sum(c.values()), sum(r.values()))


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def rouge_l(candidate: Sequence[str], reference: Sequence[str]) -> dict[str, float]:
    """Longest-common-subsequence precision, recall and F.

    Example
    -------
    >>> round(rouge_l("a b c d".split(), "a c d e".split())["f"], 3)
    0.75
    """
    return _f(_lcs(candidate, reference), len(candidate), len(reference))


def rouge_scores(candidates: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F over pairs: ``{"rouge1", "rouge2", "rougeL"}``."""
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    if not candidates:
        raise ValueError("no pairs to score")
    return {
        "rouge1": float(np.mean([rouge_n(c, r, 1)["f"] for c, r in zip(candidates, references)])),
        "rouge2": float(np.mean([rouge_n(c, r, 2)["f"] for c, r in zip(candidates, references)])),
        "rougeL": float(np.mean([rouge_l(c, r)["f"] for c, r in zip(candidates, references)])),
    }
