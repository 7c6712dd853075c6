"""The many-voice corpus (sizes ``many`` and ``large``): every flite and festival voice of
Debian main, pseudo-speakers warped from them, and real people's Asterisk prompts.

Layout as :mod:`speechrep.data.synth.build`, with the splits::

    train, dev, test        seen voice families (dev/test sentences read by every seen
                            speaker of the language: parallel data)
    test_unseen_family      families never in the other splits: flite rms, festival
                            ked_diphone (both English, with CTMs), festival czech_machac
                            and the real Russian voice (ivr_ru)

Only English synthetic voices get phone CTMs (``ali/<split>/phones.ctm`` lists just
them); every utterance has a ``text``. Pseudo-speakers are new speakers of a seen
voice's family, so they stay on the side of their family in the splits: the voice
resampled by a warp factor (``<voice>_w<warp*100>``: formants and pitch times the
factor, durations divided by it, see :func:`speechrep.data.synth.voices.resample`), and
for flite, the pitch-only variants of the default corpus (``awb_hi``, ``slt_lo``, ...).

Voices that cannot be used are skipped, never written in part, and listed in
``stats.json`` (``skipped_voices``) with the reason: no text in their language in
Debian, every synthesis failed, or the pack failed to decode. Missing packages are an
error that names them (``bash tools/setup.sh --voices`` installs them).
"""

from __future__ import annotations

import dataclasses
import shutil
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from speechrep.data.audio import write_wav
from speechrep.data.corpora.common import check_output_dir
from speechrep.data.synth.real import (
    DOC_DIRS,
    PACKS,
    SOUNDS_DIR,
    RealPack,
    decode_g722,
    pack_prompts,
    read_transcripts,
    transcripts_path,
)
from speechrep.data.synth.text import FORTUNES_DIR, NATIVE_TEXTS, NO_TEXT, fortune_sentences, native_sentences
from speechrep.data.synth.voices import (
    SAMPLE_RATE,
    SPEAKERS,
    Synthesized,
    SynthSpeaker,
    check_voices,
    synthesize,
    synthesizer_versions,
)
from speechrep.errors import DataError
from speechrep.utils.io import atomic_dir, atomic_write_json

__all__ = ["UNSEEN_FAMILIES", "VOICE_SIZES", "VOICES", "VoiceSize", "decode_pack", "make_many"]

#: Split names of the many-voice corpus, in order.
SPLITS = ("train", "dev", "test", "test_unseen_family")


def _festival(id: str, voice: str, family: str, gender: str, package: str, language: str) -> SynthSpeaker:
    return SynthSpeaker(id, "festival", voice, family, gender, package, language=language)


_BY_ID = {s.id: s for s in SPEAKERS}

#: Base voices: every flite and festival voice in Debian main. flite's ``kal`` is the
#: 8 kHz build of kal16 (telephone band, same family). festvox-kallpc8k / kdlpc8k are the
#: 8 kHz builds of kal_diphone / ked_diphone under the same voice names, not new voices.
VOICES: tuple[SynthSpeaker, ...] = (
    _BY_ID["awb"],
    _BY_ID["kal16"],
    SynthSpeaker("kal8", "flite", "kal", "kal", "m", "flite"),
    _BY_ID["rms"],
    _BY_ID["slt"],
    _BY_ID["kal"],
    _BY_ID["ked"],
    _BY_ID["slt_hts"],
    _festival("lp_it", "lp_diphone", "lp", "f", "festvox-italp16k", "it"),
    _festival("pc_it", "pc_diphone", "pc", "m", "festvox-itapc16k", "it"),
    _festival("dita_cs", "czech_dita", "dita", "f", "festvox-czech-dita", "cs"),
    _festival("krb_cs", "czech_krb", "krb", "m", "festvox-czech-krb", "cs"),
    _festival("machac_cs", "czech_machac", "machac", "m", "festvox-czech-machac", "cs"),
    _festival("ph_cs", "czech_ph", "ph", "m", "festvox-czech-ph", "cs"),
    _festival("nsh_ru", "msu_ru_nsh_clunits", "nsh", "m", "festvox-ru", "ru"),
    _festival("lj_fi", "suo_fi_lj_diphone", "lj", "f", "festvox-suopuhe-lj", "fi"),
    _festival("mv_fi", "hy_fi_mv_diphone", "mv", "m", "festvox-suopuhe-mv", "fi"),
    _festival("ona_ca", "upc_ca_ona_hts", "ona", "f", "festvox-ca-ona-hts", "ca"),
    # one speaker recorded the three Indian-language diphone sets (NSK)
    _festival("nsk_hi", "hindi_NSK_diphone", "nsk", "m", "festvox-hi-nsk", "hi"),
    _festival("nsk_te", "telugu_NSK_diphone", "nsk", "m", "festvox-te-nsk", "te"),
    _festival("nsk_mr", "marathi_NSK_diphone", "nsk", "m", "festvox-mr-nsk", "mr"),
)

