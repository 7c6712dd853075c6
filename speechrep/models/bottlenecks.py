"""Discrete bottlenecks: one-hot, binary, vector-quantised (nearest code) and Gumbel VQ.

Every bottleneck maps encoder frames ``x`` of shape (batch, time, input_dim) to a
:class:`BottleneckOutput` with the same fields:

- ``quantized`` (batch, time, output_dim): what the decoder sees. One-hot layers emit
  the one-hot vector itself (output_dim = K), binary layers the bits (output_dim = N),
  vector quantizers the chosen code vectors (output_dim = code dim).
- ``indices`` (batch, time) int64: the unit of each frame, in ``[0, num_codes)``; for
  binary layers the integer whose bits are the frame's bits, for product codebooks the
  mixed-radix combination of the per-group indices.
- ``loss``: 0-dim auxiliary loss (commitment/codebook loss, diversity loss, or 0).
- ``stats``: 0-dim tensors logged every step, always ``perplexity`` (exp of the entropy
  of the batch's unit histogram, per group and averaged) and ``used_codes`` (distinct
  units in the batch, per group and averaged).

``num_codes`` is the size of the unit inventory and ``bits`` = log2(num_codes) the bits
per frame, so that layers can be compared at the same bit budget: K one-hot classes,
log2 K bits, and a K-entry codebook all name the same number of units. Binary layers
can also name combinations never seen during training.

Gradients through the discrete step come from :mod:`speechrep.estimators`:
straight-through for vector quantizers, and a configurable estimator for one-hot and
binary layers (straight-through, Gumbel soft/hard, REINFORCE). With REINFORCE the
quantized output carries no gradient; the model passes a per-utterance cost to
:meth:`Bottleneck.policy_loss` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from speechrep.errors import CheckpointError, ConfigError
from speechrep.estimators import Reinforce, TemperatureSchedule, gumbel_sigmoid, gumbel_softmax, st_binary, st_onehot

__all__ = [
    "BottleneckOutput",
    "Bottleneck",
    "OneHotBottleneck",
    "BinaryBottleneck",
    "VectorQuantizer",
    "GumbelVectorQuantizer",
    "BottleneckConfig",
    "build_bottleneck",
    "kmeans",
    "usage_stats",
]

Estimator = Literal["st", "gumbel", "gumbel_st", "reinforce"]


@dataclass
class BottleneckOutput:
    """Result of a bottleneck (see the module docstring for the fields)."""

    quantized: torch.Tensor
    indices: torch.Tensor
    loss: torch.Tensor
    stats: dict[str, torch.Tensor]
    log_prob: torch.Tensor | None = None
    """(batch,) log-probability of the sampled units of each utterance (REINFORCE only)."""


def usage_stats(indices: torch.Tensor, num_codes: int) -> dict[str, torch.Tensor]:
    """Perplexity and number of distinct codes of a set of unit indices.

    Parameters
    ----------
    indices : (N, G) int64, per-group code indices of N valid frames.
    num_codes : codes per group.

    Returns
    -------
    dict with 0-dim float tensors ``perplexity`` and ``used_codes`` (both averaged over
    groups); for N = 0 both are 0.
    """
    if indices.numel() == 0:
        zero = torch.zeros((), device=indices.device)
        return {"perplexity": zero, "used_codes": zero.clone()}
    g = indices.shape[1]
    offsets = torch.arange(g, device=indices.device) * num_codes
    counts = torch.bincount((indices + offsets).reshape(-1), minlength=g * num_codes).reshape(g, num_codes).float()
    p = counts / counts.sum(-1, keepdim=True)
    entropy = -(p * torch.log(p.clamp_min(1e-12))).sum(-1)  # (G,)
    return {"perplexity": entropy.exp().mean(), "used_codes": (counts > 0).float().sum(-1).mean()}


def _check_codes(num_codes: int, *, name: str = "num_codes") -> None:
    if num_codes < 2:
        raise ConfigError(f"codebook size must be >= 2 (one code carries no information), got {num_codes}", field=name)


def _world_size() -> int:
    """Processes of the default group; 1 when torch.distributed is not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _rank() -> int:
    """Rank of this process; 0 when torch.distributed is not initialised."""
    return dist.get_rank() if _world_size() > 1 else 0


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum of ``x`` over all processes (``x`` itself in a single process); in place."""
    if _world_size() > 1:
        dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x


def _gather_rows(x: torch.Tensor) -> torch.Tensor:
    """(N_r, ...) rows of every process, concatenated in rank order.

    Processes may hold different numbers of rows; in a single process ``x`` is returned.
    """
    world = _world_size()
    if world == 1:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    longest = int(max(sizes).item())
    padded = x.new_zeros((longest, *x.shape[1:]))  # all_gather needs equal shapes
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[: int(size.item())] for part, size in zip(parts, sizes)])


def _broadcast_from_first(*tensors: torch.Tensor) -> None:
    """Overwrite ``tensors`` in every process with those of rank 0 (no-op in a single process)."""
    if _world_size() > 1:
        for t in tensors:
            dist.broadcast(t, src=0)


def _valid_rows(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, ...) -> (N, ...) rows of the valid frames."""
    flat = x.reshape(-1, *x.shape[2:])
    return flat if mask is None else flat[mask.reshape(-1)]


