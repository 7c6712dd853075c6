"""One-hot and binary layers: linear scores, then a discrete value through a gradient estimator
(:mod:`speechrep.estimators`)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from speechrep.errors import ConfigError
from speechrep.estimators import Reinforce, TemperatureSchedule, gumbel_sigmoid, gumbel_softmax, st_binary, st_onehot
from speechrep.models.bottlenecks.base import Bottleneck, BottleneckOutput, Estimator, check_codes, usage_stats, valid_rows

__all__ = ["OneHotBottleneck", "BinaryBottleneck"]


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
        stats = usage_stats(valid_rows(indices, mask).unsqueeze(-1), self.num_codes)
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
        check_codes(num_codes)
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
