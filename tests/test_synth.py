"""The embedded synthetic corpus: layout, validity, alignment quality, determinism, bad input.

The tiny corpus (flite only, 32 utterances) is built once per test session.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechrep.data import DataDir, frame_labels, load_audio, read_ctm, read_kaldi_map, validate_data_dir
from speechrep.data.synth import PHONES, SIZES, SPLITS, SynthSize, assign_sentences, make_synth
from speechrep.errors import DataError

FLITE = shutil.which("flite")
needs_flite = pytest.mark.skipif(FLITE is None, reason="flite is not installed (Debian package 'flite')")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if FLITE is None:
        pytest.skip("flite is not installed (Debian package 'flite')")
    out = tmp_path_factory.mktemp("synth") / "tiny"
    make_synth(out, size="tiny", seed=0, nj=2, write_frame_labels=True)
    return out


def _features(wave: np.ndarray) -> np.ndarray:
    """(num_frames, 40) log mel filterbank, 25 ms / 10 ms frames with snip_edges."""
    try:
        from speechrep.features import fbank
    except ImportError:
        import librosa

        mel = librosa.feature.melspectrogram(y=wave, sr=16000, n_fft=400, hop_length=160, n_mels=40, center=False)
        return np.log(mel.T + 1e-6)
    return fbank(wave * 32768, dither=0.0, num_mel_bins=40)


def _split_frames(corpus: Path, split: str, shifts: tuple[float, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Context-stacked, mean-normalised features ``(frames, 200)`` of a split, and their
    phone labels ``(frames,)`` for each alignment moved by ``shifts`` seconds."""
    dd = DataDir.load(corpus / "data" / split)
    ali = read_ctm(corpus / "ali" / split / "phones.ctm")
    xs, ys = [], [[] for _ in shifts]
    for utt in dd.utts:
        feats = _features(load_audio(dd.wav_scp[utt]))
        feats = feats - feats.mean(axis=0)
        padded = np.pad(feats, ((2, 2), (0, 0)), mode="edge")
        xs.append(np.concatenate([padded[i : i + len(feats)] for i in range(5)], axis=1))
        for labels, shift in zip(ys, shifts):
            moved = [(s + shift, e + shift, p) for s, e, p in ali[utt]]
            labels += [p or "pau" for p in frame_labels(moved, num_frames=len(feats))]
    return np.concatenate(xs), [np.array(labels) for labels in ys]


# --- layout and validity -----------------------------------------------------------------


def test_tiny_corpus_data_dirs_are_valid(tiny_corpus: Path):
    for split in SPLITS:
        assert validate_data_dir(tiny_corpus / "data" / split, check_audio=True) == []
    phones = [line.split() for line in (tiny_corpus / "phones.txt").read_text().splitlines()]
    assert phones == [[p, str(i)] for i, p in enumerate(PHONES)] and len(PHONES) == 40


def test_tiny_corpus_splits_speakers_and_sentences(tiny_corpus: Path):
    size = SIZES["tiny"]
    dirs = {split: DataDir.load(tiny_corpus / "data" / split) for split in SPLITS}
    for split in ("train", "dev", "test"):
        assert dirs[split].speakers == sorted(size.seen)
    assert dirs["test_unseen_spk"].speakers == sorted(size.unseen)
    # sentence index = utterance id suffix; train/dev/test never share a sentence
    sentences = {split: {u.split("-")[1] for u in dd.utts} for split, dd in dirs.items()}
    assert not sentences["train"] & sentences["dev"]
    assert not sentences["train"] & (sentences["test"] | sentences["test_unseen_spk"])
    assert not sentences["dev"] & sentences["test"]
    assert len(dirs["train"].utts) == len(size.seen) * size.train_per_speaker
    assert dirs["dev"].text["slt-" + min(sentences["dev"])].isupper()
    assert dirs["train"].spk2gender == {"awb": "m", "kal16": "m", "slt": "f"}


def test_tiny_corpus_wavs_are_16k_mono_pcm16(tiny_corpus: Path):
    dd = DataDir.load(tiny_corpus / "data" / "train")
    for utt in dd.utts:
        info = sf.info(dd.wav_scp[utt])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert Path(dd.wav_scp[utt]).is_absolute()
        assert info.frames / 16000 == pytest.approx(dd.utt2dur[utt], abs=1e-9)


def test_stats_json(tiny_corpus: Path):
    stats = json.loads((tiny_corpus / "stats.json").read_text())
    train = DataDir.load(tiny_corpus / "data" / "train")
    assert stats["splits"]["train"]["utterances"] == len(train.utts)
    assert stats["splits"]["train"]["hours"] == pytest.approx(sum(train.utt2dur.values()) / 3600)
    assert stats["splits"]["train"]["utterances_per_speaker"] == {s: len(u) for s, u in train.spk2utt.items()}
    ctm = read_ctm(tiny_corpus / "ali" / "train" / "phones.ctm")
    counts = Counter(p for segs in ctm.values() for _, _, p in segs)
    assert stats["splits"]["train"]["phone_counts"] == dict(counts)
    assert stats["skipped"]["count"] == 0 and stats["seed"] == 0 and "flite" in stats["synthesizers"]
    # measured edge mismatches: kal16 audio stops >100 ms before its last pause ends
    assert stats["alignment_edge_ms"]["kal16"]["max"] < -80


