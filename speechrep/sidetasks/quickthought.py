"""Quick Thought: sentence embeddings learnt by picking the true neighbour sentence.

Two encoders, ``f`` for the current sentence and ``g`` for candidates; the classifier is
the inner product ``<f(s), g(c)>`` with every candidate of the batch (the true previous
and next sentences of every anchor), trained with the InfoNCE estimator of
:mod:`speechrep.objectives.mi` (a softmax cross-entropy over the candidates). Without the
random candidates (``estimator: positive``) the loss only asks neighbours to agree, which
every constant encoder satisfies: the embeddings collapse.

Evaluation: next-sentence retrieval on test documents, the true next sentence ranked
against ``candidates - 1`` random test sentences, compared with TF-IDF cosine, mean word
vectors trained with the same number of steps, an untrained encoder and chance.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.config import dataclass, save_config
from speechrep.errors import ConfigError, DataError
from speechrep.objectives.collapse import effective_rank
from speechrep.objectives.mi import Estimator, estimator_loss, mi_loss
from speechrep.sidetasks.common import fit, format_table, seed_everything, write_results
from speechrep.sidetasks.pydocs import Document, Vocabulary, read_documents, split_sentences, tokenize

__all__ = [
    "SentenceCorpus",
    "sentence_corpus",
    "SentenceEncoder",
    "QuickThought",
    "WordVectors",
    "retrieval_pairs",
    "retrieval_accuracy",
    "QuickThoughtConfig",
    "run_quickthought",
]


@dataclass
class SentenceCorpus:
    """Sentences of a document set as token ids.

    Attributes
    ----------
    ids : (S, L) int64, padded with ``<pad>``; sentences longer than L are cut to L
        tokens (counted in ``num_truncated``).
    lengths : (S,) int64 tokens per sentence (>= 1).
    doc : (S,) int64 document index of each sentence; sentences of a document are
        consecutive and in reading order.
    texts : the S sentences.
    num_truncated : sentences cut to the length limit.
    """

    ids: np.ndarray
    lengths: np.ndarray
    doc: np.ndarray
    texts: list[str]
    num_truncated: int


def sentence_corpus(docs: Sequence[Document], vocab: Vocabulary, *, max_len: int) -> SentenceCorpus:
    """Split documents into sentences and encode them (see :class:`SentenceCorpus`)."""
    rows, texts, doc_of, truncated = [], [], [], 0
    for d, document in enumerate(docs):
        for para in document.paragraphs():
            for sent in split_sentences(para):
                toks = tokenize(sent)
                if not toks:
                    continue
                truncated += len(toks) > max_len
                rows.append(vocab.encode(toks[:max_len]))
                texts.append(sent)
                doc_of.append(d)
    if not rows:
        raise DataError("no sentences in the documents", field="documents")
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    return SentenceCorpus(vocab.pad(rows, length=max_len), lengths, np.array(doc_of, dtype=np.int64), texts, truncated)


class SentenceEncoder(nn.Module):
    """Token ids -> sentence embedding.

    Parameters
    ----------
    embed : (V, E) word embedding table (may be shared with another encoder).
    kind : ``"gru"`` (final state of a one-layer GRU) or ``"bow"`` (mean of the word
        embeddings, then a linear map).
    dim : D, sentence embedding size.
    """

    def __init__(self, embed: nn.Embedding, *, kind: Literal["gru", "bow"] = "gru", dim: int = 128):
        super().__init__()
        if kind not in ("gru", "bow"):
            raise ConfigError(f"unknown sentence encoder {kind!r} (known: gru, bow)", field="encoder")
        self.kind = kind
        self.embed = embed
        emb_dim = embed.embedding_dim
        self.rnn = nn.GRU(emb_dim, dim, batch_first=True) if kind == "gru" else None
        self.proj = nn.Linear(emb_dim, dim) if kind == "bow" else None

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L) ids and (B,) lengths -> (B, D) embeddings."""
        x = self.embed(ids)  # (B, L, E)
        if self.rnn is not None:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.rnn(packed)  # h: (1, B, D)
            return h[0]
        mask = (ids != Vocabulary.PAD).unsqueeze(-1).float()
        return self.proj((x * mask).sum(1) / mask.sum(1).clamp_min(1.0))


