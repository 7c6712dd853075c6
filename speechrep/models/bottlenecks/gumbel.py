"""Codebook lookup chosen by a hard Gumbel-softmax (wav2vec 2.0 style)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.errors import ConfigError
from speechrep.estimators import TemperatureSchedule, gumbel_softmax
from speechrep.models.bottlenecks.base import Bottleneck, BottleneckOutput, check_codes, usage_stats, valid_rows

__all__ = ["GumbelVectorQuantizer"]


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
        check_codes(num_codes)
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
        probs = valid_rows(torch.softmax(logits, -1), mask)  # (N, G, K)
        avg = probs.mean(0) if probs.shape[0] else torch.full_like(logits[0, 0], 1.0 / self.codes_per_group)
        perplexity = torch.exp(-(avg * torch.log(avg.clamp_min(1e-12))).sum(-1)).sum()
        total = self.groups * self.codes_per_group
        loss = self.diversity_weight * (total - perplexity) / total
        stats = usage_stats(valid_rows(idx, mask), self.codes_per_group)
        stats["tau"] = torch.tensor(self.tau, device=x.device)
        stats["soft_perplexity"] = perplexity.detach() / self.groups
        return BottleneckOutput(quantized.to(x.dtype), (idx * self.radix).sum(-1), loss, stats)
