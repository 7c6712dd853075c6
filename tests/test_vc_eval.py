import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from speechrep.cli import main
from speechrep.errors import CheckpointError, ConfigError, DataError
from speechrep.eval.vc import (
    _by_target,
    dtw_path,
    edit_distance,
    equal_error_rate,
    evaluate_vc,
    f0_metrics,
    format_by_target,
    format_vc_table,
    mel_cepstral_distortion,
    mel_cepstrum,
    phone_error_rate,
    speaker_scores,
)
from speechrep.train.checkpoint import save_checkpoint
from speechrep.models.pitch import estimate_f0
from speechrep.models.registry import build_model

pytestmark = pytest.mark.usefixtures("torch_one_thread")


SR = 16000


def test_eer_hand_examples():
    # sorted: .9T .8T .7N .4T .3N .2N -> accepting the top 3 gives FAR = FRR = 1/3
    assert equal_error_rate([0.9, 0.8, 0.4, 0.7, 0.3, 0.2], [1, 1, 1, 0, 0, 0]) == pytest.approx(1 / 3)
    assert equal_error_rate([0.9, 0.8, 0.1], [1, 1, 0]) == 0.0
    assert equal_error_rate([0.1, 0.9], [1, 0]) == 1.0
    # all scores tied: the only thresholds accept nothing or everything -> crossing at 0.5
    assert equal_error_rate([0.5, 0.5, 0.5, 0.5], [1, 0, 1, 0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [1, 1])


def test_edit_distance_and_per():
    assert edit_distance("a b c".split(), "a c d".split()) == 2
    assert edit_distance([], ["x"]) == 1 and edit_distance(["x"], []) == 1
    assert phone_error_rate([["a", "b"], ["c", "d", "e", "f"]], [["a", "b"], ["c", "e"]]) == pytest.approx(2 / 6)


def test_mel_cepstrum_and_mcd_hand_example():
    flat = np.full((5, 80), -3.0)
    assert np.allclose(mel_cepstrum(flat), 0.0)  # a flat spectrum has only c0, which is left out
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 24))
    b = a.copy()
    b[:, 3] += 0.5
    ident = np.stack([np.arange(6), np.arange(6)], 1)
    # one coefficient off by 0.5 everywhere: (10 / ln 10) * sqrt(2 * 0.25)
    assert mel_cepstral_distortion(a, b, path=ident) == pytest.approx(10 / math.log(10) * math.sqrt(0.5))
    # DTW undoes a time stretch: every frame repeated twice aligns with zero distortion
    stretched = np.repeat(a, 2, axis=0)
    path = dtw_path(a, stretched)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [5, 11]
    assert mel_cepstral_distortion(a, stretched) == pytest.approx(0.0)


def test_f0_metrics_hand_example():
    ident = np.stack([np.arange(3), np.arange(3)], 1)
    m = f0_metrics(np.array([100.0, 200.0, np.nan]), np.array([200.0, 400.0, 300.0]), ident)
    # one octave apart on the two frames voiced in both
    assert m["voiced_pairs"] == 2 and m["logf0_rmse_cents"] == pytest.approx(1200.0)
    assert m["logf0_corr"] == pytest.approx(1.0)
    assert f0_metrics(np.array([np.nan]), np.array([100.0]), np.zeros((1, 2), int))["voiced_pairs"] == 0


def _sine(f0, seconds=0.5, amp=0.3):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_estimate_f0_on_sines():
    a = estimate_f0(_sine(200.0))
    b = estimate_f0(_sine(200.0 * 2 ** (100 / 1200)))
    assert len(a) == 1 + int(0.5 * SR) // 160
    assert np.nanmedian(a) == pytest.approx(200.0, rel=0.02)
    ident = np.stack([np.arange(len(a)), np.arange(len(a))], 1)
    assert f0_metrics(a, b, ident)["logf0_rmse_cents"] == pytest.approx(100.0, abs=20.0)


def test_speaker_scores_cosine():
    s = speaker_scores(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 3.0]]))
    np.testing.assert_allclose(s, [[1.0, 0.0], [1 / math.sqrt(2), 1 / math.sqrt(2)]])


def _save(path, name, args, prepare=None):
    torch.manual_seed(0)
    import speechrep.models.phone_ctc  # noqa: F401
    import speechrep.models.speaker  # noqa: F401

    module, _ = build_model(name, args)
    if prepare is not None:
        prepare(module)
    save_checkpoint(path / "checkpoints", 1, module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
                    state={"model": {"name": name, "args": args, "input_dim": None}})
    return path


