"""ABX speed and memory: speechrep against fastabx (and a straightforward PyTorch one).

Synthetic corpus: random ``--dim`` features at 100 frames/s, triphone items from a random
alignment (``--speakers`` speakers, ``--phones`` phones with Zipf frequencies, 30-100 ms
phones), written once under ``--workdir`` as a ZeroSpeech item file and one ``<utt>.npy``
per utterance: the files both implementations read.

fastabx (the field's fast implementation, PyPI package ``fastabx``) needs
Python >= 3.12; the bench makes its own venv for it (``--fastabx-venv``, made with
``--python312``, ``pip install fastabx==0.9.0 torch==2.13.0``, about 5 GB with torch's
CUDA libraries, the only torch build PyPI has for Python 3.12) and skips it with a
message when it cannot. Both sides score the same item file and features with ZeroSpeech 2021
subsampling (10 items per group, 5 X speakers; each with its own random draw, so the
values differ by the subsampling noise) and frame centres at ``(k + 0.5) / 100`` s.
Each (implementation, threads) run is a separate process (fastabx: ``torch.set_num_threads``;
its polars item tables use polars' own pool); the bench prints its wall
and CPU time (user + system, from reading the files to the ABX values), its peak RSS,
the ratios and the value differences.

With ``--torch-cells F`` it also runs the earlier comparison: a Libri-Light-style PyTorch
ABX (d(X, A), d(X, B) recomputed for every cell) on a seeded fraction ``F`` of
speechrep's own cells (identical items and X speakers); both results must be equal.

    .venv/bin/python bench/abx.py                          # 34k items, 8 speakers, 256 dims
    .venv/bin/python bench/abx.py --items 3000 --threads 1  # quick look
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FREQUENCY = 100  # frames per second; frame k is centred at (k + 0.5) / FREQUENCY (fastabx's convention)
FASTABX_VERSION, TORCH_VERSION = "0.9.0", "2.13.0"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speechrep"

# run by the fastabx venv's python: argv = item file, feature dir, threads
FASTABX_WORKER = """
import json, resource, sys, time
import numpy as np, torch
from fastabx import zerospeech_abx
item, root, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
w0, c0 = time.perf_counter(), cpu()
abx = {}
for mode in ("within", "across"):
    abx[mode] = zerospeech_abx(item, root, max_size_group=10, max_x_across=5, speaker=mode, context="within",
        distance="angular", frequency=%d, feature_maker=lambda p: torch.from_numpy(np.load(p)), extension=".npy",
        seed=0, device="cpu", progress=False)
