"""``vc_vq`` (van den Oord et al., 2017): the content code quantised by a discrete bottleneck.

A few hundred units (:mod:`speechrep.models.bottlenecks`, a vector quantiser by default)
leave little room for the speaker; the units are also what ``speechrep units`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from speechrep.errors import ConfigError
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.registry import register_model
from speechrep.models.vc import VCConfig, VoiceConversionModel

__all__ = ["VCVQConfig", "VCVQ", "build_vc_vq"]


@dataclass
class VCVQConfig(VCConfig):
    """``model.args`` of ``vc_vq``: the shared options plus the bottleneck.

    Attributes
    ----------
    bottleneck : the discrete layer (:class:`speechrep.models.bottlenecks.BottleneckConfig`;
        a 256-code vector quantiser by default). REINFORCE gives the decoder no gradient
        and is not accepted.
    """

    content_dim: int = 64
    bottleneck: BottleneckConfig = field(default_factory=lambda: BottleneckConfig(num_codes=256, code_dim=64))


class VCVQ(VoiceConversionModel):
    """Content encoder, then the bottleneck ``quantizer``; its units name the content."""

    family = "vc_vq"
    cfg: VCVQConfig

    def _build_family(self, cfg: VCVQConfig) -> int:
        if cfg.bottleneck.estimator == "reinforce":
            raise ConfigError("REINFORCE passes no gradient to the decoder; use st or gumbel",
                              field="model.args.bottleneck.estimator")
        self.quantizer = build_bottleneck(cfg.bottleneck, cfg.content_dim)
        return self.quantizer.output_dim

    def _quantise(self, content: torch.Tensor, mask: torch.Tensor | None,
                  out: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantised codes and the bottleneck's loss (``vq/<stat>`` logged)."""
        vq = self.quantizer(content, mask=None if mask is None else mask[..., 0].bool())
        out.update({f"vq/{k}": v.detach() for k, v in vq.stats.items() if v.dim() == 0})
        return vq.quantized, vq.loss

    def content_code(self, mel: torch.Tensor) -> torch.Tensor:
        """Quantised content code ``(B, T, code_dim)`` of log-mels ``(B, T, n_mels)``."""
        return self.quantizer(super().content_code(mel)).quantized

    def units(self, mel: torch.Tensor) -> torch.Tensor:
        """Discrete content units ``(B, T)`` int64 of log-mels ``(B, T, n_mels)``."""
        return self.quantizer(super().content_code(mel)).indices

    def on_step_end(self, step: int) -> None:
        """Let the bottleneck restart dead codes and anneal temperatures."""
        self.quantizer.on_step_end(step)


@register_model("vc_vq", config=VCVQConfig)
def build_vc_vq(cfg: VCVQConfig, *, input_dim: int | None = None) -> VCVQ:
    """Registry builder of ``vc_vq`` (reads waves; ``input_dim`` unused)."""
    return VCVQ(cfg)