@pytest.fixture(scope="module")
def vc_env(tmp_path_factory):
    d = tmp_path_factory.mktemp("vceval")
    wavs = {}
    for name, f0 in [("a1", 120), ("a2", 130), ("b1", 220), ("b2", 240)]:
        wavs[name] = d / f"{name}.wav"
        sf.write(wavs[name], _sine(f0, 0.4), SR)
    conv = d / "conv"
    conv.mkdir()
    sf.write(conv / "p1.wav", _sine(230, 0.4), SR)
    sf.write(conv / "p2.wav", _sine(125, 0.4), SR)
    pairs = d / "pairs.tsv"
    pairs.write_text(
        "id\tsource\ttarget\tsource_speaker\ttarget_speaker\tphones\n"
        f"p1\t{wavs['a1']}\t{wavs['b1']}\tA\tB\tpau x y pau\n"
        f"p2\t{wavs['b2']}\t{wavs['a2']}\tB\tA\ty x\n"
    )
    spk = _save(d / "spk", "speaker_tdnn", {"num_speakers": 2, "channels": 8, "embedding_dim": 4, "min_frames": 5})
    ph = _save(d / "ph", "phone_ctc", {"phones": ["x", "y"], "channels": 8, "layers": 1})
    return {"pairs": pairs, "conv": conv, "spk": spk, "ph": ph, "dir": d, "wavs": wavs}


def test_evaluate_vc_end_to_end(vc_env):
    r = evaluate_vc(vc_env["pairs"], vc_env["conv"], speaker_model=vc_env["spk"], phone_model=vc_env["ph"],
                    resynth_dir=vc_env["conv"], progress=False)
    s = r["summary"]
    assert s["pairs"] == 2 and s["speakers"] == 2
    assert 0 <= s["target_accuracy"] <= 1 and 0 <= s["eer"] <= 1 and s["per"] >= 0
    assert s["resynth_per"] == s["per"]  # same files given as resynthesis
    assert s["mcd_db"] > 0 and s["mcd_against"] == "source/reference"
    # p1 converted 230 Hz vs source 120 Hz: about 1130 cents apart
    assert r["pairs"][0]["logf0_rmse_cents"] == pytest.approx(1200 * math.log2(230 / 120), abs=60)
    table = format_vc_table({"adain": r})
    assert "adain" in table and "tgt acc" in table
    # per target speaker: B is p1's target, A is p2's; each rate and miss follows that pair's prediction
    by = r["by_target"]
    assert sorted(by) == ["A", "B"] and all(by[t]["pairs"] == 1 for t in by)
    for row in r["pairs"]:
        t = by[row["target_speaker"]]
        hit = row["predicted_speaker"] == row["target_speaker"]
        assert t["target_accuracy"] == float(hit)
        assert t["source_rate"] == float(row["predicted_speaker"] == row["source_speaker"])
        assert t["taken_for"] == ({} if hit else {row["predicted_speaker"]: 1})
    assert s["target_accuracy"] == pytest.approx(sum(t["target_accuracy"] for t in by.values()) / 2)


def test_evaluate_vc_seen_and_unseen_targets_apart(vc_env):
    kw = dict(speaker_model=vc_env["spk"], phone_model=vc_env["ph"], resynth_dir=vc_env["conv"], f0=False,
              progress=False)
    whole = evaluate_vc(vc_env["pairs"], vc_env["conv"], **kw)
    assert "by_group" not in whole
    r = evaluate_vc(vc_env["pairs"], vc_env["conv"], seen_speakers=["A"], **kw)
    assert r["summary"] == whole["summary"] and r["settings"]["seen_speakers"] == ["A"]
    groups = r["by_group"]
    assert sorted(groups) == ["seen", "unseen"]
    # p2 targets A (seen), p1 targets B (unseen): each group holds its one pair's numbers
    for group, row in (("seen", r["pairs"][1]), ("unseen", r["pairs"][0])):
        g = groups[group]
        assert g["pairs"] == 1
        assert g["target_accuracy"] == float(row["predicted_speaker"] == row["target_speaker"])
        assert g["source_rate"] == float(row["predicted_speaker"] == row["source_speaker"])
        assert g["target_similarity"] == pytest.approx(row["target_similarity"])
        assert g["per"] == pytest.approx(row["per"]) and g["resynth_per"] == pytest.approx(row["resynth_per"])
    table = format_vc_table({"sys": r})
    assert [line.split(",")[0].split()[0] for line in table.splitlines()[2:]] == ["sys", "sys", "sys"]
    assert "sys, seen targets" in table and "sys, unseen targets" in table
    # every target seen: no unseen group
    assert sorted(evaluate_vc(vc_env["pairs"], vc_env["conv"], seen_speakers={"A", "B"}, **kw)["by_group"]) == ["seen"]


