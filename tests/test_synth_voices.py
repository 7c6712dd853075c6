"""The many-voice corpus (make-synth --size many/large): splits by family, pseudo-speakers,
real G.722 prompts, skip reasons in stats.json; and tiny/default left as they were.

Builds use a few voices and a handful of utterances. Tests that need flite or the PyPI
decoder ``g722`` skip without them; the real prompt packs are faked (random G.722 bytes
with transcripts), so no optional Debian package is needed beyond flite and fortunes.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechrep.data import DataDir, read_ctm, validate_data_dir
from speechrep.data.synth import SIZES, SPEAKERS, SynthSize, assign_sentences, fortune_sentences, make_synth
from speechrep.data.synth import many
from speechrep.data.synth.many import PACKS, UNSEEN_FAMILIES, VoiceSize, make_many
from speechrep.data.synth.real import pack_prompts, read_transcripts
from speechrep.data.synth.text import NATIVE_TEXTS, NO_TEXT, native_sentences
from speechrep.data.synth.voices import Synthesized, resample
from speechrep.errors import DataError

try:
    import G722  # noqa: F401

    HAVE_G722 = True
except ImportError:
    HAVE_G722 = False
needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="flite is not installed")
needs_g722 = pytest.mark.skipif(not HAVE_G722, reason="the PyPI package g722 is not installed")
needs_fortunes = pytest.mark.skipif(
    not Path("/usr/share/games/fortunes/wisdom").is_file(), reason="Debian package 'fortunes' is not installed"
)

# split, train/dev/test/unseen sentences, one warp, 3/1/1 real prompts, 3 Russian ones
SMALL = VoiceSize(2, 1, 1, 2, (0.9,), 3, 1, 1, 3)

#: Utterance ids of the tiny corpus before the many-voice sizes existed (seed 0).
TINY_IDS = {
    "train": "awb-01262 awb-02850 awb-02946 awb-04542 awb-05750 awb-06503 kal16-01262 kal16-02850 kal16-02946 "
    "kal16-04542 kal16-05750 kal16-06503 slt-01262 slt-02850 slt-02946 slt-04542 slt-05750 slt-06503",
    "dev": "awb-03246 awb-04555 kal16-03246 kal16-04555 slt-03246 slt-04555",
    "test": "awb-05070 awb-05929 kal16-05070 kal16-05929 slt-05070 slt-05929",
    "test_unseen_spk": "rms-05070 rms-05929",
}


@needs_fortunes
def test_tiny_and_default_unchanged() -> None:
    assert SIZES["tiny"] == SynthSize(("awb", "kal16", "slt"), ("rms",), 6, 6, 2, 2, 2)
    assert SIZES["default"].seen == tuple("awb awb_hi awb_lo kal16 kal16_hi slt slt_hi slt_lo kal slt_hts".split())
    assert SIZES["default"].unseen == ("ked", "rms")
    assert [s.id for s in SPEAKERS if s.warp is not None or s.language != "en"] == []
    texts = fortune_sentences()
    pairs = assign_sentences(len(texts), SIZES["tiny"], 0)
    ids = {split: " ".join(sorted(f"{spk}-{i:05d}" for spk, i in p)) for split, p in pairs.items()}
    assert ids == {split: " ".join(sorted(v.split())) for split, v in TINY_IDS.items()}


def test_warp_moves_pitch_and_shortens() -> None:
    t = np.arange(16000) / 16000
    wave = np.sin(2 * np.pi * 200 * t).astype(np.float32)
    warped = resample(wave, 16000, warp=1.25)
    assert abs(len(warped) - 16000 / 1.25) <= 2
    spectrum = np.abs(np.fft.rfft(warped * np.hanning(len(warped))))
    assert abs(np.argmax(spectrum) * 16000 / len(warped) - 250) < 3


def _fake_packs(root: Path, pack_ids: list[str], *, broken: str | None = None) -> tuple[Path, Path]:
    """Prompt packs of random G.722 bytes with transcripts: (sounds dir, doc dir)."""
    rng = np.random.default_rng(0)
    sounds, docs = root / "sounds", root / "doc"
    english = {f"prompt-{i}": f"Prompt number {i}." for i in range(8)} | {"beep": "[this is a beep]"}
    for pack in [p for p in PACKS if p.id in pack_ids or p.language == "en"]:
        doc = docs / f"asterisk-core-sounds-{pack.language}"
        doc.mkdir(parents=True, exist_ok=True)
        lines = english if pack.language == "en" else {k: f"{pack.language} {v}" for k, v in english.items()}
        with gzip.open(doc / f"core-sounds-{pack.language}.txt.gz", "wt", encoding="utf-8") as f:
            f.write("; comment\n" + "".join(f"{k}: {v}\n" for k, v in lines.items()))
        if pack.id not in pack_ids:
            continue
        (sounds / pack.directory).mkdir(parents=True)
        for name in english:
            data = b"" if pack.id == broken else rng.integers(0, 256, 8000, dtype=np.uint8).tobytes()
            (sounds / pack.directory / f"{name}.g722").write_bytes(data)
    return sounds, docs


@pytest.fixture(scope="module")
def small_many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if shutil.which("flite") is None or not HAVE_G722:
        pytest.skip("needs flite and the PyPI package g722")
    root = tmp_path_factory.mktemp("many")
    sounds, docs = _fake_packs(root, ["allison_en", "ivr_ru"])
    voices = ["awb", "rms", "allison_en", "ivr_ru", "lj_fi"]
    stats = make_many(root / "out", size=SMALL, voices=voices, nj=2, sounds_dir=sounds, doc_dirs=[docs])
    return root / "out", stats


def test_many_splits_hold_families_out(small_many: tuple[Path, dict]) -> None:
    out, stats = small_many
    speakers = {}
    for split in many.SPLITS:
        assert validate_data_dir(out / "data" / split) == []
        speakers[split] = set(DataDir.load(out / "data" / split).speakers)
    seen = {"awb", "awb_hi", "awb_lo", "awb_w090", "allison_en"}
    assert speakers["train"] == speakers["dev"] == speakers["test"] == seen
    assert speakers["test_unseen_family"] == {"rms", "ivr_ru"}
    family = {spk: fam for eng in stats["voices"].values() for fam, row in eng.items() for spk in row["speakers"]}
    assert family["awb_w090"] == family["awb_hi"] == "awb"
    seen = {family[s] for s in speakers["train"]}
    assert seen.isdisjoint(family[s] for s in speakers["test_unseen_family"])
    assert "ivr_ru" in UNSEEN_FAMILIES
    assert stats["voices"]["asterisk"]["ivr_ru"]["splits"] == ["test_unseen_family"]
    assert stats["voices"]["flite"]["awb"] == {
        "speakers": ["awb", "awb_hi", "awb_lo", "awb_w090"],
        "splits": ["train", "dev", "test"],
    }


def test_many_ctm_only_for_english_synthesis(small_many: tuple[Path, dict]) -> None:
    out, _ = small_many
    unseen = read_ctm(out / "ali" / "test_unseen_family" / "phones.ctm")
    assert {u.split("-")[0] for u in unseen} == {"rms"}
    dev = DataDir.load(out / "data" / "dev")
    ctm = read_ctm(out / "ali" / "dev" / "phones.ctm")
    assert set(ctm) == {u for u in dev.utts if not u.startswith("allison_en")}
    for utt, segments in ctm.items():
        assert segments[-1][1] == pytest.approx(dev.utt2dur[utt], abs=1e-3)
    # the pseudo-speaker reads the same dev sentence 1/0.9 times faster
    (base,) = [u for u in dev.utts if u.startswith("awb-")]
    warped = base.replace("awb-", "awb_w090-")
    assert dev.utt2dur[warped] == pytest.approx(dev.utt2dur[base] / 0.9, rel=0.01)
    assert dev.text[base] == dev.text[warped]
    assert "allison_en-" in " ".join(dev.text) and "[" not in " ".join(dev.text.values())


def test_many_stats_list_skipped_language(small_many: tuple[Path, dict]) -> None:
    out, stats = small_many
    written = json.loads((out / "stats.json").read_text())
    assert written["voices"] == stats["voices"] and written["skipped_voices"] == stats["skipped_voices"]
    (skipped,) = stats["skipped_voices"]
    assert skipped["voice"] == "lj_fi" and "no text in Finnish" in skipped["reason"]
    assert not (out / "wav" / "lj_fi").exists()


@needs_flite
@needs_g722
def test_failing_voice_and_undecodable_pack_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sounds, docs = _fake_packs(tmp_path, ["allison_en", "ivr_ru"], broken="ivr_ru")
    real = many.synthesize

    def synthesize(speaker, items):
        if speaker.family == "slt":
            return [Synthesized(utt, error="flite exited with status 1") for utt, _ in items]
        return real(speaker, items)

    monkeypatch.setattr(many, "synthesize", synthesize)
    stats = make_many(
        tmp_path / "out",
        size=SMALL,
        voices=["awb", "slt", "rms", "allison_en", "ivr_ru"],
        sounds_dir=sounds,
        doc_dirs=[docs],
    )
    reasons = {v["voice"]: v["reason"] for v in stats["skipped_voices"]}
    assert reasons["slt"].startswith("synthesis failed on every sentence (flite exited")
    assert reasons["ivr_ru"].startswith("pack failed to decode (cannot decode")
    assert not (tmp_path / "out" / "wav" / "slt").exists() and not (tmp_path / "out" / "wav" / "ivr_ru").exists()
    assert "slt" not in stats["voices"]["flite"] and "ivr_ru" not in stats["voices"]["asterisk"]
    assert set(DataDir.load(tmp_path / "out" / "data" / "test_unseen_family").speakers) == {"rms"}
    assert set(DataDir.load(tmp_path / "out" / "data" / "train").speakers) == {
        "awb", "awb_hi", "awb_lo", "awb_w090", "allison_en"
    }


def test_missing_packages_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"asterisk-core-sounds-ru-g722.*tools/setup.sh --voices"):
        make_many(tmp_path / "out", size=SMALL, voices=["ivr_ru"], sounds_dir=tmp_path, doc_dirs=[tmp_path])
    with pytest.raises(DataError, match="unknown voices nobody"):
        make_many(tmp_path / "out", size=SMALL, voices=["nobody"])
    assert not (tmp_path / "out").exists()


def test_native_sentences_filter_and_encode(tmp_path: Path) -> None:
    package, categories = NATIVE_TEXTS["cs"]
    (tmp_path / "cs").mkdir()
    for name in categories:
        (tmp_path / "cs" / name).write_text("", encoding="utf-8")
    (tmp_path / "cs" / categories[0]).write_text(
        "Příliš žluťoučký kůň úpěl ďábelské ódy.\n%\nKrál Eduard VII. přijel.\n%\n"
        "Это русский текст здесь.\n%\nMáme 3 koně doma.\n%\n"
        "Kůň úpěl, ale nikdo ho neslyšel!\n",
        encoding="utf-8",
    )
    assert native_sentences("cs", root=tmp_path) == [
        "Příliš žluťoučký kůň úpěl ďábelské ódy.",
        "Kůň úpěl, ale nikdo ho neslyšel!",
    ]
    (tmp_path / "cs" / categories[1]).unlink()
    with pytest.raises(DataError, match=package):
        native_sentences("cs", root=tmp_path)


def test_pack_prompts_leave_out_tones(tmp_path: Path) -> None:
    sounds, docs = _fake_packs(tmp_path, ["june_fr"])
    fr = read_transcripts(docs / "asterisk-core-sounds-fr" / "core-sounds-fr.txt.gz")
    en = read_transcripts(docs / "asterisk-core-sounds-en" / "core-sounds-en.txt.gz")
    prompts = pack_prompts(PACKS[2], fr, en, sounds)
    assert [Path(p).stem for p, _ in prompts] == [f"prompt-{i}" for i in range(8)]
    assert prompts[0][1] == "fr Prompt number 0."


@needs_g722
def test_decode_g722_refuses_empty(tmp_path: Path) -> None:
    from speechrep.data.synth.real import decode_g722

    (tmp_path / "x.g722").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        decode_g722(tmp_path / "x.g722")
    (tmp_path / "y.g722").write_bytes(bytes(range(256)) * 10)
    assert decode_g722(tmp_path / "y.g722").shape == (5120,)


def test_cli_many_refuses_frame_labels(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "speechrep", "data", "make-synth", str(tmp_path / "o"), "--size", "many"]
        + ["--frame-labels"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: size: --size many reads its own texts and writes no frame labels"
    ]
    with pytest.raises(DataError, match="choose from tiny, small, default, many, large"):
        make_synth(tmp_path / "o", size="huge")


def _has_festival_voice(voice: str) -> bool:
    if shutil.which("festival") is None:
        return False
    out = subprocess.run(["festival", "--batch", "(print (voice.list))"], capture_output=True, text=True).stdout
    return voice in out.split("(")[-1].replace(")", " ").split()


@pytest.mark.skipif(not _has_festival_voice("czech_dita"), reason="festvox-czech-dita is not installed")
def test_czech_voice_reads_its_encoding() -> None:
    # in UTF-8 the Czech letter-to-sound rules spell every byte out (measured: 18 s for this)
    (voice,) = [v for v in many.VOICES if v.id == "dita_cs"]
    (result,) = many.synthesize(voice, [("dita_cs-00000", "Příliš žluťoučký kůň úpěl ďábelské ódy.")])
    assert result.error is None and result.segments is None
    assert 2.0 < result.duration < 5.0


@pytest.mark.skipif(not _has_festival_voice("lp_diphone"), reason="festvox-italp16k is not installed")
def test_italian_pseudo_speaker_has_no_ctm() -> None:
    (voice,) = [v for v in many.VOICES if v.id == "lp_it"]
    base, warped = many._speakers(voice, [1.12])
    text = [("x", "Questa è una città molto bella, però piove.")]
    (a,), (b,) = many.synthesize(base, text), many.synthesize(warped, text)
    assert a.segments is None and b.segments is None and warped.family == "lp"
    assert b.duration == pytest.approx(a.duration / 1.12, rel=0.01)


def test_setup_voices_installs_what_the_catalog_needs() -> None:
    setup = Path(__file__).resolve().parents[1] / "tools" / "setup.sh"
    text = setup.read_text()
    listed = set(text.split("voice_pkgs=(", 1)[1].split(")", 1)[0].split())
    base = {"flite", "festival", "festvox-kdlpc16k", "festvox-kallpc16k", "festvox-us-slt-hts", "fortunes"}
    needed = {v.package for v in many.VOICES if v.language not in NO_TEXT} | {p.package for p in PACKS}
    needed |= {package for package, _ in NATIVE_TEXTS.values()}
    assert needed - base == listed
    help_text = subprocess.run(["bash", str(setup), "--help"], capture_output=True, text=True, check=True).stdout
    assert "--voices" in help_text