#: Families of ``test_unseen_family``: one base voice per engine and the real Russian voice.
UNSEEN_FAMILIES = ("rms", "ked", "machac", "ivr_ru")


@dataclass(frozen=True)
class VoiceSize:
    """How big a many-voice corpus to build.

    Attributes
    ----------
    train, dev, test : sentences each seen synthetic speaker reads per split (train: its
        own draw from the language's train pool; dev, test: the same for every speaker).
    unseen : sentences each unseen synthetic voice reads (the test sentences first).
    warps : warp factors of the pseudo-speakers made from each seen synthetic voice.
    real_train, real_dev, real_test, real_unseen : prompts per real voice in each split
        (``real_train`` ``None``: every prompt left after dev and test).
    """

    train: int
    dev: int
    test: int
    unseen: int
    warps: tuple[float, ...]
    real_train: int | None
    real_dev: int
    real_test: int
    real_unseen: int


#: ``many``: a few minutes with ``nj=2`` on 2 cores; ``large``: for longer runs.
VOICE_SIZES: dict[str, VoiceSize] = {
    "many": VoiceSize(20, 4, 4, 20, (0.88, 1.12), 40, 10, 10, 60),
    "large": VoiceSize(120, 20, 20, 100, (0.85, 0.92, 1.08, 1.16), None, 30, 30, 400),
}

# Utterances per synthesizer call (festival loads its voice once per call).
_CHUNK = 25