class Bottleneck(nn.Module):
    """Common interface of all discrete bottlenecks.

    Attributes
    ----------
    input_dim, output_dim : feature sizes in and out.
    num_codes : size of the unit inventory named by ``indices``.
    """

    input_dim: int
    output_dim: int
    num_codes: int

    @property
    def bits(self) -> float:
        """Bits per frame, log2(num_codes)."""
        return math.log2(self.num_codes)

    @property
    def needs_cost(self) -> bool:
        """Whether the model must add :meth:`policy_loss` (REINFORCE estimators)."""
        return False

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> BottleneckOutput:  # pragma: no cover
        """Quantize (batch, time, input_dim) frames; ``mask`` (batch, time) marks valid ones."""
        raise NotImplementedError

    def policy_loss(self, out: BottleneckOutput, cost: torch.Tensor) -> torch.Tensor:
        """REINFORCE surrogate for per-utterance ``cost`` (batch,); 0 for other estimators."""
        return cost.new_zeros(())

    def on_step_end(self, step: int) -> None:
        """Per-step maintenance (temperature schedules, dead-code restarts)."""

    def unit_costs(self, x: torch.Tensor) -> torch.Tensor:
        """Cost of naming each frame of ``x`` (B, T, input_dim) by each unit: (B, T, num_codes)
        float32, lowest for the unit :meth:`forward` picks (used to segment units,
        :func:`speechrep.units.segment_units`)."""
        raise ConfigError(
            f"{type(self).__name__} has no per-unit costs to segment with (use a vq bottleneck with groups 1)",
            field="model.args.bottleneck.kind",
        )


