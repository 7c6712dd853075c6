"""The demo's real voice: `speechrep data prepare asterisk` (Debian's G.722 prompts of a real
person), make-pairs --sources (real -> synthetic only), and the summaries the demo builds from
its conversions (independent judges' scores, real/synthetic examples, several audio tables)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrep.data.kaldi_dir import DataDir
from speechrep.errors import DataError
from tests import fake_asterisk

ROOT = Path(__file__).resolve().parents[1]
needs_pack = pytest.mark.skipif(not fake_asterisk.available(), reason="needs flite and the PyPI package g722")


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> tuple[Path, Path]:
    if not fake_asterisk.available():
        pytest.skip("needs flite and the PyPI package g722")
    return fake_asterisk.make_pack(tmp_path_factory.mktemp("asterisk"))


@needs_pack
def test_prepare_asterisk_decodes_the_speech_prompts(pack, tmp_path):
    from speechrep.data.corpora import prepare
    from speechrep.data.synth.real import decode_g722

    sounds, transcripts = pack
    result = prepare("asterisk", sounds, tmp_path / "out", transcripts=transcripts, min_duration=1.0)
    dd = DataDir.load(tmp_path / "out" / "data" / "all")
    # ids: <speaker>-<name>, '/' and '-' of the name made '_' (make-pairs splits on the last '-')
    assert "allison_en-followme_options" in dd.utts and "allison_en-vm_intro" in dd.utts
    assert set(dd.utt2spk.values()) == {"allison_en"} and dd.spk2gender == {"allison_en": "f"}
    assert dd.text["allison_en-vm_intro"].startswith("PLEASE LEAVE YOUR MESSAGE AFTER THE TONE WHEN DONE HANG UP")
    # the tone (bracketed transcript) is not a prompt; the silent one and the short one are skipped
    assert not any("beep" in u or "silence" in u for u in dd.utts)
    reasons = {Path(f).name: r for f, r in result.skipped}
    assert reasons["2.g722"].startswith("no speech (RMS -7")
    assert reasons["vm-goodbye.g722"].startswith("shorter than 1 s")
    assert result.sets == {"all": len(fake_asterisk.PROMPTS) - 1}
    # the audio is the decoder's, 16 kHz, 16 bits
    wave, rate = sf.read(dd.wav_scp["allison_en-vm_intro"], dtype="float32")
    expected = decode_g722(sounds / fake_asterisk.DIRECTORY / "vm-intro.g722")
    assert rate == 16000 and wave.shape == expected.shape
    np.testing.assert_allclose(wave, expected, atol=1.5 / 32768)
    assert abs(dd.utt2dur["allison_en-vm_intro"] - expected.size / 16000) < 1e-3


@needs_pack
def test_prepare_asterisk_bad_input(pack, tmp_path):
    from speechrep.data.corpora import prepare

    sounds, transcripts = pack
    with pytest.raises(DataError, match="unknown pack 'bob'"):
        prepare("asterisk", sounds, tmp_path / "a", pack="bob", transcripts=transcripts)
    with pytest.raises(DataError, match="no fr_CA_f_June/ here.*asterisk-core-sounds-fr-g722"):
        prepare("asterisk", sounds, tmp_path / "b", pack="june_fr", transcripts=transcripts)
    with pytest.raises(DataError, match="transcripts file not found"):
        prepare("asterisk", sounds, tmp_path / "c", transcripts=tmp_path / "none.txt.gz")
    (tmp_path / "corrupt.txt.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="unreadable transcripts"):
        prepare("asterisk", sounds, tmp_path / "d", transcripts=tmp_path / "corrupt.txt.gz")
    assert not any((tmp_path / n).exists() for n in "abcd")  # nothing half-written


@needs_pack
def test_prepare_asterisk_cli_one_line_error(pack, tmp_path):
    sounds, _ = pack
    r = subprocess.run([sys.executable, "-m", "speechrep", "data", "prepare", "asterisk", str(sounds),
                        str(tmp_path / "out"), "--transcripts", str(tmp_path / "missing.txt.gz")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "transcripts file not found" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def _data_dir(path: Path, utts: dict[str, str]) -> Path:
    """A data directory of ``utt -> speaker`` with short noise files."""
    (path / "wav").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for utt in utts:
        sf.write(path / "wav" / f"{utt}.wav", 0.1 * rng.standard_normal(8000), 16000)
    (path / "wav.scp").write_text("".join(f"{u} {path / 'wav' / u}.wav\n" for u in sorted(utts)))
    (path / "utt2spk").write_text("".join(f"{u} {utts[u]}\n" for u in sorted(utts)))
    (path / "text").write_text("".join(f"{u} WORDS OF {u.upper()}\n" for u in sorted(utts)))
    return path


def test_make_pairs_sources_pair_only_from_them(tmp_path):
    from speechrep.data.pairs import make_pairs, read_pairs

    synth = {f"{s}-{i:05d}": s for s in ("awb", "slt") for i in range(4)}
    real = {f"real-p{i}": "real" for i in range(5)}
    dirs = [_data_dir(tmp_path / "synth", synth), _data_dir(tmp_path / "real", real)]
    ctm = tmp_path / "phones.ctm"
    ctm.write_text("".join(f"{u} 1 0.00 0.10 sil\n{u} 1 0.10 0.20 a\n" for u in sorted(synth)))
    out = tmp_path / "to_real.tsv"
    n, _ = make_pairs(out, dirs, [ctm], speakers=["real"], sources=["awb", "slt"], per_pair=2, targets=3,
                      nonparallel=True)
    pairs = read_pairs(out)
    assert n == 4 and {(p.source_speaker, p.target_speaker) for p in pairs} == {("awb", "real"), ("slt", "real")}
    assert all(len(p.targets) == 3 and not p.reference for p in pairs)
    n, _ = make_pairs(tmp_path / "from_real.tsv", dirs, [ctm], speakers=["awb", "slt"], sources=["real"],
                      nonparallel=True)
    assert {(p.source_speaker, p.target_speaker) for p in read_pairs(tmp_path / "from_real.tsv")} == {
        ("real", "awb"), ("real", "slt")}
    # without --sources, the speakers pair among themselves too
    make_pairs(tmp_path / "all.tsv", dirs, [ctm], speakers=["awb", "slt", "real"], nonparallel=True)
    assert ("awb", "slt") in {(p.source_speaker, p.target_speaker) for p in read_pairs(tmp_path / "all.tsv")}
    with pytest.raises(DataError, match="speaker 'bob'"):
        make_pairs(tmp_path / "x.tsv", dirs, [ctm], speakers=["real"], sources=["bob"], nonparallel=True)


def _independent(target_accuracy: float) -> dict:
    summary = {"pairs": 2, "accept_rate": 0.5, "target_accuracy": target_accuracy, "source_rate": 0.0,
               "target_similarity": 0.8, "source_similarity": 0.5, "wer": 0.9, "source_wer": 0.2}
    return {"settings": {"judges": "independent"}, "independent": {
        "summary": {**summary, "speakers": 3}, "by_target": {"awb": {**summary, "taken_for": {}}},
        "settings": {"speaker_judge": "fake", "word_judge": "fake", "threshold": 0.7, "real_eer": 0.01,
                     "real_utterances": 10}}}


def test_collect_vc_scores_of_independent_judges(tmp_path):
    from speechrep.eval.vc_summary import collect_vc_scores

    (tmp_path / "real2synth-knn_neural.json").write_text(json.dumps(_independent(1.0)))
    (tmp_path / "synth2real-knn_neural.json").write_text(json.dumps(_independent(0.25)))
    summary, table = collect_vc_scores(tmp_path)
    rows = summary["families"]
    assert set(rows) == {"real2synth-knn+neural", "synth2real-knn+neural"}
    assert rows["real2synth-knn+neural"]["judge.target_accuracy"] == 1.0
    assert rows["synth2real-knn+neural"]["judge.target_accuracy"] == 0.25
    assert "real2synth-knn+neural, independent judges" in table and "25.0%" in table


def test_demo_examples_real_directions(tmp_path):
    from speechrep.eval.vc_summary import demo_examples

    header = "id\tsource\ttarget\tsource_speaker\ttarget_speaker\treference\tphones\n"
    rows = [("real__awb__a", "real", "awb"), ("awb__real__b", "awb", "real"), ("awb__slt__c", "awb", "slt")]
    wav = tmp_path / "x.wav"
    sf.write(wav, np.zeros(1600), 16000)
    (tmp_path / "pairs.tsv").write_text(header + "".join(f"{i}\t{wav}\t{wav}\t{s}\t{t}\t\t\n" for i, s, t in rows))
    (tmp_path / "convert" / "knn_neural").mkdir(parents=True)
    for i, _, _ in rows:
        sf.write(tmp_path / "convert" / "knn_neural" / f"{i}.wav", np.zeros(1600), 16000)
    tsv = demo_examples(tmp_path / "pairs.tsv", tmp_path / "convert", per_kind=2, real=["real"])
    labels = [line.split("\t")[0] for line in tsv.splitlines()[1:]]
    assert labels == ["real -> awb (real -> synthetic)", "awb -> real (synthetic -> real)"]
    seen_unseen = demo_examples(tmp_path / "pairs.tsv", tmp_path / "convert", per_kind=2)
    assert seen_unseen.count("(seen)") == 2 and seen_unseen.count("(unseen)") == 1  # slt is no source


def test_report_takes_several_audio_tables(tmp_path):
    from speechrep.report.pipeline import collect

    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(1600), 16000)
    (tmp_path / "one.tsv").write_text(f"label\tsource\tconverted\nfirst\t{wav}\t{wav}\n")
    (tmp_path / "two.tsv").write_text(f"label\tsource\tknn\nsecond\t{wav}\t{wav}\n")
    (tmp_path / "exp").mkdir()
    inputs = collect(tmp_path / "exp", audio_tsv=[tmp_path / "one.tsv", tmp_path / "two.tsv"])
    assert [row["label"] for row in inputs.audio] == ["first", "second"]
    assert set(inputs.audio[1]["files"]) == {"source", "knn"}
    (tmp_path / "bad.tsv").write_text("label\tsource\nthird\tmissing.wav\n")
    with pytest.raises(DataError, match="missing.wav not found"):
        collect(tmp_path / "exp", audio_tsv=[tmp_path / "one.tsv", tmp_path / "bad.tsv"])
