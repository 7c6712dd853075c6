"""Independent judges of voice conversion: models pretrained on real speech (``speechrep[judges]``).

The in-house scorers of :mod:`speechrep.eval.vc` learn from the corpus the conversion
models learn from; these judges never saw it:

- **speaker judge**: Resemblyzer's GE2E speaker encoder (its wheel ships the weights,
  trained on thousands of real speakers). Every test voice (a speaker of the pairs file or
  of ``judge_data``) is enrolled with the centroid of its utterances; for each pair the
  centroids leave out the utterances that pair uses (its source, its targets, its
  reference), so the target is judged against speech the conversion never saw. Reported:
  cosine to the target and to the source centroid; *verification*: accepted as the target
  when the cosine reaches the equal-error threshold of real utterances of the test voices
  (each real utterance against its own speaker's centroid without it, and against every
  other voice's centroid); *closed-set identification* among the test voices: taken for the
  target, taken for the source.
- **word judge**: pocketsphinx with its en-us acoustic and language models transcribes
  the converted speech; the word error rate (WER) against the source text stands beside the
  WER of the unconverted source (and of copy synthesis), so a conversion is charged only
  with the words it loses. Source texts come from the ``text`` of ``judge_data`` (matched on
  the ``wav.scp`` entry, the path that the pairs file names).

:func:`score_vc` runs the in-house judges (:func:`speechrep.eval.vc.evaluate_vc`), these,
or both into one JSON: the independent scores sit under ``independent`` with the layout of
the in-house ones (``summary``, ``by_target``, ``by_group`` for seen/unseen targets,
``pairs``, ``settings``).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechrep.data.align import decode_utterance, english_words, pcm16, pocketsphinx_decoder, require_judge_package
from speechrep.data.pairs import ConversionPair
from speechrep.errors import ConfigError, DataError
from speechrep.eval.judge_cache import JudgeCache
from speechrep.eval.vc import edit_distance, equal_error_rate, speaker_scores

log = logging.getLogger("speechrep.eval")

__all__ = [
    "JUDGE_CHOICES", "word_error_rate", "eer_threshold", "SpeakerJudge", "WordJudge",
    "judges_installed", "resolve_judges", "independent_scores", "score_vc", "format_independent",
]

#: Values of ``--judges``.
JUDGE_CHOICES = ("independent", "inhouse", "both")
_SR = 16000


# ----------------------------------------------------------------------------- metrics
def word_error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Corpus-level WER: total word edit distance over total reference words (in [0, inf)).

    ``refs=[["a", "b", "c"]]``, ``hyps=[["a", "x"]]``: one substitution and one deletion
    over three words, 2/3.
    """
    total = sum(len(r) for r in refs)
    if total == 0:
        raise ValueError("word error rate needs non-empty references")
    return sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True)) / total


def eer_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold of the equal error rate: accept a trial when ``score >= threshold``.

    Parameters
    ----------
    scores : ``(trials,)`` higher = more likely the same speaker.
    labels : ``(trials,)`` 1 for target trials, 0 for non-target trials (both present).

    Returns
    -------
    float
        The candidate threshold (a trial score, or the midpoint of two neighbouring ones)
        where false acceptance and false rejection are closest; the lowest such.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    tar, non = np.sort(scores[labels]), np.sort(scores[~labels])
    if not len(tar) or not len(non):
        raise ValueError("an EER threshold needs both target and non-target trials")
    uniq = np.unique(scores)
    candidates = np.concatenate([uniq, (uniq[1:] + uniq[:-1]) / 2])
    frr = np.searchsorted(tar, candidates, side="left") / len(tar)
    far = 1.0 - np.searchsorted(non, candidates, side="left") / len(non)
    gap = np.abs(frr - far)
    return float(np.min(candidates[gap == gap.min()]))


# ----------------------------------------------------------------------------- judges
def judges_installed() -> bool:
    """Whether the packages of the independent judges import."""
    from speechrep.errors import SpeechrepError

    try:
        require_judge_package("resemblyzer")
        require_judge_package("pocketsphinx")
    except SpeechrepError:
        return False
    return True


