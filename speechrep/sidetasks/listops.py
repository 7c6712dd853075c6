"""Trees as codes: ListOps-style expressions and a latent-tree (Gumbel Tree-LSTM) encoder.

An expression such as ``[MAX 2 9 [MIN 4 7 ] 0 ]`` evaluates to a digit. It is generated
offline together with its gold binary tree: each list ``[OP a b ... ]`` is the
left-branching fold ``((([OP a) b) ...) ])`` of its items, a sub-list being one item.

The encoder reads the tokens as leaves and merges two adjacent nodes at a time with a
binary Tree-LSTM cell, choosing the pair with a straight-through Gumbel-softmax over the
scores of all candidate parents (:func:`speechrep.estimators.gumbel_softmax`, ``hard``);
the root state classifies the value. Its induced trees are compared with the gold trees
by unlabeled bracket F1, against left-branching, right-branching and random trees.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.config import dataclass, save_config
from speechrep.errors import ConfigError, DataError
from speechrep.estimators import TemperatureSchedule, gumbel_softmax
from speechrep.sidetasks.common import fit, format_table, seed_everything, write_results
from speechrep.sidetasks.trees import (
    Span,
    format_tree,
    left_branching_merges,
    mean_bracket_f1,
    random_merges,
    right_branching_merges,
    spans_from_merges,
)

__all__ = [
    "OPERATORS",
    "TOKENS",
    "ListOpsExample",
    "generate_expression",
    "parse_expression",
    "generate_listops",
    "read_listops",
    "encode_examples",
    "TreeLSTMCell",
    "GumbelTreeEncoder",
    "ListOpsConfig",
    "run_listops",
]

OPERATORS = ("[MAX", "[MIN", "[MED", "[SM")
TOKENS = (*OPERATORS, "]", *(str(d) for d in range(10)))
_TOKEN_ID = {t: i for i, t in enumerate(TOKENS)}


@dataclass
class ListOpsExample:
    """One expression: tokens, value (0..9) and gold constituents (spans)."""

    tokens: list[str]
    value: int
    gold: set[Span]


def _apply(op: str, args: list[int]) -> int:
    if op == "[MAX":
        return max(args)
    if op == "[MIN":
        return min(args)
    if op == "[MED":
        return sorted(args)[(len(args) - 1) // 2]  # lower median: stays a digit
    return sum(args) % 10  # [SM


def generate_expression(rng: np.random.Generator, *, max_depth: int, max_args: int, leaf_prob: float = 0.3) -> list[str]:
    """Tokens of a random expression whose top level is a list (depth >= 1)."""

    def gen(depth: int) -> list[str]:
        if depth > 0 and (depth >= max_depth or rng.random() < leaf_prob):
            return [str(int(rng.integers(0, 10)))]
        out = [OPERATORS[int(rng.integers(0, len(OPERATORS)))]]
        for _ in range(int(rng.integers(2, max_args + 1))):
            out += gen(depth + 1)
        return out + ["]"]

    return gen(0)


def parse_expression(tokens: Sequence[str], *, source: str = "<expression>") -> ListOpsExample:
    """Value and gold tree of an expression; malformed input raises :class:`DataError`."""
    tokens = list(tokens)
    spans: set[Span] = set()

    def item(pos: int) -> tuple[int, int, int]:
        """Parse the item at ``pos``; return (value, start, end)."""
        if pos >= len(tokens):
            raise DataError("expression ends early (missing ']')", path=source, field="expression")
        t = tokens[pos]
        if t.isdigit() and len(t) == 1:
            return int(t), pos, pos
        if t not in OPERATORS:
            raise DataError(f"unexpected token {t!r} at position {pos} (known: {' '.join(TOKENS)})", path=source, field="expression")
        cur, args, p = (pos, pos), [], pos + 1
        while p < len(tokens) and tokens[p] != "]":
            v, s, e = item(p)
            args.append(v)
            cur = (cur[0], e)
            spans.add(cur)
            p = e + 1
        if p >= len(tokens):
            raise DataError("expression ends early (missing ']')", path=source, field="expression")
        if not args:
            raise DataError(f"operator {t} at position {pos} has no arguments", path=source, field="expression")
        spans.add((pos, p))
        return _apply(t, args), pos, p

    if not tokens:
        raise DataError("empty expression", path=source, field="expression")
    value, _, end = item(0)
    if end != len(tokens) - 1:
        raise DataError(f"extra tokens after position {end}", path=source, field="expression")
    return ListOpsExample(tokens, value, spans)


def generate_listops(num: int, *, seed: int, max_depth: int = 3, max_args: int = 4, max_len: int = 60) -> list[ListOpsExample]:
    """``num`` random expressions of at most ``max_len`` tokens (longer draws are redrawn)."""
    if max_depth < 1 or max_args < 2 or max_len < 4:
        raise ConfigError("need max_depth >= 1, max_args >= 2, max_len >= 4", field="listops")
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < num:
        toks = generate_expression(rng, max_depth=max_depth, max_args=max_args)
        if len(toks) <= max_len:
            out.append(parse_expression(toks))
    return out


def read_listops(path: str | Path) -> list[ListOpsExample]:
    """Examples of a TSV file ``value<TAB>expression`` (the ListOps release's layout, where
    the expression may carry its gold brackets as ``(`` ``)`` tokens, which are dropped).

    Raises
    ------
    DataError
        Empty or non-UTF-8 file, a line without two fields, a malformed expression, or a
        value that does not match the expression.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("ListOps file not found", path=path)
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError("file is empty", path=path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (invalid byte at offset {e.start})", path=path) from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("Source\t"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip().isdigit():
            raise DataError(f"line {i}: expected 'value<TAB>expression'", path=path)
        ex = parse_expression([t for t in parts[1].split() if t not in ("(", ")")], source=f"{path}:{i}")
        if ex.value != int(parts[0]):
            raise DataError(f"line {i}: value {parts[0]} but the expression evaluates to {ex.value}", path=path)
        out.append(ex)
    return out


class TreeLSTMCell(nn.Module):
    """Binary Tree-LSTM composition (Tai et al., 2015): children (h, c) pairs -> parent.

    Parameters
    ----------
    hidden : H.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.gates = nn.Linear(2 * hidden, 5 * hidden)

    def forward(self, hl: torch.Tensor, cl: torch.Tensor, hr: torch.Tensor, cr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., H) left/right states -> (..., H) parent h and c."""
        i, fl, fr, o, g = self.gates(torch.cat([hl, hr], -1)).chunk(5, -1)
        c = torch.sigmoid(fl + 1.0) * cl + torch.sigmoid(fr + 1.0) * cr + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GumbelTreeEncoder(nn.Module):
    """Tokens -> root state by ``n - 1`` straight-through Gumbel choices of adjacent merges.

    Parameters
    ----------
    vocab_size : number of token types.
    hidden : H, state size.
    num_classes : output classes of the task head.
    tau : temperature schedule of the Gumbel-softmax (annealed by :meth:`on_step_end`).
    """

    def __init__(self, vocab_size: int, *, hidden: int = 64, num_classes: int = 10, tau: TemperatureSchedule | None = None):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden)
        self.leaf = nn.Linear(hidden, 2 * hidden)
        self.cell = TreeLSTMCell(hidden)
        self.query = nn.Parameter(torch.randn(hidden) / hidden**0.5)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
        self.schedule = tau or TemperatureSchedule()
        self.tau = self.schedule(0)

    def on_step_end(self, step: int) -> None:
        self.tau = self.schedule(step)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Root states and merge choices.

        Parameters
        ----------
        ids : (B, N) token ids, right-padded.
        lengths : (B,) tokens per expression (>= 1).

        Returns
        -------
        root : (B, H) state of the root.
        merges : (B, N - 1) int64 merge position of each step (meaningful for the first
            ``length - 1`` steps of each row).
        """
        h, c = self.leaf(self.embed(ids)).chunk(2, -1)  # (B, N, H) each
        B, N = ids.shape
        merges = []
        for t in range(N - 1):
            ph, pc = self.cell(h[:, :-1], c[:, :-1], h[:, 1:], c[:, 1:])  # (B, n-1, H): parent of pair k
            pairs = ph.shape[1]
            remaining = (lengths - 1 - t).clamp_min(0)  # valid pairs of each row at this step
            valid = torch.arange(pairs, device=ids.device)[None, :] < remaining[:, None]  # (B, n-1)
            logits = (ph @ self.query).masked_fill(~valid, float("-inf"))
            done = remaining == 0
            logits = logits.masked_fill(done[:, None], 0.0)  # finished rows: any finite choice, ignored below
            if self.training:
                select = gumbel_softmax(logits, tau=self.tau, hard=True)
            else:
                select = F.one_hot(logits.argmax(-1), pairs).to(ph.dtype)
            merges.append(select.argmax(-1))
            cum = select.cumsum(-1)
            left, right = (1 - cum).unsqueeze(-1), (cum - select).unsqueeze(-1)
            sel = select.unsqueeze(-1)
            new_h = left * h[:, :-1] + sel * ph + right * h[:, 1:]
            new_c = left * c[:, :-1] + sel * pc + right * c[:, 1:]
            keep = done[:, None, None]  # finished rows keep their nodes (the root is node 0)
            h = torch.where(keep, h[:, :-1], new_h)
            c = torch.where(keep, c[:, :-1], new_c)
        m = torch.stack(merges, 1) if merges else ids.new_zeros((B, 0))
        return h[:, 0], m

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Cross-entropy of the value ``batch["label"]`` (B,) from ``ids``/``lengths``."""
        root, _ = self.encode(batch["ids"], batch["lengths"])
        logits = self.head(root)
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        return {"loss": loss, "acc": acc.detach(), "tau": torch.tensor(self.tau)}


