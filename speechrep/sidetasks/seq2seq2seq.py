"""seq2seq2seq: an autoencoder whose code is a short sequence of words.

    paragraph --GRU encoder--> state --GRU code generator--> code words w_1..w_K (discrete)
    code words --GRU reader--> state --GRU decoder--> paragraph again (reconstruction)
    discriminator: human short texts (section headings) vs code sequences

Each code word is a one-hot choice over a code vocabulary (the most frequent words and
``<eos>``; words after the first ``<eos>`` are masked out). The choice is trained through
straight-through Gumbel-softmax (:func:`speechrep.estimators.gumbel_softmax`, ``hard``)
or REINFORCE (:class:`speechrep.estimators.Reinforce`, the per-paragraph cost being the
reconstruction loss plus the adversarial term). The discriminator learns to tell headings
from (detached) codes; the code generator minimises ``-log D(code)`` through a copy of
the discriminator whose parameters are detached, so one loss and one optimiser train both
players. This non-saturating generator loss keeps pushing the codes toward heading-like
text when the discriminator wins; the reversed gradient of the discriminator's own loss
(:func:`speechrep.objectives.adversarial.grad_reverse`) vanishes exactly then.

Several things keep the code from collapsing to one constant (often empty) sequence,
which is what the decoder's own language model and the discriminator's taste for
frequent heading words otherwise favour: the first ``min_code_len`` words may not be
``<eos>``; a diversity bonus maximises the entropy of each code position's word
distribution averaged over the batch (a constant code has entropy 0), and a sharpness
penalty on each paragraph's own word entropy makes that diversity show in the chosen
words rather than in flat distributions (bonus minus penalty estimates the mutual
information between paragraph and code word); the generator receives the adversarial
gradient only after ``adversarial_warmup`` steps of reconstruction (ramped in over as many
steps again), so the decoder has learnt to read the code before the discriminator pulls
the code toward heading words. Word dropout in the decoder makes the paragraph impossible
to reconstruct from its own history alone.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.config import dataclass, save_config
from speechrep.errors import ConfigError, DataError
from speechrep.estimators import Reinforce, TemperatureSchedule, gumbel_softmax
from speechrep.objectives.adversarial import frozen_call
from speechrep.sidetasks.common import fit, format_table, seed_everything, write_results
from speechrep.sidetasks.pydocs import Document, Vocabulary, read_documents, split_sentences, tokenize
from speechrep.sidetasks.rouge import rouge_scores

__all__ = ["ParagraphSet", "paragraph_set", "Seq2Seq2Seq", "Seq2Seq2SeqConfig", "code_diversity", "run_seq2seq2seq"]


@dataclass
class ParagraphSet:
    """First paragraphs of titled sections with their heading and first sentence.

    Attributes
    ----------
    ids : (P, L) int64 paragraph tokens followed by ``<eos>`` and padding; paragraphs
        longer than ``L - 1`` tokens are cut (counted in ``num_truncated``).
    paragraphs, headings, first_sentences : token lists (the first two cut like ``ids``).
    num_truncated : paragraphs cut to the length limit.
    """

    ids: np.ndarray
    paragraphs: list[list[str]]
    headings: list[list[str]]
    first_sentences: list[list[str]]
    num_truncated: int


def paragraph_set(docs: Sequence[Document], vocab: Vocabulary, *, max_len: int, min_tokens: int = 5) -> ParagraphSet:
    """The first paragraph (of at least ``min_tokens`` tokens) of every section with a heading."""
    paras, heads, firsts, truncated = [], [], [], 0
    for d in docs:
        for s in d.sections:
            head = tokenize(s.heading)
            para = next((p for p in s.paragraphs if len(tokenize(p)) >= min_tokens), None)
            if not head or para is None:
                continue
            toks = tokenize(para)
            truncated += len(toks) > max_len - 1
            paras.append(toks[: max_len - 1])
            heads.append(head)
            firsts.append(tokenize(split_sentences(para)[0]))
    if not paras:
        raise DataError("no section with a heading and a paragraph", field="documents")
    ids = vocab.pad([vocab.encode(p) + [Vocabulary.EOS] for p in paras], length=max_len)
    return ParagraphSet(ids, paras, heads, firsts, truncated)


class Seq2Seq2Seq(nn.Module):
    """Paragraph -> K code words -> paragraph, with a heading discriminator.

    Parameters
    ----------
    vocab_size : V, word vocabulary of the paragraphs.
    code_words : (C,) int64 word ids of the code vocabulary; its last entry must be
        ``<eos>``.
    code_len : K, maximum code words.
    hidden : GRU state size (also the word embedding size).
    estimator : ``"gumbel_st"`` or ``"reinforce"``.
    adversarial_weight : weight of the discriminator term (0: no discriminator).
    tau : Gumbel temperature schedule.
    word_dropout : fraction of the decoder's input words replaced by ``<unk>`` while
        training, so that it cannot reconstruct from its own history alone and must read
        the code.
    min_code_len : code words before ``<eos>`` may end the code (0 allows empty codes).
    diversity_weight : weight of the batch-entropy bonus of the code words.
    sharpness_weight : weight of the penalty on each paragraph's code-word entropy.
    adversarial_warmup : steps before the code generator receives the adversarial
        gradient (the discriminator trains from the start); the gradient then ramps in
        linearly over as many steps.
    """

    def __init__(
        self,
        vocab_size: int,
        code_words: torch.Tensor,
        *,
        code_len: int = 6,
        hidden: int = 128,
        estimator: Literal["gumbel_st", "reinforce"] = "gumbel_st",
        adversarial_weight: float = 1.0,
        tau: TemperatureSchedule | None = None,
        word_dropout: float = 0.3,
        min_code_len: int = 1,
        diversity_weight: float = 0.0,
        sharpness_weight: float = 0.0,
        adversarial_warmup: int = 0,
    ):
        super().__init__()
        if adversarial_warmup < 0:
            raise ConfigError(f"must be >= 0, got {adversarial_warmup}", field="adversarial_warmup")
        self.sharpness_weight, self.adversarial_warmup = sharpness_weight, adversarial_warmup
        self.step = 0
        if not 0 <= min_code_len <= code_len:
            raise ConfigError(f"must be in 0..code_len={code_len}, got {min_code_len}", field="min_code_len")
        self.min_code_len, self.diversity_weight = min_code_len, diversity_weight
        if not 0.0 <= word_dropout < 1.0:
            raise ConfigError(f"must be in [0, 1), got {word_dropout}", field="word_dropout")
        self.word_dropout = word_dropout
        if estimator not in ("gumbel_st", "reinforce"):
            raise ConfigError(f"unknown estimator {estimator!r} (known: gumbel_st, reinforce)", field="estimator")
        if int(code_words[-1]) != Vocabulary.EOS:
            raise ConfigError("the code vocabulary must end with <eos>", field="code_vocab")
        self.register_buffer("code_words", code_words.long())
        self.code_len, self.estimator, self.adversarial_weight = code_len, estimator, adversarial_weight
        self.embed = nn.Embedding(vocab_size, hidden, padding_idx=Vocabulary.PAD)
        self.encoder = nn.GRU(hidden, hidden, batch_first=True)
        self.generator = nn.GRUCell(hidden, hidden)
        self.code_out = nn.Linear(hidden, len(code_words))
        self.reader = nn.GRU(hidden, hidden, batch_first=True)
        self.decoder = nn.GRU(hidden, hidden, batch_first=True)
        self.word_out = nn.Linear(hidden, vocab_size)
        self.disc_rnn = nn.GRU(hidden, hidden, batch_first=True)
        self.disc_out = nn.Linear(hidden, 1)
        self.reinforce = Reinforce(baseline="moving_average") if estimator == "reinforce" else None
        self.schedule = tau or TemperatureSchedule(kind="exponential", start=1.0, end=0.5, steps=2000)
        self.tau = self.schedule(0)

    def on_step_end(self, step: int) -> None:
        self.tau = self.schedule(step)
        self.step = step + 1

    def generator_adversarial_scale(self) -> float:
        """Share (0..1) of the adversarial gradient the code generator receives at this step."""
        if self.adversarial_warmup == 0:
            return 1.0
        return min(1.0, max(0.0, (self.step - self.adversarial_warmup) / self.adversarial_warmup))

    def _code_embeddings(self, onehot: torch.Tensor) -> torch.Tensor:
        """(B, K, C) one-hot code words -> (B, K, H) embeddings, zero after the first ``<eos>``."""
        eos = onehot[..., -1]
        alive = torch.cumprod(torch.cat([torch.ones_like(eos[:, :1]), 1 - eos[:, :-1]], 1), 1)  # (B, K)
        emb = onehot @ self.embed(self.code_words)  # (B, K, H), differentiable in the one-hot
        return emb * (alive * (1 - eos)).unsqueeze(-1)

    def generate(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Code words of paragraphs ``ids`` (B, L).

        Returns
        -------
        onehot : (B, K, C) one-hot code words (straight-through gradient with Gumbel; no
            gradient with REINFORCE; the argmax outside training).
        log_prob : (B,) log-probability of the sampled code (REINFORCE training only).
        batch_entropy : () mean over positions of the entropy (nats) of the batch-averaged
            word distribution, differentiable (the diversity bonus).
        own_entropy : () mean over paragraphs and positions of the entropy (nats) of each
            paragraph's word distribution, differentiable (the sharpness penalty).
        """
        lengths = (ids != Vocabulary.PAD).sum(1).clamp_min(1)
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)
        h = h[0]
        inp = torch.zeros_like(h)
        words, logps, entropies, own = [], [], [], []
        code_emb = self.embed(self.code_words)  # (C, H)
        for k in range(self.code_len):
            h = self.generator(inp, h)
            logits = self.code_out(h)  # (B, C)
            if k < self.min_code_len:
                logits = logits.masked_fill(torch.arange(logits.shape[-1], device=logits.device) == logits.shape[-1] - 1, float("-inf"))
            probs = logits.softmax(-1)  # (B, C)
            own.append(-(probs * logits.log_softmax(-1).nan_to_num(neginf=0.0)).sum(-1).mean())
            p = probs.mean(0)  # (C,) the batch's word distribution at position k
            entropies.append(-(p * p.clamp_min(1e-12).log()).sum())
            if not self.training:
                y = F.one_hot(logits.argmax(-1), logits.shape[-1]).float()
            elif self.reinforce is not None:
                y, logp = self.reinforce.sample_categorical(logits)
                logps.append(logp)
            else:
                y = gumbel_softmax(logits, tau=self.tau, hard=True)
            words.append(y)
            inp = y @ code_emb
        log_prob = torch.stack(logps, 1).sum(1) if logps else None
        return torch.stack(words, 1), log_prob, torch.stack(entropies).mean(), torch.stack(own).mean()

    def reconstruction_nll(self, onehot: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B,) mean token negative log-likelihood of paragraphs ``ids`` given the codes."""
        _, h = self.reader(self._code_embeddings(onehot))
        bos = torch.full_like(ids[:, :1], Vocabulary.BOS)
        inp = torch.cat([bos, ids[:, :-1]], 1)
        if self.training and self.word_dropout > 0:
            drop = (torch.rand(inp.shape, device=inp.device) < self.word_dropout) & (inp != Vocabulary.PAD)
            inp = inp.masked_fill(drop, Vocabulary.UNK)
        out, _ = self.decoder(self.embed(inp), h)
        logits = self.word_out(out)  # (B, L, V)
        nll = F.cross_entropy(logits.transpose(1, 2), ids, ignore_index=Vocabulary.PAD, reduction="none")  # (B, L)
        mask = (ids != Vocabulary.PAD).float()
        return (nll * mask).sum(1) / mask.sum(1).clamp_min(1)

    def discriminate(self, onehot: torch.Tensor, *, frozen: bool = False) -> torch.Tensor:
        """(B, K, C) code-vocabulary one-hot sequences -> (B,) logits of "written by a person".

        ``frozen``: the discriminator's GRU and output layer get no gradient (the
        generator's loss); the word embeddings, shared with the autoencoder, still do.
        """
        x = self._code_embeddings(onehot)
        if not frozen:
            _, h = self.disc_rnn(x)
            return self.disc_out(h[0]).squeeze(-1)
        _, h = frozen_call(self.disc_rnn, x)
        return frozen_call(self.disc_out, h[0]).squeeze(-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss of paragraphs ``batch["ids"]`` (B, L) and human texts ``batch["human"]`` (B, K) (code-vocabulary indices)."""
        ids = batch["ids"]
        code, log_prob, batch_entropy, own_entropy = self.generate(ids)
        nll = self.reconstruction_nll(code, ids)  # (B,)
        loss = nll.mean() - self.diversity_weight * batch_entropy + self.sharpness_weight * own_entropy
        logs: dict[str, torch.Tensor] = {"recon/nll": nll.mean().detach(), "code/batch_entropy": batch_entropy.detach(),
                                         "code/own_entropy": own_entropy.detach()}
        scale = self.generator_adversarial_scale()
        if self.adversarial_weight > 0:
            real = F.one_hot(batch["human"], len(self.code_words)).float()
            fake_logit = self.discriminate(code.detach())
            real_logit = self.discriminate(real)
            disc = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit)) + F.binary_cross_entropy_with_logits(
                fake_logit, torch.zeros_like(fake_logit)
            )
            loss = loss + self.adversarial_weight * disc
            logs["disc/loss"] = disc.detach()
            logs["disc/acc"] = 0.5 * ((real_logit > 0).float().mean() + (fake_logit < 0).float().mean()).detach()
            if self.reinforce is None:
                adv_cost = F.softplus(-self.discriminate(code, frozen=True))  # -log D(code), straight through
                loss = loss + scale * self.adversarial_weight * adv_cost.mean()
            else:
                adv_cost = F.softplus(-fake_logit.detach())  # -log D(code): high when the code looks machine-made
        else:
            adv_cost = torch.zeros_like(nll)
        if self.reinforce is not None:
            assert log_prob is not None
            loss = loss + self.reinforce.loss(log_prob, nll + scale * self.adversarial_weight * adv_cost)
        return {"loss": loss, **logs}


