"""Contrastive Predictive Coding (CPC_audio-style) for speech.

    input --encoder--> z (B, T, D) --[bottleneck]--> z --context--> c (B, T, C)
    c[:, :W] --K prediction heads--> p (B, W, K, D),  W = T - K
    loss = estimator(critic(p, z), critic(p, negatives))   default: InfoNCE of <p, z> / D

The critic and the estimator are those of Deep InfoMax (:mod:`speechrep.models.dim`):
``critic: separable`` scores ``<p, z> / D``, ``critic: reconstruction`` scores
``-||p - z||^2 / D`` (the predictor is then a decoder of future frames);
``estimator: infonce`` is CPC, ``jsd`` and ``dv`` other bounds on the same scores,
``positive`` drops the negatives (with the reconstruction critic: a future-frame
autoencoder, which collapses; :mod:`speechrep.objectives.collapse` catches it).

The encoder is :class:`~speechrep.models.encoders.WaveEncoder` for waveform input and
:class:`~speechrep.models.encoders.FeatureEncoder` when the data pipeline gives
features (``input_dim`` set). The K prediction heads run as one batched module: a
single linear map to ``K * D`` outputs, or K one-layer transformers whose weights are
stacked so that each layer is one batched matrix product for all heads.

An optional ``bottleneck`` module between encoder and context (e.g. vector quantisation)
is called as ``z, extra = bottleneck(z)``; ``extra["loss"]`` (if any) is added to the
loss and the other entries of ``extra`` are logged. Its output feeds the context network
and is also the target of the predictions.

Speaker invariance (:mod:`speechrep.models.invariance`): ``utt_norm`` normalises each
utterance's encoder output over time before the bottleneck and the context network;
``speaker_adversary`` trains a speaker classifier on the encoder output or the context
through gradient reversal; ``negatives: speaker`` (the default) draws negatives within
the anchor's speaker.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from speechrep.config import dataclass, field
from speechrep.errors import ConfigError
from speechrep.models.context import ContextKind, build_context
from speechrep.models.critics import PredictionDistanceCritic, PredictionDotCritic
from speechrep.models.encoders import FeatureEncoder, WaveEncoder
from speechrep.models.invariance import (SpeakerAdversaryConfig, build_speaker_adversary, frame_lengths,
                                         utterance_normalise)
from speechrep.objectives.collapse import collapse_monitors
from speechrep.objectives.infonce import NegativeMode, infonce_logits, predictive_estimator, sample_negatives
from speechrep.objectives.mi import Estimator
from speechrep.models.registry import register_model

__all__ = ["CPCConfig", "CPC", "LinearPredictor", "TransformerPredictor", "build_cpc"]


@dataclass
class CPCConfig:
    """``model.args`` of ``name: cpc``. Defaults are the CPC_audio sizes."""

    dim: int = 256  #: encoder code size D
    context: ContextKind = "lstm"  #: autoregressive network: gru | lstm | transformer
    context_dim: int = 256  #: context size C
    context_layers: int = 1
    num_steps: int = 12  #: K, frames predicted ahead
    predictor: Literal["linear", "transformer"] = "linear"  #: K linear heads, or K one-layer transformers
    predictor_heads: int = 8  #: attention heads of each transformer predictor
    predictor_ff_dim: int = 2048  #: feed-forward width of each transformer predictor
    predictor_max_distance: int = 128  #: relative positions beyond this share one bias
    predictor_recompute: bool = True  #: recompute transformer-predictor activations in backward (less memory)
    num_negatives: int = 128  #: N negatives per prediction
    negatives: NegativeMode = "speaker"  #: where negatives come from: sequence | speaker | batch
    critic: Literal["separable", "reconstruction"] = "separable"  #: score <p, z> / D, or -||p - z||^2 / D
    estimator: Estimator = "infonce"  #: jsd | dv | infonce | positive (no negatives: collapses)
    feat_layers: int = 3  #: conv layers of the feature-input encoder
    feat_stride: int = 1  #: input frames per encoder frame for feature input: 1 or 2 (20 ms codes from 10 ms features)
    feat_frame_shift: float = 0.01  #: frame shift (s) of input features
    feat_frame_offset: float = 0.0125  #: centre (s) of the first input feature frame
    sample_rate: int = 16000  #: waveform rate
    #: normalise each utterance's encoder output to zero mean and unit variance over time
    #: (per channel) before the bottleneck and the context network
    utt_norm: bool = False
    #: speaker classifier behind gradient reversal (weight 0: off), e.g.
    #: ``{weight: 0.1, layer: context, hidden: 256}``
    speaker_adversary: SpeakerAdversaryConfig = field(default_factory=SpeakerAdversaryConfig)
    num_speakers: int = 0  #: training speakers (filled in by the Trainer)

    #: deleted options that checkpoints saved before hold (:func:`speechrep.models.registry.drop_retired`)
    retired_options: ClassVar[dict[str, Any]] = {"feat_warp": 0.0}
    #: ``objective`` of checkpoints saved before the critic + estimator vocabulary
    renamed_options: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"objective": {
        "infonce": {"critic": "separable", "estimator": "infonce"},
        "positive_only": {"critic": "reconstruction", "estimator": "positive"},
    }}

    def __post_init__(self) -> None:
        positive = ("dim", "context_dim", "context_layers", "num_steps", "num_negatives", "feat_layers")
        for name in positive + ("predictor_heads", "predictor_ff_dim", "predictor_max_distance"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=f"model.args.{name}")
        if self.predictor == "transformer" and self.context_dim != self.dim:
            raise ConfigError(
                f"a transformer predictor needs context_dim == dim, got {self.context_dim} and {self.dim}",
                field="model.args.context_dim",
            )
        if self.predictor == "transformer" and self.dim % self.predictor_heads:
            raise ConfigError(
                f"dim {self.dim} is not divisible by predictor_heads {self.predictor_heads}", field="model.args.predictor_heads"
            )
        if self.critic == "separable" and self.estimator == "positive":
            # without negatives <p, z> grows without bound
            raise ConfigError("the separable critic needs negatives: use jsd, dv or infonce", field="model.args.estimator")
        if self.feat_stride not in (1, 2):
            raise ConfigError(f"must be 1 or 2, got {self.feat_stride}", field="model.args.feat_stride")
        if self.context == "transformer" and self.context_dim % 4:
            raise ConfigError(
                f"a transformer context needs context_dim divisible by 4, got {self.context_dim}", field="model.args.context_dim"
            )


class LinearPredictor(nn.Module):
    """K linear prediction heads as one ``C -> K * D`` linear map (no bias, as CPC_audio).

    Parameters
    ----------
    context_dim, dim, num_steps : C, D, K.
    """

    def __init__(self, context_dim: int, dim: int, num_steps: int):
        super().__init__()
        self.num_steps, self.dim = num_steps, dim
        self.weight = nn.Parameter(torch.empty(num_steps * dim, context_dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def heads(self, c: torch.Tensor, steps: slice = slice(None)) -> torch.Tensor:
        """(B, W, C) contexts -> (B, W, k, D) predictions of the steps in ``steps``."""
        w = self.weight.view(self.num_steps, self.dim, -1)[steps]  # (k, D, C)
        out = F.linear(c, w.reshape(-1, w.shape[-1]))
        return out.view(*c.shape[:-1], w.shape[0], self.dim)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """(B, W, C) -> (B, W, K, D)."""
        return self.heads(c)


class TransformerPredictor(nn.Module):
    """K independent one-layer causal transformers (post-norm, CPC_audio's predictor).

    Each head k maps the context sequence to predictions of step k with its own
    self-attention (learned relative-position bias per head and distance), feed-forward
    network and layer norms. The K heads' weights are stacked on a leading axis, so each
    layer runs as one batched matrix product over all heads instead of a loop.

    Parameters
    ----------
    dim : model width = context size = code size D.
    num_steps : K.
    num_heads, ff_dim : attention heads and feed-forward width of each transformer.
    max_distance : relative distances >= this share the last bias.
    recompute : keep only the input for backward and recompute the layers, a few heads
        at a time (one more forward pass of the predictors for a fraction of the memory).
    """

    #: heads per recomputed group
    RECOMPUTE_HEADS = 1

    def __init__(
        self, dim: int, num_steps: int, *, num_heads: int = 8, ff_dim: int = 2048, max_distance: int = 128, recompute: bool = True
    ):
        super().__init__()
        K, D = num_steps, dim
        self.num_steps, self.dim, self.num_heads, self.max_distance = K, D, num_heads, max_distance
        self.recompute = recompute

        def uniform(*shape: int, fan_in: int) -> nn.Parameter:
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter(torch.empty(*shape).uniform_(-bound, bound))

        self.w_qkv = uniform(K, D, 3 * D, fan_in=D)
        self.w_out = uniform(K, D, D, fan_in=D)
        self.rel_bias = nn.Parameter(torch.zeros(K, num_heads, max_distance))
        self.w_ff1, self.b_ff1 = uniform(K, D, ff_dim, fan_in=D), uniform(K, ff_dim, fan_in=D)
        self.w_ff2, self.b_ff2 = uniform(K, ff_dim, D, fan_in=ff_dim), uniform(K, D, fan_in=ff_dim)
        self.ln1_w, self.ln1_b = nn.Parameter(torch.ones(K, D)), nn.Parameter(torch.zeros(K, D))
        self.ln2_w, self.ln2_b = nn.Parameter(torch.ones(K, D)), nn.Parameter(torch.zeros(K, D))

    @staticmethod
    def _norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        # x (k, M, D); one affine map per head
        return torch.addcmul(b[:, None], F.layer_norm(x, x.shape[-1:]), w[:, None])

    def _attention(self, c: torch.Tensor, w_qkv: torch.Tensor, rel_bias: torch.Tensor) -> torch.Tensor:
        """(B, W, D) contexts -> (k, B*W, D) attention outputs of k heads (before Wo)."""
        B, W, D = c.shape
        k, H, dk = w_qkv.shape[0], self.num_heads, D // self.num_heads
        # (B*W, D) x (D, k*3D): one product for the q, k, v of all heads
        qkv = (c.reshape(B * W, D) @ w_qkv.permute(1, 0, 2).reshape(D, k * 3 * D)).view(B, W, k, 3, H, dk)
        q, key, v = qkv.permute(3, 2, 0, 4, 1, 5).unbind(0)  # each (k, B, H, W, dk)
        dist = torch.arange(W, device=c.device)
        dist = (dist[:, None] - dist[None, :]).clamp(0, self.max_distance - 1)  # (W, W), i - j
        causal = torch.ones(W, W, dtype=torch.bool, device=c.device).triu(1)
        bias = rel_bias[:, :, dist].masked_fill(causal, float("-inf")).unsqueeze(1)  # (k, 1, H, W, W)
        att = torch.softmax(q @ key.transpose(-1, -2) / math.sqrt(dk) + bias.to(q.dtype), dim=-1)
        return (att @ v).permute(0, 1, 3, 2, 4).reshape(k, B * W, D)

    def _layer(self, c: torch.Tensor, *weights: torch.Tensor) -> torch.Tensor:
        """(B, W, D) contexts -> (k, B*W, D) outputs of the transformer layers of k heads.

        ``weights``: the per-head parameters in :attr:`_PARAMS` order, each (k, ...).
        """
        w_qkv, rel_bias, w_out, ln1_w, ln1_b, w1, b1, w2, b2, ln2_w, ln2_b = weights
        B, W, D = c.shape
        y = self._norm(c.reshape(B * W, D) + torch.bmm(self._attention(c, w_qkv, rel_bias), w_out), ln1_w, ln1_b)
        f = torch.baddbmm(b2[:, None], torch.relu(torch.baddbmm(b1[:, None], y, w1)), w2)  # feed-forward
        return self._norm(y + f, ln2_w, ln2_b)

    _PARAMS = ("w_qkv", "rel_bias", "w_out", "ln1_w", "ln1_b", "w_ff1", "b_ff1", "w_ff2", "b_ff2", "ln2_w", "ln2_b")

    def heads(self, c: torch.Tensor, steps: slice = slice(None)) -> torch.Tensor:
        """(B, W, D) contexts -> (B, W, k, D) predictions of the steps in ``steps``.

        With :attr:`recompute`, the heads run a few at a time, each group under
        activation checkpointing: backward keeps only ``c`` and recomputes the group's
        layer, so one group's attention weights and hidden layer exist at any moment.
        """
        B, W, D = c.shape
        weights = [getattr(self, name)[steps] for name in self._PARAMS]
        k = weights[0].shape[0]
        if self.recompute and torch.is_grad_enabled():
            n = self.RECOMPUTE_HEADS
            # split (not slicing): backward assembles each parameter's gradient once, in one
            # concatenation, instead of one zero-filled full-size tensor per group
            groups = list(zip(*(w.split(n) for w in weights)))
            y = torch.cat([checkpoint(self._layer, c, *group, use_reentrant=False) for group in groups])
        else:
            y = self._layer(c, *weights)
        return y.view(k, B, W, D).permute(1, 2, 0, 3)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """(B, W, D) -> (B, W, K, D)."""
        return self.heads(c)


class CPC(nn.Module):
    """CPC model: encoder, optional bottleneck, context network, K prediction heads.

    Parameters
    ----------
    cfg : :class:`CPCConfig`.
    input_dim : feature dimension for feature input; None for 16 kHz waveform.
    bottleneck : optional module ``z -> (z, extra)`` between encoder and context.
    """

    def __init__(self, cfg: CPCConfig, *, input_dim: int | None = None, bottleneck: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        if input_dim is None:
            self.input_key = "wave"
            self.encoder: nn.Module = WaveEncoder(cfg.dim, sample_rate=cfg.sample_rate)
        else:
            self.input_key = "feats"
            self.encoder = FeatureEncoder(
                input_dim,
                cfg.dim,
                num_layers=cfg.feat_layers,
                frame_shift=cfg.feat_frame_shift,
                frame_offset=cfg.feat_frame_offset,
                stride=cfg.feat_stride,
            )
        #: the Trainer may give ``wave_aug`` (data.augment_side: past), read by forward
        self.accepts_wave_aug = input_dim is None
        self.frame_shift: float = self.encoder.frame_shift
        self.frame_offset: float = self.encoder.frame_offset
        # input steps (samples or feature frames) per encoder frame
        self._hop = round(self.frame_shift * (cfg.sample_rate if input_dim is None else 1 / cfg.feat_frame_shift))
        self.bottleneck = bottleneck
        self.context = build_context(cfg.context, cfg.dim, cfg.context_dim, num_layers=cfg.context_layers)
        if cfg.predictor == "linear":
            self.predictor: nn.Module = LinearPredictor(cfg.context_dim, cfg.dim, cfg.num_steps)
        else:
            self.predictor = TransformerPredictor(
                cfg.dim,
                cfg.num_steps,
                num_heads=cfg.predictor_heads,
                ff_dim=cfg.predictor_ff_dim,
                max_distance=cfg.predictor_max_distance,
                recompute=cfg.predictor_recompute,
            )
        self.critic = PredictionDistanceCritic() if cfg.critic == "reconstruction" else PredictionDotCritic()
        self.loss = predictive_estimator(cfg.estimator)
        # built last: without it every other module draws the same initial weights
        self.speaker_adversary = build_speaker_adversary(
            cfg.speaker_adversary, {"encoder": cfg.dim, "context": cfg.context_dim}, cfg.num_speakers)

    def _input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.input_key not in batch:
            raise ConfigError(f"this CPC model reads '{self.input_key}' but the batch has {sorted(batch)}", field="data.input")
        return batch[self.input_key]

    def frames(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder output ``(B, T, D)`` (per-utterance normalised with ``utt_norm``), before any
        bottleneck, and its valid frames ``(B,)`` (None when the batch has no ``lengths``)."""
        h = self.encoder(self._input(batch))
        lengths = frame_lengths(batch.get("lengths"), hop=self._hop, num_frames=h.shape[1])
        if self.cfg.utt_norm:
            h = utterance_normalise(h, lengths)
        return h, lengths

    def _bottlenecked(self, h: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.bottleneck is None:
            return h, {}
        return self.bottleneck(h)

    def codes(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Encoder (+ bottleneck) output ``(B, T, D)`` and the bottleneck's extra outputs."""
        return self._bottlenecked(self.frames(batch)[0])

    def forward(self, batch: dict[str, torch.Tensor], *, neg_idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Loss, per-step accuracy ``acc/k{k}`` and collapse monitors of a batch.

        Parameters
        ----------
        batch : ``wave`` (B, S) or ``feats`` (B, T, F), and ``speaker`` (B,) for
            within-speaker negatives and the speaker adversary; optional ``lengths`` (B,)
            valid input steps (for ``utt_norm``); optional ``wave_aug`` (B, S), an augmented
            copy of ``wave`` that the context network reads instead.
        neg_idx : (B, W, N) negatives to use instead of sampling (tests, benchmarks).
        """
        cfg = self.cfg
        h, _ = self.frames(batch)
        z, extra = self._bottlenecked(h)
        B, T, _ = z.shape
        K = cfg.num_steps
        if T <= K + 1:
            raise ConfigError(f"a crop gives {T} frames but {K} prediction steps need more than {K + 1}", field="data.crop")
        W = T - K
        past = z
        if "wave_aug" in batch:
            # augmented past (Kharitonov et al. 2021): the context reads the augmented crop,
            # the targets stay the clean crop's codes
            past, extra_aug = self.codes({**batch, "wave": batch["wave_aug"]})
            if "loss" in extra_aug:
                extra["loss"] = extra.get("loss", 0.0) + extra_aug["loss"]
        c = self.context(past)
        pred = self.predictor(c[:, :W])  # (B, W, K, D)
        if neg_idx is None:
            neg_idx = sample_negatives(
                B, T, W, cfg.num_negatives, mode=cfg.negatives, speaker=batch.get("speaker"), device=z.device
            )
        logits = infonce_logits(*self.critic.pair(pred, z), neg_idx, within_sequence=cfg.negatives == "sequence")
        loss, loss_k, acc_k = self.loss(logits)
        out = {f"acc/k{k + 1}": acc_k[k] for k in range(K)}
        out[f"loss/{cfg.estimator}"] = loss_k.sum().detach()
        out.update(collapse_monitors(z, accuracy=acc_k.mean(), num_candidates=1 + neg_idx.shape[-1]))
        if "loss" in extra:
            loss = loss + extra["loss"]
            out["loss/bottleneck"] = extra["loss"].detach()
        out.update({k: v for k, v in extra.items() if k != "loss"})
        if self.speaker_adversary is not None and self.training:
            adv = self.speaker_adversary.losses(h if cfg.speaker_adversary.layer == "encoder" else c, batch)
            loss = loss + adv.pop("loss")
            out.update(adv)
        out["loss"] = loss
        return out

    def encode(self, batch: dict[str, torch.Tensor], layer: Literal["context", "encoder"] = "context") -> torch.Tensor:
        """Representations ``(B, T', D')`` of the encoder (after any bottleneck) or context network."""
        if layer not in ("context", "encoder"):
            raise ConfigError(f"unknown layer {layer!r} (context, encoder)", field="--layer")
        z, _ = self.codes(batch)
        return z if layer == "encoder" else self.context(z)

    def on_step_end(self, step: int) -> None:
        """Forward the Trainer's step hook to the bottleneck (e.g. dead-code restarts)."""
        hook = getattr(self.bottleneck, "on_step_end", None)
        if hook is not None:
            hook(step)


@register_model("cpc", config=CPCConfig)
def build_cpc(cfg: CPCConfig, *, input_dim: int | None = None) -> CPC:
    """Registry builder of ``name: cpc``."""
    return CPC(cfg, input_dim=input_dim)