def _always(output):
    """A phone_ctc model whose every frame is ``output`` (0: blank, i: phones[i - 1])."""
    def prepare(module):
        with torch.no_grad():
            module.out.weight.zero_()
            module.out.bias.fill_(-10.0)
            module.out.bias[output] = 10.0
    return prepare


def test_evaluate_vc_averages_several_phone_models(vc_env, tmp_path):
    args = {"phones": ["x", "y"], "channels": 8, "layers": 1}
    says_x = _save(tmp_path / "x", "phone_ctc", args, _always(1))  # hears "x" in every utterance
    says_nothing = _save(tmp_path / "blank", "phone_ctc", args, _always(0))
    # the converted files are the sources themselves: converted, copy-synthesis and source PER agree
    same = tmp_path / "same"
    same.mkdir()
    for pair, src in (("p1", "a1"), ("p2", "b2")):
        (same / f"{pair}.wav").write_bytes(vc_env["wavs"][src].read_bytes())
    kw = dict(speaker_model=vc_env["spk"], resynth_dir=same, f0=False, progress=False)
    one = [evaluate_vc(vc_env["pairs"], same, phone_model=m, **kw) for m in (says_x, says_nothing)]
    # references "x y" and "y x": hearing "x" misses one phone of two, hearing nothing both
    assert [o["summary"]["per"] for o in one] == [0.5, 1.0]
    assert "per_by_model" not in one[0]["summary"]
    both = evaluate_vc(vc_env["pairs"], same, phone_model=[says_x, says_nothing], seen_speakers=["A"], **kw)
    for s in (both["summary"], both["by_group"]["seen"]):
        for key in ("per", "resynth_per", "source_per"):
            assert s[key] == pytest.approx(0.75) and s[f"{key}_by_model"] == [0.5, 1.0]
    assert [row["per"] for row in both["pairs"]] == [0.75, 0.75]
    assert both["settings"]["phone_model"] == [str(says_x), str(says_nothing)]
    assert "src PER" in format_vc_table({"sys": both})
    # the CLI repeats --phone-model
    out = tmp_path / "vc.json"
    with pytest.raises(SystemExit) as e:
        main(["eval", "vc", "--pairs", str(vc_env["pairs"]), "--converted", str(same), "--speaker-model",
              str(vc_env["spk"]), "--phone-model", str(says_x), "--phone-model", str(says_nothing),
              "--no-f0", "--out", str(out)])
    assert e.value.code == 0
    assert json.loads(out.read_text())["summary"]["per_by_model"] == [0.5, 1.0]


def test_evaluate_vc_source_per_reads_the_sources(vc_env, tmp_path, monkeypatch):
    """``source_per`` is the recogniser on the source recordings, not on the converted files:
    a recogniser that hears "x" in long inputs only tells the 0.4 s sources from 0.2 s conversions."""
    from speechrep.models.phone_ctc import PhoneRecognizer

    monkeypatch.setattr(PhoneRecognizer, "recognize",
                        lambda self, mel, lengths=None: [["x"] if mel.shape[1] > 30 else []])
    short = tmp_path / "short"
    short.mkdir()
    for pair in ("p1", "p2"):
        sf.write(short / f"{pair}.wav", _sine(200.0, 0.2), SR)
    r = evaluate_vc(vc_env["pairs"], short, speaker_model=vc_env["spk"], phone_model=vc_env["ph"], f0=False,
                    progress=False)
    assert r["summary"]["per"] == 1.0 and r["summary"]["source_per"] == 0.5
    assert [row["source_per"] for row in r["pairs"]] == [0.5, 0.5]