def encode_examples(examples: Sequence[ListOpsExample]) -> dict[str, torch.Tensor]:
    """Batch of ``ids`` (B, N) right-padded token ids, ``lengths`` (B,) and ``label`` (B,)."""
    N = max(len(e.tokens) for e in examples)
    ids = torch.zeros(len(examples), N, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e.tokens)] = torch.tensor([_TOKEN_ID[t] for t in e.tokens])
    return {
        "ids": ids,
        "lengths": torch.tensor([len(e.tokens) for e in examples]),
        "label": torch.tensor([e.value for e in examples]),
    }


@dataclass
class ListOpsConfig:
    """``egs/listops/tree/conf/*.yaml``."""

    exp_dir: str = "exp/listops_tree"
    data: str | None = None  #: TSV ``value<TAB>expression`` for train; None: generate
    num_train: int = 8000
    num_test: int = 1000
    max_depth: int = 3
    max_args: int = 4
    max_len: int = 60
    seeds: list[int] = field(default_factory=lambda: [0])
    hidden: int = 64
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    tau: TemperatureSchedule = field(default_factory=lambda: TemperatureSchedule(kind="exponential", start=1.0, end=0.3, steps=3000))
    examples: int = 3  #: induced trees printed next to the gold ones

    def __post_init__(self) -> None:
        for name in ("num_train", "num_test", "hidden", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=name)


