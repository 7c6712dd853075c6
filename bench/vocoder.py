"""Time the vocoders: training steps of the neural vocoder and copy-synthesis speed.

Training step: forward + losses + backward + AdamW step of :class:`NeuralVocoderModel` on a
batch of 8 crops of 0.5 s (``conf/vocoder.yaml``'s), for each width of the HiFi-GAN-style
generator and of the iSTFT-head one. Synthesis:
real-time factor (seconds of compute per second of audio) of the generator and of
Griffin-Lim (60 iterations) on a 5 s log-mel. Weights are untrained (the cost does not
depend on them); inputs are noise. Prints one JSON line per figure.

Usage::

    .venv/bin/python bench/vocoder.py                          # 1 thread, 64 and 128 channels, iSTFT 256
    .venv/bin/python bench/vocoder.py --threads 2 --channels 128 --steps 10
"""

from __future__ import annotations

import argparse
import json
import time


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: one-time set-up per input shape
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channels", type=int, nargs="+", default=[64, 128], help="widths of the HiFi-GAN-style generator")
    ap.add_argument("--istft-channels", type=int, nargs="*", default=[256], help="widths of the iSTFT-head generator")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per configuration")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the synthesised utterance")
    args = ap.parse_args()

    import numpy as np
    import torch

    from speechrep.vocoder.griffinlim import GriffinLim
    from speechrep.vocoder.neural import NeuralVocoder, NeuralVocoderConfig, NeuralVocoderModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(8, 8000)
    samples = int(args.seconds * 16000)
    mel = np.log(np.random.default_rng(0).uniform(1e-3, 1.0, (samples // 160 + 1, 80))).astype(np.float32)
    runs = [("hifigan", c) for c in args.channels] + [("istft", c) for c in args.istft_channels]
    for generator, channels in runs:
        model = NeuralVocoderModel(NeuralVocoderConfig(generator=generator, channels=channels))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step() -> None:
            loss = model({"wave": wave})["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        sec = _time(step, args.steps)
        print(json.dumps({"figure": "train_step", "generator": generator, "channels": channels,
                          "threads": args.threads, "seconds_per_step": round(sec, 4),
                          "samples_per_s": round(wave.numel() / sec)}), flush=True)
        vocoder = NeuralVocoder(NeuralVocoderModel(NeuralVocoderConfig(generator=generator, channels=channels)))
        sec = _time(lambda: vocoder.mel_to_wave(mel), 3)
        print(json.dumps({"figure": "synthesis", "vocoder": f"{generator}_{channels}", "threads": args.threads,
                          "real_time_factor": round(sec / args.seconds, 5)}), flush=True)
    gl = GriffinLim()
    sec = _time(lambda: gl.mel_to_wave(mel), 1)
    print(json.dumps({"figure": "synthesis", "vocoder": "griffinlim", "threads": args.threads,
                      "real_time_factor": round(sec / args.seconds, 5)}), flush=True)


if __name__ == "__main__":
    main()
