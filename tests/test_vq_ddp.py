"""VectorQuantizer under torch.distributed: 2 gloo processes on CPU, each with its own data.

The EMA statistics are summed over the processes, so both processes must end with the
same codebook, and that codebook must be the one a single process learns from the
concatenation of the two processes' batches (k-means initialisation from the pooled
frames, then EMA updates). Tolerance: float32 summation order differs between the
all-reduce and the single batch, so codebooks agree to 1e-5 (abs and rel).
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from speechrep.models.bottlenecks.vq import VectorQuantizer
from tests.test_train_ddp import _free_port

pytestmark = pytest.mark.usefixtures("torch_one_thread")

STEPS = 4
DIM = 3


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (2, 20, DIM) around 4 centres and a mask; rank 1 has padding (fewer frames)."""
    g = torch.Generator().manual_seed(100 * step + rank)
    centres = torch.tensor([[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    # each rank leans towards different centres, so per-process EMA updates would differ
    weights = torch.tensor([4.0, 1.0, 1.0, 0.2]) if rank == 0 else torch.tensor([0.2, 1.0, 1.0, 4.0])
    pick = torch.multinomial(weights, 40, replacement=True, generator=g)
    x = (centres[pick] + 0.5 * torch.randn(40, DIM, generator=g)).reshape(2, 20, DIM)
    mask = torch.ones(2, 20, dtype=torch.bool)
    if rank == 1:
        mask[1, 13:] = False
    return x, mask


def _quantizer(**kw) -> VectorQuantizer:
    torch.manual_seed(0)  # same initial codebook and k-means draws as the reference
    return VectorQuantizer(DIM, 6, kmeans_init=True, kmeans_batches=1, decay=0.8, **kw).train()


# scenario -> VectorQuantizer options; one process group runs them all (start-up is the cost)
SCENARIOS = {"ema": dict(restart_every=0), "restart": dict(restart_every=2, dead_threshold=30.0)}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        for name, options in SCENARIOS.items():
            vq = _quantizer(**options)
            if rank == 1:
                torch.manual_seed(1234)  # rank 1 draws differently: only rank 0's draws may count
            for step in range(1, STEPS + 1):
                x, mask = _batch(rank, step)
                vq(x, mask=mask)
                vq.on_step_end(step)
            torch.save({"codebook": vq.codebook.clone(), "ema_count": vq.ema_count.clone(),
                        "restarted": vq.last_restarted, "usage": vq.usage.clone()},
                       os.path.join(out_dir, f"{name}.rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[dict]]:
    """Scenario -> the final state of rank 0 and rank 1."""
    out = tmp_path_factory.mktemp("vq_ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    return {name: [torch.load(out / f"{name}.rank{r}.pt") for r in range(2)] for name in SCENARIOS}


def test_ema_codebook_is_identical_across_ranks_and_equals_the_concatenated_batch(runs):
    ranks = runs["ema"]
    torch.testing.assert_close(ranks[0]["codebook"], ranks[1]["codebook"], rtol=0, atol=0)
    torch.testing.assert_close(ranks[0]["ema_count"], ranks[1]["ema_count"], rtol=0, atol=0)

    single = _quantizer(**SCENARIOS["ema"])
    for step in range(1, STEPS + 1):
        parts = [_batch(r, step) for r in range(2)]
        single(torch.cat([p[0] for p in parts]), mask=torch.cat([p[1] for p in parts]))
    torch.testing.assert_close(ranks[0]["codebook"], single.codebook, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ranks[0]["ema_count"], single.ema_count, rtol=1e-5, atol=1e-5)
    # the counts are those of both processes' valid frames (40 + 33 per step)
    assert ranks[0]["usage"].sum().item() == STEPS * (40 + 33)
    # a process alone learns another codebook: the comparison above can fail
    alone = _quantizer(**SCENARIOS["ema"])
    for step in range(1, STEPS + 1):
        x, mask = _batch(0, step)
        alone(x, mask=mask)
    assert (alone.codebook - single.codebook).abs().max() > 1e-2


def test_dead_code_restarts_give_every_rank_the_same_codebook(runs):
    # codes used fewer than 30 times in 2 steps (146 frames, 6 codes) count as dead and are
    # re-seeded at steps 2 and 4 from the recent frames of both processes, drawn on rank 0
    # (rank 1's generator differs)
    ranks = runs["restart"]
    torch.testing.assert_close(ranks[0]["codebook"], ranks[1]["codebook"], rtol=0, atol=0)
    torch.testing.assert_close(ranks[0]["ema_count"], ranks[1]["ema_count"], rtol=0, atol=0)
    assert ranks[0]["restarted"] == ranks[1]["restarted"] > 0
