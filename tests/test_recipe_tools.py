"""The commands that replaced the recipes' local/*.py helpers: ``speechrep data make-pairs``,
``eval table``, ``eval collect-vc``, ``eval vc-examples`` and ``eval resynth``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechrep.cli import main
from speechrep.data.pairs import read_pairs

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _cli(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def _data_dir(d: Path, utts: dict[str, str]) -> Path:
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} /w/{u}.wav\n" for u in sorted(utts)))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utts.items())))
    return d


# ----------------------------------------------------------------------------- make-pairs
def test_make_pairs_parallel_references(tmp_path, capsys):
    utts = {f"{s}-{n}": s for s in ("a", "b") for n in ("001", "002", "003")}
    data = _data_dir(tmp_path / "test", utts)
    unseen = _data_dir(tmp_path / "unseen", {"z-001": "z", "z-009": "z"})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 pau\n{u} 1 0.1 0.2 x\n" for u in utts))
    out = tmp_path / "pairs.tsv"
    code, stdout, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,b", "--unseen", "z", "--ctm", ctm,
                             "--targets", "2", out, data, unseen)
    assert code == 0, err
    assert stdout == f"{out}: 4 pairs\n"
    pairs = read_pairs(out)
    # a->b, b->a, a->z, b->z (z reads only sentence 001 among the shared ones)
    assert sorted((p.source_speaker, p.target_speaker) for p in pairs) == [("a", "b"), ("a", "z"), ("b", "a"), ("b", "z")]
    for p in pairs:
        sent = Path(p.source).stem.split("-")[1]
        assert Path(p.reference).stem == f"{p.target_speaker}-{sent}"
        assert all(Path(t).stem.startswith(p.target_speaker + "-") and not t.endswith(f"-{sent}.wav") for t in p.targets)
        assert p.phones == ["pau", "x"]


def test_make_pairs_unused_utterances(tmp_path, capsys):
    """--unused-out: every utterance of the data dirs that no pair uses, and none that a pair uses."""
    utts = {f"{s}-{n:03d}": s for s in ("a", "b") for n in range(1, 7)}
    data = _data_dir(tmp_path / "test", utts)
    unseen = _data_dir(tmp_path / "unseen", {f"z-{n:03d}": "z" for n in range(1, 7)})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 x\n" for u in utts))
    out, unused = tmp_path / "pairs.tsv", tmp_path / "unused"
    code, _, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,b", "--unseen", "z", "--ctm", ctm,
                        "--unused-out", unused, out, data, unseen)
    assert code == 0, err
    used = set()
    for p in read_pairs(out):
        used.update(Path(x).stem for x in [p.source, p.reference, *p.targets])
    left = dict(line.split() for line in (unused / "utt2spk").read_text().splitlines())
    everything = {**utts, **{f"z-{n:03d}": "z" for n in range(1, 7)}}
    assert set(left) == set(everything) - used and left and all(left[u] == everything[u] for u in left)
    assert "z" in set(left.values())  # the unseen speaker's spare utterances are there too
    assert sorted((unused / "wav.scp").read_text().split()[::2]) == sorted(left)
    assert (unused / "spk2utt").is_file()
    # pairs that use every utterance: nothing written (and an earlier output removed)
    code, stdout, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,b", "--per-pair", "6", "--targets", "5",
                             "--ctm", ctm, "--unused-out", unused, out, data)
    assert code == 0, err
    assert "not written" in stdout and not unused.exists()


def test_make_pairs_more_targets_keep_the_sentences(tmp_path, capsys):
    utts = {f"{s}-{n:03d}": s for s in ("a", "b", "c") for n in range(1, 9)}
    data = _data_dir(tmp_path / "test", utts)
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 x\n" for u in utts))

    def make(k):
        out = tmp_path / f"pairs{k}.tsv"
        return _cli(capsys, "data", "make-pairs", "--per-pair", "2", "--ctm", ctm, "--targets", k, out, data), out

    two, five = (read_pairs(make(k)[1]) for k in (2, 5))
    assert [p.id for p in five] == [p.id for p in two] and len(two) == 12
    for p2, p5 in zip(two, five):
        sent = p5.id.rsplit("__", 1)[1]
        assert p5.source == p2.source and p5.targets[:2] == p2.targets and len(p5.targets) == 5
        assert len(set(p5.targets)) == 5 and not any(t.endswith(f"-{sent}.wav") for t in p5.targets)
    (code, _, err), out = make(0)
    assert code == 1 and err.startswith("error: ") and "--targets" in err and not out.exists()


def test_make_pairs_nonparallel_targets(tmp_path, capsys):
    """--nonparallel: targets that read none of the source's sentences (and sources without a CTM) are
    paired, without reference; without the flag such speakers give no pair, as before."""
    utts = {f"{s}-{n:03d}": s for s in ("a", "r") for n in range(1, 5)}
    data = _data_dir(tmp_path / "test", utts)
    unseen = _data_dir(tmp_path / "unseen", {f"z-{n:03d}": "z" for n in range(11, 16)})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 x\n" for u in utts if u.startswith("a-")))  # r: real speech, no CTM
    out = tmp_path / "pairs.tsv"
    code, _, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,r", "--unseen", "z", "--ctm", ctm,
                        "--per-pair", "2", "--targets", "3", out, data, unseen)
    assert code == 0, err  # a->r only: the parallel pairs need phones of the source
    assert sorted((p.source_speaker, p.target_speaker) for p in read_pairs(out)) == [("a", "r"), ("a", "r")]
    code, stdout, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,r", "--unseen", "z", "--ctm", ctm,
                             "--per-pair", "2", "--targets", "3", "--nonparallel", out, data, unseen)
    assert code == 0, err
    pairs = read_pairs(out)
    by = {}
    for p in pairs:
        by.setdefault((p.source_speaker, p.target_speaker), []).append(p)
    assert sorted(by) == [("a", "r"), ("a", "z"), ("r", "a"), ("r", "z")] and all(len(v) == 2 for v in by.values())
    for p in by[("a", "z")] + by[("r", "z")]:
        assert p.reference is None and len(p.targets) == 3 and all(Path(t).stem.startswith("z-") for t in p.targets)
    assert all(p.phones == ["x"] for p in by[("a", "z")]) and all(p.phones is None for p in by[("r", "z")])
    assert all(p.reference is not None for p in by[("r", "a")])  # parallel where the sentences are shared


def test_make_pairs_bad_input(tmp_path, capsys):
    data = _data_dir(tmp_path / "test", {"a-001": "a", "b-002": "b"})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("a-001 1 0.0 0.1 x\nb-002 1 0.0 0.1 x\n")
    out = tmp_path / "pairs.tsv"
    code, _, err = _cli(capsys, "data", "make-pairs", "--speakers", "a,q", "--ctm", ctm, out, data)
    assert code == 1 and "speaker 'q'" in err and len(err.splitlines()) == 1 and not out.exists()
    code, _, err = _cli(capsys, "data", "make-pairs", "--ctm", ctm, out, data)  # no shared sentence
    assert code == 1 and "no pair found" in err and not out.exists()
    code, _, err = _cli(capsys, "data", "make-pairs", "--ctm", tmp_path / "none.ctm", out, data)
    assert code == 1 and "none.ctm" in err and not out.exists()


# ----------------------------------------------------------------------------- eval table
def test_eval_table_rows_and_ratio(tmp_path, capsys):
    (tmp_path / "cpc.json").write_text(json.dumps({"abx": {"within": 5.0, "across": 10.0},
                                                   "probes": {"phone_probe": {"accuracy": 0.8}}}))
    (tmp_path / "base.json").write_text(json.dumps({"baselines": {"mfcc": {"abx": {"within": 10.0, "across": 20.0}},
                                                                  "fbank": {"abx": {"within": 12.0, "across": 25.0}}}}))
    out = tmp_path / "table.md"
    code, stdout, err = _cli(capsys, "eval", "table", "--ratio-to", "mfcc", "--out", out, f"cpc={tmp_path / 'cpc.json'}",
                             f"mfcc={tmp_path / 'base.json'}", f"fbank={tmp_path / 'base.json'}")
    assert code == 0, err
    assert out.read_text() == stdout
    lines = stdout.splitlines()
    assert lines[0].endswith("| across / mfcc |") and len(lines) == 5
    assert lines[2] == "| cpc | 5.00 | 10.00 | 0.800 | n/a | 0.50 |"
    assert lines[4] == "| fbank | 12.00 | 25.00 | n/a | n/a | 1.25 |"
    # rows of another evaluation set (NAME@TAG): the baseline's row by its name, the ratio to mfcc@TAG
    (tmp_path / "cpc@unseen.json").write_text(json.dumps({"abx": {"within": 8.0, "across": 30.0}}))
    (tmp_path / "base@unseen.json").write_text(json.dumps({"baselines": {"mfcc": {"abx": {"across": 40.0}}}}))
    code, stdout, err = _cli(capsys, "eval", "table", "--ratio-to", "mfcc", f"cpc={tmp_path / 'cpc.json'}",
                             f"mfcc={tmp_path / 'base.json'}", f"cpc@unseen={tmp_path / 'cpc@unseen.json'}",
                             f"mfcc@unseen={tmp_path / 'base@unseen.json'}")
    assert code == 0, err
    assert stdout.splitlines()[4:] == ["| cpc@unseen | 8.00 | 30.00 | n/a | n/a | 0.75 |",
                                       "| mfcc@unseen | n/a | 40.00 | n/a | n/a | 1.00 |"]
    code, _, err = _cli(capsys, "eval", "table", "--ratio-to", "plp", f"cpc={tmp_path / 'cpc.json'}")
    assert code == 1 and "'plp'" in err
    code, _, err = _cli(capsys, "eval", "table", "cpc")
    assert code == 1 and "NAME=RESULT.json" in err
    code, _, err = _cli(capsys, "eval", "table", f"x={tmp_path / 'missing.json'}")
    assert code == 1 and "missing.json" in err and "not found" in err


# ----------------------------------------------------------------------------- collect-vc
def test_collect_vc_table(tmp_path, capsys):
    scores = tmp_path / "scores"
    scores.mkdir()
    by_target = {"ked": {"pairs": 4, "target_accuracy": 0.25, "source_rate": 0.0, "taken_for": {"kal": 3}}}
    for name, acc in [("vc_adain_griffinlim", 0.9), ("vc_vq_neural", 0.5)]:
        doc = {"summary": {"target_accuracy": acc, "per": 0.3},
               **({"by_target": by_target, "by_group": {"unseen": {"target_accuracy": 0.25}}} if acc > 0.5 else {})}
        (scores / f"{name}.json").write_text(json.dumps(doc))
    code, stdout, err = _cli(capsys, "eval", "collect-vc", scores, tmp_path / "vc.json", tmp_path / "t.txt")
    assert code == 0, err
    fam = json.loads((tmp_path / "vc.json").read_text())["families"]
    assert fam["vc_adain+griffinlim"]["target_accuracy"] == 0.9 and "vc_vq+neural" in fam
    table = (tmp_path / "t.txt").read_text()
    assert table == stdout and "90.0%" in table and "vc_vq+neural" in table
    # per-target rates of the systems that have them (the summaries in vc.json stay flat)
    assert "vc_adain+griffinlim, per target speaker:" in table and "kal:3" in table and "25.0%" in table
    assert "vc_vq+neural, per target speaker" not in table and "by_target" not in fam["vc_adain+griffinlim"]
    assert "vc_adain+griffinlim, unseen targets  25.0%" in table and "by_group" not in fam["vc_adain+griffinlim"]
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _cli(capsys, "eval", "collect-vc", empty, tmp_path / "e.json", tmp_path / "e.txt")
    assert code == 1 and "no scores" in err and not (tmp_path / "e.json").exists()


# ----------------------------------------------------------------------------- vc-examples
def test_vc_examples_seen_and_unseen_targets(tmp_path, capsys):
    pairs = tmp_path / "pairs.tsv"
    rows = [("a__b__1", "a", "b"), ("b__a__2", "b", "a"), ("a__z__3", "a", "z"), ("b__z__4", "b", "z")]
    pairs.write_text("id\tsource\ttarget\tsource_speaker\ttarget_speaker\n" + "".join(
        f"{i}\t/w/{s}.wav\t/w/{t}1.wav,/w/{t}2.wav\t{s}\t{t}\n" for i, s, t in rows))
    conv = tmp_path / "convert"
    for system in ("vc_adain_griffinlim", "resynth_griffinlim"):
        (conv / system).mkdir(parents=True)
        for i, _, _ in rows[:3]:
            (conv / system / f"{i}.wav").write_bytes(b"")
    out = tmp_path / "audio.tsv"
    code, _, err = _cli(capsys, "eval", "vc-examples", "--per-kind", "1", pairs, conv, out)
    assert code == 0, err
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    assert lines[0] == ["label", "source", "target", "resynth_griffinlim", "vc_adain_griffinlim"]
    assert [x[0] for x in lines[1:]] == ["a -> b (seen)", "a -> z (unseen)"]
    assert lines[1][2] == "/w/b1.wav" and lines[2][4] == str((conv / "vc_adain_griffinlim" / "a__z__3.wav").resolve())
    code, _, err = _cli(capsys, "eval", "vc-examples", pairs, tmp_path / "nowhere", tmp_path / "x.tsv")
    assert code == 1 and "nowhere" in err and not (tmp_path / "x.tsv").exists()


# ----------------------------------------------------------------------------- resynth
def test_resynth_scores_several_neural_vocoders_by_folder(tmp_path, capsys):
    from speechrep.data.audio import write_wav
    from tests.test_vocoder import _harmonic, _save_tiny_vocoder

    data = tmp_path / "data"
    data.mkdir()
    for i, f0 in enumerate([120.0, 210.0]):
        write_wav(tmp_path / f"u{i}.wav", _harmonic(0.4, f0), 16000)
    (data / "wav.scp").write_text("".join(f"u{i} {tmp_path}/u{i}.wav\n" for i in range(2)))
    (data / "utt2spk").write_text("u0 s0\nu1 s1\n")
    for name in ["a/voc", "b/voc", "voc_3k", "voc_18k"]:
        _save_tiny_vocoder(tmp_path / name)

    def run(out, *vocoders):
        return _cli(capsys, "eval", "resynth", "--max-utts", "2", data, tmp_path / out, *vocoders)

    code, _, err = run("one", "griffinlim", tmp_path / "voc_3k")
    assert code == 0, err
    assert sorted(json.loads((tmp_path / "one" / "scores.json").read_text())) == ["griffinlim", "neural"]
    code, stdout, err = run("two", "griffinlim", tmp_path / "voc_3k", tmp_path / "voc_18k")
    assert code == 0, err
    scores = json.loads((tmp_path / "two" / "scores.json").read_text())
    assert sorted(scores) == ["griffinlim", "voc_18k", "voc_3k"] and (tmp_path / "two" / "scores.txt").read_text() == stdout
    assert sorted(p.name for p in (tmp_path / "two" / "voc_18k").iterdir()) == ["u0.wav", "u1.wav"]
    # Griffin-Lim keeps the harmonics; an untrained generator does not
    assert scores["griffinlim"]["mcd_db"] < scores["voc_3k"]["mcd_db"]
    code, _, err = run("clash", "griffinlim", tmp_path / "a" / "voc", tmp_path / "b" / "voc")
    assert code == 1 and "same name" in err and not (tmp_path / "clash").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "wav.scp").write_text("")
    (empty / "utt2spk").write_text("")
    code, _, err = _cli(capsys, "eval", "resynth", empty, tmp_path / "none", "griffinlim")
    assert code == 1 and "no utterances" in err and not (tmp_path / "none").exists()