@dataclass
class Seq2Seq2SeqConfig:
    """``egs/pydocs/seq2seq2seq/conf/*.yaml``."""

    exp_dir: str = "exp/seq2seq2seq"
    data_dir: str = "data/pydocs"
    seeds: list[int] = field(default_factory=lambda: [0])
    vocab_size: int = 6000
    code_vocab: int = 2000  #: most frequent words the code may use (plus <eos>)
    min_count: int = 2
    max_len: int = 40  #: model limit in tokens, <eos> included; longer paragraphs are cut and counted
    code_len: int = 6
    hidden: int = 128
    estimator: Literal["gumbel_st", "reinforce"] = "gumbel_st"
    adversarial_weight: float = 0.5
    tau: TemperatureSchedule = field(default_factory=lambda: TemperatureSchedule(kind="exponential", start=1.0, end=0.5, steps=3000))
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    word_dropout: float = 0.3
    min_code_len: int = 1  #: code words before <eos> is allowed (0: empty codes allowed)
    diversity_weight: float = 0.1  #: batch-entropy bonus of the code words (0: none)
    sharpness_weight: float = 0.0  #: penalty on each paragraph's code-word entropy (0: none)
    adversarial_warmup: int = 0  #: steps before the code generator gets the adversarial gradient
    examples: int = 5
    no_discriminator: bool = True  #: also train the same model without the discriminator

    def __post_init__(self) -> None:
        for name in ("vocab_size", "code_vocab", "max_len", "code_len", "hidden", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=name)
        if self.code_vocab > self.vocab_size:
            raise ConfigError(f"code_vocab {self.code_vocab} exceeds vocab_size {self.vocab_size}", field="code_vocab")


