"""ABX speed and memory: speechrep's grouped numba ABX vs a straightforward PyTorch one.

The reference follows the Libri-Light ABX design: for every (context, speaker, phone A,
phone B) cell, pad the A, B and X groups into tensors, compute all pairwise frame
distances with torch, then run DTW in numpy (vectorised over the item pairs of the
group), recomputing d(X, A) and d(X, B) for every cell. speechrep computes every item
distance once per (context, speaker) cell and scores triplets in numba.

Synthetic corpus: random 39-dim features at 100 frames/s, triphone items from a random
alignment (20 speakers, 40 phones with Zipf frequencies, 30-100 ms phones). speechrep
scores all items with ZeroSpeech 2021 subsampling (<= 10 items per group, 5 X speakers).
The reference is far too slow for that, so both engines then score the same seeded
fraction of the ABX cells (identical items and X speakers, taken from speechrep's cell
builder); their results must agree and their times give the speed ratio. Each
(implementation, threads) run is a separate process; its peak RSS is reported.

    .venv/bin/python bench/abx.py                           # >= 20k triphone items, 1 and 2 threads
    .venv/bin/python bench/abx.py --items 3000 --fraction 1   # quick look, every cell
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np


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
        ends = np.cumsum(durs) * 0.01
        starts = np.concatenate([[0.0], ends[:-1]])
        ali[utt] = [(float(s), float(e), phones[p]) for s, e, p in zip(starts, ends, seq)]
        utt2spk[utt] = spk
        frames[utt] = rng.standard_normal((int(round(ends[-1] / 0.01)), dim)).astype(np.float32)
        total += 38
        u += 1
    return frames, make_items(ali, utt2spk)


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


def worker(impl: str, threads: int, args: argparse.Namespace) -> dict:
    import numba

    from speechrep.eval.abx import _cells, _score, abx_errors, prepare_abx_items, subsample_groups
    from speechrep.eval.inputs import FrameTimes

    frames, items = make_corpus(args.items, n_speakers=args.speakers, n_phones=args.phones)
    data = prepare_abx_items(frames, items, FrameTimes(0.01, 0.0125))
    kept = subsample_groups(data, max_size_group=10, seed=0)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result: dict = {"impl": impl, "threads": threads, "items": len(items), "items_kept": int(len(kept))}
    numba.set_num_threads(threads)
    # the same cells (ZeroSpeech 2021 subsampling: 10 items per group, 5 X speakers) for
    # both engines; a seeded fraction of them for the comparison
    pick = np.random.default_rng(1)
    cells = {}
    for mode in ("within", "across"):
        every = list(_cells(data, kept, mode=mode, max_x_across=5, rng=np.random.default_rng([0, 1])))
        cells[mode] = [c for c in every if pick.random() < args.fraction]
    result["cells"] = {m: len(c) for m, c in cells.items()}
    if impl == "speechrep":
        abx_errors(_restrict(data, kept[:300]))  # load the cached kernels outside the timing
        t0 = time.perf_counter()
        full = abx_errors(data, max_size_group=10, max_x_across=5, seed=0, threads=threads)
        result["full_seconds"] = time.perf_counter() - t0
        result["full_abx"] = full
        result["full_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        kw = dict(max_batch_pairs=200_000, progress=False)
        errors = {mode: _score(data, iter(c), mode=mode, **kw) for mode, c in cells.items()}
    else:
        import torch

        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        errors = {mode: torch_abx(data, c, mode) for mode, c in cells.items()}
    result["seconds"] = time.perf_counter() - t0
    result["abx"] = errors
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["rss_after_data_mb"] = rss_data
    return result


def _restrict(data, kept):
    from dataclasses import replace

    return replace(
        data,
        starts=data.starts[kept],
        lengths=data.lengths[kept],
        phone=data.phone[kept],
        context=data.context[kept],
        speaker=data.speaker[kept],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20000, help="minimum number of triphone items")
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--phones", type=int, default=40)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--fraction", type=float, default=0.05, help="fraction of the ABX cells both engines score for the comparison"
    )
    parser.add_argument("--skip-torch", action="store_true", help="time speechrep only")
    parser.add_argument("--worker", nargs=2, metavar=("IMPL", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args)))
        return
    results = []
    for impl in ("speechrep",) + (() if args.skip_torch else ("torch",)):
        for threads in args.threads:
            cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", impl, str(threads)]
            r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            results.append(r)
            if "full_seconds" in r:
                print(
                    f"speechrep threads={threads} all {r['items']} items (kept {r['items_kept']}): "
                    f"time={r['full_seconds']:.2f}s peak_rss={r['full_peak_rss_mb']:.0f}MB "
                    f"(after data {r['rss_after_data_mb']:.0f}MB) ABX within={100 * r['full_abx']['within']:.3f}% "
                    f"across={100 * r['full_abx']['across']:.3f}%",
                    flush=True,
                )
            print(
                f"{impl:9s} threads={threads} sampled cells {r['cells']}: time={r['seconds']:.2f}s "
                f"peak_rss={r['peak_rss_mb']:.0f}MB ABX within={100 * r['abx']['within']:.4f}% "
                f"across={100 * r['abx']['across']:.4f}%",
                flush=True,
            )
    fast = {r["threads"]: r for r in results if r["impl"] == "speechrep"}
    for r in results:
        if r["impl"] == "torch" and r["threads"] in fast:
            f = fast[r["threads"]]
            same = all(abs(f["abx"][m] - r["abx"][m]) < 1e-6 for m in ("within", "across"))
            print(f"threads={r['threads']}: speechrep is {r['seconds'] / f['seconds']:.1f}x faster; results equal: {same}")


if __name__ == "__main__":
    main()
