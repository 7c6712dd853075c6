"""Python-docs text, Quick Thought, seq2seq2seq and ROUGE."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechrep.config import load_config
from speechrep.errors import ConfigError, DataError
from speechrep.sidetasks.pydocs import (
    DEFAULT_ROOT,
    Vocabulary,
    parse_html,
    prepare_pydocs,
    read_documents,
    read_source,
    split_sentences,
    tokenize,
)
from speechrep.sidetasks.quickthought import (
    QuickThought,
    QuickThoughtConfig,
    retrieval_accuracy,
    retrieval_pairs,
    run_quickthought,
)
from speechrep.sidetasks.rouge import rouge_l, rouge_n, rouge_scores
from speechrep.sidetasks.seq2seq2seq import Seq2Seq2Seq, Seq2Seq2SeqConfig, code_diversity, run_seq2seq2seq

ROOT = Path(__file__).resolve().parents[1]

PAGE = """<html><body><div class="sphinxsidebar"><p>Navigation text</p></div>
<div class="document"><div class="body" role="main">
<section id="x"><h1>json &#8212; JSON encoder<a class="headerlink" href="#x">¶</a></h1>
<nav class="contents"><p class="topic-title">Contents</p><ul><li><p><a href="#y">Basic</a></p></li></ul></nav>
<p>First   paragraph. It has <code>two</code> sentences.</p>
<div class="admonition note"><p class="admonition-title">Note</p><p>A note, e.g. this one.</p></div>
<section id="y"><h2>Basic usage<a class="headerlink" href="#y">¶</a></h2>
<p>Serialize obj as JSON.</p></section></section>
</div></div><div class="footer"><p>Copyright</p></div></body></html>"""


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_parse_sphinx_page_keeps_only_main_prose():
    sections = parse_html(PAGE)
    assert [s.heading for s in sections] == ["json — JSON encoder", "Basic usage"]
    assert sections[0].paragraphs == ["First paragraph. It has two sentences.", "A note, e.g. this one."]
    assert sections[1].paragraphs == ["Serialize obj as JSON."]


def test_sentences_and_tokens():
    assert split_sentences("One two. Three, e.g. four? Yes! 5 is a number.") == ["One two.", "Three, e.g. four?", "Yes!", "5 is a number."]
    assert tokenize("Call json.dumps(obj)!") == ["call", "json", ".", "dumps", "(", "obj", ")", "!"]


def test_vocabulary_and_length_limit():
    v = Vocabulary.build([["a", "b", "a"], ["a", "c", "b"]], min_count=2)
    assert v.itos[4:] == ["a", "b"] and len(v) == 6
    assert v.encode(["a", "z"]) == [4, Vocabulary.UNK]
    assert v.decode([4, 5, Vocabulary.EOS, 4]) == ["a", "b"]
    with pytest.raises(DataError, match=r"s.txt: max_len: sentence of 3 tokens exceeds the model's limit of 2"):
        v.encode(["a", "b", "a"], max_len=2, source="s.txt")
    assert v.pad([[4], [4, 5, 5]]).tolist() == [[4, 0, 0], [4, 5, 5]]


def test_bad_text_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(DataError, match="empty.txt: file is empty"):
        read_source(empty)
    latin = tmp_path / "latin.html"
    latin.write_bytes("<p>caf\xe9</p>".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.html: not UTF-8 text \(invalid byte at offset 6\)"):
        read_source(latin)
    toc = tmp_path / "toc.html"
    toc.write_text('<div role="main"><h1>Index</h1></div>')
    with pytest.raises(DataError, match="no paragraph"):
        read_source(toc)
    with pytest.raises(DataError, match="document file not found"):
        read_documents(tmp_path / "train.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"doc": "a"}\n')
    with pytest.raises(DataError, match="bad.jsonl: line 1: not a document record"):
        read_documents(tmp_path / "bad.jsonl")


def test_prepare_splits_by_document(tmp_path):
    src = tmp_path / "docs" / "tutorial"
    src.mkdir(parents=True)
    for i in range(5):
        (src / f"p{i}.txt").write_text(f"# Page {i}\n\nAlpha {i}. Beta {i}.\n\nGamma {i}.\n")
    (src / "index.html").write_text('<div role="main"><h1>Contents</h1></div>')  # no prose: skipped
    stats = prepare_pydocs(tmp_path / "out", root=tmp_path / "docs", subdirs=["tutorial"], test_fraction=0.4, seed=1)
    assert stats == {"train": 3, "test": 2, "paragraphs": 10, "skipped": 1}
    train, test = read_documents(tmp_path / "out/train.jsonl"), read_documents(tmp_path / "out/test.jsonl")
    assert not {d.doc for d in train} & {d.doc for d in test}
    assert train[0].sections[0].heading.startswith("Page") and len(train[0].paragraphs()) == 2
    (src / "p9.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DataError, match="p9.txt: not UTF-8"):
        prepare_pydocs(tmp_path / "out2", root=tmp_path / "docs", subdirs=["tutorial"])
    assert not (tmp_path / "out2").exists()
    with pytest.raises(DataError, match="corpus directory not found"):
        prepare_pydocs(tmp_path / "out3", root=tmp_path / "nowhere")


def test_rouge_hand_examples():
    assert rouge_n("the cat sat".split(), "the cat ran".split(), 1) == pytest.approx({"p": 2 / 3, "r": 2 / 3, "f": 2 / 3})
    assert rouge_n("the cat sat".split(), "the cat ran".split(), 2)["f"] == 0.5
    assert rouge_n("a a a".split(), "a b".split(), 1)["p"] == pytest.approx(1 / 3)  # clipped counts
    assert rouge_l("a b c d".split(), "a c d e".split())["f"] == 0.75
    assert rouge_l([], ["a"])["f"] == 0.0
    assert rouge_scores([["x", "y"]], [["x", "y"]]) == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}


def test_rouge_of_matching_summaries_beats_mismatched_ones():
    # the baseline of every summary score: the same summaries paired with the wrong references
    rng = np.random.default_rng(0)
    refs = [list(rng.choice(50, size=8).astype(str)) for _ in range(30)]
    cands = [r[:3] + list(rng.choice(50, size=3).astype(str)) for r in refs]  # half copied
    matched = rouge_scores(cands, refs)
    mismatched = rouge_scores(cands, refs[1:] + refs[:1])
    for k in ("rouge1", "rouge2", "rougeL"):
        assert matched[k] > mismatched[k] + 0.2


def test_retrieval_accuracy_protocol():
    from speechrep.sidetasks.quickthought import SentenceCorpus

    doc = np.repeat(np.arange(4), 10)
    corpus = SentenceCorpus(np.zeros((40, 1), int), np.ones(40, int), doc, [""] * 40, 0)
    anchors, cands = retrieval_pairs(corpus, candidates=5, max_anchors=100, seed=0)
    assert len(anchors) == 36  # every sentence but the last of each document
    assert (cands[:, 0] == anchors + 1).all()
    assert all(len(set(row)) == 5 and a not in row[1:] for a, row in zip(anchors, cands))
    assert retrieval_accuracy(lambda i, j: (j == i + 1).astype(float), anchors, cands) == 1.0
    assert retrieval_accuracy(lambda i, j: np.zeros(len(i)), anchors, cands) == 0.0  # ties count as wrong


@pytest.mark.parametrize("kind", ["bow", "gru"])
def test_quickthought_loss_falls_on_a_tiny_batch(kind):
    torch.manual_seed(0)
    model = QuickThought(30, kind=kind, emb_dim=8, dim=8)
    ids = torch.randint(4, 30, (6, 5))
    lengths = torch.tensor([5, 4, 3, 5, 2, 1])
    batch = {"ids": ids, "lengths": lengths, "prev_ids": ids.roll(1, 0), "prev_lengths": lengths.roll(1, 0),
             "next_ids": ids.roll(-1, 0), "next_lengths": lengths.roll(-1, 0)}
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(20):
        out = model(batch)
        first = first if first is not None else out["loss"].item()
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["loss"].item() < 0.5 * first


def test_seq2seq2seq_estimators_train_every_part():
    torch.manual_seed(0)
    code_words = torch.tensor([4, 5, 6, Vocabulary.EOS])
    ids = torch.randint(4, 20, (3, 7))
    ids[0, 5:] = Vocabulary.PAD
    batch = {"ids": ids, "human": torch.tensor([[0, 1, 3], [2, 3, 3], [1, 1, 1]])}
    for estimator in ("gumbel_st", "reinforce"):
        model = Seq2Seq2Seq(20, code_words, code_len=3, hidden=8, estimator=estimator, adversarial_weight=1.0)
        out = model(batch)
        out["loss"].backward()
        assert {"recon/nll", "disc/loss", "disc/acc"} <= set(out)
        for part in ("encoder", "code_out", "decoder", "disc_out"):
            grad = sum(p.grad.abs().sum() for p in getattr(model, part).parameters() if p.grad is not None)
            assert grad > 0, (estimator, part)
    model.eval()
    code, logp, entropy, own = model.generate(ids)
    assert code.shape == (3, 3, 4) and logp is None and (code.sum(-1) == 1).all()
    assert 0.0 <= float(entropy.detach()) <= math.log(4) + 1e-6
    assert 0.0 <= float(own.detach()) <= float(entropy.detach()) + 1e-6  # a mixture is at least as uncertain as its parts
    assert (code[:, 0, -1] == 0).all()  # min_code_len=1: the first word is never <eos>


def test_diversity_bonus_rewards_varied_codes():
    torch.manual_seed(0)
    code_words = torch.tensor([4, 5, 6, Vocabulary.EOS])
    ids = torch.randint(4, 20, (16, 7))
    model = Seq2Seq2Seq(20, code_words, code_len=2, hidden=8, adversarial_weight=0.0, diversity_weight=1.0)
    with torch.no_grad():  # every paragraph gets the same confident first word
        model.code_out.weight.zero_()
        model.code_out.bias.copy_(torch.tensor([9.0, 0.0, 0.0, 0.0]))
    _, _, entropy, _ = model.generate(ids)
    assert float(entropy.detach()) < 0.1
    entropy.neg().backward()
    assert model.code_out.weight.grad.abs().sum() > 0  # the bonus reaches the code generator
    with pytest.raises(ConfigError, match="min_code_len"):
        Seq2Seq2Seq(20, code_words, code_len=2, min_code_len=3)


def test_adversarial_warmup_trains_the_discriminator_first():
    torch.manual_seed(0)
    code_words = torch.tensor([4, 5, 6, Vocabulary.EOS])
    batch = {"ids": torch.randint(4, 20, (8, 7)), "human": torch.randint(0, 4, (8, 2))}
    model = Seq2Seq2Seq(20, code_words, code_len=2, hidden=8, adversarial_weight=1.0, word_dropout=0.0, adversarial_warmup=10)
    model.decoder.requires_grad_(False)  # leave the adversarial term as the generator's only teacher...
    model.reconstruction_nll = lambda code, ids: code.sum((1, 2)) * 0.0  # ...by cutting the reconstruction path

    def grads() -> tuple[float, float]:
        torch.manual_seed(1)  # the same Gumbel noise and temperature in every call
        model.tau = 1.0
        model.zero_grad()
        model(batch)["loss"].backward()
        return (float(sum(p.grad.abs().sum() for p in model.code_out.parameters())),
                float(sum(p.grad.abs().sum() for p in model.disc_out.parameters())))

    gen, disc = grads()  # step 0, inside the warm-up
    assert model.generator_adversarial_scale() == 0.0 and gen == 0.0 and disc > 0.0
    model.on_step_end(14)  # halfway through the ramp
    assert model.generator_adversarial_scale() == 0.5
    half, _ = grads()
    model.on_step_end(30)
    full, _ = grads()
    assert model.generator_adversarial_scale() == 1.0 and 0.0 < half and half == pytest.approx(full / 2, rel=1e-5)
    with pytest.raises(ConfigError, match="adversarial_warmup"):
        Seq2Seq2Seq(20, code_words, code_len=2, adversarial_warmup=-1)


def test_generator_loss_leaves_the_discriminator_alone():
    torch.manual_seed(0)
    code_words = torch.tensor([4, 5, 6, Vocabulary.EOS])
    model = Seq2Seq2Seq(20, code_words, code_len=2, hidden=8)
    code = F.one_hot(torch.tensor([[0, 3], [1, 2]]), 4).float().requires_grad_(True)
    frozen = model.discriminate(code, frozen=True)
    assert torch.allclose(frozen, model.discriminate(code))
    F.softplus(-frozen).sum().backward()  # -log D(code): the generator's non-saturating loss
    assert code.grad.abs().sum() > 0
    assert all(p.grad is None for p in [*model.disc_rnn.parameters(), *model.disc_out.parameters()])


def test_sharpness_penalty_prefers_confident_words():
    torch.manual_seed(0)
    code_words = torch.tensor([4, 5, 6, Vocabulary.EOS])
    ids = torch.randint(4, 20, (6, 7))
    model = Seq2Seq2Seq(20, code_words, code_len=2, hidden=8, adversarial_weight=0.0)
    with torch.no_grad():
        model.code_out.weight.zero_()
        model.code_out.bias.zero_()  # every paragraph: uniform over the words
    _, _, batch_h, own_h = model.generate(ids)
    # a flat word distribution is diverse over the batch without telling paragraphs apart
    assert float(own_h.detach()) == pytest.approx(float(batch_h.detach()), rel=1e-5)
    own_h.backward()
    assert model.code_out.bias.grad.abs().sum() < 1e-6  # at the uniform maximum...
    model.zero_grad()
    with torch.no_grad():
        model.code_out.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
    model.generate(ids)[3].backward()
    assert model.code_out.bias.grad[0] < 0  # ...elsewhere descending it sharpens the favourite word


def test_code_diversity_detects_collapse():
    same = code_diversity([["a", "b"]] * 10)
    assert same == {"distinct_codes": 1.0, "distinct_fraction": 0.1, "code_entropy": 1.0}
    assert code_diversity([[]] * 4)["code_entropy"] == 0.0
    varied = code_diversity([["a", "b"], ["c", "d"], ["a", "c"], ["e"]])
    assert varied["distinct_codes"] == 4.0 and varied["code_entropy"] > 2.0


@pytest.fixture(scope="module")
def pydocs_data(tmp_path_factory):
    if not (DEFAULT_ROOT / "library").is_dir():
        pytest.skip("python3.11-doc is not installed (setup script)")
    out = tmp_path_factory.mktemp("pydocs")
    prepare_pydocs(out, max_docs=40, subdirs=["tutorial", "library"], test_fraction=0.2)
    return out


def test_quickthought_tiny_recipe(pydocs_data, tmp_path):
    cfg = load_config(QuickThoughtConfig, ROOT / "egs/pydocs/quickthought/conf/tiny.yaml",
                      overrides=[f"exp_dir={tmp_path}", f"data_dir={pydocs_data}"])
    r = run_quickthought(cfg, progress=False)
    s = {k: {m: v[0] for m, v in row.items()} for k, row in r["systems"].items()}
    assert r["chance"] == 0.1
    qt, collapsed = s["quickthought_bow"], s["quickthought_bow_no_negatives"]
    assert qt["retrieval"] > r["chance"] + 0.05  # beats random candidates
    assert qt["retrieval"] > s["untrained_bow"]["retrieval"]
    # without negatives: the embeddings collapse and retrieval falls back towards chance
    assert collapsed["eff_rank"] < 0.3 * qt["eff_rank"]
    assert collapsed["retrieval"] < qt["retrieval"] - 0.05
    assert s["tfidf"]["retrieval"] > 0.2 and "mean_word_vectors" in s
    assert json.loads((tmp_path / "results.json").read_text())["test_sentences"] == r["test_sentences"]


def test_seq2seq2seq_tiny_recipe(pydocs_data, tmp_path):
    cfg = load_config(Seq2Seq2SeqConfig, ROOT / "egs/pydocs/seq2seq2seq/conf/tiny.yaml",
                      overrides=[f"exp_dir={tmp_path}", f"data_dir={pydocs_data}"])
    r = run_seq2seq2seq(cfg, progress=False)
    s = {k: {m: v[0] for m, v in row.items()} for k, row in r["systems"].items()}
    assert set(s) == {"lead_4", "s2s2s_gumbel_st_disc", "s2s2s_gumbel_st_no_disc"}
    for name in ("s2s2s_gumbel_st_disc", "s2s2s_gumbel_st_no_disc"):
        assert s[name]["final_train_nll"] < s[name]["first_train_nll"]  # reconstruction is learnt
        # no collapse: the test paragraphs get different codes, made of several words
        assert s[name]["distinct_codes"] > 1 and s[name]["code_entropy"] > 1.0 and s[name]["collapsed"] == 0.0
        # the decoder reads the code: it reconstructs better than from the empty code
        assert s[name]["recon_nll"] < s[name]["recon_nll_empty_code"]
    assert s["lead_4"]["rouge1_first"] > 0.3  # lead-4 is a prefix of the first sentence
    # the trained discriminator tells human headings from codes better than chance and better
    # than the untrained one of the run without it (ROUGE of the tiny models' codes is ~0:
    # 40 steps learn no headings, so it is compared with nothing here)
    disc, no_disc = s["s2s2s_gumbel_st_disc"]["disc_acc"], s["s2s2s_gumbel_st_no_disc"]["disc_acc"]
    assert disc > max(0.55, no_disc + 0.05)
    assert any(line.startswith("  code:") for line in r["examples"])
    assert "example codes" in (tmp_path / "results.txt").read_text()


def test_cli_prepare_pydocs(tmp_path, capsys):
    from speechrep.cli import main

    src = tmp_path / "docs"
    src.mkdir()
    for i in range(3):
        (src / f"p{i}.txt").write_text(f"# Page {i}\n\nText {i}.\n")
    with pytest.raises(SystemExit) as e:
        main(["side", "prepare-pydocs", str(tmp_path / "out"), "--root", str(src), "--subdirs", "", "--test-fraction", "0.34"])
    assert e.value.code == 0
    assert "2 train / 1 test pages, 3 paragraphs" in capsys.readouterr().out
    (src / "p3.txt").write_text("")
    with pytest.raises(SystemExit) as e:
        main(["side", "prepare-pydocs", str(tmp_path / "out2"), "--root", str(src), "--subdirs", ""])
    assert e.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {src / 'p3.txt'}: file is empty"


def _pydocs_recipe(task: str, exp: Path):
    import os
    import subprocess
    import sys

    if not Path(os.environ.get("PYDOCS_ROOT", "/usr/share/doc/python3.11/html")).is_dir():
        pytest.skip("python3.11-doc is not installed (setup script)")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run(["bash", str(ROOT / f"egs/pydocs/{task}/run.sh"), "--quick", "--exp", str(exp)],
                          capture_output=True, text=True, env=env)


def test_quickthought_recipe_through_run_sh(tmp_path):
    r = _pydocs_recipe("quickthought", tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    systems = json.loads((tmp_path / "quickthought/results.json").read_text())["systems"]
    retrieval = {name: s["retrieval"][0] for name, s in systems.items()}
    # in-batch negatives teach next-sentence retrieval; without them the code collapses
    assert retrieval["quickthought_bow"] > retrieval["untrained_bow"] and retrieval["quickthought_bow"] > retrieval[
        "quickthought_bow_no_negatives"]
    assert systems["quickthought_bow_no_negatives"]["eff_rank"][0] < 0.5 * systems["quickthought_bow"]["eff_rank"][0]
    again = _pydocs_recipe("quickthought", tmp_path)
    assert again.returncode == 0 and again.stdout.count("done before; skipped") == 2, again.stdout


def test_seq2seq2seq_recipe_through_run_sh(tmp_path):
    r = _pydocs_recipe("seq2seq2seq", tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    systems = json.loads((tmp_path / "seq2seq2seq/results.json").read_text())["systems"]
    for name in ("s2s2s_gumbel_st_disc", "s2s2s_gumbel_st_no_disc"):
        s = systems[name]
        assert s["final_train_nll"][0] < s["first_train_nll"][0]  # the autoencoder trained
        assert s["collapsed"][0] == 0.0
    # the discriminator run's critic tells codes from headings better than the untrained one
    assert systems["s2s2s_gumbel_st_disc"]["disc_acc"][0] > systems["s2s2s_gumbel_st_no_disc"]["disc_acc"][0]
