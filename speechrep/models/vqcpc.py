"""VQ-CPC: CPC with a discrete bottleneck between the encoder and the context network.

    input --encoder--> z (B, T, D) --VectorQuantizer--> q (B, T, D) --context--> c
    loss = InfoNCE(predictions of q, q) + commitment loss

The quantized codes are both the context network's input and the prediction targets, so
the context can only use what survives quantization (van Niekerk et al., 2020). The
codebook entries are the units. Registered as model ``vqcpc``; ``model.args`` are those
of ``cpc`` (the speaker adversary and ``utt_norm`` included) plus a ``bottleneck``
section (``vq`` or ``gumbel``, ``code_dim`` = ``dim``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn as nn

from speechrep.config import dataclass, field
from speechrep.errors import ConfigError
from speechrep.models.bottlenecks import BottleneckConfig, build_bottleneck
from speechrep.models.bottlenecks.base import Bottleneck
from speechrep.models.cpc import CPC, CPCConfig
from speechrep.models.invariance import speaker_adv_weight_renamed
from speechrep.models.registry import register_model

__all__ = ["VQCPCConfig", "CPCBottleneck", "VQCPC", "build_vqcpc", "conv_frame_offset"]


@dataclass
class VQCPCConfig(CPCConfig):
    """``model.args`` of ``name: vqcpc``: CPC's keys plus the bottleneck."""

    bottleneck: BottleneckConfig = field(default_factory=lambda: BottleneckConfig(kind="vq", code_dim=256))

    #: deleted options that checkpoints saved before hold (:func:`speechrep.models.registry.drop_retired`)
    retired_options: ClassVar[dict[str, Any]] = {**CPCConfig.retired_options, "code_norm": False, "smooth_weight": 0.0}
    #: ``speaker_adv_weight: w`` of configs and checkpoints saved before the speaker adversary
    #: of every CPC model: ``speaker_adversary: {weight: w, layer: encoder}``
    renamed_options: ClassVar[dict[str, Any]] = {**CPCConfig.renamed_options,
                                                 "speaker_adv_weight": speaker_adv_weight_renamed}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bottleneck.kind not in ("vq", "gumbel"):
            raise ConfigError(
                f"VQ-CPC predicts code vectors: use kind vq or gumbel, not {self.bottleneck.kind!r}",
                field="model.args.bottleneck.kind",
            )
        if self.bottleneck.code_dim != self.dim:
            raise ConfigError(
                f"code_dim {self.bottleneck.code_dim} must equal dim {self.dim} (codes replace the encoder output)",
                field="model.args.bottleneck.code_dim",
            )


class CPCBottleneck(nn.Module):
    """Adapter from a :class:`Bottleneck` to CPC's hook ``z -> (z, extra)``."""

    def __init__(self, quantizer: Bottleneck):
        super().__init__()
        self.quantizer = quantizer

    @property
    def num_codes(self) -> int:
        """Size of the unit inventory."""
        return self.quantizer.num_codes

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(B, T, D) -> quantized (B, T, D) and ``{"loss", "vq/<stat>"...}`` 0-dim tensors."""
        out = self.quantizer(z)
        extra = {f"vq/{k}": v.detach().float() for k, v in out.stats.items()}
        extra["loss"] = out.loss.float()
        return out.quantized, extra

    def on_step_end(self, step: int) -> None:
        """Dead-code restarts / temperature schedules of the quantizer."""
        self.quantizer.on_step_end(step)


def conv_frame_offset(module: nn.Module) -> float:
    """Centre of output frame 0 of a stack of 1-D convolutions, in input steps.

    For each convolution (kernel k, stride s, padding p, applied in order), output frame
    j is centred on input position ``j * s - p + (k - 1) / 2``.
    """
    offset, hop = 0.0, 1
    for conv in (m for m in module.modules() if isinstance(m, nn.Conv1d)):
        k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        offset += hop * ((k - 1) / 2 - p)
        hop *= s
    return offset


class VQCPC(CPC):
    """CPC whose encoder output is vector-quantized (see the module docstring)."""

    def __init__(self, cfg: VQCPCConfig, *, input_dim: int | None = None):
        quantizer = build_bottleneck(cfg.bottleneck, cfg.dim)
        super().__init__(cfg, input_dim=input_dim, bottleneck=CPCBottleneck(quantizer))
        steps = conv_frame_offset(self.encoder)
        # absolute time, as CPC's: waveform samples -> seconds; features: from the centre of
        # feature frame 0 (cfg.feat_frame_offset, Kaldi framing by default)
        if input_dim is None:
            self.frame_offset: float = steps / cfg.sample_rate
        else:
            self.frame_offset = cfg.feat_frame_offset + steps * cfg.feat_frame_shift

    def _frames(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The quantiser's input frames (B, T', D) and their valid lengths (B,)."""
        z, lengths = self.frames(batch)
        if lengths is None:
            lengths = torch.full((z.shape[0],), z.shape[1], dtype=torch.int64, device=z.device)
        return z, lengths.to(z.device)

    @torch.no_grad()
    def units(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Codebook index of every encoder frame: (B, T') int64 and valid lengths (B,)."""
        z, lengths = self._frames(batch)
        return self.bottleneck.quantizer(z).indices, lengths

    @torch.no_grad()
    def unit_costs(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Squared distance of every encoder frame to every code, (B, T', K), and valid lengths (B,)."""
        z, lengths = self._frames(batch)
        return self.bottleneck.quantizer.unit_costs(z), lengths


@register_model("vqcpc", config=VQCPCConfig)
def build_vqcpc(cfg: VQCPCConfig, *, input_dim: int | None = None) -> VQCPC:
    """Registry builder of ``name: vqcpc``."""
    return VQCPC(cfg, input_dim=input_dim)