def _human_codes(texts: Sequence[Sequence[str]], vocab: Vocabulary, code_index: dict[int, int], code_len: int) -> np.ndarray:
    """(N, K) code-vocabulary indices of human texts: in-vocabulary words, then ``<eos>``."""
    eos = code_index[Vocabulary.EOS]
    out = np.full((len(texts), code_len), eos, dtype=np.int64)
    for i, t in enumerate(texts):
        words = [code_index[w] for w in vocab.encode(list(t)) if w in code_index and w != Vocabulary.EOS][: code_len - 1]
        out[i, : len(words)] = words
    return out


def code_diversity(codes: Sequence[Sequence[str]]) -> dict[str, float]:
    """How varied a set of code word sequences is.

    Returns
    -------
    ``{"distinct_codes": number of different sequences, "distinct_fraction": that over the
    number of codes, "code_entropy": entropy in bits of the code words' unigram
    distribution (0 when every code uses one word or all are empty)}``.
    """
    from collections import Counter

    counts = np.array(list(Counter(w for c in codes for w in c).values()), dtype=np.float64)
    p = counts / counts.sum() if counts.size else counts
    distinct = len({tuple(c) for c in codes})
    return {"distinct_codes": float(distinct), "distinct_fraction": distinct / max(1, len(codes)),
            "code_entropy": float(-(p * np.log2(p)).sum())}