print(json.dumps({"impl": "fastabx", "threads": threads, "wall": time.perf_counter() - w0, "cpu": cpu() - c0,
    "abx": abx, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
""" % FREQUENCY


def make_corpus(n_items: int, *, n_speakers: int = 6, n_phones: int = 30, dim: int = 39, seed: int = 0):
    """Random features and an alignment with at least ``n_items`` triphone items."""
    from speechrep.eval.items import make_items

    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, n_phones + 1)
    freq /= freq.sum()
    phones = [f"p{k:02d}" for k in range(n_phones)]
    frames, ali, utt2spk = {}, {}, {}
    total, u = 0, 0
    while total < n_items:
        utt, spk = f"spk{u % n_speakers:02d}-utt{u:05d}", f"spk{u % n_speakers:02d}"
        seq = rng.choice(n_phones, size=40, p=freq)
        durs = rng.integers(3, 11, size=40)  # 30-100 ms phones
        ends = np.cumsum(durs) / FREQUENCY
        starts = np.concatenate([[0.0], ends[:-1]])
        ali[utt] = [(float(s), float(e), phones[p]) for s, e, p in zip(starts, ends, seq)]
        utt2spk[utt] = spk
        frames[utt] = rng.standard_normal((int(durs.sum()), dim)).astype(np.float32)
        total += 38
        u += 1
    return frames, make_items(ali, utt2spk)


def corpus_dir(args: argparse.Namespace) -> Path:
    """The item file and features of the run's setting, written once (atomically)."""
    from speechrep.eval.items import write_items
    from speechrep.utils.io import atomic_dir

    root = Path(args.workdir) / f"items{args.items}-spk{args.speakers}-ph{args.phones}-dim{args.dim}"
    if not (root / "items.item").is_file():
        frames, items = make_corpus(args.items, n_speakers=args.speakers, n_phones=args.phones, dim=args.dim)
        with atomic_dir(root) as tmp:
            (tmp / "feats").mkdir()
            for utt, x in frames.items():
                np.save(tmp / "feats" / f"{utt}.npy", x)
            write_items(tmp / "items.item", items)
    return root


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def speechrep_worker(root: Path, threads: int) -> dict:
    """Read the item file and features, then ABX within and across (the timed part)."""
    from speechrep.eval.abx import abx_errors, prepare_abx_items
    from speechrep.eval.inputs import FrameTimes, load_features
    from speechrep.eval.items import read_items

    w0, c0 = time.perf_counter(), _cpu()
    items = read_items(root / "items.item")
    frames = load_features(root / "feats")
    data = prepare_abx_items(frames, items, FrameTimes(1 / FREQUENCY, 0.5 / FREQUENCY))
    del frames
    abx = abx_errors(data, max_size_group=10, max_x_across=5, seed=0, threads=threads)
    return {
        "impl": "speechrep",
        "threads": threads,
        "wall": time.perf_counter() - w0,
        "cpu": _cpu() - c0,
        "abx": abx,
        "items": len(items),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def fastabx_python(args: argparse.Namespace) -> str | None:
    """The fastabx venv's python, made on first use; None (and why, on stderr) if it cannot be."""
    venv = Path(args.fastabx_venv)
    python = venv / "bin" / "python"
    if python.is_file() and subprocess.run([python, "-c", "import fastabx"], capture_output=True).returncode == 0:
        return str(python)
    if not Path(args.python312).is_file():
        print(f"fastabx skipped: no Python >= 3.12 at {args.python312} (give --python312)", file=sys.stderr)
        return None
    print(f"making the fastabx venv in {venv} (fastabx, torch; a few GB) ...", file=sys.stderr, flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    # the versions of the figures in docs/results/abx.md; PyPI has only the CUDA build of
    # torch for Python 3.12 (with its nvidia-* libraries, ~5 GB), which also runs on a CPU
    install = [str(python), "-m", "pip", "install", "-q", f"fastabx=={FASTABX_VERSION}", f"torch=={TORCH_VERSION}"]
    steps = [[args.python312, "-m", "venv", str(venv)], install]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"fastabx skipped: {' '.join(step[:4])} failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
            return None
    return str(python)


def torch_abx(data, cells: list, mode: str) -> float:
    """Libri-Light-style ABX over speechrep's cells (same items, same X speakers)."""
    import torch

    feats = torch.from_numpy(data.feats)
    feats = feats / feats.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def group(idx):
        sizes = data.lengths[idx]
        out = torch.zeros(len(idx), int(sizes.max()), feats.shape[1])
        for k, i in enumerate(idx):
            out[k, : sizes[k]] = feats[data.starts[i] : data.starts[i] + sizes[k]]
        return out, sizes

    def dtw_group(x, sx, y, sy):
        # all frame distances of all pairs with torch, then DTW over the padded batch in numpy
        d = torch.einsum("asd,btd->abst", x, y).clamp(-1, 1).acos().div(math.pi).numpy().astype(np.float64)
        n1, n2, s1, s2 = d.shape
        # cost/length with a border row and column at infinity; anti-diagonal sweeps
        cost = np.full((n1, n2, s1 + 1, s2 + 1), np.inf)
        length = np.zeros((n1, n2, s1 + 1, s2 + 1), np.int64)
        cost[:, :, 0, 0] = 0.0
        for k in range(s1 + s2 - 1):
            i = np.arange(max(0, k - s2 + 1), min(s1, k + 1))
            j = k - i
            diag, left, up = cost[:, :, i, j], cost[:, :, i + 1, j], cost[:, :, i, j + 1]
            use_diag = (diag <= left) & (diag <= up)
            use_left = ~use_diag & (left <= up)
            cost[:, :, i + 1, j + 1] = np.where(use_diag, diag, np.where(use_left, left, up)) + d[:, :, i, j]
            length[:, :, i + 1, j + 1] = 1 + np.where(
                use_diag, length[:, :, i, j], np.where(use_left, length[:, :, i + 1, j], length[:, :, i, j + 1])
            )
        a, b = np.meshgrid(sx, sy, indexing="ij")
        r, c = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
        return cost[r, c, a, b] / length[r, c, a, b]

    n_ph = len(data.phones)
    acc_sum = np.zeros((len(data.speakers), n_ph, n_ph))
    acc_cnt = np.zeros_like(acc_sum)
    with torch.no_grad():
        for cell in cells:
            rows = {p: cell.rows[p0 : p0 + n] for p, p0, n in cell.row_groups}
            if mode == "within":
                triplets = [(a, rows[a]) for a in rows if len(rows[a]) >= 2]
            else:
                triplets = [(a, cell.cols[x0 : x0 + n]) for a, x0, n in cell.col_groups]
            for a, ix in triplets:
                ga, sa = group(rows[a])
                gx, sx = group(ix)
                for b, ib in rows.items():
                    if b == a:
                        continue
                    # as Libri-Light: d(X, A) and d(X, B) recomputed for every (A, B, X) cell
                    gb, sb = group(ib)
                    dxa = dtw_group(gx, sx, ga, sa)
                    dxb = dtw_group(gx, sx, gb, sb)
                    cmp = dxa[:, :, None] - dxb[:, None, :]
                    score = (cmp < 0).astype(float) + 0.5 * (cmp == 0)
                    if mode == "within":
                        n = len(ix)
                        score[np.arange(n), np.arange(n), :] = 0
                        total = n * (n - 1) * len(ib)
                    else:
                        total = score.size
                    acc_sum[cell.speaker, a, b] += 1 - score.sum() / total
                    acc_cnt[cell.speaker, a, b] += 1
    has = acc_cnt > 0
    per_speaker = np.where(has, acc_sum / np.maximum(acc_cnt, 1), 0).sum(0)
    n_spk = has.sum(0)
    return float((per_speaker[n_spk > 0] / n_spk[n_spk > 0]).mean())


def cells_worker(impl: str, root: Path, threads: int, fraction: float) -> dict:
    """speechrep or the PyTorch reference on the same seeded fraction of speechrep's cells."""
    import numba

    from speechrep.eval.abx import _cells, _score, prepare_abx_items, subsample_groups
    from speechrep.eval.inputs import FrameTimes, load_features
    from speechrep.eval.items import read_items

    data = prepare_abx_items(load_features(root / "feats"), read_items(root / "items.item"), FrameTimes(0.01, 0.005))
    kept = subsample_groups(data, max_size_group=10, seed=0)
    numba.set_num_threads(threads)
    pick = np.random.default_rng(1)
    cells = {}
    for mode in ("within", "across"):
        every = list(_cells(data, kept, mode=mode, max_x_across=5, rng=np.random.default_rng([0, 1])))
        cells[mode] = [c for c in every if pick.random() < fraction]
    w0, c0 = time.perf_counter(), _cpu()
    if impl == "speechrep":
        errors = {m: _score(data, iter(c), mode=m, max_batch_pairs=200_000, progress=False) for m, c in cells.items()}
    else:
        import torch

        torch.set_num_threads(threads)
        errors = {m: torch_abx(data, c, m) for m, c in cells.items()}
    return {"impl": impl, "threads": threads, "wall": time.perf_counter() - w0, "cpu": _cpu() - c0, "abx": errors,
            "cells": {m: len(c) for m, c in cells.items()}}


def _run(cmd: list[str]) -> dict:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _line(r: dict) -> str:
    return (
        f"{r['impl']:9s} threads={r['threads']}: wall={r['wall']:.1f}s cpu={r['cpu']:.1f}s "
        f"peak_rss={r['peak_rss_mb']:.0f}MB ABX within={100 * r['abx']['within']:.3f}% "
        f"across={100 * r['abx']['across']:.3f}%"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=34000, help="minimum number of triphone items")
    parser.add_argument("--speakers", type=int, default=8)
    parser.add_argument("--phones", type=int, default=40)
    parser.add_argument("--dim", type=int, default=256, help="feature dimension")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each (implementation, threads); medians printed")
    parser.add_argument("--workdir", default=str(CACHE / "abx-bench"), help="where the corpus files are written")
    parser.add_argument(
        "--fastabx-venv", default=str(CACHE / "fastabx-venv"), help="venv with fastabx (made if absent)"
    )
    parser.add_argument("--python312", default=shutil.which("python3.12") or "", help="Python >= 3.12 for that venv")
    parser.add_argument("--skip-fastabx", action="store_true", help="time speechrep only")
    parser.add_argument("--torch-cells", type=float, default=0.0, metavar="F",
                        help="also compare with the PyTorch reference on this fraction of the cells")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = corpus_dir(args)
    if args.worker:
        impl, threads = args.worker[0], int(args.worker[1])
        if impl == "speechrep":
            result = speechrep_worker(root, threads)
        else:
            result = cells_worker(impl.split(":")[1], root, threads, args.torch_cells)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    me = [sys.executable, __file__, *sys.argv[1:], "--worker"]
    python = None if args.skip_fastabx else fastabx_python(args)
    item_file, feats = str(root / "items.item"), str(root / "feats")
    print(f"corpus: {root} ({sum(1 for _ in open(item_file)) - 1} items)", flush=True)
    medians: dict[tuple[str, int], dict] = {}
    for threads in args.threads:
        for impl in ("speechrep",) + (("fastabx",) if python else ()):
            runs = []
            for _ in range(args.repeat):
                if impl == "speechrep":
                    cmd = me + [impl, str(threads)]
                else:
                    cmd = [python, "-c", FASTABX_WORKER, item_file, feats, str(threads)]
                runs.append(_run(cmd))
                print(_line(runs[-1]), flush=True)
            med = dict(runs[0])
            for key in ("wall", "cpu", "peak_rss_mb"):
                med[key] = float(np.median([r[key] for r in runs]))
            # fastabx's across value varies from run to run (by ~0.1 point): medians too
            med["abx"] = {m: float(np.median([r["abx"][m] for r in runs])) for m in ("within", "across")}
            medians[impl, threads] = med
    for threads in args.threads:
        ours, theirs = medians[("speechrep", threads)], medians.get(("fastabx", threads))
        if theirs is None:
            continue
        diff = {m: 100 * (ours["abx"][m] - theirs["abx"][m]) for m in ("within", "across")}
        print(
            f"threads={threads} (medians of {args.repeat}): speechrep is {theirs['cpu'] / ours['cpu']:.2f}x faster in "
            f"CPU time, {theirs['wall'] / ours['wall']:.2f}x in wall time; peak RSS {ours['peak_rss_mb']:.0f} vs "
            f"{theirs['peak_rss_mb']:.0f} MB ({ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}x); "
            f"ABX difference (points) within {diff['within']:+.3f}, across {diff['across']:+.3f}"
        )
    if args.torch_cells > 0:
        for threads in args.threads:
            r = {impl: _run(me + [f"cells:{impl}", str(threads)]) for impl in ("speechrep", "torch")}
            same = all(abs(r["speechrep"]["abx"][m] - r["torch"]["abx"][m]) < 1e-6 for m in ("within", "across"))
            print(
                f"threads={threads} cells {r['speechrep']['cells']}: speechrep cpu={r['speechrep']['cpu']:.2f}s, "
                f"torch reference cpu={r['torch']['cpu']:.2f}s ({r['torch']['cpu'] / r['speechrep']['cpu']:.1f}x); "
                f"results equal: {same}"
            )


if __name__ == "__main__":
    main()