@torch.no_grad()
def _predict(model: GumbelTreeEncoder, examples: Sequence[ListOpsExample], chunk: int = 256) -> tuple[np.ndarray, list[set[Span]]]:
    model.eval()
    preds, trees = [], []
    for k in range(0, len(examples), chunk):
        part = examples[k : k + chunk]
        b = encode_examples(part)
        root, merges = model.encode(b["ids"], b["lengths"])
        preds.append(model.head(root).argmax(-1).numpy())
        for e, m in zip(part, merges.tolist()):
            trees.append(spans_from_merges(len(e.tokens), m[: len(e.tokens) - 1]))
    return np.concatenate(preds), trees


def run_listops(cfg: ListOpsConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train the latent-tree encoder per seed; report task accuracy and bracket F1.

    Writes ``exp_dir/results.json`` and ``exp_dir/results.txt`` (table and example trees).

    Returns
    -------
    ``{"systems": {name: {"accuracy": [...], "bracket_f1": [...]}}, "majority": float,
    "table": str, "examples": [str, ...]}``.
    """
    given = read_listops(cfg.data) if cfg.data is not None else None
    save_config(cfg, Path(cfg.exp_dir) / "config.yaml")
    results: dict[str, dict[str, list[float]]] = {}

    def add(name: str, **scores: float) -> None:
        for k, v in scores.items():
            results.setdefault(name, {}).setdefault(k, []).append(v)

    examples_text: list[str] = []
    for seed in cfg.seeds:
        if given is not None:
            train = given
        else:
            train = generate_listops(cfg.num_train, seed=seed, max_depth=cfg.max_depth, max_args=cfg.max_args, max_len=cfg.max_len)
        # test expressions from a disjoint stream of the generator
        test = generate_listops(cfg.num_test, seed=10_000 + seed, max_depth=cfg.max_depth, max_args=cfg.max_args, max_len=cfg.max_len)
        gold = [e.gold for e in test]
        lengths = [len(e.tokens) for e in test]
        labels = np.array([e.value for e in test])
        majority = int(np.bincount([e.value for e in train], minlength=10).argmax())
        add("majority_class", accuracy=float((labels == majority).mean()))
        rng = np.random.default_rng(seed)
        for name, make in (("left_branching", left_branching_merges), ("right_branching", right_branching_merges),
                           ("random_tree", lambda n: random_merges(n, rng))):
            add(name, bracket_f1=mean_bracket_f1([spans_from_merges(n, make(n)) for n in lengths], gold, lengths))
        gen = seed_everything(seed)
        model = GumbelTreeEncoder(len(TOKENS), hidden=cfg.hidden, tau=cfg.tau)

        def next_batch(step: int, train: list[ListOpsExample] = train, gen: torch.Generator = gen) -> dict[str, torch.Tensor]:
            idx = torch.randint(0, len(train), (cfg.batch_size,), generator=gen).tolist()
            return encode_examples([train[i] for i in idx])

        hist = fit(model, next_batch, steps=cfg.steps, lr=cfg.lr, warmup_steps=min(100, cfg.steps // 10),
                   desc=f"gumbel tree-lstm seed {seed}", progress=progress)
        pred, trees = _predict(model, test)
        add("gumbel_tree_lstm", accuracy=float((pred == labels).mean()), bracket_f1=mean_bracket_f1(trees, gold, lengths),
            final_loss=hist[-1]["loss"])
        if seed == cfg.seeds[0]:
            for e, t in list(zip(test, trees))[: cfg.examples]:
                examples_text += [f"gold:    {format_tree(e.tokens, e.gold)}", f"induced: {format_tree(e.tokens, t)}"]
    maj = float(np.mean(results["majority_class"]["accuracy"]))
    title = (f"ListOps (depth <= {cfg.max_depth}, <= {cfg.max_args} args): test accuracy and unlabeled bracket F1 vs gold, "
             f"{len(cfg.seeds)} seed(s)")
    table = format_table(title, results, ["accuracy", "bracket_f1", "final_loss"])
    text = table + "\n\nexample trees (test):\n" + "\n".join(examples_text)
    write_results(cfg.exp_dir, "results", {"systems": results, "majority": maj, "examples": examples_text}, text)
    return {"systems": results, "majority": maj, "table": text, "examples": examples_text}
