"""Time zero-shot kNN conversion: seconds to convert 10 s of speech on one thread.

Converts a ``--seconds`` source (default 10 s) to a ``--target-seconds`` target (default
30 s) with a kNN model (``--model``: a packaged directory or a feature model's experiment;
default: the packaged model, else a randomly initialised CPC of the synthetic recipe's size,
``egs/synth/cpc/conf/train_cpc.yaml`` on ``conf/fbank.yaml`` features: the cost does not
depend on the weights) and a vocoder (``--vocoder``; by default the packaged model's, as
``speechrep convert`` chooses it, else Griffin-Lim). The audio is
synthetic voiced speech (harmonics of a gliding F0 under moving formants, plus noise).

Prints one JSON line per figure: building the target's matching set (once per target set in
batch mode), then the conversion of the source (median of ``--repeats``) and its parts:
encoding the source (features, model, log-mel, F0 with a pitch weight), matching, vocoding.
Issue 37's target for the default model: ``convert_s`` <= 2 s for 10 s of speech on one core.
Figures, not assertions.

Usage::

    .venv/bin/python bench/convert.py                                  # packaged model or random CPC
    .venv/bin/python bench/convert.py --model exp/cpc --vocoder exp/vocoder --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _speech_like(seconds: float, *, seed: int, rate: int = 16000):
    """Voiced-speech-like test audio ``(samples,)``: harmonics of a gliding F0 shaped by two
    moving formants, syllable-rate loudness, a little noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    f1 = 500 + 200 * np.sin(2 * np.pi * 3.1 * t + rng.uniform(0, 6))
    f2 = 1500 + 500 * np.sin(2 * np.pi * 2.3 * t + rng.uniform(0, 6))
    wave = np.zeros_like(t)
    for h in range(1, 30):
        freq = h * f0
        gain = np.exp(-((freq - f1) / 150) ** 2) + 0.5 * np.exp(-((freq - f2) / 250) ** 2) + 0.02
        wave += gain * np.sin(h * phase)
    wave *= 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2  # syllables
    wave += 0.01 * rng.standard_normal(len(t))
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


def _random_cpc(tmp: Path) -> Path:
    """Experiment directory of a randomly initialised CPC of the synthetic recipe's size."""
    import shutil

    import torch
    import yaml

    from speechrep.models.registry import build_model
    from speechrep.train.checkpoint import save_checkpoint

    args = yaml.safe_load((ROOT / "egs/synth/cpc/conf/train_cpc.yaml").read_text())["model"]["args"]
    train = tmp / "data_train"
    (train / "conf").mkdir(parents=True)
    shutil.copyfile(ROOT / "conf/fbank.yaml", train / "conf" / "fbank.yaml")
    dim = int(yaml.safe_load((train / "conf" / "fbank.yaml").read_text())["num_mel_bins"])
    module, _ = build_model("cpc", args, input_dim=dim)
    exp = tmp / "exp_cpc"
    save_checkpoint(exp / "checkpoints", 0, module=module, optimizer=torch.optim.SGD(module.parameters(), lr=0.1),
                    state={"model": {"name": "cpc", "args": args, "input_dim": dim}})
    (exp / "config.yaml").write_text(yaml.safe_dump({"data": {"train": str(train)}}))
    return exp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="kNN model (default: the packaged one, else a random CPC)")
    ap.add_argument("--vocoder", default=None, help="default: the packaged model's vocoder, else griffinlim")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10.0, help="source length")
    ap.add_argument("--target-seconds", type=float, default=30.0, help="target length")
    ap.add_argument("--repeats", type=int, default=3, help="timed conversions (median reported)")
    ap.add_argument("--pitch-weight", type=float, default=None, help="default: the model's (packaged, else 1.5)")
    args = ap.parse_args()

    sys.path.insert(0, str(ROOT))
    import soundfile as sf
    import torch

    from speechrep.convert import load_converter
    from speechrep.convert_knn import DEFAULT_MODEL_DIR, is_knn_package, resolve_vocoder

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or (DEFAULT_MODEL_DIR if is_knn_package(DEFAULT_MODEL_DIR) else _random_cpc(tmp))
        src, tgt = tmp / "source.wav", tmp / "target.wav"
        sf.write(src, _speech_like(args.seconds, seed=0), 16000)
        sf.write(tgt, _speech_like(args.target_seconds, seed=1), 16000)
        t0 = time.perf_counter()
        vocoder = resolve_vocoder(model, args.vocoder)
        options = {} if args.pitch_weight is None else {"pitch_weight": args.pitch_weight}
        conv = load_converter(model, vocoder=vocoder, **options)
        info = {"model": str(model) if args.model or model == DEFAULT_MODEL_DIR else "random CPC (train_cpc.yaml size)",
                "layer": conv.features.layer, "k": conv.k, "pitch_weight": conv.pitch_weight, "vocoder": str(vocoder),
                "threads": args.threads}
        print(json.dumps({"figure": "load_s", "value": round(time.perf_counter() - t0, 3), **info}))
        conv.convert(src, [tgt])  # warm-up: numba kernels, FFT plans
        t0 = time.perf_counter()
        matching = conv.matching_set([tgt])
        print(json.dumps({"figure": "matching_set_s", "value": round(time.perf_counter() - t0, 3),
                          "target_seconds": args.target_seconds, "frames": int(matching[0].shape[0])}))
        parts: dict[str, list[float]] = {"convert_s": [], "encode_s": [], "match_s": [], "vocode_s": []}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            conv.convert_wave(src, matching)
            parts["convert_s"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            queries = conv.queries(src)
            t1 = time.perf_counter()
            mel = conv.match(queries, matching)
            t2 = time.perf_counter()
            conv.vocoder.mel_to_wave(mel.numpy())
            t3 = time.perf_counter()
            parts["encode_s"].append(t1 - t0)
            parts["match_s"].append(t2 - t1)
            parts["vocode_s"].append(t3 - t2)
        for name, values in parts.items():
            line = {"figure": name, "value": round(statistics.median(values), 3), "source_seconds": args.seconds}
            if name == "convert_s":
                line["per_10_s"] = round(statistics.median(values) * 10 / args.seconds, 3)
                line["target"] = "<= 2 s per 10 s (issue 37)"
            print(json.dumps(line))


if __name__ == "__main__":
    main()
