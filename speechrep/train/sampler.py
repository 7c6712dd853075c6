"""The order of training crops: :class:`CropSampler`, a pure function of ``(seed, batch
index, rank)``, so that resuming needs only the number of batches consumed."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

__all__ = ["BatchSpec", "CropSampler"]

# Batches are described by the utterance index and crop start of each row (and, from a
# numbered sampler, each crop's stream position: it seeds the crop's augmentation).
BatchSpec = tuple[np.ndarray, ...]


class CropSampler(torch.utils.data.Sampler):
    """Endless stream of batch specs for one rank.

    Without ``speakers_per_batch``, the global stream visits utterances in a fresh random
    permutation each epoch; global batch k holds stream positions
    ``[k * B * world_size, (k + 1) * B * world_size)`` and rank r takes its r-th block of B.
    The crop start of a position depends only on the epoch and the position, so a run with
    ``accum_steps=2, batch_size=B`` sees the same crops as one with ``batch_size=2B``.

    With ``speakers_per_batch=S``, each batch (per rank) draws S speakers and ``B / S``
    utterances of each.

    Parameters
    ----------
    lengths : (N,) utterance lengths.
    speaker : (N,) speaker index of each utterance.
    crop, batch_size, seed, rank, world_size, speakers_per_batch : as named.
    start : index of the first batch to produce (batches consumed before a resume).
    numbered : yield ``(idx, starts, positions)``: positions (B,) number the crops of the
        global stream (``(k * world_size + rank) * B + row``, the same for any split of a
        batch into accumulation steps); they seed per-crop augmentation.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        speaker: np.ndarray,
        *,
        crop: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        speakers_per_batch: int | None = None,
        start: int = 0,
        numbered: bool = False,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.speaker = np.asarray(speaker, dtype=np.int64)
        self.crop, self.batch_size, self.seed = crop, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.speakers_per_batch = speakers_per_batch
        self.start, self.numbered = start, numbered
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if speakers_per_batch:
            self._spk_utts = [np.flatnonzero(self.speaker == s) for s in np.unique(self.speaker)]

    def __iter__(self) -> Iterator[BatchSpec]:
        k = self.start
        while True:
            spec = self.batch(k)
            if self.numbered:
                first = (k * self.world_size + self.rank) * self.batch_size
                spec = (*spec, np.arange(first, first + self.batch_size, dtype=np.int64))
            yield spec
            k += 1

    def _epoch(self, e: int) -> tuple[np.ndarray, np.ndarray]:
        if e not in self._epochs:
            rng = np.random.default_rng([self.seed, e])
            n = len(self.lengths)
            # keep the previous epoch too: a batch may straddle the boundary
            self._epochs = {k: v for k, v in self._epochs.items() if k == e - 1}
            self._epochs[e] = (rng.permutation(n), rng.random(n))
        return self._epochs[e]

    def _starts(self, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
        room = np.maximum(self.lengths[idx] - self.crop, 0) + 1
        return np.minimum((u * room).astype(np.int64), room - 1)

    def batch(self, k: int) -> BatchSpec:
        """Spec of batch ``k`` of this rank."""
        b = self.batch_size
        if self.speakers_per_batch:
            rng = np.random.default_rng([self.seed, k, self.rank, 1])
            s = self.speakers_per_batch
            groups = self._spk_utts
            chosen = rng.choice(len(groups), size=s, replace=s > len(groups))
            idx = np.concatenate(
                [rng.choice(groups[g], size=b // s, replace=b // s > len(groups[g])) for g in chosen]
            )
            return idx, self._starts(idx, rng.random(b))
        n = len(self.lengths)
        first = (k * self.world_size + self.rank) * b
        pos = np.arange(first, first + b)
        idx = np.empty(b, dtype=np.int64)
        u = np.empty(b)
        for e in np.unique(pos // n):
            sel = pos // n == e
            perm, draws = self._epoch(int(e))
            idx[sel], u[sel] = perm[pos[sel] % n], draws[pos[sel] % n]
        return idx, self._starts(idx, u)