class QuickThought(nn.Module):
    """Encoders f, g and the in-batch classifier.

    Parameters
    ----------
    vocab_size, emb_dim : size of the word embedding table shared by f and g (word
        overlap between neighbours is then usable from the first step).
    kind, dim : as :class:`SentenceEncoder`; f and g have their own GRU/projection.
    estimator : ``"infonce"`` (softmax over the batch's candidates), ``"jsd"``/``"dv"``
        (other bounds on the same scores) or ``"positive"`` (no negatives: collapses).
    scale : scores are ``scale * cos(f(s), g(c))``; bounded scores keep the
        no-negatives run finite, so its collapse shows as a geometry, not an overflow.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        kind: Literal["gru", "bow"] = "gru",
        emb_dim: int = 64,
        dim: int = 128,
        estimator: Estimator = "infonce",
        scale: float = 10.0,
    ):
        super().__init__()
        embed = nn.Embedding(vocab_size, emb_dim, padding_idx=Vocabulary.PAD)
        self.f = SentenceEncoder(embed, kind=kind, dim=dim)
        self.g = SentenceEncoder(embed, kind=kind, dim=dim)
        self.scale = scale
        self.estimate = estimator_loss(estimator)

    def embed(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-norm f and g embeddings, each (B, D)."""
        return F.normalize(self.f(ids, lengths), dim=-1), F.normalize(self.g(ids, lengths), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of B anchors ``batch["ids"]`` (B, L) with neighbours ``prev_ids``/``next_ids``.

        Lengths are ``lengths``, ``prev_lengths``, ``next_lengths`` (B,).
        """
        s = F.normalize(self.f(batch["ids"], batch["lengths"]), dim=-1)  # (B, D)
        ctx_ids = torch.cat([batch["prev_ids"], batch["next_ids"]])  # (2B, L)
        ctx_len = torch.cat([batch["prev_lengths"], batch["next_lengths"]])
        c = F.normalize(self.g(ctx_ids, ctx_len), dim=-1)  # (2B, D)
        B = s.shape[0]
        scores = self.scale * s @ c.T  # (B, 2B): prev of anchor i at column i, next at B + i
        eye = torch.eye(B, dtype=torch.bool, device=s.device)
        positive = torch.cat([eye, eye], dim=1)
        loss = self.estimate(scores, positive)
        with torch.no_grad():
            nxt = scores[:, B:]
            acc = (nxt.diagonal() > nxt.masked_fill(eye, float("-inf")).amax(1)).float().mean()
        return {"loss": loss, "acc/next": acc, "collapse/eff_rank": effective_rank(s.detach())}


class WordVectors(nn.Module):
    """Word embeddings trained on (word, word of the same sentence) pairs with InfoNCE.

    The mean-word-vector baseline: the same optimiser steps as Quick Thought, but only
    word co-occurrence inside a sentence, no sentence order.
    """

    def __init__(self, vocab_size: int, *, dim: int = 128):
        super().__init__()
        self.inp = nn.Embedding(vocab_size, dim)
        self.out = nn.Embedding(vocab_size, dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of B (word, context) pairs ``batch["word"]``, ``batch["context"]`` (B,)."""
        scores = self.inp(batch["word"]) @ self.out(batch["context"]).T  # (B, B)
        same = batch["context"][None, :] == batch["context"][:, None]  # repeated contexts are positives too
        return {"loss": mi_loss(scores, same, estimator="infonce")}

    @torch.no_grad()
    def sentence_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """(S, L) ids -> (S, D) mean of the (unit-norm) vectors of known words."""
        mask = ((ids != Vocabulary.PAD) & (ids != Vocabulary.UNK)).unsqueeze(-1).float()
        v = F.normalize(self.inp(ids), dim=-1)
        return (v * mask).sum(1) / mask.sum(1).clamp_min(1.0)


def retrieval_pairs(corpus: SentenceCorpus, *, candidates: int, max_anchors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Anchors and their candidate sets for next-sentence retrieval.

    Returns
    -------
    anchors : (n,) sentence index of each anchor (one with a next sentence in its document).
    cands : (n, candidates) sentence indices, column 0 the true next sentence, the others
        distinct random sentences of the set that are neither the anchor nor its next.
    """
    if candidates < 2:
        raise ConfigError(f"need at least 2 candidates, got {candidates}", field="candidates")
    S = len(corpus.doc)
    if S < candidates + 2:
        raise DataError(f"{S} test sentences cannot fill {candidates} candidates", field="candidates")
    has_next = np.flatnonzero(corpus.doc[:-1] == corpus.doc[1:])
    rng = np.random.default_rng(seed)
    anchors = np.sort(rng.permutation(has_next)[:max_anchors])
    cands = np.empty((len(anchors), candidates), dtype=np.int64)
    for r, a in enumerate(anchors):
        pool = rng.choice(S, size=candidates + 2, replace=False)
        pool = pool[(pool != a) & (pool != a + 1)][: candidates - 1]
        cands[r] = [a + 1, *pool]
    return anchors, cands


def retrieval_accuracy(score: Callable[[np.ndarray, np.ndarray], np.ndarray], anchors: np.ndarray, cands: np.ndarray) -> float:
    """Fraction of anchors whose true next sentence (column 0) scores strictly highest.

    ``score(anchor_idx (n,), cand_idx (n,)) -> (n,)`` scores one candidate per anchor.
    Ties count as wrong, so a constant scorer gets 0, not 1.
    """
    s = np.stack([score(anchors, cands[:, k]) for k in range(cands.shape[1])], axis=1)  # (n, C)
    return float((s[:, 0] > s[:, 1:].max(1)).mean())


def _dot(a: np.ndarray, b: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    return lambda i, j: (a[i] * b[j]).sum(1)


@dataclass
class QuickThoughtConfig:
    """``egs/pydocs/quickthought/conf/*.yaml``."""

    exp_dir: str = "exp/quickthought"
    data_dir: str = "data/pydocs"  #: train.jsonl / test.jsonl of :func:`prepare_pydocs`
    seeds: list[int] = field(default_factory=lambda: [0])
    encoder: Literal["gru", "bow"] = "gru"
    emb_dim: int = 64
    dim: int = 128
    vocab_size: int = 8000
    min_count: int = 2
    max_len: int = 50  #: model limit in tokens; longer corpus sentences are cut and counted
    scale: float = 10.0
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    candidates: int = 10  #: 1 true next sentence + 9 random test sentences
    eval_anchors: int = 2000
    no_negatives: bool = True  #: also train the collapse demonstration (estimator positive)

    def __post_init__(self) -> None:
        for name in ("emb_dim", "dim", "vocab_size", "max_len", "steps", "batch_size", "eval_anchors"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=name)


def _neighbour_batches(corpus: SentenceCorpus, batch_size: int, gen: torch.Generator) -> Callable[[int], dict[str, torch.Tensor]]:
    """Batches of anchors that have a previous and a next sentence in their document."""
    doc = corpus.doc
    middle = np.flatnonzero((doc[1:-1] == doc[:-2]) & (doc[1:-1] == doc[2:])) + 1
    if len(middle) < batch_size:
        raise DataError(f"only {len(middle)} sentences have both neighbours; need a batch of {batch_size}", field="batch_size")
    ids, lengths, mid = torch.from_numpy(corpus.ids), torch.from_numpy(corpus.lengths), torch.from_numpy(middle)

    def next_batch(step: int) -> dict[str, torch.Tensor]:
        a = mid[torch.randperm(len(mid), generator=gen)[:batch_size]]
        return {
            "ids": ids[a], "lengths": lengths[a],
            "prev_ids": ids[a - 1], "prev_lengths": lengths[a - 1],
            "next_ids": ids[a + 1], "next_lengths": lengths[a + 1],
        }

    return next_batch


def _word_pair_batches(corpus: SentenceCorpus, batch_size: int, gen: torch.Generator) -> Callable[[int], dict[str, torch.Tensor]]:
    """Batches of (word, other word of the same sentence) pairs."""
    ids, lengths = torch.from_numpy(corpus.ids), torch.from_numpy(corpus.lengths)
    multi = torch.from_numpy(np.flatnonzero(corpus.lengths >= 2))

    def next_batch(step: int) -> dict[str, torch.Tensor]:
        s = multi[torch.randint(0, len(multi), (batch_size,), generator=gen)]
        n = lengths[s]
        i = (torch.rand(batch_size, generator=gen) * n).long()
        j = (i + 1 + (torch.rand(batch_size, generator=gen) * (n - 1)).long()) % n  # j != i
        return {"word": ids[s, i], "context": ids[s, j]}

    return next_batch


@torch.no_grad()
def _embed_all(model: QuickThought, corpus: SentenceCorpus, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    fs, gs = [], []
    for k in range(0, len(corpus.ids), chunk):
        f, g = model.embed(torch.from_numpy(corpus.ids[k : k + chunk]), torch.from_numpy(corpus.lengths[k : k + chunk]))
        fs.append(f.numpy())
        gs.append(g.numpy())
    return np.concatenate(fs), np.concatenate(gs)


def run_quickthought(cfg: QuickThoughtConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train Quick Thought (and the no-negatives run, the word-vector baseline) per seed,
    evaluate next-sentence retrieval on the test documents, write the results table.

    Writes ``exp_dir/results.json`` and ``exp_dir/results.txt``.

    Returns
    -------
    ``{"systems": {name: {"retrieval": [per seed], "eff_rank": [...]}}, "chance": float,
    "table": str, ...}``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = Path(cfg.data_dir)
    train_docs, test_docs = read_documents(data / "train.jsonl"), read_documents(data / "test.jsonl")
    save_config(cfg, Path(cfg.exp_dir) / "config.yaml")
    vocab = Vocabulary.build(
        (tokenize(s) for d in train_docs for p in d.paragraphs() for s in split_sentences(p)),
        max_size=cfg.vocab_size, min_count=cfg.min_count,
    )
    train = sentence_corpus(train_docs, vocab, max_len=cfg.max_len)
    test = sentence_corpus(test_docs, vocab, max_len=cfg.max_len)
    results: dict[str, dict[str, list[float]]] = {}

    def add(name: str, **scores: float) -> None:
        for k, v in scores.items():
            results.setdefault(name, {}).setdefault(k, []).append(v)

    tfidf = TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False).fit(train.texts)
    t_test = tfidf.transform(test.texts)  # rows are L2-normalised: dot = cosine
    runs: list[tuple[str, str]] = [(f"quickthought_{cfg.encoder}", "infonce")]
    if cfg.no_negatives:
        runs.append((f"quickthought_{cfg.encoder}_no_negatives", "positive"))
    for seed in cfg.seeds:
        anchors, cands = retrieval_pairs(test, candidates=cfg.candidates, max_anchors=cfg.eval_anchors, seed=seed)
        add("tfidf", retrieval=retrieval_accuracy(lambda i, j: np.asarray(t_test[i].multiply(t_test[j]).sum(1)).ravel(), anchors, cands))
        for name, estimator in runs:
            gen = seed_everything(seed)
            model = QuickThought(len(vocab), kind=cfg.encoder, emb_dim=cfg.emb_dim, dim=cfg.dim, estimator=estimator, scale=cfg.scale)
            if estimator == "infonce":
                f, g = _embed_all(model, test)
                add(f"untrained_{cfg.encoder}", retrieval=retrieval_accuracy(_dot(f, g), anchors, cands),
                    eff_rank=float(effective_rank(torch.from_numpy(f))))
            hist = fit(model, _neighbour_batches(train, cfg.batch_size, gen), steps=cfg.steps, lr=cfg.lr,
                       warmup_steps=min(100, cfg.steps // 10), desc=f"{name} seed {seed}", progress=progress)
            f, g = _embed_all(model, test)
            add(name, retrieval=retrieval_accuracy(_dot(f, g), anchors, cands),
                eff_rank=float(effective_rank(torch.from_numpy(f))), final_loss=hist[-1]["loss"])
        gen = seed_everything(seed)
        wv = WordVectors(len(vocab), dim=cfg.dim)
        fit(wv, _word_pair_batches(train, cfg.batch_size, gen), steps=cfg.steps, lr=cfg.lr,
            warmup_steps=min(100, cfg.steps // 10), desc=f"word vectors seed {seed}", progress=progress)
        m = wv.sentence_vectors(torch.from_numpy(test.ids)).numpy()
        add("mean_word_vectors", retrieval=retrieval_accuracy(_dot(m, m), anchors, cands),
            eff_rank=float(effective_rank(torch.from_numpy(m))))
    chance = 1.0 / cfg.candidates
    title = (f"pydocs next-sentence retrieval: 1 true + {cfg.candidates - 1} random test sentences (chance {chance:.3f}); "
             f"{len(train.texts)} train / {len(test.texts)} test sentences "
             f"({train.num_truncated + test.num_truncated} cut to {cfg.max_len} tokens), {len(cfg.seeds)} seed(s)")
    table = format_table(title, results, ["retrieval", "eff_rank", "final_loss"])
    stats = {"train_sentences": len(train.texts), "test_sentences": len(test.texts), "vocab": len(vocab),
             "truncated": train.num_truncated + test.num_truncated}
    write_results(cfg.exp_dir, "results", {"systems": results, "chance": chance, **stats}, table)
    return {"systems": results, "chance": chance, "table": table, **stats}
