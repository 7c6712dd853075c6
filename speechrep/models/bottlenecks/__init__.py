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

The layers live in :mod:`.base` (interface), :mod:`.estimated` (one-hot, binary),
:mod:`.vq` (nearest code; :mod:`.kmeans` initialisation and :mod:`.distributed` sync under
DDP) and :mod:`.gumbel`; this module holds the config and the factory models build from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from speechrep.errors import ConfigError
from speechrep.estimators import TemperatureSchedule
from speechrep.models.bottlenecks.base import Bottleneck, Estimator
from speechrep.models.bottlenecks.estimated import BinaryBottleneck, OneHotBottleneck
from speechrep.models.bottlenecks.gumbel import GumbelVectorQuantizer
from speechrep.models.bottlenecks.vq import VectorQuantizer

__all__ = ["BottleneckConfig", "build_bottleneck"]


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
