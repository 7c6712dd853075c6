"""``vc_adversarial`` (Chou, Yeh, Lee and Lee, 2018): a speaker classifier on the content code.

The classifier reads the content code through a gradient-reversal layer
(:func:`speechrep.objectives.adversarial.speaker_adversary_loss`): it learns to recognise
the speaker while the content encoder learns to defeat it, in one loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechrep.errors import ConfigError
from speechrep.models.registry import register_model
from speechrep.models.speaker import check_speaker_labels, frame_mask
from speechrep.models.vc import VCConfig, VoiceConversionModel
from speechrep.objectives.adversarial import speaker_adversary_loss

__all__ = ["VCAdversarialConfig", "SpeakerClassifier", "VCAdversarial", "build_vc_adversarial"]


@dataclass
class VCAdversarialConfig(VCConfig):
    """``model.args`` of ``vc_adversarial``: the shared options plus the speaker classifier.

    Attributes
    ----------
    adv_weight : weight of the classifier's cross-entropy (and of its reversed gradient), in
        the training loss only: the validation loss that picks the best checkpoint leaves it
        out, as a better encoder raises it.
    classifier_channels : width of the classifier.
    """

    adv_weight: float = 0.1
    classifier_channels: int = 128


class SpeakerClassifier(nn.Module):
    """Content code ``(B, T, content_dim)`` (+ valid lengths) -> speaker logits ``(B, num_speakers)``."""

    def __init__(self, content_dim: int, channels: int, num_speakers: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(content_dim, channels, 5, padding=2), nn.ReLU(), nn.Conv1d(channels, channels, 5, padding=2), nn.ReLU()
        )
        self.out = nn.Linear(channels, num_speakers)

    def forward(self, content: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        h = self.net(content.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        mask = frame_mask(lengths, h.shape[1], device=h.device)
        pooled = h.mean(1) if mask is None else (h * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.out(pooled)


class VCAdversarial(VoiceConversionModel):
    """Batch-normalised content encoder against a speaker classifier (``classifier``)."""

    family = "vc_adversarial"
    needs_speaker_labels = True
    cfg: VCAdversarialConfig

    def _build_family(self, cfg: VCAdversarialConfig) -> int:
        self.classifier = SpeakerClassifier(cfg.content_dim, cfg.classifier_channels, cfg.num_speakers)
        return cfg.content_dim

    def _adversary(self, content: torch.Tensor, lengths: torch.Tensor | None, speakers: torch.Tensor | None,
                   out: dict[str, torch.Tensor]) -> torch.Tensor:
        """``adv_weight`` x the classifier's cross-entropy (``adv/ce``, ``adv/acc`` logged)."""
        if speakers is None:
            raise ConfigError("a speaker adversary needs speaker labels in the batch", field="model.args.adv_weight")
        check_speaker_labels(speakers, self.cfg.num_speakers)
        ce, out["adv/acc"] = speaker_adversary_loss(lambda code: self.classifier(code, lengths), content, speakers,
                                                    scale=self.cfg.adv_weight)
        out["adv/ce"] = ce.detach()
        return self.cfg.adv_weight * ce


@register_model("vc_adversarial", config=VCAdversarialConfig)
def build_vc_adversarial(cfg: VCAdversarialConfig, *, input_dim: int | None = None) -> VCAdversarial:
    """Registry builder of ``vc_adversarial`` (reads waves; ``input_dim`` unused)."""
    return VCAdversarial(cfg)
