"""``vc_adain`` (Chou, Yeh and Lee, 2019): the speaker kept out of the content code by
instance normalisation alone.

The content encoder's blocks and code are instance-normalised without affine parameters
(``content_norm: auto``), which removes the per-utterance channel statistics, where the
speaker mostly lives; the decoder puts a voice back through AdaIN. Zero-shot: any target
utterance gives a speaker code.
"""

from __future__ import annotations

from dataclasses import dataclass

from speechrep.models.registry import register_model
from speechrep.models.vc import VCConfig, VoiceConversionModel

__all__ = ["VCAdaINConfig", "VCAdaIN", "build_vc_adain"]


@dataclass
class VCAdaINConfig(VCConfig):
    """``model.args`` of ``vc_adain``: the shared options of :class:`~speechrep.models.vc.VCConfig`."""


class VCAdaIN(VoiceConversionModel):
    """Instance-normalised content encoder, AdaIN decoder."""

    family = "vc_adain"
    instance_norm_by_default = True


@register_model("vc_adain", config=VCAdaINConfig)
def build_vc_adain(cfg: VCAdaINConfig, *, input_dim: int | None = None) -> VCAdaIN:
    """Registry builder of ``vc_adain`` (reads waves; ``input_dim`` unused)."""
    return VCAdaIN(cfg)
