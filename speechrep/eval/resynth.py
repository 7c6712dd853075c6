"""Copy-synthesis quality of vocoders on held-out utterances (MCD, log-F0, spectral
convergence, real-time factor; with the independent judges of :mod:`speechrep.eval.judges`,
whether the voice and the words survive)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from speechrep.errors import ConfigError, DataError

__all__ = ["vocoder_names", "score_copy_synthesis", "format_resynth_table"]

_KEYS = ("mcd_db", "logf0_rmse_cents", "logf0_corr", "mel_spectral_convergence", "real_time_factor")


def vocoder_names(specs: Sequence[str]) -> list[str]:
    """Names of the vocoders in the scores and output folders: ``griffinlim``, and ``neural``
    for a single neural vocoder; several are named by their experiment folder.

    Raises
    ------
    ConfigError
        Two vocoders with the same name.
    """
    neural = [s for s in specs if s != "griffinlim"]
    names = [s if s == "griffinlim" else ("neural" if len(neural) == 1 else Path(s).name) for s in specs]
    if len(set(names)) < len(names):
        raise ConfigError(f"two have the same name in {names}; give each its own folder name", field="vocoders")
    return names


def score_copy_synthesis(data_dir: str | Path, out_dir: str | Path, vocoders: Sequence[str], *,
                         max_utts: int = 20, judges: bool = False, judge_data: Sequence[str | Path] = (),
                         progress: bool = False) -> dict[str, dict[str, Any]]:
    """Resynthesise the VC log-mel of the first ``max_utts`` utterances of ``data_dir`` (0:
    all) with each vocoder (``griffinlim`` or a neural-vocoder experiment directory) and
    score it.

    Writes ``<out_dir>/<name>/<utt>.wav``. Frames are compared one to one (copy synthesis
    keeps the timing).

    With ``judges``, the independent judges (:func:`speechrep.eval.judges.independent_scores`)
    also score each vocoder's copies: each utterance is a "conversion" to its own speaker, so
    ``accept_rate`` is the share that passes verification as that speaker (threshold at the
    equal-error point of the real utterances of ``data_dir`` and ``judge_data``; the voice's
    centroid leaves the utterance out), ``target_accuracy`` the share taken for that speaker
    among the voices, and ``wer`` / ``source_wer`` the word error rates of the copies and of
    the originals. The texts come from ``judge_data`` (default: ``data_dir``): give there the
    English part of a multilingual set, the word judge being English. An utterance in whose
    original the speaker judge finds no speech is left out (``settings.left_out``).

    Returns
    -------
    ``{name: {mcd_db, logf0_rmse_cents, logf0_corr, mel_spectral_convergence,
    real_time_factor, utterances}}``: means over the utterances; the real-time factor of a
    second, timed pass. With ``judges``, also ``judges``: the judges' ``summary``,
    ``by_target`` (per voice) and ``settings``.

    Raises
    ------
    DataError
        No utterance in ``data_dir``.
    SpeechrepError
        ``judges`` without the judges' packages (before anything is written).
    """
    from speechrep.data.audio import iter_audio, write_wav
    from speechrep.eval.vc import f0_metrics, mel_cepstral_distortion, mel_cepstrum
    from speechrep.models.pitch import estimate_f0
    from speechrep.features.logmel import log_mel
    from speechrep.train.pretrained import load_vocoder

    names = vocoder_names(vocoders)
    if judges:
        from speechrep.eval.judges import SpeakerJudge, WordJudge

        WordJudge()  # a missing package fails here, before any output
        speaker_judge = SpeakerJudge()
    utts = []
    for utt, wave in iter_audio(data_dir, sample_rate=16000):
        utts.append((utt, wave))
        if len(utts) == max_utts:
            break
    if not utts:
        raise DataError("no utterances to resynthesise", path=data_dir)
    mels = [log_mel(wave) for _, wave in utts]
    if judges:  # once for every vocoder
        pairs, silent = _copy_pairs(data_dir, utts, speaker_judge)
    results = {}
    for name, spec in zip(names, vocoders):
        voc = load_vocoder(spec)
        mcd, cents, corr, sc = [], [], [], []
        for (utt, wave), mel in zip(utts, mels):
            out = voc.mel_to_wave(mel)
            write_wav(Path(out_dir) / name / f"{utt}.wav", out, voc.sample_rate)
            mel_out = log_mel(out)
            n = min(len(mel), len(mel_out))
            path = np.stack([np.arange(n), np.arange(n)], 1)
            mcd.append(mel_cepstral_distortion(mel_cepstrum(mel_out[:n]), mel_cepstrum(mel[:n]), path=path))
            f = f0_metrics(estimate_f0(out), estimate_f0(wave), path)
            cents.append(f["logf0_rmse_cents"])
            corr.append(f["logf0_corr"])
            a, b = np.exp(mel_out[:n]), np.exp(mel[:n])
            sc.append(float(np.linalg.norm(a - b) / np.linalg.norm(b)))
        # timed apart, once every input length has been seen: the first call with a new length
        # pays a one-time set-up that a later model of the same shapes would not, and so the
        # figures would depend on the order of the vocoders
        t0 = time.perf_counter()
        for mel in mels:
            voc.mel_to_wave(mel)
        seconds = time.perf_counter() - t0
        audio = sum(len(wave) for _, wave in utts) / 16000
        results[name] = {"mcd_db": float(np.mean(mcd)), "logf0_rmse_cents": float(np.nanmean(cents)),
                         "logf0_corr": float(np.nanmean(corr)), "mel_spectral_convergence": float(np.mean(sc)),
                         "real_time_factor": seconds / audio, "utterances": len(utts)}
        if judges:
            results[name]["judges"] = _judge_copies(pairs, silent, Path(out_dir) / name, judge_data or [data_dir],
                                                    progress=progress)
    return results


def _copy_pairs(data_dir: str | Path, utts: Sequence[tuple[str, np.ndarray]],
                speaker_judge: Any) -> tuple[list[Any], list[str]]:
    """Copy synthesis as conversion pairs (each utterance to its own speaker, no targets),
    and the utterances left out: those in whose original the speaker judge finds no speech
    (a short, quiet prompt has no voice to keep)."""
    from speechrep.data.kaldi_dir import DataDir
    from speechrep.data.pairs import ConversionPair

    dd = DataDir.load(data_dir)
    pairs, silent = [], []
    for utt, wave in utts:
        try:
            speaker_judge.embed(wave, name=dd.wav_scp[utt])
        except DataError:
            silent.append(utt)
            continue
        pairs.append(ConversionPair(id=utt, source=dd.wav_scp[utt], targets=[], source_speaker=dd.utt2spk[utt],
                                    target_speaker=dd.utt2spk[utt]))
    return pairs, silent


def _judge_copies(pairs: Sequence[Any], silent: Sequence[str], copies: Path, judge_data: Sequence[str | Path], *,
                  progress: bool) -> dict[str, Any]:
    """The independent judges' scores of the copies ``copies/<utt>.wav`` of :func:`_copy_pairs`'s
    pairs (see :func:`score_copy_synthesis`)."""
    from speechrep.eval.judges import independent_scores

    r = independent_scores(pairs, copies, judge_data=judge_data, progress=progress)
    return {"summary": r["summary"], "by_target": r["by_target"], "settings": {**r["settings"], "left_out": list(silent)}}


def format_resynth_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of :func:`score_copy_synthesis`'s results, one row per vocoder (and,
    with the judges, a table of their scores per vocoder and voice)."""
    w = max(11, *(len(name) for name in results))
    lines = [f"{'vocoder':<{w}} " + "  ".join(f"{k:>24}" for k in _KEYS)]
    lines += [f"{name:<{w}} " + "  ".join(f"{r[k]:>24.3f}" for k in _KEYS) for name, r in results.items()]
    judged = {name: r["judges"] for name, r in results.items() if "judges" in r}
    if judged:
        cols = [("accept_rate", "accept", "{:.1%}"), ("target_accuracy", "own voice", "{:.1%}"),
                ("target_similarity", "cos", "{:.3f}"), ("wer", "WER", "{:.1%}"), ("source_wer", "orig. WER", "{:.1%}")]
        rows = [(name, "all", j["summary"]) for name, j in judged.items()]
        rows += [(name, spk, r) for name, j in judged.items() for spk, r in j["by_target"].items()]
        v = max(5, *(len(spk) for _, spk, _ in rows))
        lines += ["", "independent judges (copy synthesis as a conversion to its own voice):",
                  f"{'vocoder':<{w}} {'voice':<{v}} {'utts':>5} " + " ".join(f"{h:>10}" for _, h, _ in cols)]
        lines += [f"{name:<{w}} {spk:<{v}} {r['pairs']:>5} "
                  + " ".join(f"{fmt.format(r[k]) if k in r else '-':>10}" for k, _, fmt in cols) for name, spk, r in rows]
    return "\n".join(lines) + "\n"