#: A system whose test codes are less varied than this is reported as collapsed.
COLLAPSE_FRACTION = 0.05


@torch.no_grad()
def _evaluate(model: Seq2Seq2Seq, ps: ParagraphSet, human: np.ndarray, vocab: Vocabulary) -> tuple[dict[str, float], list[list[str]]]:
    model.eval()
    ids = torch.from_numpy(ps.ids)
    code, _, _, _ = model.generate(ids)
    nll = model.reconstruction_nll(code, ids)
    # the same decoder given the empty code: how much the code adds to the reconstruction
    empty = F.one_hot(torch.full(code.shape[:2], len(model.code_words) - 1), len(model.code_words)).float()
    nll_empty = model.reconstruction_nll(empty, ids)
    real = F.one_hot(torch.from_numpy(human), len(model.code_words)).float()
    disc_acc = 0.5 * ((model.discriminate(real) > 0).float().mean() + (model.discriminate(code) < 0).float().mean())
    words = model.code_words[code.argmax(-1)].tolist()  # (P, K) word ids
    texts = [vocab.decode(w) for w in words]
    scores = {"recon_nll": float(nll.mean()), "recon_nll_empty_code": float(nll_empty.mean()), "disc_acc": float(disc_acc)}
    scores.update(code_diversity(texts))
    scores["collapsed"] = float(scores["distinct_fraction"] < COLLAPSE_FRACTION)
    scores.update({f"{k}_heading": v for k, v in rouge_scores(texts, ps.headings).items()})
    scores.update({f"{k}_first": v for k, v in rouge_scores(texts, ps.first_sentences).items()})
    return scores, texts