class SpeakerJudge:
    """Resemblyzer's pretrained GE2E speaker encoder on CPU: 256-dim embeddings of 16 kHz waves."""

    def __init__(self) -> None:
        from importlib.metadata import version

        resemblyzer = require_judge_package("resemblyzer")
        self._rz = resemblyzer
        self.encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
        #: what the results JSON names as the speaker judge
        self.description = f"resemblyzer {version('resemblyzer')} (GE2E, pretrained)"

    def embed(self, wave: np.ndarray, *, name: str | Path = "audio") -> np.ndarray:
        """``(256,)`` unit-norm embedding of ``(samples,)`` 16 kHz audio.

        The wave goes through Resemblyzer's own preparation (volume normalisation, long
        silences cut by a voice activity detector), as the encoder was trained.

        Raises
        ------
        DataError
            The detector finds no speech in it (naming ``name``).
        """
        import torch

        wav = self._rz.preprocess_wav(np.asarray(wave, dtype=np.float32), source_sr=_SR)
        if len(wav) < _SR // 10:
            raise DataError("no speech found by the speaker judge's voice activity detector", path=name)
        # one thread: the encoder runs a small LSTM on a few 1.6 s windows, where more threads
        # only add synchronisation (15x slower with two threads on a busy 2-core machine)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return np.asarray(self.encoder.embed_utterance(wav), dtype=np.float64)
        finally:
            torch.set_num_threads(threads)


class WordJudge:
    """pocketsphinx's en-us recogniser (acoustic model, CMU dictionary, trigram LM)."""

    def __init__(self) -> None:
        from importlib.metadata import version

        self.decoder = pocketsphinx_decoder(language_model=True)
        #: what the results JSON names as the word judge
        self.description = f"pocketsphinx {version('pocketsphinx')} (en-us)"

    def words(self, wave: np.ndarray) -> list[str]:
        """The recognised words of ``(samples,)`` 16 kHz audio (fillers and silences dropped)."""
        decode_utterance(self.decoder, pcm16(wave))
        hyp = self.decoder.hyp()
        return [] if hyp is None else english_words(hyp.hypstr)


def resolve_judges(choice: str | None, *, inhouse_models: bool) -> str:
    """The judges to run: ``choice``; by default the in-house ones when their models are
    given (what a command line that names them asked for, as before the independent judges
    existed), else the independent ones when installed, else the in-house ones.

    Raises
    ------
    ConfigError
        An unknown choice; in-house judges without a speaker model; independent judges alone
        with in-house models given (they would be ignored).
    """
    if choice is None:
        choice = "inhouse" if inhouse_models or not judges_installed() else "independent"
    if choice not in JUDGE_CHOICES:
        raise ConfigError(f"unknown judges '{choice}' (choose {', '.join(JUDGE_CHOICES)})", field="--judges")
    if choice in ("inhouse", "both") and not inhouse_models:
        raise ConfigError(f"the in-house judges need --speaker-model (the independent ones: "
                          f"pip install 'speechrep[judges]', --judges independent)", field="--judges")
    if choice == "independent" and inhouse_models:
        raise ConfigError("--judges independent does not use --speaker-model/--phone-model (use --judges both)",
                          field="--judges")
    return choice


# ----------------------------------------------------------------------------- scoring
def _described(judge: Any) -> str:
    """What the results JSON (and the cache) name a judge: its description, else its class."""
    return getattr(judge, "description", type(judge).__name__)


def _judge_data(dirs: Iterable[str | Path]) -> tuple[dict[str, str], dict[str, str], dict[str, Any]]:
    """``(speaker, text, data)`` of data directories, keyed by their ``wav.scp`` entries."""
    from speechrep.data.kaldi_dir import DataDir

    speaker: dict[str, str] = {}
    text: dict[str, str] = {}
    loaded: dict[str, Any] = {}
    for d in dirs:
        dd = DataDir.load(d)
        if dd.segments is not None:
            raise DataError("segments are not supported here: one recording per utterance", path=dd.path,
                            field="segments")
        loaded[str(d)] = dd
        for utt in dd.utts:
            key = dd.wav_scp[utt]
            speaker[key] = dd.utt2spk[utt]
            if dd.text is not None and utt in dd.text:
                text[key] = dd.text[utt]
    return speaker, text, loaded