# --- alignments ----------------------------------------------------------------------------


def test_ctm_tiles_each_utterance_exactly(tiny_corpus: Path):
    for split in SPLITS:
        dd = DataDir.load(tiny_corpus / "data" / split)
        ctm = read_ctm(tiny_corpus / "ali" / split / "phones.ctm")
        assert sorted(ctm) == dd.utts
        for utt, segments in ctm.items():
            assert segments[0][0] == 0.0
            assert segments[-1][1] == pytest.approx(dd.utt2dur[utt], abs=1e-6)
            for (_, end, _), (start, _, _) in zip(segments, segments[1:]):
                assert start == pytest.approx(end, abs=1e-6)
            assert {p for _, _, p in segments} <= set(PHONES)
            assert segments[0][2] == segments[-1][2] == "pau"


def test_frame_labels_match_kaldi_framing(tiny_corpus: Path):
    labels = read_kaldi_map(tiny_corpus / "ali" / "dev" / "frame_labels")
    dd = DataDir.load(tiny_corpus / "data" / "dev")
    assert sorted(labels) == dd.utts
    for utt, line in labels.items():
        samples = round(dd.utt2dur[utt] * 16000)
        assert len(line.split()) == 1 + (samples - 400) // 160
        assert set(line.split()) <= set(PHONES)


def test_pauses_are_silent_and_speech_starts_at_the_first_phone(tiny_corpus: Path):
    dd = DataDir.load(tiny_corpus / "data" / "train")
    ctm = read_ctm(tiny_corpus / "ali" / "train" / "phones.ctm")
    onset_errors, gaps = [], []
    for utt in dd.utts:
        wave = load_audio(dd.wav_scp[utt])
        frames = np.lib.stride_tricks.sliding_window_view(wave, 400)[::160]
        energy = 10 * np.log10(np.maximum((frames**2).mean(axis=1), 1e-10))  # dB per 10 ms frame
        labels = np.array(frame_labels(ctm[utt], num_frames=len(energy)))
        gaps.append(np.median(energy[labels != "pau"]) - np.median(energy[labels == "pau"]))
        onset = 0.0125 + 0.01 * np.argmax(energy > energy.max() - 30)
        first_phone = next(start for start, _, p in ctm[utt] if p != "pau")
        onset_errors.append(abs(onset - first_phone))
    # measured: pauses are 35-45 dB below speech; energy onsets within 0-60 ms of the CTM
    assert min(gaps) > 25
    assert np.median(onset_errors) < 0.03


def test_phone_classifier_on_fbank_beats_chance(tiny_corpus: Path):
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    # held-out sentences; the alignment as written, and moved by 100 ms
    x_train, y_train = _split_frames(tiny_corpus, "train", (0.0, 0.1))
    x_test, y_test = _split_frames(tiny_corpus, "test", (0.0, 0.1))
    acc = [
        LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.1).fit(x_train, train).score(x_test, test)
        for train, test in zip(y_train, y_test)
    ]
    majority = float(np.mean(y_test[0] == Counter(y_train[0]).most_common(1)[0][0]))
    # measured: 0.54 frame accuracy vs 0.12 for the majority class, 0.19 when moved
    assert acc[0] > 0.4 and acc[0] > 3 * majority
    assert acc[0] > acc[1] + 0.2


# --- determinism ---------------------------------------------------------------------------


def _tree(root: Path) -> dict[str, bytes]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "wav.scp":  # absolute paths: compare relative to the root
                data = data.replace(str(root).encode(), b"ROOT")
            files[str(path.relative_to(root))] = data
    return files


def test_same_seed_gives_identical_corpus(tiny_corpus: Path, tmp_path: Path):
    again = tmp_path / "again"
    make_synth(again, size="tiny", seed=0, nj=1, write_frame_labels=True)
    first, second = _tree(tiny_corpus), _tree(again)
    assert first.keys() == second.keys()
    assert any(name.endswith(".wav") for name in first)
    for name in first:  # text files and (flite) wav bytes alike
        assert first[name] == second[name], name


def test_seed_changes_the_draw():
    size = SIZES["default"]
    a, b = assign_sentences(1000, size, 0), assign_sentences(1000, size, 1)
    assert a == assign_sentences(1000, size, 0) and a != b
    train = {i for _, i in a["train"]}
    assert not train & {i for _, i in a["dev"]} and not train & {i for _, i in a["test_unseen_spk"]}
    assert len(a["train"]) == len(size.seen) * size.train_per_speaker
    with pytest.raises(DataError, match="sentences available"):
        assign_sentences(100, size, 0)


