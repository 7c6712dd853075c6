"""Speaker invariance as config lines, shared by the self-supervised models (CPC, VQ-CPC, DIM,
autoencoder).

- ``speaker_adversary``: a frame-wise speaker classifier reads the chosen representation
  (``encoder`` output or ``context``) through a gradient-reversal layer (Ganin and
  Lempitsky, 2015; :func:`speechrep.objectives.adversarial.speaker_adversary_loss`). The
  classifier learns to name the speaker of every frame; the same cross-entropy, its
  gradient times ``-weight``, trains the model to remove what identifies the speaker. Its
  accuracy is logged as ``adv/acc`` (chance: one over the number of training speakers).
  Near chance, it shows that this classifier is beaten, not that the speaker is gone: the
  model can also beat it by moving the speakers around in its representation, which a
  fresh probe (the speaker probe of ``speechrep eval features``) still reads.
- ``utt_norm``: each utterance's encoder output is normalised to zero mean and unit
  variance over time (per channel, over the valid frames) before the context network: a
  speaker's constant offset or gain in the code space is removed (the feature encoder
  already normalises its log-fbank input the same way).
- Within-speaker negatives (CPC's ``negatives: speaker``, the default) leave the speaker
  out of what the contrastive task can use to tell positives from negatives.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from speechrep.config import dataclass
from speechrep.errors import ConfigError
from speechrep.models.speaker import check_speaker_labels, masked_mean_var
from speechrep.objectives.adversarial import speaker_adversary_loss

__all__ = ["AdversaryLayer", "SpeakerAdversaryConfig", "SpeakerAdversary", "utterance_normalise", "frame_lengths",
           "speaker_adv_weight_renamed"]

AdversaryLayer = Literal["encoder", "context"]


@dataclass
class SpeakerAdversaryConfig:
    """``model.args.speaker_adversary``: a speaker classifier behind gradient reversal.

    Example: ``speaker_adversary: {weight: 0.1, layer: context, hidden: 256}``.
    """

    weight: float = 0.0  #: scale of the reversed gradient that reaches the model (0: no adversary)
    #: what the classifier reads: ``encoder`` (the encoder output the context network reads,
    #: before any bottleneck) or ``context`` (CPC's context network; DIM's frame codes)
    layer: AdversaryLayer = "context"
    hidden: int = 256  #: width of the classifier's hidden layer

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ConfigError(f"must be >= 0, got {self.weight}", field="model.args.speaker_adversary.weight")
        if self.hidden < 1:
            raise ConfigError(f"must be a positive integer, got {self.hidden}", field="model.args.speaker_adversary.hidden")


class SpeakerAdversary(nn.Sequential):
    """Frame-wise speaker classifier ``(B, T, dim) -> (B, T, num_speakers)`` and its reversed loss.

    An ``nn.Sequential`` (linear, ReLU, linear), so its parameter names are those of the
    VQ-CPC adversary that came before it and older checkpoints load.

    Parameters
    ----------
    cfg : :class:`SpeakerAdversaryConfig` (``weight > 0``).
    dim : size of the representation it reads.
    num_speakers : training speakers (>= 2).
    """

    def __init__(self, cfg: SpeakerAdversaryConfig, dim: int, num_speakers: int):
        if num_speakers < 2:
            raise ConfigError(f"a speaker adversary needs num_speakers >= 2, got {num_speakers}",
                              field="model.args.num_speakers")
        super().__init__(nn.Linear(dim, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, num_speakers))
        self.weight, self.num_speakers = cfg.weight, num_speakers

    def losses(self, rep: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``loss`` (the cross-entropy, to add to the model's loss) and the logged ``adv/ce``, ``adv/acc``.

        Parameters
        ----------
        rep : (B, T, dim) representation the speaker should not be recoverable from.
        batch : holds ``speaker`` (B,) int64.
        """
        if "speaker" not in batch:
            raise ConfigError("a speaker adversary needs speaker labels in the batch", field="model.args.speaker_adversary")
        check_speaker_labels(batch["speaker"], self.num_speakers)
        # the classifier minimises the cross-entropy; the model gets -weight x its gradient
        ce, acc = speaker_adversary_loss(self, rep, batch["speaker"].to(rep.device), scale=self.weight)
        return {"loss": ce, "adv/ce": ce.detach(), "adv/acc": acc}


def build_speaker_adversary(cfg: SpeakerAdversaryConfig, dims: dict[str, int], num_speakers: int) -> SpeakerAdversary | None:
    """The adversary of a model config, or None when ``weight`` is 0.

    ``dims`` maps each layer name to the size of that representation.
    """
    return SpeakerAdversary(cfg, dims[cfg.layer], num_speakers) if cfg.weight > 0 else None


def frame_lengths(lengths: torch.Tensor | None, *, hop: int, num_frames: int) -> torch.Tensor | None:
    """Valid encoder frames (B,) of inputs with ``lengths`` valid steps (samples or feature
    frames), ``hop`` input steps per frame; None stays None (every frame valid)."""
    if lengths is None:
        return None
    return torch.div(lengths, hop, rounding_mode="floor").clamp(max=num_frames)


def utterance_normalise(x: torch.Tensor, lengths: torch.Tensor | None = None, *, eps: float = 1e-5) -> torch.Tensor:
    """Each utterance's frames ``(B, T, D)`` less their mean over time, over their standard deviation.

    Statistics count the first ``lengths`` frames of each utterance (None: all); padding
    frames are normalised with them and stay padding.
    """
    mean, var = masked_mean_var(x, None if lengths is None else lengths.to(x.device))
    return (x - mean) * torch.rsqrt(var + eps)


def speaker_adv_weight_renamed(weight: float) -> dict[str, dict[str, object]]:
    """VQ-CPC's former ``speaker_adv_weight: w``, as the options that now say it: a frame-wise
    adversary on the quantiser's input (``layer: encoder``, 256 hidden units, as it was)."""
    return {"speaker_adversary": {"weight": weight, "layer": "encoder", "hidden": 256}} if weight else {}
