"""The helper scripts of egs/synth/vc on a hand-made corpus layout (the full recipe is
run with ``egs/synth/vc/run.sh --quick``)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from speechrep.convert import read_pairs

VC = Path(__file__).resolve().parents[1] / "egs" / "synth" / "vc"


def _data_dir(d: Path, utts: dict[str, str]) -> Path:
    d.mkdir(parents=True)
    (d / "wav.scp").write_text("".join(f"{u} /w/{u}.wav\n" for u in sorted(utts)))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in sorted(utts.items())))
    return d


def test_make_pairs_parallel_references(tmp_path):
    utts = {f"{s}-{n}": s for s in ("a", "b") for n in ("001", "002", "003")}
    data = _data_dir(tmp_path / "test", utts)
    unseen = _data_dir(tmp_path / "unseen", {"z-001": "z", "z-009": "z"})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 pau\n{u} 1 0.1 0.2 x\n" for u in utts))
    out = tmp_path / "pairs.tsv"
    r = subprocess.run([sys.executable, str(VC / "local" / "make_pairs.py"), "--speakers", "a,b", "--unseen", "z",
                        "--ctm", str(ctm), "--targets", "2", str(out), str(data), str(unseen)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pairs = read_pairs(out)
    # a->b, b->a, a->z, b->z (z reads only sentence 001 among the shared ones)
    assert sorted((p.source_speaker, p.target_speaker) for p in pairs) == [("a", "b"), ("a", "z"), ("b", "a"), ("b", "z")]
    for p in pairs:
        sent = Path(p.source).stem.split("-")[1]
        assert Path(p.reference).stem == f"{p.target_speaker}-{sent}"
        assert all(Path(t).stem.startswith(p.target_speaker + "-") and not t.endswith(f"-{sent}.wav") for t in p.targets)
        assert p.phones == ["pau", "x"]


def test_make_pairs_unused_utterances(tmp_path):
    """--unused-out: every utterance of the data dirs that no pair uses, and none that a pair uses."""
    utts = {f"{s}-{n:03d}": s for s in ("a", "b") for n in range(1, 7)}
    data = _data_dir(tmp_path / "test", utts)
    unseen = _data_dir(tmp_path / "unseen", {f"z-{n:03d}": "z" for n in range(1, 7)})
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 x\n" for u in utts))
    out, unused = tmp_path / "pairs.tsv", tmp_path / "unused"
    r = subprocess.run([sys.executable, str(VC / "local" / "make_pairs.py"), "--speakers", "a,b", "--unseen", "z",
                        "--ctm", str(ctm), "--unused-out", str(unused), str(out), str(data), str(unseen)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
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
    r = subprocess.run([sys.executable, str(VC / "local" / "make_pairs.py"), "--speakers", "a,b", "--per-pair", "6",
                        "--targets", "5", "--ctm", str(ctm), "--unused-out", str(unused), str(out), str(data)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "not written" in r.stdout and not unused.exists()


def test_make_pairs_more_targets_keep_the_sentences(tmp_path):
    utts = {f"{s}-{n:03d}": s for s in ("a", "b", "c") for n in range(1, 9)}
    data = _data_dir(tmp_path / "test", utts)
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.0 0.1 x\n" for u in utts))

    def make(k):
        out = tmp_path / f"pairs{k}.tsv"
        r = subprocess.run([sys.executable, str(VC / "local" / "make_pairs.py"), "--per-pair", "2", "--ctm", str(ctm),
                            "--targets", str(k), str(out), str(data)], capture_output=True, text=True)
        return r, out

    two, five = (read_pairs(make(k)[1]) for k in (2, 5))
    assert [p.id for p in five] == [p.id for p in two] and len(two) == 12
    for p2, p5 in zip(two, five):
        sent = p5.id.rsplit("__", 1)[1]
        assert p5.source == p2.source and p5.targets[:2] == p2.targets and len(p5.targets) == 5
        assert len(set(p5.targets)) == 5 and not any(t.endswith(f"-{sent}.wav") for t in p5.targets)
    r, out = make(0)
    assert r.returncode != 0 and "--targets" in r.stderr and not out.exists()


def test_collect_scores_table(tmp_path):
    scores = tmp_path / "scores"
    scores.mkdir()
    by_target = {"ked": {"pairs": 4, "target_accuracy": 0.25, "source_rate": 0.0, "taken_for": {"kal": 3}}}
    for name, acc in [("vc_adain_griffinlim", 0.9), ("vc_vq_neural", 0.5)]:
        doc = {"summary": {"target_accuracy": acc, "per": 0.3},
               **({"by_target": by_target, "by_group": {"unseen": {"target_accuracy": 0.25}}} if acc > 0.5 else {})}
        (scores / f"{name}.json").write_text(json.dumps(doc))
    r = subprocess.run([sys.executable, str(VC / "local" / "collect_scores.py"), str(scores), str(tmp_path / "vc.json"),
                        str(tmp_path / "t.txt")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    fam = json.loads((tmp_path / "vc.json").read_text())["families"]
    assert fam["vc_adain+griffinlim"]["target_accuracy"] == 0.9 and "vc_vq+neural" in fam
    table = (tmp_path / "t.txt").read_text()
    assert "90.0%" in table and "vc_vq+neural" in table
    # per-target rates of the systems that have them (the summaries in vc.json stay flat)
    assert "vc_adain+griffinlim, per target speaker:" in table and "kal:3" in table and "25.0%" in table
    assert "vc_vq+neural, per target speaker" not in table and "by_target" not in fam["vc_adain+griffinlim"]
    assert "vc_adain+griffinlim, unseen targets  25.0%" in table and "by_group" not in fam["vc_adain+griffinlim"]


@pytest.mark.slow
def test_vc_recipe_quick_trains_every_family_with_one_judge(tmp_path, synth_tiny_db):
    """`run.sh --quick` with the two families the demo does not run: every family whose config
    names a speaker_loss_model is trained with the speaker-consistency loss, against one judge
    that the first family's job trains and the other finds done; both are converted and scored."""
    import os

    from speechrep.train.logging import read_history

    env = {**os.environ, "DB": str(synth_tiny_db), "VC_F0": "false", "FAMILIES": "vc_adversarial vc_vq",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    exp = tmp_path / "exp"
    r = subprocess.run(["bash", str(VC / "run.sh"), "--quick", "--exp", str(exp), "--stop-stage", "5"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    logs = {f: (exp / "log" / f"train_family_{f}.log").read_text() for f in ("vc_adversarial", "vc_vq")}
    judged = [f for f in logs if "speaker_loss_model: exp/judge" in (VC / "conf" / f"{f}.yaml").read_text()]
    assert judged == ["vc_adversarial", "vc_vq"]
    trained = [f for f in judged if f"config conf/judge.yaml -> {exp}/judge" in logs[f]
               and f"resuming from {exp}/judge" not in logs[f]]
    assert len(trained) == 1, logs
    assert all(f"resuming from {exp}/judge" in logs[f] for f in judged if f not in trained)
    for f in judged:
        history = read_history(exp / f / "train_history.jsonl")
        assert all("loss/speaker" in h and "loss/speaker_content" in h for h in history if h["split"] == "train")
    adversarial = read_history(exp / "vc_adversarial" / "train_history.jsonl")
    assert all("adv/ce" in h for h in adversarial)
    # the validation loss leaves out the classifier's term
    valid = [h for h in adversarial if h["split"] == "valid"]
    assert valid and all(abs(h["loss"] - h["loss/recon"]) < 1e-6 for h in valid)
    assert any("vq/perplexity" in h for h in read_history(exp / "vc_vq" / "train_history.jsonl"))
    families = json.loads((exp / "eval" / "vc.json").read_text())["families"]
    assert set(families) == {"vc_adversarial+griffinlim", "vc_vq+griffinlim"}
    assert all(s["pairs"] == 9 and s["per"] >= 0 for s in families.values())
    # the PERs are the mean of the recognisers of CTC_SEEDS ("0 1" with --quick), one per seed
    assert sorted(p.name for p in (exp / "phone_ctc").iterdir()) == ["seed0", "seed1"]
    for s in families.values():
        assert len(s["per_by_model"]) == 2 and s["per"] == pytest.approx(sum(s["per_by_model"]) / 2)
        assert 0 <= s["source_per"] and len(s["resynth_per_by_model"]) == 2
    # redoing the trainings keeps the finished recognisers (their training is not resumable)
    before = (exp / "phone_ctc" / "seed1" / "checkpoints").stat().st_mtime_ns
    r = subprocess.run(["bash", str(VC / "run.sh"), "--quick", "--exp", str(exp), "--stage", "1", "--stop-stage", "1",
                        "--force"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"{exp}/phone_ctc/seed1: trained" in (exp / "log" / "train_ctc_1.log").read_text()
    assert (exp / "phone_ctc" / "seed1" / "checkpoints").stat().st_mtime_ns == before