# --- bad input -----------------------------------------------------------------------------


def _fake_flite(bin_dir: Path, body: str) -> None:
    """A ``flite`` on PATH that runs ``body`` (bash) and otherwise calls the real flite."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "flite"
    script.write_text(f'#!/bin/bash\nargs="$*"\n{body}\nexec {FLITE} "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@needs_flite
def test_missing_synthesizer_names_the_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(DataError) as err:
        make_synth(tmp_path / "out", size="tiny")
    message = str(err.value)
    assert "flite not found on PATH" in message and "apt-get install flite" in message
    assert all(voice in message for voice in ("awb", "kal16", "slt", "rms"))
    assert not (tmp_path / "out").exists()
    # flite present, festival absent: festival and the festvox voices are named
    _fake_flite(empty, "")
    with pytest.raises(DataError) as err:
        make_synth(tmp_path / "out", size="small")
    message = str(err.value)
    assert "festival voice ked_diphone" in message and "flite voice" not in message
    assert "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts" in message


MICRO = SynthSize(seen=("slt",), unseen=("rms",), train_pool=4, train_per_speaker=4, dev=1, test=1, unseen_sentences=1)


@needs_flite
def test_failing_and_silent_sentences_are_skipped_and_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sentences = [f"Sentence number {w} is spoken here today." for w in ("one", "two", "three", "four", "five", "six")]
    train = sorted(i for _, i in assign_sentences(len(sentences), MICRO, 0)["train"])
    sentences[train[0]] = "The synthesizer will kaboom on this sentence."
    sentences[train[1]] = "..."  # flite reads nothing: a pause, no speech
    _fake_flite(tmp_path / "bin", '[[ "$args" == *kaboom* ]] && exit 3')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    stats = make_synth(tmp_path / "out", size=MICRO, sentences=sentences)
    reasons = {s["utt"]: s["reason"] for s in stats["skipped"]["utterances"]}
    assert reasons == {
        f"slt-{train[0]:05d}": "flite exited with status 3",
        f"slt-{train[1]:05d}": "no speech phones in the synthesizer's output",
    }
    assert stats["skipped"]["count"] == 2 and stats["splits"]["train"]["skipped"] == 2
    dd = DataDir.load(tmp_path / "out" / "data" / "train")
    assert len(dd.utts) == 2 and not set(reasons) & set(dd.utts)
    assert not any((tmp_path / "out" / "wav" / "slt" / f"{u}.wav").exists() for u in reasons)
    assert validate_data_dir(tmp_path / "out" / "data" / "train") == []


@needs_flite
def test_empty_split_is_an_error_and_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_flite(tmp_path / "bin", '[[ "$args" == *"-voice rms"* ]] && exit 1')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    sentences = [f"This is test sentence {w} of the corpus." for w in ("one", "two", "three", "four", "five", "six")]
    with pytest.raises(DataError, match="test_unseen_spk"):
        make_synth(tmp_path / "out", size=MICRO, sentences=sentences)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]


def test_refuses_to_replace_a_foreign_directory(tmp_path: Path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="not a synthetic corpus"):
        make_synth(tmp_path, size="tiny")
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_bad_options(tmp_path: Path):
    with pytest.raises(DataError, match="unknown size 'huge'"):
        make_synth(tmp_path / "o", size="huge")
    with pytest.raises(DataError, match="nj must be"):
        make_synth(tmp_path / "o", size="tiny", nj=0)
    leaky = SynthSize(("slt",), ("slt_hi",), 1, 1, 1, 1, 1)
    with pytest.raises(DataError, match="share a voice family"):
        make_synth(tmp_path / "o", size=leaky)


def test_cli_error_is_one_line(tmp_path: Path):
    r = subprocess.run(
        [sys.executable, "-m", "speechrep", "data", "make-synth", str(tmp_path / "o"), "--size", "huge"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["error: size: unknown size 'huge' (choose from tiny, small, default, many, large)"]


@needs_flite
def test_cli_make_synth_with_sentence_file(tmp_path: Path):
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("".join(f"Here is sentence number {n} of the list.\n\n" for n in range(10)), encoding="utf-8")
    run = [sys.executable, "-m", "speechrep", "data", "make-synth"]
    r = subprocess.run(
        [*run, str(tmp_path / "out"), "--size", "tiny", "--sentences", str(sentences), "--frame-labels"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "test_unseen_spk       2 utts" in r.stdout and "32 utterances" in r.stdout
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["sentences"] == "custom" and stats["num_sentences_available"] == 10
    assert (tmp_path / "out" / "ali" / "train" / "frame_labels").is_file()
    sentences.write_bytes(b"caf\xe9 au lait\n")
    r = subprocess.run([*run, str(tmp_path / "out2"), "--sentences", str(sentences)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith(f"error: {sentences}: cannot read sentences")
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out2").exists()
