#!/usr/bin/env python3
"""Copy-synthesis quality of vocoders on held-out utterances.

Usage: score_resynth.py [--max-utts N] <data-dir> <out-dir> <vocoder> [<vocoder> ...]

Each vocoder (``griffinlim`` or a neural-vocoder experiment directory) resynthesises the
VC log-mel of the first N utterances of <data-dir> (a single neural vocoder is named
``neural``; several, by their folder names). Written: ``<out-dir>/<name>/<utt>.wav``,
``<out-dir>/scores.json`` (per vocoder: mean MCD in dB, log-F0 RMSE in cents and
correlation, log-mel spectral convergence, real-time factor of a second, timed pass) and
``<out-dir>/scores.txt``.
Frames are compared one to one (copy synthesis keeps the timing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from speechrep.data.audio import iter_audio, write_wav
from speechrep.eval.vc import estimate_f0, f0_metrics, mel_cepstral_distortion, mel_cepstrum
from speechrep.utils.io import atomic_write_json, atomic_write_text
from speechrep.train.pretrained import load_vocoder
from speechrep.features.logmel import log_mel


def vocoder_names(specs: list[str]) -> list[str]:
    """Names of the vocoders in the scores and output folders: ``griffinlim``, and ``neural``
    for a single neural vocoder; several are named by their experiment folder."""
    neural = [s for s in specs if s != "griffinlim"]
    names = [s if s == "griffinlim" else ("neural" if len(neural) == 1 else Path(s).name) for s in specs]
    if len(set(names)) < len(names):
        raise SystemExit(f"error: vocoders: two have the same name in {names}; give each its own folder name")
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-utts", type=int, default=20)
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("vocoders", nargs="+")
    args = ap.parse_args()
    utts = []
    for utt, wave in iter_audio(args.data_dir, sample_rate=16000):
        utts.append((utt, wave))
        if len(utts) == args.max_utts:
            break
    if not utts:
        raise SystemExit(f"error: {args.data_dir}: no utterances to resynthesise")
    mels = [log_mel(wave) for _, wave in utts]
    results = {}
    for name, spec in zip(vocoder_names(args.vocoders), args.vocoders):
        voc = load_vocoder(spec)
        mcd, cents, corr, sc = [], [], [], []
        for (utt, wave), mel in zip(utts, mels):
            out = voc.mel_to_wave(mel)
            write_wav(args.out_dir / name / f"{utt}.wav", out, voc.sample_rate)
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
    atomic_write_json(args.out_dir / "scores.json", results)
    keys = ["mcd_db", "logf0_rmse_cents", "logf0_corr", "mel_spectral_convergence", "real_time_factor"]
    w = max(11, *(len(name) for name in results))
    lines = [f"{'vocoder':<{w}} " + "  ".join(f"{k:>24}" for k in keys)]
    lines += [f"{name:<{w}} " + "  ".join(f"{r[k]:>24.3f}" for k in keys) for name, r in results.items()]
    atomic_write_text(args.out_dir / "scores.txt", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
