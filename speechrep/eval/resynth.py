"""Copy-synthesis quality of vocoders on held-out utterances (MCD, log-F0, spectral
convergence, real-time factor)."""

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
                         max_utts: int = 20) -> dict[str, dict[str, Any]]:
    """Resynthesise the VC log-mel of the first ``max_utts`` utterances of ``data_dir`` with
    each vocoder (``griffinlim`` or a neural-vocoder experiment directory) and score it.

    Writes ``<out_dir>/<name>/<utt>.wav``. Frames are compared one to one (copy synthesis
    keeps the timing).

    Returns
    -------
    ``{name: {mcd_db, logf0_rmse_cents, logf0_corr, mel_spectral_convergence,
    real_time_factor, utterances}}``: means over the utterances; the real-time factor of a
    second, timed pass.

    Raises
    ------
    DataError
        No utterance in ``data_dir``.
    """
    from speechrep.data.audio import iter_audio, write_wav
    from speechrep.eval.vc import f0_metrics, mel_cepstral_distortion, mel_cepstrum
    from speechrep.models.pitch import estimate_f0
    from speechrep.features.logmel import log_mel
    from speechrep.train.pretrained import load_vocoder

    names = vocoder_names(vocoders)
    utts = []
    for utt, wave in iter_audio(data_dir, sample_rate=16000):
        utts.append((utt, wave))
        if len(utts) == max_utts:
            break
    if not utts:
        raise DataError("no utterances to resynthesise", path=data_dir)
    mels = [log_mel(wave) for _, wave in utts]
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
    return results


def format_resynth_table(results: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of :func:`score_copy_synthesis`'s results, one row per vocoder."""
    w = max(11, *(len(name) for name in results))
    lines = [f"{'vocoder':<{w}} " + "  ".join(f"{k:>24}" for k in _KEYS)]
    lines += [f"{name:<{w}} " + "  ".join(f"{r[k]:>24.3f}" for k in _KEYS) for name, r in results.items()]
    return "\n".join(lines) + "\n"