def run_seq2seq2seq(cfg: Seq2Seq2SeqConfig, *, progress: bool = True) -> dict[str, Any]:
    """Train seq2seq2seq with and without the discriminator; compare ROUGE with lead-N.

    Writes ``exp_dir/results.json`` and ``exp_dir/results.txt`` (table and example codes).

    Returns
    -------
    ``{"systems": {name: {metric: [per seed]}}, "table": str, "examples": [str]}``.
    """
    data = Path(cfg.data_dir)
    train_docs, test_docs = read_documents(data / "train.jsonl"), read_documents(data / "test.jsonl")
    save_config(cfg, Path(cfg.exp_dir) / "config.yaml")
    texts = [tokenize(s.heading) for d in train_docs for s in d.sections] + [tokenize(p) for d in train_docs for p in d.paragraphs()]
    vocab = Vocabulary.build(texts, max_size=cfg.vocab_size, min_count=cfg.min_count)
    train = paragraph_set(train_docs, vocab, max_len=cfg.max_len)
    test = paragraph_set(test_docs, vocab, max_len=cfg.max_len)
    # code vocabulary: the most frequent real words (vocabulary order), then <eos>
    first = len(Vocabulary.SPECIALS)
    code_ids = list(range(first, min(len(vocab), first + cfg.code_vocab))) + [Vocabulary.EOS]
    code_index = {w: i for i, w in enumerate(code_ids)}
    human_train = _human_codes(train.headings, vocab, code_index, cfg.code_len)
    human_test = _human_codes(test.headings, vocab, code_index, cfg.code_len)

    results: dict[str, dict[str, list[float]]] = {}

    def add(name: str, scores: dict[str, float]) -> None:
        for k, v in scores.items():
            results.setdefault(name, {}).setdefault(k, []).append(v)

    lead = [p[: cfg.code_len] for p in test.paragraphs]
    lead_scores = {f"{k}_heading": v for k, v in rouge_scores(lead, test.headings).items()}
    lead_scores.update({f"{k}_first": v for k, v in rouge_scores(lead, test.first_sentences).items()})
    runs = [(f"s2s2s_{cfg.estimator}_disc", cfg.adversarial_weight)]
    if cfg.no_discriminator:
        runs.append((f"s2s2s_{cfg.estimator}_no_disc", 0.0))
    examples: list[str] = []
    for seed in cfg.seeds:
        add(f"lead_{cfg.code_len}", lead_scores)
        for name, weight in runs:
            gen = seed_everything(seed)
            model = Seq2Seq2Seq(len(vocab), torch.tensor(code_ids), code_len=cfg.code_len, hidden=cfg.hidden,
                                estimator=cfg.estimator, adversarial_weight=weight, tau=cfg.tau,
                                word_dropout=cfg.word_dropout, min_code_len=cfg.min_code_len,
                                diversity_weight=cfg.diversity_weight, sharpness_weight=cfg.sharpness_weight,
                                adversarial_warmup=cfg.adversarial_warmup)
            ids, human = torch.from_numpy(train.ids), torch.from_numpy(human_train)

            def next_batch(step: int, ids: torch.Tensor = ids, human: torch.Tensor = human, gen: torch.Generator = gen) -> dict[str, torch.Tensor]:
                a = torch.randint(0, len(ids), (cfg.batch_size,), generator=gen)
                b = torch.randint(0, len(human), (cfg.batch_size,), generator=gen)  # unpaired: the discriminator sees no alignment
                return {"ids": ids[a], "human": human[b]}

            hist = fit(model, next_batch, steps=cfg.steps, lr=cfg.lr, warmup_steps=min(100, cfg.steps // 10),
                       desc=f"{name} seed {seed}", progress=progress)
            scores, codes = _evaluate(model, test, human_test, vocab)
            scores["first_train_nll"], scores["final_train_nll"] = hist[0]["recon/nll"], hist[-1]["recon/nll"]
            add(name, scores)
            if seed == cfg.seeds[0]:
                examples.append(f"[{name}]")
                for i in range(min(cfg.examples, len(codes))):
                    examples += [f"  heading: {' '.join(test.headings[i])}", f"  code:    {' '.join(codes[i]) or '(empty)'}",
                                 f"  lead:    {' '.join(lead[i])}"]
    title = (f"seq2seq2seq on pydocs: {len(train.ids)} train / {len(test.ids)} test paragraphs "
             f"({train.num_truncated + test.num_truncated} cut to {cfg.max_len - 1} tokens), code <= {cfg.code_len} words "
             f"from {len(code_ids) - 1}, {len(cfg.seeds)} seed(s); ROUGE F vs heading / first sentence")
    title += ("\nrecon_nll: test token NLL given the code (empty: given the empty code); first/final_train: "
              f"training NLL, first and last {max(1, cfg.steps // 20)} steps; distinct: different test codes; "
              f"entropy: bits per code word; collapsed: 1 when distinct codes < {COLLAPSE_FRACTION:.0%} of paragraphs")
    cols = ["recon_nll", "recon_nll_empty_code", "first_train_nll", "final_train_nll", "disc_acc", "distinct_codes",
            "code_entropy", "collapsed", "rouge1_heading", "rouge2_heading", "rougeL_heading", "rouge1_first", "rougeL_first"]
    table = format_table(title, results, cols)
    text = table + "\n\nexample codes (test):\n" + "\n".join(examples)
    write_results(cfg.exp_dir, "results", {"systems": results, "examples": examples,
                                           "truncated": train.num_truncated + test.num_truncated}, text)
    return {"systems": results, "table": text, "examples": examples}
