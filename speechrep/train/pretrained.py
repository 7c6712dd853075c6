"""Trained models ready to use outside training: vocoders by name or experiment directory."""

from __future__ import annotations

from pathlib import Path

from speechrep.errors import CheckpointError, ConfigError
from speechrep.vocoder.base import Vocoder

__all__ = ["GRIFFIN_LIM_NAMES", "load_vocoder"]

#: Names that select Griffin-Lim instead of a trained vocoder's directory.
GRIFFIN_LIM_NAMES = ("griffinlim", "griffin-lim", "gl")


def load_vocoder(name_or_dir: str | Path, *, device: str = "cpu", which: str = "best") -> Vocoder:
    """Vocoder from ``"griffinlim"`` or a trained neural-vocoder experiment directory.

    Raises
    ------
    ConfigError
        When ``name_or_dir`` is neither ``griffinlim`` nor an existing directory.
    CheckpointError
        When the directory holds no usable vocoder checkpoint.
    """
    if str(name_or_dir) in GRIFFIN_LIM_NAMES:
        from speechrep.vocoder.griffinlim import GriffinLim

        return GriffinLim()
    path = Path(name_or_dir)
    if not path.exists():
        raise ConfigError("not 'griffinlim' and no such vocoder experiment directory", path=path, field="vocoder")
    from speechrep.train.checkpoint import load_model
    from speechrep.vocoder.neural import NeuralVocoder, NeuralVocoderModel

    model, name, _ = load_model(path, which=which)
    if not isinstance(model, NeuralVocoderModel):
        raise CheckpointError(f"holds a '{name}' model, not a 'vocoder'", path=path, field="model.name")
    return NeuralVocoder(model, device=device)
