"""Nearest-code vector quantisation (VQ-VAE) with EMA updates, k-means initialisation and dead-code restarts."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.errors import CheckpointError, ConfigError
from speechrep.models.bottlenecks.base import Bottleneck, BottleneckOutput, check_codes, usage_stats
from speechrep.models.bottlenecks.distributed import all_reduce_sum, broadcast_from_first, gather_rows, rank
from speechrep.models.bottlenecks.kmeans import kmeans
from speechrep.objectives.commitment import commitment_loss

__all__ = ["VectorQuantizer"]


class VectorQuantizer(Bottleneck):
    """Nearest-code vector quantization with a straight-through gradient (VQ-VAE).

    Parameters
    ----------
    input_dim : size of the encoder frames; projected linearly to ``code_dim`` if different.
    num_codes : K >= 2 codes per group.
    code_dim : D, size of the quantized vectors (split in ``groups`` equal parts).
    groups : G product codebooks, each quantizing D/G dimensions; ``num_codes`` of the
        unit inventory is K^G.
    beta : weight of the commitment loss ``||x - sg(q)||^2``.
    ema : update codes as exponential moving averages of their assigned vectors instead
        of with the codebook loss ``||sg(x) - q||^2``.
    decay, epsilon : EMA decay and Laplace smoothing of the cluster sizes.
    kmeans_init : set the codebook by k-means on the encoder outputs of the first
        ``kmeans_batches`` training batches (``kmeans_iters`` Lloyd iterations).
    restart_every : every this many steps (:meth:`on_step_end`), codes used fewer than
        ``dead_threshold`` times since the last check are re-seeded from recent encoder
        outputs (the last ``buffer_size`` valid frames); 0 disables restarts.
    cosine : compare L2-normalised vectors (cosine similarity); codes and quantized
        vectors are unit norm.

    Notes
    -----
    Under DistributedDataParallel (torch.distributed initialised) every process keeps
    the same codebook: the EMA statistics and usage counts of a step are summed over the
    processes before the update, so the codebook follows what one process would learn
    from all the processes' frames; k-means initialisation and dead-code restarts draw
    from the frames of all processes, run on rank 0 and are broadcast. Every process
    must therefore run the same number of training forwards and ``on_step_end`` calls,
    as DistributedDataParallel requires anyway.
    """

    def __init__(
        self,
        input_dim: int,
        num_codes: int,
        *,
        code_dim: int | None = None,
        groups: int = 1,
        beta: float = 0.25,
        ema: bool = True,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        kmeans_init: bool = True,
        kmeans_batches: int = 1,
        kmeans_iters: int = 10,
        restart_every: int = 100,
        dead_threshold: float = 1.0,
        buffer_size: int = 4096,
        cosine: bool = False,
    ):
        super().__init__()
        check_codes(num_codes)
        code_dim = code_dim or input_dim
        if groups < 1 or code_dim % groups:
            raise ConfigError(f"code_dim {code_dim} must be a positive multiple of groups {groups}", field="groups")
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay}", field="decay")
        self.input_dim, self.output_dim = input_dim, code_dim
        self.codes_per_group, self.groups, self.sub_dim = num_codes, groups, code_dim // groups
        self.num_codes = num_codes**groups
        self.beta, self.ema, self.decay, self.epsilon, self.cosine = beta, ema, decay, epsilon, cosine
        self.kmeans_init, self.kmeans_batches, self.kmeans_iters = kmeans_init, kmeans_batches, kmeans_iters
        self.restart_every, self.dead_threshold = restart_every, dead_threshold
        self.proj = nn.Linear(input_dim, code_dim) if input_dim != code_dim else nn.Identity()

        init = torch.randn(groups, num_codes, self.sub_dim)
        if cosine:
            init = F.normalize(init, dim=-1)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(groups, num_codes))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)
        self.register_buffer("initialised", torch.tensor(not kmeans_init))
        self.register_buffer("usage", torch.zeros(groups, num_codes))
        # Recent valid encoder outputs (projected), a ring buffer for dead-code restarts.
        # A plain attribute, not a buffer: DistributedDataParallel broadcasts the buffers
        # of rank 0 before every forward, which would replace each process's own frames.
        self.buffer_size = buffer_size
        self.recent: torch.Tensor | None = None
        self._recent_pos = 0
        self._recent_filled = 0
        self._kmeans_pool: list[torch.Tensor] = []
        self.last_restarted = 0
        self.register_buffer("radix", num_codes ** torch.arange(groups), persistent=False)

    # ------------------------------------------------------------------ checkpoints
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        key = prefix + "codebook"
        if key in state_dict and tuple(state_dict[key].shape) != tuple(self.codebook.shape):
            g, k, d = self.codebook.shape
            raise CheckpointError(
                f"checkpoint codebook has shape {tuple(state_dict[key].shape)} but the model is configured "
                f"for (groups, num_codes, code_dim/groups) = ({g}, {k}, {d})",
                field=key,
            )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    # ------------------------------------------------------------------ quantization
    def _codes(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1) if self.cosine else self.codebook

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code per group.

        Parameters
        ----------
        z : (N, G, D/G) float32 vectors (normalised already when ``cosine``).

        Returns
        -------
        (N, G) int64.
        """
        return self._distances_less_norm(z).argmin(-1)

    def _distances_less_norm(self, z: torch.Tensor) -> torch.Tensor:
        """``||z - e||^2 - ||z||^2 = ||e||^2 - 2 z.e`` of (N, G, d) vectors to every code: (N, G, K)
        (``||z||^2`` does not change the argmin)."""
        codes = self._codes().float()  # (G, K, d)
        return (codes**2).sum(-1).unsqueeze(0) - 2 * torch.einsum("ngd,gkd->ngk", z, codes)

    @torch.no_grad()
    def unit_costs(self, x: torch.Tensor) -> torch.Tensor:
        """Squared distance of every frame (projected, and normalised when ``cosine``) to every code."""
        if self.groups != 1:
            raise ConfigError(
                f"per-unit costs of a product codebook ({self.groups} groups) are not supported; segment units of groups 1",
                field="model.args.bottleneck.groups",
            )
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = self.proj(x.float())
            if self.cosine:
                z = F.normalize(z, dim=-1)
            d = self._distances_less_norm(z.reshape(-1, 1, z.shape[-1]))[:, 0].reshape(*z.shape[:-1], -1)
            return (d + (z**2).sum(-1, keepdim=True)).clamp_min(0.0)  # the argmin of nearest()

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> BottleneckOutput:
        b, t, _ = x.shape
        h = self.proj(x)
        out_dtype = h.dtype
        # Distances, EMA statistics and the losses need float32 (bf16 rounds codes together).
        with torch.autocast(device_type=x.device.type, enabled=False):
            z = h.float().reshape(b * t, self.groups, self.sub_dim)
            if self.cosine:
                z = F.normalize(z, dim=-1)
            valid = torch.ones(b * t, dtype=torch.bool, device=x.device) if mask is None else mask.reshape(-1)
            z_valid = z[valid].detach()
            if self.training and not bool(self.initialised):
                self._collect_for_kmeans(z_valid)
            idx = self.nearest(z.detach())  # (N, G)
            q = self._codes().float()[torch.arange(self.groups, device=x.device), idx]  # (N, G, d)
            loss = commitment_loss(z, q, valid, beta=self.beta, codebook_loss=not self.ema)
            if self.training and bool(self.initialised):  # codes are replaced by k-means until then
                self._track(z_valid, idx[valid])
            quantized = z + (q - z).detach()  # straight-through
        indices = (idx * self.radix).sum(-1).reshape(b, t)
        stats = usage_stats(idx[valid], self.codes_per_group)
        stats["restarted"] = torch.tensor(float(self.last_restarted), device=x.device)
        return BottleneckOutput(quantized.reshape(b, t, -1).to(out_dtype), indices, loss, stats)

    # ------------------------------------------------------------------ codebook maintenance
    @torch.no_grad()
    def _collect_for_kmeans(self, z_valid: torch.Tensor) -> None:
        self._kmeans_pool.append(z_valid)
        if len(self._kmeans_pool) < self.kmeans_batches:
            return
        pool = gather_rows(torch.cat(self._kmeans_pool))  # (N, G, D/G), frames of all processes
        self._kmeans_pool = []
        if rank() == 0:  # the broadcast below hands rank 0's centres to every process
            for g in range(self.groups):
                centres = kmeans(pool[:, g], self.codes_per_group, iters=self.kmeans_iters, cosine=self.cosine)
                self.codebook.data[g] = centres.to(self.codebook.dtype)
        if self.ema:
            self.ema_sum.copy_(self.codebook.data)
            self.ema_count.fill_(1.0)
        self._sync_codebook()
        self.initialised.fill_(True)

    def _sync_codebook(self) -> None:
        """Give every process the codebook (and EMA statistics) of rank 0."""
        broadcast_from_first(self.codebook.data, *((self.ema_sum, self.ema_count) if self.ema else ()))

    @torch.no_grad()
    def _track(self, z_valid: torch.Tensor, idx_valid: torch.Tensor) -> None:
        """EMA update, usage counts and the buffer of recent vectors (training only)."""
        onehot = F.one_hot(idx_valid, self.codes_per_group).float()  # (N, G, K)
        counts = onehot.sum(0)  # (G, K)
        if self.ema:
            # one all-reduce of counts and sums: the statistics of all processes' frames
            g, k, d = self.codebook.shape
            stats = torch.cat([counts.reshape(-1), torch.einsum("ngk,ngd->gkd", onehot, z_valid).reshape(-1)])
            stats = all_reduce_sum(stats)
            counts, sums = stats[: g * k].reshape(g, k), stats[g * k :].reshape(g, k, d)
            self.ema_update(counts, sums)
        else:
            counts = all_reduce_sum(counts)
        self.usage += counts
        flat = z_valid.reshape(z_valid.shape[0], -1)[-self.buffer_size :]
        if self.recent is None or self.recent.device != flat.device:
            self.recent = flat.new_zeros(self.buffer_size, flat.shape[1])
            self._recent_pos = self._recent_filled = 0
        n, cap = flat.shape[0], self.buffer_size
        pos = (self._recent_pos + torch.arange(n, device=flat.device)) % cap
        self.recent[pos] = flat
        self._recent_pos = (self._recent_pos + n) % cap
        self._recent_filled = min(cap, self._recent_filled + n)

    @torch.no_grad()
    def ema_update(self, counts: torch.Tensor, sums: torch.Tensor) -> None:
        """One EMA step of the codebook.

        ``N_k <- decay N_k + (1 - decay) n_k``, ``m_k <- decay m_k + (1 - decay) s_k``,
        ``e_k = m_k / Ñ_k`` with the Laplace-smoothed ``Ñ_k = (N_k + eps) / (N + K eps) N``
        (``N = sum_k N_k``) so that unused codes never divide by zero.

        Parameters
        ----------
        counts : (G, K) vectors assigned to each code in this batch (n_k).
        sums : (G, K, D/G) sum of those vectors (s_k).
        """
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.ema_count.sum(-1, keepdim=True)
        smoothed = (self.ema_count + self.epsilon) / (total + self.codes_per_group * self.epsilon) * total
        self.codebook.copy_(self.ema_sum / smoothed.unsqueeze(-1))

    @torch.no_grad()
    def restart_dead_codes(self, *, generator: torch.Generator | None = None) -> int:
        """Re-seed codes used fewer than ``dead_threshold`` times since the last call.

        Each dead code becomes a random recent encoder output (from the ring buffer); its
        EMA statistics restart from that vector. Usage counts are reset.

        Returns
        -------
        Number of codes restarted (0 while no encoder output has been seen).
        """
        restarted = 0
        own = self.recent[: self._recent_filled] if self.recent is not None else self.codebook.new_zeros(0, self.output_dim)
        pool = gather_rows(own.float()).reshape(-1, self.groups, self.sub_dim)  # recent frames of all processes
        if pool.shape[0] > 0:
            # usage counts are summed over the processes, so every process finds the same
            # dead codes; the random picks of rank 0 are broadcast below
            for g in range(self.groups):
                dead = (self.usage[g] < self.dead_threshold).nonzero().squeeze(-1)
                if dead.numel() == 0:
                    continue
                pick = torch.randint(pool.shape[0], (dead.numel(),), generator=generator).to(pool.device)
                new = pool[pick, g]
                self.codebook.data[g, dead] = new.to(self.codebook.dtype)
                if self.ema:
                    self.ema_sum[g, dead] = new
                    self.ema_count[g, dead] = 1.0
                restarted += int(dead.numel())
            if restarted:
                self._sync_codebook()
        self.usage.zero_()
        self.last_restarted = restarted
        return restarted

    def on_step_end(self, step: int) -> None:
        if self.restart_every and step > 0 and step % self.restart_every == 0:
            self.restart_dead_codes()