class _EstimatedBottleneck(Bottleneck):
    """Shared code of the one-hot and binary layers: logits -> discrete value via an estimator."""

    def __init__(self, input_dim: int, width: int, *, estimator: Estimator, tau: TemperatureSchedule | None, baseline_decay: float):
        super().__init__()
        if estimator not in ("st", "gumbel", "gumbel_st", "reinforce"):
            raise ConfigError(f"unknown estimator {estimator!r} (known: st, gumbel, gumbel_st, reinforce)", field="estimator")
        self.input_dim = input_dim
        self.output_dim = width
        self.estimator = estimator
        self.schedule = tau or TemperatureSchedule()
        self.tau = self.schedule(0)
        self.proj = nn.Linear(input_dim, width)
        self.reinforce = Reinforce(baseline="moving_average", decay=baseline_decay) if estimator == "reinforce" else None

    @property
    def needs_cost(self) -> bool:
        return self.estimator == "reinforce"

    def on_step_end(self, step: int) -> None:
        self.tau = self.schedule(step)

    def policy_loss(self, out: BottleneckOutput, cost: torch.Tensor) -> torch.Tensor:
        if self.reinforce is None or out.log_prob is None:
            return cost.new_zeros(())
        return self.reinforce.loss(out.log_prob, cost)

    def _discretise(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:  # pragma: no cover
        raise NotImplementedError

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> BottleneckOutput:
        logits = self.proj(x).float()  # (B, T, W)
        values, frame_logp = self._discretise(logits)
        log_prob = None
        if frame_logp is not None:  # (B, T) -> (B,), only valid frames count
            log_prob = (frame_logp * (mask if mask is not None else 1.0)).sum(-1)
        indices = self._indices(values.detach())
        stats = usage_stats(_valid_rows(indices, mask).unsqueeze(-1), self.num_codes)
        if self.estimator in ("gumbel", "gumbel_st"):
            stats["tau"] = torch.tensor(self.tau, device=x.device)
        return BottleneckOutput(values.to(x.dtype), indices, logits.new_zeros(()), stats, log_prob)

    def _indices(self, values: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class OneHotBottleneck(_EstimatedBottleneck):
    """Linear scores over K classes, then a one-hot choice (the argmax at evaluation).

    Parameters
    ----------
    input_dim : size of the encoder frames.
    num_codes : K >= 2 classes; the output is the (batch, time, K) one-hot vector.
    estimator : ``"st"`` (argmax, softmax straight-through), ``"gumbel"`` (relaxed
        Gumbel-softmax sample while training), ``"gumbel_st"`` (hard Gumbel sample,
        soft gradient), ``"reinforce"`` (sampled class, gradient from
        :meth:`policy_loss`).
    tau : temperature schedule of the Gumbel estimators.
    baseline_decay : moving-average baseline of REINFORCE.
    """

    def __init__(
        self,
        input_dim: int,
        num_codes: int,
        *,
        estimator: Estimator = "st",
        tau: TemperatureSchedule | None = None,
        baseline_decay: float = 0.9,
    ):
        _check_codes(num_codes)
        super().__init__(input_dim, num_codes, estimator=estimator, tau=tau, baseline_decay=baseline_decay)
        self.num_codes = num_codes

    def _discretise(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training:
            return F.one_hot(logits.argmax(-1), self.num_codes).float(), None
        if self.estimator == "st":
            return st_onehot(logits, mode="softmax"), None
        if self.estimator == "reinforce":
            assert self.reinforce is not None
            return self.reinforce.sample_categorical(logits)
        return gumbel_softmax(logits, tau=self.tau, hard=self.estimator == "gumbel_st"), None

    def _indices(self, values: torch.Tensor) -> torch.Tensor:
        return values.argmax(-1)


class BinaryBottleneck(_EstimatedBottleneck):
    """N independent bits per frame: 2^N units from N dimensions.

    Parameters
    ----------
    input_dim : size of the encoder frames.
    num_bits : N >= 1; the output is (batch, time, N) in {0, 1}; the unit index of a
        frame is ``sum_i bit_i * 2^i``.
    estimator : as for :class:`OneHotBottleneck` (Gumbel variants use the binary concrete
        relaxation; ``"st"`` thresholds at 0 with the sigmoid straight-through gradient).
    tau, baseline_decay : as for :class:`OneHotBottleneck`.
    """

    def __init__(
        self,
        input_dim: int,
        num_bits: int,
        *,
        estimator: Estimator = "st",
        tau: TemperatureSchedule | None = None,
        baseline_decay: float = 0.9,
    ):
        if num_bits < 1:
            raise ConfigError(f"a binary layer needs at least 1 bit (2 codes), got {num_bits}", field="num_bits")
        if num_bits > 30:
            raise ConfigError(f"at most 30 bits are supported (unit indices are integers), got {num_bits}", field="num_bits")
        super().__init__(input_dim, num_bits, estimator=estimator, tau=tau, baseline_decay=baseline_decay)
        self.num_bits = num_bits
        self.num_codes = 2**num_bits
        self.register_buffer("powers", 2 ** torch.arange(num_bits), persistent=False)

    def _discretise(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.training:
            return (logits > 0).float(), None
        if self.estimator == "st":
            return st_binary(logits, mode="sigmoid"), None
        if self.estimator == "reinforce":
            assert self.reinforce is not None
            return self.reinforce.sample_bernoulli(logits)
        return gumbel_sigmoid(logits, tau=self.tau, hard=self.estimator == "gumbel_st"), None

    def _indices(self, values: torch.Tensor) -> torch.Tensor:
        return ((values > 0.5).long() * self.powers).sum(-1)


def kmeans(
    x: torch.Tensor, k: int, *, iters: int = 10, cosine: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding.

    Parameters
    ----------
    x : (N, D) float samples.
    k : number of centroids; with N < k samples are reused with small noise.
    iters : Lloyd iterations.
    cosine : cluster unit-normalised vectors by cosine similarity.

    Returns
    -------
    (k, D) float32 centroids (unit norm when ``cosine``).
    """
    x = x.float()
    if cosine:
        x = F.normalize(x, dim=-1)
    n = x.shape[0]
    if n < k:  # too few samples: duplicate them, jittered so the centroids differ
        extra = x[torch.randint(n, (k - n,), generator=generator)]
        x = torch.cat([x, extra + 1e-3 * torch.randn(extra.shape, generator=generator)])
        n = k
    # k-means++ seeding: next centre drawn proportionally to squared distance
    centres = x[torch.randint(n, (1,), generator=generator)]
    d2 = torch.cdist(x, centres).squeeze(1) ** 2
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1.0 / n)
        nxt = x[torch.multinomial(probs, 1, generator=generator)]
        centres = torch.cat([centres, nxt])
        d2 = torch.minimum(d2, (torch.cdist(x, nxt).squeeze(1)) ** 2)
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(-1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float().unsqueeze(-1)
        # empty clusters keep their centre
        centres = torch.where(counts > 0, sums / counts.clamp_min(1.0), centres)
        if cosine:
            centres = F.normalize(centres, dim=-1)
    return centres


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
        _check_codes(num_codes)
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
            w = valid.float()[:, None, None]
            denom = w.sum().clamp_min(1.0) * self.groups * self.sub_dim
            loss = self.beta * (((z - q.detach()) ** 2) * w).sum() / denom
            if not self.ema:
                loss = loss + (((z.detach() - q) ** 2) * w).sum() / denom
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
        pool = _gather_rows(torch.cat(self._kmeans_pool))  # (N, G, D/G), frames of all processes
        self._kmeans_pool = []
        if _rank() == 0:  # the broadcast below hands rank 0's centres to every process
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
        _broadcast_from_first(self.codebook.data, *((self.ema_sum, self.ema_count) if self.ema else ()))

    @torch.no_grad()
    def _track(self, z_valid: torch.Tensor, idx_valid: torch.Tensor) -> None:
        """EMA update, usage counts and the buffer of recent vectors (training only)."""
        onehot = F.one_hot(idx_valid, self.codes_per_group).float()  # (N, G, K)
        counts = onehot.sum(0)  # (G, K)
        if self.ema:
            # one all-reduce of counts and sums: the statistics of all processes' frames
            g, k, d = self.codebook.shape
            stats = torch.cat([counts.reshape(-1), torch.einsum("ngk,ngd->gkd", onehot, z_valid).reshape(-1)])
            stats = _all_reduce_sum(stats)
            counts, sums = stats[: g * k].reshape(g, k), stats[g * k :].reshape(g, k, d)
            self.ema_update(counts, sums)
        else:
            counts = _all_reduce_sum(counts)
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
        pool = _gather_rows(own.float()).reshape(-1, self.groups, self.sub_dim)  # recent frames of all processes
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


class GumbelVectorQuantizer(Bottleneck):
    """Codebook lookup chosen by a hard Gumbel-softmax over learned scores (wav2vec 2.0 style).

    Parameters
    ----------
    input_dim : size of the encoder frames.
    num_codes : K >= 2 codes per group.
    code_dim : D, size of the output (G groups of D/G each).
    groups : G product codebooks (unit inventory K^G).
    tau : temperature schedule, advanced by :meth:`on_step_end`.
    hard : straight-through hard samples (else soft mixtures of codes while training).
    diversity_weight : weight of ``(GK - sum_g exp H(mean softmax_g)) / GK``, which pushes
        towards using all codes.
    """

    def __init__(
        self,
        input_dim: int,
        num_codes: int,
        *,
        code_dim: int = 64,
        groups: int = 1,
        tau: TemperatureSchedule | None = None,
        hard: bool = True,
        diversity_weight: float = 0.1,
    ):
        super().__init__()
        _check_codes(num_codes)
        if groups < 1 or code_dim % groups:
            raise ConfigError(f"code_dim {code_dim} must be a positive multiple of groups {groups}", field="groups")
        self.input_dim, self.output_dim = input_dim, code_dim
        self.codes_per_group, self.groups = num_codes, groups
        self.num_codes = num_codes**groups
        self.schedule = tau or TemperatureSchedule(kind="exponential", start=2.0, end=0.5, steps=10000)
        self.tau = self.schedule(0)
        self.hard, self.diversity_weight = hard, diversity_weight
        self.proj = nn.Linear(input_dim, groups * num_codes)
        self.codebook = nn.Parameter(torch.randn(groups, num_codes, code_dim // groups))
        self.register_buffer("radix", num_codes ** torch.arange(groups), persistent=False)

    def on_step_end(self, step: int) -> None:
        self.tau = self.schedule(step)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None) -> BottleneckOutput:
        b, t, _ = x.shape
        logits = self.proj(x).float().reshape(b, t, self.groups, self.codes_per_group)
        if self.training:
            sel = gumbel_softmax(logits, tau=self.tau, hard=self.hard)
        else:
            sel = F.one_hot(logits.argmax(-1), self.codes_per_group).float()
        quantized = torch.einsum("btgk,gkd->btgd", sel, self.codebook.float()).reshape(b, t, -1)
        idx = logits.argmax(-1) if not self.training else sel.argmax(-1)  # (B, T, G)
        probs = _valid_rows(torch.softmax(logits, -1), mask)  # (N, G, K)
        avg = probs.mean(0) if probs.shape[0] else torch.full_like(logits[0, 0], 1.0 / self.codes_per_group)
        perplexity = torch.exp(-(avg * torch.log(avg.clamp_min(1e-12))).sum(-1)).sum()
        total = self.groups * self.codes_per_group
        loss = self.diversity_weight * (total - perplexity) / total
        stats = usage_stats(_valid_rows(idx, mask), self.codes_per_group)
        stats["tau"] = torch.tensor(self.tau, device=x.device)
        stats["soft_perplexity"] = perplexity.detach() / self.groups
        return BottleneckOutput(quantized.to(x.dtype), (idx * self.radix).sum(-1), loss, stats)


@dataclass
class BottleneckConfig:
    """Which bottleneck a model uses, and its options (shared by VQ-VAE and VQ-CPC).

    ``kind``: ``vq`` (:class:`VectorQuantizer`), ``onehot``, ``binary`` or ``gumbel``
    (:class:`GumbelVectorQuantizer`). ``num_codes`` is the codebook size (per group) of
    vq/onehot/gumbel, ``num_bits`` the width of the binary layer.
    """

    kind: Literal["vq", "onehot", "binary", "gumbel"] = "vq"
    num_codes: int = 512
    num_bits: int = 9
    code_dim: int = 64
    groups: int = 1
    estimator: Estimator = "st"
    beta: float = 0.25
    ema: bool = True
    decay: float = 0.99
    kmeans_init: bool = True
    kmeans_batches: int = 1
    kmeans_iters: int = 10
    restart_every: int = 100
    dead_threshold: float = 1.0
    cosine: bool = False
    tau: TemperatureSchedule = field(default_factory=lambda: TemperatureSchedule(kind="exponential", start=2.0, end=0.5, steps=10000))
    diversity_weight: float = 0.1
    baseline_decay: float = 0.9


def build_bottleneck(cfg: BottleneckConfig, input_dim: int) -> Bottleneck:
    """Instantiate the bottleneck described by ``cfg`` for frames of size ``input_dim``."""
    if cfg.kind == "onehot":
        return OneHotBottleneck(input_dim, cfg.num_codes, estimator=cfg.estimator, tau=cfg.tau, baseline_decay=cfg.baseline_decay)
    if cfg.kind == "binary":
        return BinaryBottleneck(input_dim, cfg.num_bits, estimator=cfg.estimator, tau=cfg.tau, baseline_decay=cfg.baseline_decay)
    if cfg.kind == "gumbel":
        return GumbelVectorQuantizer(
            input_dim, cfg.num_codes, code_dim=cfg.code_dim, groups=cfg.groups, tau=cfg.tau, diversity_weight=cfg.diversity_weight
        )
    if cfg.kind == "vq":
        return VectorQuantizer(
            input_dim,
            cfg.num_codes,
            code_dim=cfg.code_dim,
            groups=cfg.groups,
            beta=cfg.beta,
            ema=cfg.ema,
            decay=cfg.decay,
            kmeans_init=cfg.kmeans_init,
            kmeans_batches=cfg.kmeans_batches,
            kmeans_iters=cfg.kmeans_iters,
            restart_every=cfg.restart_every,
            dead_threshold=cfg.dead_threshold,
            cosine=cfg.cosine,
        )
    raise ConfigError(f"unknown bottleneck kind {cfg.kind!r} (known: vq, onehot, binary, gumbel)", field="bottleneck.kind")
