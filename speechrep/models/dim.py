"""Deep InfoMax for speech, with the autoencoder as a special case.

    input --encoder--> l (B, T, D) local features --code head--> y (B, T, G) frame codes
    global:  utterance code mean_t y_i  vs  frames l_j,t            (critic: separable)
    local:   frame code y_i,t           vs  local feature l_i,t+k,  (critic: separable)
             0 < |k| <= local_offset; negatives: the other sampled frames
    prior:   sigmoid(y) matched to U[0, 1] adversarially (optional)

The local term never scores a frame code against the local feature it was computed from:
``y_t = f(l_t)`` against ``l_t`` is won by any invertible ``f`` (an identity map scores
every positive highest) and teaches nothing, the trivial solution the objective must not
admit. Against a neighbour ``l_{t+k}`` only what the two frames share counts, as in
Deep InfoMax's local objective, where the code never sees the location it is scored against
alone.

The objective is a critic and an estimator, both chosen at construction:

- ``critic: separable`` (:class:`~speechrep.models.critics.SeparableCritic`) scores codes
  against local features, as above;
- ``critic: reconstruction`` (:class:`~speechrep.models.critics.ReconstructionCritic`, a
  decoder) scores frame codes against the input frames they were computed from (the
  decoder cannot copy them, it only sees the code); the global term has no reconstruction
  counterpart and is dropped;
- ``estimator``: ``jsd``, ``dv``, ``infonce`` (:func:`~speechrep.objectives.mi.mi_loss`) or
  ``positive`` (positive pairs only, :func:`~speechrep.objectives.mi.positive_loss`).

The autoencoder is ``critic: reconstruction`` with ``estimator: positive``: its loss is
the reconstruction error (``name: autoencoder`` is that preset). Prior matching stays
available (an adversarial autoencoder).

Speaker invariance (:mod:`speechrep.models.invariance`): ``utt_norm`` normalises each
utterance's local features over time before the code head; ``speaker_adversary`` trains
a speaker classifier on the local features (``layer: encoder``) or the frame codes
(``layer: context``) through gradient reversal.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn as nn

from speechrep.config import dataclass, field
from speechrep.errors import ConfigError
from speechrep.models.critics import ReconstructionCritic, SeparableCritic, mlp
from speechrep.models.encoders import FeatureEncoder, WaveEncoder
from speechrep.models.invariance import (SpeakerAdversaryConfig, build_speaker_adversary, frame_lengths,
                                         utterance_normalise)
from speechrep.objectives.collapse import collapse_monitors
from speechrep.objectives.mi import Estimator, estimator_loss, prior_matching_loss
from speechrep.models.registry import register_model

__all__ = ["DIMConfig", "AutoencoderConfig", "DIM", "build_dim", "neighbour_frames"]


@dataclass
class DIMConfig:
    """``model.args`` of ``name: dim`` (and ``name: autoencoder``)."""

    critic: Literal["separable", "reconstruction"] = "separable"  #: reconstruction + positive: the autoencoder
    estimator: Estimator = "jsd"  #: jsd | dv | infonce | positive (reconstruction critic only)
    dim: int = 256  #: local feature size D
    code_dim: int = 64  #: frame code size G
    global_weight: float = 0.5  #: weight of the utterance-code objective (separable critic only)
    local_weight: float = 1.0  #: weight of the frame-code objective
    local_offset: int = 2  #: the local term scores y_t against l_{t+k}, 0 < |k| <= local_offset
    prior_weight: float = 0.0  #: weight of prior matching (0: off)
    critic_dim: int = 256  #: embedding size of the separable critics, width of the decoder
    decoder_layers: int = 2  #: depth of the autoencoder's decoder
    max_frames: int = 512  #: frames per batch scored against each other
    feat_layers: int = 3  #: conv layers of the feature-input encoder
    feat_frame_shift: float = 0.01  #: frame shift (s) of input features
    feat_frame_offset: float = 0.0125  #: centre (s) of the first input feature frame
    sample_rate: int = 16000  #: waveform rate
    #: normalise each utterance's local features to zero mean and unit variance over time
    #: (per channel) before the code head
    utt_norm: bool = False
    #: speaker classifier behind gradient reversal (weight 0: off); ``layer: encoder`` reads
    #: the local features, ``context`` the frame codes
    speaker_adversary: SpeakerAdversaryConfig = field(default_factory=SpeakerAdversaryConfig)
    num_speakers: int = 0  #: training speakers (filled in by the Trainer)

    #: ``objective`` of checkpoints saved before the critic + estimator vocabulary (the old
    #: autoencoder ignored its estimator)
    renamed_options: ClassVar[dict[str, dict[Any, dict[str, Any]]]] = {"objective": {
        "dim": {"critic": "separable"},
        "autoencoder": {"critic": "reconstruction", "estimator": "positive"},
    }}

    def __post_init__(self) -> None:
        for name in ("dim", "code_dim", "critic_dim", "decoder_layers", "max_frames", "feat_layers", "local_offset"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be a positive integer, got {getattr(self, name)}", field=f"model.args.{name}")
        for name in ("global_weight", "local_weight", "prior_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", field=f"model.args.{name}")
        if self.critic == "separable" and self.estimator == "positive":
            # without negatives the separable score grows without bound
            raise ConfigError("the separable critic needs negatives: use jsd, dv or infonce", field="model.args.estimator")


@dataclass
class AutoencoderConfig(DIMConfig):
    """``model.args`` of ``name: autoencoder``: :class:`DIMConfig` with the reconstruction
    critic and the positive-only estimator."""

    critic: Literal["separable", "reconstruction"] = "reconstruction"
    estimator: Estimator = "positive"


class DIM(nn.Module):
    """Deep InfoMax (or autoencoder) over speech frames.

    Parameters
    ----------
    cfg : :class:`DIMConfig`.
    input_dim : feature dimension for feature input; None for 16 kHz waveform.
    """

    def __init__(self, cfg: DIMConfig, *, input_dim: int | None = None):
        super().__init__()
        self.cfg = cfg
        if input_dim is None:
            self.input_key = "wave"
            self.encoder: nn.Module = WaveEncoder(cfg.dim, sample_rate=cfg.sample_rate)
            frame_dim = self.encoder.hop  # the autoencoder reconstructs 10 ms of samples
        else:
            self.input_key = "feats"
            self.encoder = FeatureEncoder(
                input_dim,
                cfg.dim,
                num_layers=cfg.feat_layers,
                frame_shift=cfg.feat_frame_shift,
                frame_offset=cfg.feat_frame_offset,
            )
            frame_dim = input_dim
        self.frame_shift: float = self.encoder.frame_shift
        self.frame_offset: float = self.encoder.frame_offset
        # input steps (samples or feature frames) per encoder frame
        self._hop = self.encoder.hop if input_dim is None else 1
        self.code_head = mlp(cfg.dim, cfg.dim, cfg.code_dim)
        self.local_critic: nn.Module
        self.global_critic: nn.Module | None = None
        if cfg.critic == "separable":
            self.local_critic = SeparableCritic(cfg.code_dim, cfg.dim, proj_dim=cfg.critic_dim)
            self._targets = self._neighbour_features
            self.global_critic = SeparableCritic(cfg.code_dim, cfg.dim, proj_dim=cfg.critic_dim)
        else:
            self.local_critic = ReconstructionCritic(cfg.code_dim, frame_dim, hidden=cfg.critic_dim, layers=cfg.decoder_layers)
            self._targets = self._input_frames
        self.estimate = estimator_loss(cfg.estimator)
        self.prior_disc = mlp(cfg.code_dim, cfg.critic_dim, 1) if cfg.prior_weight > 0 else None
        # built last: without it every other module draws the same initial weights
        self.speaker_adversary = build_speaker_adversary(
            cfg.speaker_adversary, {"encoder": cfg.dim, "context": cfg.code_dim}, cfg.num_speakers)

    def _input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.input_key not in batch:
            raise ConfigError(f"this model reads '{self.input_key}' but the batch has {sorted(batch)}", field="data.input")
        return batch[self.input_key]

    def _local(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """Local features (B, T, D) of input ``x`` with ``lengths`` valid steps (per-utterance
        normalised with ``utt_norm``)."""
        local = self.encoder(x)
        if self.cfg.utt_norm:
            local = utterance_normalise(local, frame_lengths(lengths, hop=self._hop, num_frames=local.shape[1]))
        return local

    def _input_frames(self, x: torch.Tensor, local: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Targets of the reconstruction critic: input frames ``t`` (B, m, F) (features, or
        the waveform cut into hops)."""
        B, T = t.shape[0], local.shape[1]
        if self.input_key == "wave":
            hop = self.encoder.hop
            x = x[:, : T * hop]
            x = torch.nn.functional.pad(x, (0, T * hop - x.shape[1])).reshape(B, T, hop)
        return x[torch.arange(B, device=x.device)[:, None], t]

    def _neighbour_features(self, x: torch.Tensor, local: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Targets of the separable critic: local features (B, m, D) of a neighbour of each frame ``t``."""
        rows = torch.arange(t.shape[0], device=t.device)[:, None]
        return local[rows, neighbour_frames(t, local.shape[1], max_offset=self.cfg.local_offset)]

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss (``loss``, its terms ``loss/...``), ``acc/local`` and collapse monitors.

        Parameters
        ----------
        batch : ``wave`` (B, S) or ``feats`` (B, T, F); ``speaker`` (B,) for the speaker
            adversary; optional ``lengths`` (B,) valid input steps (for ``utt_norm``).
        """
        cfg = self.cfg
        x = self._input(batch)
        local = self._local(x, batch.get("lengths"))  # (B, T, D)
        codes = self.code_head(local)  # (B, T, G)
        B, T, _ = local.shape
        # the same frames of every utterance are scored against each other
        per_utt = max(1, min(T, cfg.max_frames // B))
        t = torch.stack([torch.randperm(T, device=x.device)[:per_utt] for _ in range(B)])  # (B, m)
        rows = torch.arange(B, device=x.device)[:, None]
        y = codes[rows, t].reshape(B * per_utt, -1)  # (M, G)
        target = self._targets(x, local, t).reshape(B * per_utt, -1)  # (M, D or F)
        scores = self.local_critic.scores(y, target)  # (M, M), positives on the diagonal
        eye = torch.eye(len(y), dtype=torch.bool, device=x.device)
        loss_local = self.estimate(scores, eye)
        out: dict[str, torch.Tensor] = {"loss/local": loss_local.detach()}
        loss = cfg.local_weight * loss_local
        if self.global_critic is not None and cfg.global_weight > 0:
            if B < 2:
                raise ConfigError("the global DIM objective needs at least 2 utterances per batch", field="data.batch_size")
            utt_code = codes.mean(dim=1)  # (B, G)
            owner = torch.arange(B, device=x.device).repeat_interleave(per_utt)  # utterance of each target frame
            g_scores = self.global_critic.scores(utt_code, target)  # (B, M)
            loss_global = self.estimate(g_scores, owner[None, :] == rows)
            loss = loss + cfg.global_weight * loss_global
            out["loss/global"] = loss_global.detach()
        if self.prior_disc is not None:
            loss_prior = prior_matching_loss(y, self.prior_disc)
            loss = loss + cfg.prior_weight * loss_prior
            out["loss/prior"] = loss_prior.detach()
        if self.speaker_adversary is not None and self.training:
            adv = self.speaker_adversary.losses(local if cfg.speaker_adversary.layer == "encoder" else codes, batch)
            loss = loss + adv.pop("loss")
            out.update(adv)
        with torch.no_grad():
            others = scores.masked_fill(eye, float("-inf"))
            acc = (scores.diagonal() > others.amax(1)).float().mean()  # strict: ties count as wrong
        out["acc/local"] = acc
        if len(y) > 1:
            out.update(collapse_monitors(codes, accuracy=acc, num_candidates=len(y)))
        out["loss"] = loss
        return out

    def encode(self, batch: dict[str, torch.Tensor], layer: Literal["context", "encoder"] = "context") -> torch.Tensor:
        """Frame codes (``context``, (B, T, G)) or local features (``encoder``, (B, T, D))."""
        if layer not in ("context", "encoder"):
            raise ConfigError(f"unknown layer {layer!r} (context, encoder)", field="--layer")
        local = self._local(self._input(batch), batch.get("lengths"))
        return local if layer == "encoder" else self.code_head(local)


def neighbour_frames(t: torch.Tensor, num_frames: int, *, max_offset: int) -> torch.Tensor:
    """A random neighbour ``t + k`` of every frame index, ``0 < |k| <= max_offset``.

    Parameters
    ----------
    t : (B, m) frame indices in ``[0, num_frames)``.
    num_frames : T.
    max_offset : largest ``|k|``; 0 returns ``t`` itself (the trivially solvable pairing,
        kept for the test that shows why it is not used).

    Returns
    -------
    (B, m) indices in ``[0, num_frames)``, never ``t`` itself unless T = 1.
    """
    if max_offset == 0 or num_frames == 1:
        return t
    k = torch.randint(1, max_offset + 1, t.shape, device=t.device)
    sign = torch.where(torch.rand(t.shape, device=t.device) < 0.5, -1, 1)
    cand = t + sign * k
    # off one end: go the other way; off both (short utterances): the adjacent frame
    cand = torch.where((cand < 0) | (cand >= num_frames), t - sign * k, cand)
    adjacent = torch.where(t + 1 < num_frames, t + 1, t - 1)
    return torch.where((cand < 0) | (cand >= num_frames), adjacent, cand)


@register_model("dim", config=DIMConfig)
def build_dim(cfg: DIMConfig, *, input_dim: int | None = None) -> DIM:
    """Registry builder of ``name: dim``."""
    return DIM(cfg, input_dim=input_dim)


@register_model("autoencoder", config=AutoencoderConfig)
def build_autoencoder(cfg: AutoencoderConfig, *, input_dim: int | None = None) -> DIM:
    """Registry builder of ``name: autoencoder`` (DIM with the reconstruction critic and the positive estimator)."""
    return DIM(cfg, input_dim=input_dim)
