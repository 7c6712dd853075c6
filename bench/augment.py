"""Time a CPC training step with and without waveform augmentation (``data.augment``).

The model is the recipe's CPC (``model`` section of ``egs/synth/cpc/conf/train_cpc.yaml``
by default) on waveform input (``data.input: wave``, the crop of the config's 128 frames
= 20480 samples, its batch size), trained as the Trainer does: a batch from the crop
pipeline (:class:`~speechrep.train.data.CropDataset` under a DataLoader), forward,
InfoNCE, backward, AdamW step. The corpus is synthetic (harmonic voices with vibrato
and a little noise, in memory), so that only the augmentation differs between runs.

Configurations, each with its own model and loader, their steps alternating (one of
each in turn, after warm-up steps), the same crops and seeds:

- ``clean``: no augmentation;
- ``both``: the augmentation list below on the crop the model reads;
- ``past``: the same list on a copy that feeds CPC's context network (targets clean):
  also one more encoder pass per step.

The augmentation list is the one docs/training.md shows (``--augment`` takes another as
YAML). A line also gives the augmentation's own time per batch (in the main process).

Usage::

    .venv/bin/python bench/augment.py                      # 1 thread, workers 0
    .venv/bin/python bench/augment.py --threads 2 --workers 1 --steps 6
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_AUGMENT = """
- {name: pitch, semitones: [-3, 3], p: 0.5}
- {name: formant, factor: [0.9, 1.1], p: 0.5}
- {name: reverb, rt60: [0.2, 0.6], p: 0.5}
- {name: noise, snr: [5, 20], kind: pink, p: 0.5}
- {name: bandreject, freq: [100, 6000], width: [100, 800], p: 0.5}
"""


def _corpus(num_utts: int, seconds: float, sample_rate: int):
    """In-memory corpus of harmonic voices (F0 90-250 Hz with vibrato) plus noise."""
    import torch

    from speechrep.train.data import Corpus

    rng = np.random.default_rng(0)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    waves = []
    for _ in range(num_utts):
        f0 = rng.uniform(90, 250) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(2, 6) * t))
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        x = sum(np.sin(k * phase) / k for k in range(1, 20)) + 0.05 * rng.standard_normal(n)
        waves.append((0.1 * x).astype(np.float32))
    speaker = np.arange(num_utts, dtype=np.int64) % 4
    return Corpus(path=Path("<synthetic>"), utts=[f"u{i:03d}" for i in range(num_utts)], speaker=speaker,
                  lengths=np.full(num_utts, n, dtype=np.int64), dim=None, data=torch.from_numpy(np.concatenate(waves)),
                  offsets=np.arange(num_utts + 1, dtype=np.int64) * n, reader=None, num_short=0, short="skip")


def _pipeline(args, corpus, augment, side: str):
    """``step() -> seconds`` of one configuration: next batch, forward, backward, AdamW."""
    import torch

    from speechrep.data.augment import Augmenter, parse_augment
    from speechrep.models.registry import build_model
    from speechrep.train.data import CropDataset, CropSampler, make_loader

    conf = yaml.safe_load(Path(args.config).read_text())
    torch.manual_seed(0)
    model, _ = build_model(conf["model"]["name"], conf["model"]["args"], input_dim=None, num_speakers=4)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    aug = None if side == "clean" else Augmenter(parse_augment(augment, sample_rate=16000), sample_rate=16000, seed=0)
    dataset = CropDataset(corpus, input="wave", crop=args.crop, augment=aug,
                          augment_side="past" if side == "past" else "both")
    sampler = CropSampler(corpus.lengths, corpus.speaker, crop=args.crop, batch_size=args.batch, seed=0,
                          numbered=True, speakers_per_batch=conf["data"].get("speakers_per_batch"))
    batches = iter(make_loader(dataset, sampler, num_workers=args.workers))

    def step() -> float:
        t0 = time.perf_counter()
        loss = model(next(batches))["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0

    return step, aug


def _augment_time(aug, corpus, args) -> float:
    """Seconds the augmentation alone takes for one batch's crops (main process, warm)."""
    x = corpus.data[: aug.input_length(args.crop)].numpy()
    for key in range(2):
        aug(x, key)  # imports and first calls
    t0 = time.perf_counter()
    for key in range(args.batch * 4):
        aug(x, key)
    return (time.perf_counter() - t0) / 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(REPO / "egs/synth/cpc/conf/train_cpc.yaml"),
                   help="training config whose model section (and batch size) is timed")
    p.add_argument("--augment", default=DEFAULT_AUGMENT, help="data.augment list as YAML")
    p.add_argument("--crop", type=int, default=20480, help="crop in samples (default: the config's 128 frames)")
    p.add_argument("--batch", type=int, default=None, help="crops per step (default: the config's data.batch_size)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (augmentation runs there)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--sides", nargs="+", choices=["clean", "both", "past"], default=["clean", "both", "past"])
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    conf = yaml.safe_load(Path(args.config).read_text())
    args.batch = args.batch or int(conf["data"].get("batch_size", 8))
    augment = yaml.safe_load(args.augment)
    corpus = _corpus(16, 3.0, 16000)
    print(f"config {args.config} (model section), wave input, batch {args.batch} x {args.crop} samples, "
          f"{args.threads} thread(s), {args.workers} DataLoader worker(s), {args.warmup} warm-up + {args.steps} steps")
    print(f"augment: {augment}")
    # Steps of the configurations alternate, so that a change of the machine's load
    # (a shared box) falls on all of them alike.
    pipes = {side: _pipeline(args, corpus, augment, side) for side in args.sides}
    for _ in range(args.warmup):
        for step, _aug in pipes.values():
            step()
    times: dict[str, list[float]] = {side: [] for side in args.sides}
    for _ in range(args.steps):
        for side, (step, _aug) in pipes.items():
            times[side].append(step())
    median = {side: float(np.median(t)) for side, t in times.items()}
    for side, t in times.items():
        aug = pipes[side][1]
        extra = f"  (augmentation alone {_augment_time(aug, corpus, args):.3f} s/batch)" if aug is not None else ""
        print(f"{side:<6} median {median[side]:.3f} s/step (mean {np.mean(t):.3f}, min {np.min(t):.3f}){extra}")
    if "clean" in median:
        for side in (s for s in args.sides if s != "clean"):
            print(f"{side}: {100 * (median[side] / median['clean'] - 1):+.1f} % per step (median) against clean")


if __name__ == "__main__":
    main()