def test_by_target_counts_misses_per_target_speaker():
    from speechrep.data.pairs import ConversionPair

    pairs = [ConversionPair(id=f"p{k}", source="s.wav", targets=["t.wav"], source_speaker=src, target_speaker=tgt)
             for k, (src, tgt) in enumerate([("a", "k"), ("b", "k"), ("a", "k"), ("a", "b"), ("k", "b")])]
    by = _by_target(pairs, ["k", "c", "c", "b", "k"])
    assert by == {
        "b": {"pairs": 2, "target_accuracy": 0.5, "source_rate": 0.5, "taken_for": {"k": 1}},
        "k": {"pairs": 3, "target_accuracy": pytest.approx(1 / 3), "source_rate": 0.0, "taken_for": {"c": 2}},
    }
    text = format_by_target({"by_target": by})
    assert text.splitlines()[0].split()[:2] == ["target", "pairs"]
    assert "c:2" in text and "33.3%" in text


def test_evaluate_vc_enrol_targets(vc_env, tmp_path):
    """Extra targets (a larger conversion pool) change the centroids unless enrolment keeps to the first N."""
    extra = tmp_path / "odd.wav"
    sf.write(extra, _sine(400, 0.4), SR)
    w = vc_env["wavs"]
    more = tmp_path / "more.tsv"
    more.write_text(
        "id\tsource\ttarget\tsource_speaker\ttarget_speaker\n"
        f"p1\t{w['a1']}\t{w['b1']},{extra}\tA\tB\n"
        f"p2\t{w['b2']}\t{w['a2']},{extra}\tB\tA\n"
    )
    kw = dict(speaker_model=vc_env["spk"], f0=False, progress=False)
    base = evaluate_vc(vc_env["pairs"], vc_env["conv"], **kw)
    first = evaluate_vc(more, vc_env["conv"], enrol_targets=1, **kw)
    every = evaluate_vc(more, vc_env["conv"], **kw)
    sims = [[r["target_similarity"] for r in x["pairs"]] for x in (base, first, every)]
    # (the untrained scorer embeds every sine alike: the centroids differ in the 5th decimal)
    assert sims[1] == sims[0] and sims[2] != sims[0]
    assert first["settings"]["enrol_targets"] == 1 and every["settings"]["enrol_targets"] is None
    with pytest.raises(ConfigError, match="enrol_targets"):
        evaluate_vc(more, vc_env["conv"], enrol_targets=0, **kw)


def test_evaluate_vc_bad_inputs(vc_env, tmp_path):
    with pytest.raises(DataError, match="converted"):
        evaluate_vc(vc_env["pairs"], tmp_path, speaker_model=vc_env["spk"], f0=False, progress=False)
    nospk = tmp_path / "nospk.tsv"
    nospk.write_text(f"id\tsource\ttarget\np1\t{vc_env['wavs']['a1']}\t{vc_env['wavs']['b1']}\n")
    with pytest.raises(DataError, match="source_speaker"):
        evaluate_vc(nospk, vc_env["conv"], speaker_model=vc_env["spk"], progress=False)
    with pytest.raises(CheckpointError, match="not a 'speaker_tdnn'"):
        evaluate_vc(vc_env["pairs"], vc_env["conv"], speaker_model=vc_env["ph"], progress=False)


def test_cli_eval_vc(vc_env, tmp_path, capsys):
    out = tmp_path / "vc.json"
    with pytest.raises(SystemExit) as e:
        main(["eval", "vc", "--pairs", str(vc_env["pairs"]), "--converted", str(vc_env["conv"]),
              "--speaker-model", str(vc_env["spk"]), "--out", str(out), "--no-f0", "--name", "sys1"])
    assert e.value.code == 0
    doc = json.loads(out.read_text())
    assert doc["summary"]["pairs"] == 2 and sorted(doc["by_target"]) == ["A", "B"] and "by_group" not in doc
    printed = capsys.readouterr().out
    assert "sys1" in printed and "misses taken for" in printed
    # --seen-data: the speakers of a data directory (the VC model's training set) are the seen targets
    train = tmp_path / "train"
    train.mkdir()
    (train / "wav.scp").write_text(f"B-1 {vc_env['wavs']['b1']}\n")
    (train / "utt2spk").write_text("B-1 B\n")
    with pytest.raises(SystemExit) as e:
        main(["eval", "vc", "--pairs", str(vc_env["pairs"]), "--converted", str(vc_env["conv"]),
              "--speaker-model", str(vc_env["spk"]), "--out", str(out), "--no-f0", "--name", "sys1",
              "--seen-data", str(train)])
    assert e.value.code == 0
    doc = json.loads(out.read_text())
    assert doc["by_group"]["seen"]["pairs"] == 1 and doc["by_group"]["unseen"]["pairs"] == 1
    assert doc["settings"]["seen_speakers"] == ["B"] and "sys1, unseen targets" in capsys.readouterr().out