def _rng(seed: int, key: str) -> np.random.Generator:
    """A generator per (seed, language or speaker): draws do not depend on which other
    voices are in the corpus."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def _speakers(voice: SynthSpeaker, warps: Sequence[float]) -> list[SynthSpeaker]:
    """The voice and its pseudo-speakers: its pitch variants of the default corpus (flite
    ``awb_hi``, ...: F0 target and rate) and its warped copies (``<voice>_w<warp * 100>``)."""
    pitched = [s for s in SPEAKERS if (s.engine, s.voice) == (voice.engine, voice.voice) and s.f0_mean is not None]
    return [voice, *pitched] + [replace(voice, id=f"{voice.id}_w{round(w * 100):03d}", warp=w) for w in warps]


def _sentences(language: str, root: Path) -> list[str]:
    return fortune_sentences(root=root) if language == "en" else native_sentences(language, root=root)


def _required_packages(
    voices: Sequence[SynthSpeaker],
    packs: Sequence[RealPack],
    fortunes_dir: Path,
    sounds_dir: Path,
    doc_dirs: Sequence[Path],
) -> list[str]:
    """Debian packages (and the Python module) the selection needs that are missing."""
    missing = []
    try:
        check_voices(voices)
    except DataError:
        # which ones: one voice at a time (slower, so only once something is missing)
        for voice in voices:
            try:
                check_voices([voice])
            except DataError:
                missing += [voice.engine, voice.package]
    for language in sorted({v.language for v in voices}):
        package, categories = NATIVE_TEXTS.get(language, ("fortunes", ("wisdom",)))
        if not (fortunes_dir / (language if language != "en" else "") / categories[0]).is_file():
            missing.append(package)
    for pack in packs:
        if not (sounds_dir / pack.directory).is_dir():
            missing.append(pack.package)
        if transcripts_path(pack.language, doc_dirs) is None:
            missing.append(f"core-sounds-{pack.language}.txt.gz (docs of asterisk-core-sounds-{pack.language})")
    if packs:
        try:
            import G722  # noqa: F401
        except ImportError:
            missing.append("Python package g722")
    return list(dict.fromkeys(missing))


def decode_pack(pack: RealPack, items: Sequence[tuple[str, str]]) -> list[Synthesized]:
    """Decode ``(utt, G.722 file)`` items of one pack (a file that fails comes back with
    ``error`` set)."""
    results = []
    for utt, path in items:
        try:
            wave = decode_g722(path)
        except (OSError, ValueError) as e:
            results.append(Synthesized(utt, error=f"cannot decode {path}: {e}"))
            continue
        results.append(Synthesized(utt, wave, None, duration=wave.size / SAMPLE_RATE))
    return results


def _work(speaker: SynthSpeaker | RealPack, items: list[tuple[str, str]]) -> list[Synthesized]:
    return decode_pack(speaker, items) if isinstance(speaker, RealPack) else synthesize(speaker, items)


def make_many(
    out: str | Path,
    *,
    size: str | VoiceSize = "many",
    seed: int = 0,
    nj: int = 1,
    voices: Sequence[str] | None = None,
    fortunes_dir: str | Path = FORTUNES_DIR,
    sounds_dir: str | Path = SOUNDS_DIR,
    doc_dirs: Sequence[Path] = DOC_DIRS,
    progress: bool = False,
) -> dict:
    """Generate the many-voice corpus in ``out`` (layout in the module docstring).

    Parameters
    ----------
    out : output directory (built under a temporary name, renamed when complete).
    size : ``"many"``, ``"large"`` (:data:`VOICE_SIZES`) or a custom :class:`VoiceSize`.
    seed : seeds the sentence and prompt draws.
    nj : parallel jobs.
    voices : base voice and pack ids to use (default: all); for small builds in tests.
    fortunes_dir, sounds_dir, doc_dirs : where the texts, prompt packs and prompt
        transcripts are (the Debian locations by default).
    progress : show a progress bar.

    Returns
    -------
    the statistics written to ``stats.json``.

    Raises
    ------
    DataError
        Unknown size or voice, missing packages (naming them), ``out`` holding something
        else, or a split left without any utterance.
    """
    from speechrep.data.synth.build import _run_jobs, _write_corpus

    if isinstance(size, str) and size not in VOICE_SIZES:
        raise DataError(f"unknown size {size!r} (choose from {', '.join(VOICE_SIZES)})", field="size")
    preset = VOICE_SIZES[size] if isinstance(size, str) else size
    known = {v.id for v in VOICES} | {p.id for p in PACKS}
    unknown = sorted(set(voices or ()) - known)
    if unknown:
        raise DataError(f"unknown voices {', '.join(unknown)}", field="voices")
    chosen = set(voices) if voices is not None else known
    out = Path(out).resolve()
    fortunes_dir, sounds_dir = Path(fortunes_dir), Path(sounds_dir)
    skipped_voices: list[dict] = []
    base = []
    for voice in VOICES:
        if voice.id not in chosen:
            continue
        if voice.language in NO_TEXT:
            skipped_voices.append(_skip(voice, NO_TEXT[voice.language]))
        else:
            base.append(voice)
    packs = [p for p in PACKS if p.id in chosen]
    missing = _required_packages(base, packs, fortunes_dir, sounds_dir, doc_dirs)
    if missing:
        raise DataError(
            f"the many-voice corpus needs: {', '.join(missing)}; install them with 'bash tools/setup.sh --voices'",
            field="size",
        )
    check_output_dir(out, marker="stats.json", what="a synthetic corpus")

    # who reads what: (utt, speaker, text) per split, and per speaker its (utt, text) items
    entries: dict[str, list[tuple[str, str, str]]] = {split: [] for split in SPLITS}
    jobs: list[tuple[SynthSpeaker | RealPack, list[tuple[str, str]]]] = []
    family_of: dict[str, tuple[str, str, str]] = {}  # speaker -> (engine, family, base voice)
    gender: dict[str, str] = {}
    texts: dict[str, list[str]] = {}
    for voice in base:
        if voice.language not in texts:
            texts[voice.language] = _sentences(voice.language, fortunes_dir)
        pool = texts[voice.language]
        order = _rng(seed, voice.language).permutation(len(pool))
        held = max(preset.test, preset.unseen)
        test, dev, train = order[: preset.test], order[held : held + preset.dev], order[held + preset.dev :]
        unseen = voice.family in UNSEEN_FAMILIES
        speakers = [voice] if unseen else _speakers(voice, preset.warps)
        for spk in speakers:
            draws = (
                {"test_unseen_family": order[: preset.unseen]}
                if unseen
                else {
                    "train": _rng(seed, spk.id).choice(train, size=min(preset.train, len(train)), replace=False),
                    "dev": dev,
                    "test": test,
                }
            )
            items = _assign(entries, spk.id, draws, [(text, text) for text in pool])
            jobs += [(spk, items[i : i + _CHUNK]) for i in range(0, len(items), _CHUNK)]
            family_of[spk.id] = (spk.engine, spk.family, voice.id)
            gender[spk.id] = spk.gender
    english = read_transcripts(transcripts_path("en", doc_dirs)) if packs else {}
    for pack in list(packs):
        prompts = pack_prompts(pack, read_transcripts(transcripts_path(pack.language, doc_dirs)), english, sounds_dir)
        if not prompts:
            skipped_voices.append(_skip(pack, "pack failed to decode (no prompt files with a transcript)"))
            packs.remove(pack)
            continue
        order = _rng(seed, pack.id).permutation(len(prompts))
        if pack.family in UNSEEN_FAMILIES:
            draws = {"test_unseen_family": order[: preset.real_unseen]}
        else:
            rest = order[preset.real_test + preset.real_dev :]
            draws = {
                "train": rest if preset.real_train is None else rest[: preset.real_train],
                "dev": order[preset.real_test : preset.real_test + preset.real_dev],
                "test": order[: preset.real_test],
            }
        items = _assign(entries, pack.id, draws, [(text, path) for path, text in prompts])
        # decoding is fast: bigger chunks
        jobs += [(pack, items[i : i + 4 * _CHUNK]) for i in range(0, len(items), 4 * _CHUNK)]
        family_of[pack.id] = ("asterisk", pack.family, pack.id)
        gender[pack.id] = pack.gender
    # costliest first (festival voices load per call) so that jobs finish together
    jobs.sort(key=lambda job: {"festival": 0, "flite": 1}.get(getattr(job[0], "engine", ""), 2))

    with atomic_dir(out) as tmp:
        done: dict[str, Synthesized] = {}

        def store(speaker: SynthSpeaker | RealPack, result: Synthesized) -> None:
            if result.wave is not None:
                write_wav(tmp / "wav" / speaker.id / f"{result.utt}.wav", result.wave, SAMPLE_RATE)
                result.wave = None  # written; keep memory flat
            done[result.utt] = result

        _run_jobs(jobs, nj=nj, store=store, progress=progress, work=_work)

        # a base voice (or pack) without a single good utterance is skipped as a whole
        outcome: dict[str, Counter[str]] = {}
        for split in SPLITS:
            for utt, spk, _ in entries[split]:
                outcome.setdefault(family_of[spk][2], Counter())[done[utt].error or ""] += 1
        failed = {key for key, counts in outcome.items() if "" not in counts}
        for voice in base:
            if voice.id in failed:
                reason = outcome[voice.id].most_common(1)[0][0]
                skipped_voices.append(_skip(voice, f"synthesis failed on every sentence ({reason})"))
        for pack in packs:
            if pack.id in failed:
                reason = outcome[pack.id].most_common(1)[0][0]
                skipped_voices.append(_skip(pack, f"pack failed to decode ({reason})"))
        for spk in [s for s, (_, _, key) in family_of.items() if key in failed]:
            shutil.rmtree(tmp / "wav" / spk, ignore_errors=True)
            del family_of[spk]
        kept = {split: [e for e in entries[split] if e[1] in family_of] for split in SPLITS}

        stats = _write_corpus(tmp, out, done, kept, gender, False)
        stats.update(
            corpus="speechrep-synth",
            size=size if isinstance(size, str) else dataclasses.asdict(size),
            seed=seed,
            sample_rate=SAMPLE_RATE,
            voices=_voice_table(family_of, kept),
            skipped_voices=sorted(skipped_voices, key=lambda v: v["voice"]),
            sentences_available={language: len(pool) for language, pool in sorted(texts.items())},
            synthesizers=synthesizer_versions(v.engine for v in base if v.id not in failed),
        )
        atomic_write_json(tmp / "stats.json", stats)
    return stats


def _assign(
    entries: dict[str, list[tuple[str, str, str]]],
    speaker: str,
    draws: dict[str, np.ndarray],
    pool: Sequence[tuple[str, str]],
) -> list[tuple[str, str]]:
    """Add the speaker's utterances to ``entries``; return its ``(utt, source)`` work items.

    ``draws``: split -> indices into ``pool``, a list of ``(text, source)`` (the sentence
    to synthesize, or a prompt file to decode). Utterance ids are ``<speaker>-<index>``, so
    the same sentence has the same suffix for every speaker of a language.
    """
    items = []
    for split, indices in draws.items():
        for index in sorted(int(i) for i in indices):
            utt = f"{speaker}-{index:05d}"
            entries[split].append((utt, speaker, pool[index][0]))
            items.append((utt, pool[index][1]))
    return items


def _skip(voice: SynthSpeaker | RealPack, reason: str) -> dict:
    """A ``skipped_voices`` entry of ``stats.json``."""
    return {
        "voice": voice.id,
        "engine": getattr(voice, "engine", "asterisk"),
        "family": voice.family,
        "language": voice.language,
        "package": voice.package,
        "reason": reason,
    }


def _voice_table(family_of: dict[str, tuple[str, str, str]], entries: dict[str, list[tuple[str, str, str]]]) -> dict:
    """``engine -> family -> {"speakers": [...], "splits": [...]}`` for the speakers written."""
    splits: dict[str, set[str]] = {}
    for split, split_entries in entries.items():
        for _, spk, _ in split_entries:
            splits.setdefault(spk, set()).add(split)
    table: dict[str, dict[str, dict]] = {}
    for spk, (engine, family, _) in sorted(family_of.items()):
        row = table.setdefault(engine, {}).setdefault(family, {"speakers": [], "splits": set()})
        row["speakers"].append(spk)
        row["splits"] |= splits.get(spk, set())
    for families in table.values():
        for row in families.values():
            row["splits"] = [s for s in SPLITS if s in row["splits"]]
    return table
