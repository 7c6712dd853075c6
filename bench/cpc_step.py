"""Time full CPC training steps: forward + InfoNCE + backward + AdamW step.

Full-size CPC_audio architecture (wave encoder 256, LSTM context 256, K=12 one-layer
transformer predictors, 128 negatives within speaker), batch of 8 windows of 20480
samples. Implementations of the same step, each timed in its own process:

- ``fast``: :class:`speechrep.models.cpc.CPC` as trained (encoder convolutions as matrix
  products in (B, T, C) layout, batched prediction heads, candidates scored by one matrix
  product + gather, collapse monitors included);
- ``reference``: the same weights run the CPC_audio way: a Python loop over the 12
  predictors and :func:`speechrep.objectives.infonce.infonce_loss_reference`
  (candidates materialised per step, broadcast multiply);
- ``cpc_audio`` (with ``--cpc-audio DIR``, a checkout of facebookresearch/CPC_audio): that
  implementation itself at its default configuration (CPCEncoder 256 with channel norm,
  LSTM context, 12 one-layer transformer predictors, 128 negatives, Adam), imported from
  DIR; nothing of it is shipped here.

Each configuration runs in its own process so that its peak RSS is its own. By default
the processes run with ``MALLOC_MMAP_THRESHOLD_=1048576``: glibc then returns freed
tensors of 1 MB and more to the system at once instead of keeping them in its heap, so
the peak RSS measures the memory the step needs rather than what the allocator held on
to (``--malloc-default`` measures with glibc's default instead).

Usage::

    .venv/bin/python bench/cpc_step.py                       # 1 and 2 threads, fp32
    .venv/bin/python bench/cpc_step.py --amp none bf16       # also bf16 autocast
    .venv/bin/python bench/cpc_step.py --threads 2 --amp none --steps 3
    .venv/bin/python bench/cpc_step.py --threads 2 --mode fast cpc_audio --cpc-audio ~/src/CPC_audio
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import types


def _cpc_audio_step(args: argparse.Namespace):
    """(step function, frames per step) of CPC_audio's own model and criterion."""
    import torch

    root = os.path.expanduser(args.cpc_audio)
    # cpc/criterion imports its transformer predictor as top-level `transformers`
    sys.path[:0] = [root, os.path.join(root, "cpc")]
    for name in ("torchaudio", "progressbar"):  # imported at module level, unused by this step
        sys.modules.setdefault(name, types.ModuleType(name))
    from cpc.criterion import CPCUnsupersivedCriterion
    from cpc.model import CPCAR, CPCEncoder, CPCModel

    torch.manual_seed(0)
    model = CPCModel(CPCEncoder(256, "layerNorm"), CPCAR(256, 256, False, 1, mode="LSTM"))
    criterion = CPCUnsupersivedCriterion(12, 256, 256, args.negatives, rnnMode="transformer",
                                         sizeInputSeq=args.samples // 160)
    params = list(model.parameters()) + list(criterion.parameters())
    opt = torch.optim.Adam(params, lr=2e-4)
    wave, label = torch.randn(args.batch, 1, args.samples), torch.zeros(args.batch, dtype=torch.long)

    def step() -> float:
        c, z, _ = model(wave, label)
        losses, _ = criterion(c, z, label)
        loss = losses.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return step, args.batch * (args.samples // 160)


def _worker(args: argparse.Namespace) -> dict:
    import torch

    if args.mode == "cpc_audio":
        torch.set_num_threads(args.threads)
        step, frames = _cpc_audio_step(args)
        return _time_steps(args, step, frames)

    from speechrep.models.cpc import CPC, CPCConfig
    from speechrep.objectives.infonce import infonce_loss_reference, sample_negatives

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = CPCConfig(
        predictor="transformer",
        context="lstm",
        num_negatives=args.negatives,
        negatives="speaker",
        predictor_recompute=not args.no_recompute,
    )
    model = CPC(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4, fused=True)
    batch = {"wave": torch.randn(args.batch, args.samples), "speaker": torch.zeros(args.batch, dtype=torch.long)}
    K = cfg.num_steps

    def reference_loss() -> torch.Tensor:
        z, _ = model.codes(batch)
        B, T, _ = z.shape
        W = T - K
        c = model.context(z)[:, :W]
        preds = [model.predictor.heads(c, slice(k, k + 1))[:, :, 0] for k in range(K)]  # one predictor at a time
        neg = sample_negatives(B, T, W, cfg.num_negatives, mode=cfg.negatives, speaker=batch["speaker"])
        return infonce_loss_reference(preds, z, neg)[0]

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            loss = model(batch)["loss"] if args.mode == "fast" else reference_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    return _time_steps(args, step, args.batch * (args.samples // model.encoder.hop))


def _time_steps(args: argparse.Namespace, step, frames: int) -> dict:
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for _ in range(args.warmup):
        step()
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    mean = sum(times) / len(times)
    return {
        "mode": args.mode,
        "threads": args.threads,
        "amp": args.amp,
        "s_per_step": mean,
        "s_min": min(times),
        "cpu_s_per_step": sum(cpu) / len(cpu),
        "frames_per_s": frames / mean,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_before_steps_mb": rss_before,
        "loss": loss,
    }


def step_gflop(batch: int, samples: int, negatives: int, *, dim: int = 256, ff: int = 2048, steps: int = 12) -> float:
    """Multiply-add work of one training step (forward + backward = 3 x forward), GFLOP.

    Counts the products that no implementation of this architecture can skip: the five
    encoder convolutions, the LSTM, the K transformer predictors (projections, causal
    attention computed densely, feed-forward) and scoring 1 + N candidates per prediction.
    """
    t, mac = samples, 0
    c_in = 1
    for kernel, stride in zip((10, 8, 4, 4, 4), (5, 4, 2, 2, 2)):
        t //= stride
        mac += t * dim * c_in * kernel
        c_in = dim
    mac *= batch
    frames = t
    window = frames - steps
    mac += 4 * dim * 2 * dim * frames * batch  # LSTM gates
    per_token = 4 * dim * dim + 2 * dim * ff + 2 * window * dim  # qkv + out, feed-forward, attention
    mac += per_token * batch * window * steps
    mac += batch * window * steps * (negatives + 1) * dim  # candidate scores
    return 3 * 2 * mac / 1e9


def matmul_gflops(threads: int) -> float:
    """Sustained fp32 GEMM rate of this machine at ``threads`` threads, GFLOP/s."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    return 10 * 2 * 2048**3 / (time.perf_counter() - t0) / 1e9


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    # bf16 autocast is opt-in: CPUs without AVX512-BF16/AMX emulate bf16 matmuls (slowly)
    p.add_argument("--amp", choices=["none", "bf16"], nargs="+", default=["none"])
    p.add_argument("--mode", choices=["fast", "reference", "cpc_audio"], nargs="+", default=["fast", "reference"])
    p.add_argument("--cpc-audio", metavar="DIR", help="checkout of facebookresearch/CPC_audio (for --mode cpc_audio)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--samples", type=int, default=20480)
    p.add_argument("--negatives", type=int, default=128)
    p.add_argument("--steps", type=int, default=4, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--malloc-default", action="store_true", help="keep glibc's default mmap threshold")
    p.add_argument("--no-recompute", action="store_true", help="keep the predictors' activations (faster, more memory)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if "cpc_audio" in args.mode and not args.cpc_audio:
        p.error("--mode cpc_audio needs --cpc-audio DIR")
    if args.worker:
        args.threads, args.amp, args.mode = args.threads[0], args.amp[0], args.mode[0]
        print(json.dumps(_worker(args)))
        return

    env = dict(os.environ)
    if not args.malloc_default:
        env["MALLOC_MMAP_THRESHOLD_"] = "1048576"
    results = []
    print(f"malloc: {'glibc default' if args.malloc_default else 'MALLOC_MMAP_THRESHOLD_=1048576'}")
    print(f"batch {args.batch} x {args.samples} samples, {args.negatives} negatives, predictor recompute {not args.no_recompute}")
    print(f"{args.warmup} warm-up + {args.steps} timed steps per configuration")
    columns = ("s/step", "min", "frames/s", "CPU s/step", "peak RSS MB")
    print(f"{'mode':<10} {'threads':>7} {'amp':>5} " + " ".join(f"{c:>11}" for c in columns))
    for threads in args.threads:
        for amp in args.amp:
            for mode in args.mode:
                cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--amp", amp, "--mode", mode]
                cmd += ["--batch", str(args.batch), "--samples", str(args.samples), "--negatives", str(args.negatives)]
                cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)] + ["--no-recompute"] * args.no_recompute
                cmd += ["--cpc-audio", args.cpc_audio] if args.cpc_audio else []
                out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
                r = json.loads(out.strip().splitlines()[-1])
                results.append(r)
                values = (r["s_per_step"], r["s_min"], r["frames_per_s"], r["cpu_s_per_step"], r["peak_rss_mb"])
                print(f"{mode:<10} {threads:>7} {amp:>5} " + " ".join(f"{v:>11.2f}" for v in values), flush=True)
    work = step_gflop(args.batch, args.samples, args.negatives)
    for threads in args.threads:
        rate = matmul_gflops(threads)
        print(f"threads {threads}: one step is {work:.0f} GFLOP of products; at this machine's fp32 GEMM rate "
              f"({rate:.0f} GFLOP/s) no implementation takes less than {work / rate:.2f} s/step")
    for threads in args.threads:
        for amp in args.amp:
            by_mode = {r["mode"]: r for r in results if r["threads"] == threads and r["amp"] == amp}
            fast = by_mode.get("fast")
            for other in ("reference", "cpc_audio"):
                if fast is None or other not in by_mode:
                    continue
                ref = by_mode[other]
                speed = fast["frames_per_s"] / ref["frames_per_s"]
                mem = fast["peak_rss_mb"] / ref["peak_rss_mb"]
                cpu = ref["cpu_s_per_step"] / fast["cpu_s_per_step"]
                print(f"threads {threads} amp {amp}: fast/{other} throughput {speed:.2f}x (CPU time {cpu:.2f}x), ", end="")
                print(f"peak RSS ratio {mem:.2f}")


if __name__ == "__main__":
    main()