def independent_scores(
    pairs: str | Path | Sequence[ConversionPair],
    converted_dir: str | Path,
    *,
    judge_data: Sequence[str | Path] = (),
    resynth_dir: str | Path | None = None,
    seen_speakers: Iterable[str] | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score converted utterances ``converted_dir/<id>.wav`` with the independent judges.

    Parameters
    ----------
    pairs : pairs file (:func:`speechrep.data.pairs.read_pairs`) with ``source_speaker`` and
        ``target_speaker``, or its pairs (copy synthesis: each utterance a pair with no
        targets, its own speaker as source and target).
    converted_dir : one ``<id>.wav`` per pair.
    judge_data : data directories of real utterances of the test voices (``wav.scp``,
        ``utt2spk``; ``text`` for the WER): more enrolment speech, more voices to be taken
        for, and the source texts. Without them the voices are enrolled from the pairs'
        audio alone and no WER is computed.
    resynth_dir : copy-synthesised sources ``<id>.wav``: their WER too.
    seen_speakers : the VC model's training speakers: scores also by ``seen`` / ``unseen``
        target in ``by_group``.
    cache : a :class:`~speechrep.eval.judge_cache.JudgeCache` directory: embeddings and
        transcripts of waves judged before are read from it (scores of several systems on
        the same voices enrol them once).

    Returns
    -------
    dict
        ``summary``, ``by_target`` (per target voice), ``by_group`` (with ``seen_speakers``),
        ``pairs`` (per pair) and ``settings`` (threshold, EER and accept rate of the real
        utterances, judge versions; ``enrolment_skipped``: real utterances in which the
        speaker judge's voice activity detector found no speech, left out). Rates:
        ``accept_rate`` (verification), ``target_accuracy`` (taken for the target), ``source_rate`` (taken for the source),
        ``target_similarity`` / ``source_similarity`` (cosines), ``wer`` / ``source_wer`` /
        ``resynth_wer`` over the pairs with a source text.

    Raises
    ------
    DataError
        A pair without speakers, an unreadable or missing wave, a voice with no utterance
        left to enrol once a pair's own are set aside, a wave in two voices, fewer than two
        voices, or no voice with two utterances (no EER threshold).
    SpeechrepError
        The judges' packages are not installed.
    """
    from speechrep.data.pairs import read_input_audio, read_pairs
    from speechrep.utils.progress import progress_bar
    from speechrep.data.audio import iter_audio

    store = None if cache is None else JudgeCache(cache)
    speaker_judge = SpeakerJudge()

    def embed(wave: np.ndarray, name: str | Path) -> np.ndarray:
        if store is None:
            return speaker_judge.embed(wave, name=name)
        return store.embedding(_described(speaker_judge), wave, lambda: speaker_judge.embed(wave, name=name))

    def words(wave: np.ndarray) -> list[str]:
        if store is None:
            return word_judge.words(wave)
        return store.words(_described(word_judge), wave, lambda: word_judge.words(wave))

    pair_list = read_pairs(pairs) if isinstance(pairs, (str, Path)) else list(pairs)
    if not isinstance(pairs, (str, Path)):
        pairs = converted_dir  # what the errors name
    missing = [p.id for p in pair_list if not (p.source_speaker and p.target_speaker)]
    if missing:
        raise DataError(f"pair '{missing[0]}' has no source_speaker/target_speaker", path=pairs)
    converted_dir = Path(converted_dir)
    spk_of, text_of, loaded = _judge_data(judge_data)
    for p in pair_list:
        for path, spk in [(p.source, p.source_speaker)] + [(t, p.target_speaker) for t in p.targets] + (
                [(p.reference, p.target_speaker)] if p.reference else []):
            if spk_of.setdefault(path, spk) != spk:
                raise DataError(f"pair '{p.id}': {path} is speaker '{spk}' here and '{spk_of[path]}' in --judge-data",
                                path=pairs)
    speakers = sorted(set(spk_of.values()))
    if len(speakers) < 2:
        raise DataError("the speaker judge needs at least two voices", path=pairs)

    # one embedding per real utterance (pairs' audio and judge data)
    # (a real utterance in which the detector finds no speech is left out of the enrolment
    # and listed; e.g. a short, quiet prompt that the converter could still pool with others)
    emb: dict[str, np.ndarray] = {}
    skipped: set[str] = set()
    bar = progress_bar(total=len(spk_of), desc="enrol", unit="utt", enabled=progress)

    def enrol(key: str, wave: np.ndarray) -> None:
        try:
            emb[key] = embed(wave, key)
        except DataError:
            skipped.add(key)
            log.warning("%s: no speech found by the speaker judge; left out of the enrolment", key)
        bar.update()

    for dd in loaded.values():
        for utt, wave in iter_audio(dd, sample_rate=_SR):
            if dd.wav_scp[utt] not in emb and dd.wav_scp[utt] not in skipped:
                enrol(dd.wav_scp[utt], wave)
    for key in spk_of:
        if key not in emb and key not in skipped:
            enrol(key, read_input_audio(key, sample_rate=_SR, field_name="enrolment"))
    bar.close()
    index = {s: k for k, s in enumerate(speakers)}
    sums = np.zeros((len(speakers), len(next(iter(emb.values())))))
    counts = np.zeros(len(speakers))
    for key, e in emb.items():
        sums[index[spk_of[key]]] += e
        counts[index[spk_of[key]]] += 1

    # the verification threshold: real utterances against the voices' centroids
    trial_scores, trial_labels = [], []
    for key, e in emb.items():
        k = index[spk_of[key]]
        cents = sums.copy()
        n = counts.copy()
        cents[k] -= e  # its own voice without it
        n[k] -= 1
        ok = n > 0
        s = speaker_scores(e[None], cents[ok] / n[ok, None])[0]
        trial_scores.append(s)
        trial_labels.append(np.flatnonzero(ok) == k)
    scores_real, labels_real = np.concatenate(trial_scores), np.concatenate(trial_labels)
    if not labels_real.any():
        raise DataError("no voice has two utterances: no verification threshold (give more with --judge-data)",
                        path=pairs)
    threshold = eer_threshold(scores_real, labels_real)

    word_judge = WordJudge() if text_of else None
    src_words: dict[str, list[str]] = {}
    rows: list[dict[str, Any]] = []
    for p in progress_bar(pair_list, desc="judge", unit="pair", enabled=progress):
        wave = read_input_audio(converted_dir / f"{p.id}.wav", sample_rate=_SR, field_name="converted")
        e = embed(wave, converted_dir / f"{p.id}.wav")
        cents, n = sums.copy(), counts.copy()
        for key in {p.source, *p.targets, *([p.reference] if p.reference else [])} - skipped:
            cents[index[spk_of[key]]] -= emb[key]
            n[index[spk_of[key]]] -= 1
        for role, spk in (("target", p.target_speaker), ("source", p.source_speaker)):
            if n[index[spk]] < 1:
                raise DataError(f"pair '{p.id}': the {role} voice '{spk}' has no utterance that the pair does not "
                                "use, to enrol it (give more with --judge-data)", path=pairs)
        ok = n > 0
        voices = [s for s, keep in zip(speakers, ok) if keep]
        sim = dict(zip(voices, speaker_scores(e[None], cents[ok] / n[ok, None])[0].tolist()))
        row: dict[str, Any] = {
            "id": p.id, "source_speaker": p.source_speaker, "target_speaker": p.target_speaker,
            "target_similarity": sim[p.target_speaker], "source_similarity": sim[p.source_speaker],
            "accepted": sim[p.target_speaker] >= threshold, "predicted_speaker": max(sim, key=sim.get),
        }
        ref_text = text_of.get(p.source)
        if word_judge is not None and ref_text is not None:
            row["ref_words"] = english_words(ref_text)
            row["hyp_words"] = words(wave)
            if p.source not in src_words:
                src_words[p.source] = words(read_input_audio(p.source, sample_rate=_SR, field_name="source"))
            row["source_words"] = src_words[p.source]
            if resynth_dir is not None:
                rs = read_input_audio(Path(resynth_dir) / f"{p.id}.wav", sample_rate=_SR, field_name="resynthesis")
                row["resynth_words"] = words(rs)
        rows.append(row)

    def rates(idx: Sequence[int]) -> dict[str, Any]:
        sel = [rows[k] for k in idx]
        out: dict[str, Any] = {
            "pairs": len(sel),
            "accept_rate": float(np.mean([r["accepted"] for r in sel])),
            "target_accuracy": float(np.mean([r["predicted_speaker"] == r["target_speaker"] for r in sel])),
            "source_rate": float(np.mean([r["predicted_speaker"] == r["source_speaker"] for r in sel])),
            "target_similarity": float(np.mean([r["target_similarity"] for r in sel])),
            "source_similarity": float(np.mean([r["source_similarity"] for r in sel])),
        }
        worded = [r for r in sel if "hyp_words" in r and r["ref_words"]]
        if worded:
            out["wer_pairs"] = len(worded)
            refs = [r["ref_words"] for r in worded]
            for key, col in (("wer", "hyp_words"), ("source_wer", "source_words"), ("resynth_wer", "resynth_words")):
                if col in worded[0]:
                    out[key] = word_error_rate(refs, [r[col] for r in worded])
        return out

    by_target = {}
    for spk in sorted({p.target_speaker for p in pair_list}):
        idx = [k for k, p in enumerate(pair_list) if p.target_speaker == spk]
        misses = Counter(rows[k]["predicted_speaker"] for k in idx if rows[k]["predicted_speaker"] != spk)
        by_target[spk] = {**rates(idx), "taken_for": dict(misses.most_common())}
    result: dict[str, Any] = {"summary": {**rates(range(len(rows))), "speakers": len(speakers)},
                              "by_target": by_target, "pairs": rows}
    if seen_speakers is not None:
        seen = set(seen_speakers)
        groups = {"seen": [k for k, p in enumerate(pair_list) if p.target_speaker in seen],
                  "unseen": [k for k, p in enumerate(pair_list) if p.target_speaker not in seen]}
        result["by_group"] = {g: rates(idx) for g, idx in groups.items() if idx}
    result["settings"] = {
        "speaker_judge": _described(speaker_judge),
        "word_judge": None if word_judge is None else _described(word_judge),
        "judge_data": [str(d) for d in judge_data],
        "threshold": threshold,
        "real_eer": equal_error_rate(scores_real, labels_real),
        "real_accept_rate": float(np.mean(scores_real[labels_real] >= threshold)),
        "real_false_accept_rate": float(np.mean(scores_real[~labels_real] >= threshold)),
        "real_utterances": len(emb),
        "enrolment_skipped": sorted(skipped),
        "voices": speakers,
        "source_texts": sum(p.source in text_of for p in pair_list),
    }
    return result


def score_vc(
    pairs: str | Path,
    converted_dir: str | Path,
    *,
    judges: str | None = None,
    speaker_model: str | Path | None = None,
    phone_model: str | Path | Sequence[str | Path] | None = None,
    judge_data: Sequence[str | Path] = (),
    resynth_dir: str | Path | None = None,
    f0: bool = True,
    enrol_targets: int | None = None,
    seen_speakers: Iterable[str] | None = None,
    judge_cache: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Score voice conversion with the in-house judges, the independent ones, or both.

    Parameters
    ----------
    judges : ``independent``, ``inhouse``, ``both`` or None (:func:`resolve_judges`).
    speaker_model, phone_model, f0, enrol_targets : the in-house judges
        (:func:`speechrep.eval.vc.evaluate_vc`).
    judge_data, judge_cache : the independent judges' data directories and cache directory
        (``judge_data`` and ``cache`` of :func:`independent_scores`).
    pairs, converted_dir, resynth_dir, seen_speakers : for both.

    Returns
    -------
    dict
        :func:`speechrep.eval.vc.evaluate_vc`'s result (in-house judges) with the independent
        judges' result under ``independent``, or that alone in ``independent`` (with the
        shared ``settings``); ``settings.judges`` says which ran.
    """
    from speechrep.eval.vc import evaluate_vc

    choice = resolve_judges(judges, inhouse_models=speaker_model is not None or bool(phone_model))
    seen = None if seen_speakers is None else sorted(set(seen_speakers))
    result: dict[str, Any] = {"settings": {}}
    if choice in ("inhouse", "both"):
        result = evaluate_vc(pairs, converted_dir, speaker_model=speaker_model, phone_model=phone_model,
                             resynth_dir=resynth_dir, f0=f0, enrol_targets=enrol_targets, seen_speakers=seen,
                             progress=progress)
    if choice in ("independent", "both"):
        result["independent"] = independent_scores(pairs, converted_dir, judge_data=judge_data,
                                                   resynth_dir=resynth_dir, seen_speakers=seen, cache=judge_cache,
                                                   progress=progress)
    result["settings"]["judges"] = choice
    return result


def format_independent(result: dict[str, Any]) -> str:
    """Plain-text table of :func:`independent_scores`: all pairs, seen / unseen targets, and
    every target voice (verification accept, taken for target / source, cosines, WERs)."""
    from speechrep.eval.vc import _text_table

    rows = [("all pairs", result["summary"])]
    rows += [(f"{g} targets", r) for g, r in result.get("by_group", {}).items()]
    rows += [(f"target {spk}", r) for spk, r in result["by_target"].items()]
    cols = [("pairs", "pairs", "{}"), ("accept_rate", "accept", "{:.1%}"), ("target_accuracy", "as target", "{:.1%}"),
            ("source_rate", "as source", "{:.1%}"), ("target_similarity", "tgt cos", "{:.3f}"),
            ("source_similarity", "src cos", "{:.3f}"), ("wer", "WER", "{:.1%}"),
            ("source_wer", "src WER", "{:.1%}"), ("resynth_wer", "resyn WER", "{:.1%}")]
    used = [c for c in cols if any(c[0] in r for _, r in rows)]
    body = [[name] + ["-" if r.get(k) is None or (isinstance(r.get(k), float) and math.isnan(r[k]))
                      else fmt.format(r[k]) for k, _, fmt in used] for name, r in rows]
    s = result["settings"]
    note = (f"independent judges: {s['speaker_judge']}; {s['word_judge'] or 'no word judge (no source text)'}; "
            f"threshold {s['threshold']:.3f} (EER of {s['real_utterances']} real utterances {s['real_eer']:.1%})")
    return note + "\n" + _text_table(["independent judges"] + [c[1] for c in used], body)
