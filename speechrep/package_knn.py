"""Package a trained feature model, and a vocoder, for zero-shot kNN conversion.

:func:`package_knn_model` (``speechrep package-knn``) writes the directory that
:mod:`speechrep.convert_knn` loads (its layout is in that module's docstring), e.g. the
default model of ``speechrep convert`` in ``speechrep/pretrained/knn_vc``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from speechrep.convert_knn import (DEFAULT_K, DEFAULT_LAYER, DEFAULT_PITCH_WEIGHT, KNN_FILE, PACKAGE_FORMAT,
                                  load_knn_converter)
from speechrep.errors import ConfigError

__all__ = ["package_knn_model"]


def _training_data(ckpt: Path) -> str | None:
    """``data.train`` of the experiment config beside a checkpoint, or None."""
    import yaml

    try:
        config = yaml.safe_load((ckpt.parent.parent / "config.yaml").read_text(encoding="utf-8")) or {}
        return str(config["data"]["train"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _copy_checkpoint(ckpt: Path, dest: Path) -> dict[str, Any]:
    """Copy the weights and model description of checkpoint ``ckpt`` (no optimizer state)
    into the new directory ``dest``; returns the state kept."""
    from speechrep.train.checkpoint import read_state
    from speechrep.utils.io import atomic_write_json

    state = read_state(ckpt)
    kept = {key: state[key] for key in ("format", "step", "model", "valid_loss", "speakers") if key in state}
    weights = (ckpt / "model.safetensors").read_bytes()
    kept["files"] = {"model.safetensors": hashlib.sha256(weights).hexdigest()}
    dest.mkdir()
    (dest / "model.safetensors").write_bytes(weights)
    atomic_write_json(dest / "state.json", kept)
    return kept


def _described(name: str, exp_dir: str | Path, ckpt: Path, state: dict[str, Any]) -> list[str]:
    """Model-card lines of a packaged checkpoint: where it comes from, what it is, its data."""
    import yaml

    loss = state.get("valid_loss")
    return [
        f"- {name}: `{Path(exp_dir).absolute()}`, {ckpt.name} (step {state['step']}"
        + (f", validation loss {loss:.4g})" if isinstance(loss, (int, float)) else ")"),
        f"  - model: `{yaml.safe_dump(state.get('model'), default_flow_style=True, width=10**6).strip()}`",
        f"  - training data: {_training_data(ckpt) or 'not recorded'}",
    ]


def package_knn_model(exp_dir: str | Path, out_dir: str | Path, *, layer: str = DEFAULT_LAYER, k: int = DEFAULT_K,
                      pitch_weight: float = DEFAULT_PITCH_WEIGHT, which: str = "best", vocoder: str | Path | None = None,
                      force: bool = False) -> Path:
    """Package a trained feature model for ``speechrep convert --model OUT_DIR`` (and as the default).

    Writes ``out_dir`` atomically (layout in the module docstring): the weights and model
    description of the ``which`` checkpoint (no optimizer state), those of the best
    checkpoint of the neural vocoder experiment ``vocoder`` (None: the package vocodes with
    Griffin-Lim), the training data's feature configuration for a feature-input model,
    ``knn.json`` and a ``MODEL_CARD.md`` naming where it all comes from (the scores are for
    whoever ships it to add).

    Raises
    ------
    CheckpointError, ConfigError
        No checkpoint, not a feature model, a layer it does not have, ``k < 1``, a negative
        ``pitch_weight``, a feature-input model whose training feature configuration is not known; a
        ``vocoder`` that holds no neural vocoder.
    SpeechrepError
        ``out_dir`` is the experiment or holds other data (replaced only when it is an
        earlier package and ``force``).
    """
    from speechrep.train.checkpoint import find_checkpoint, read_state
    from speechrep.train.pretrained import GRIFFIN_LIM_NAMES, load_vocoder
    from speechrep.utils.io import atomic_write_json, atomic_write_text, check_output_dir, output_dir

    where = dict(command="package-knn", field="OUT_DIR", force=force,
                 inputs=[exp_dir] + ([vocoder] if vocoder is not None else []))
    check_output_dir(out_dir, **where)
    ckpt = find_checkpoint(exp_dir, which=which)
    voc_ckpt = None
    if vocoder is not None:
        if str(vocoder) in GRIFFIN_LIM_NAMES:
            raise ConfigError("takes a trained neural vocoder's experiment directory (leave it out for "
                              "Griffin-Lim)", path=vocoder, field="--vocoder")
        voc_ckpt = find_checkpoint(vocoder, which="best")
    # loading them the way convert will checks the models, the layer, k and the feature configuration
    conv = load_knn_converter(ckpt, load_vocoder(voc_ckpt if voc_ckpt is not None else "griffinlim"), layer=layer, k=k,
                              pitch_weight=pitch_weight)
    conf = conv.features.features_conf
    features = f"conf/{conf.name}" if conf is not None else None
    info = {"format": PACKAGE_FORMAT, "layer": layer, "k": k, "pitch_weight": float(pitch_weight),
            "checkpoint": "checkpoint", "features": features,
            "vocoder": "vocoder" if voc_ckpt is not None else None,
            "source": {"experiment": str(Path(exp_dir).absolute()), "checkpoint": ckpt.name,
                       "step": read_state(ckpt)["step"]}}
    with output_dir(out_dir, **where) as tmp:
        state = _copy_checkpoint(ckpt, tmp / "checkpoint")
        card_vocoder = ["- vocoder: Griffin-Lim (no weights)"]
        if voc_ckpt is not None:
            card_vocoder = _described("vocoder", vocoder, voc_ckpt, _copy_checkpoint(voc_ckpt, tmp / "vocoder"))
            info["source"]["vocoder"] = {"experiment": str(Path(vocoder).absolute()), "checkpoint": voc_ckpt.name}
        if features is not None:
            (tmp / "conf").mkdir()
            shutil.copyfile(conf, tmp / features)
        atomic_write_json(tmp / KNN_FILE, info)
        card = [
            f"# kNN-VC feature model: {conv.features.name}, layer {layer}, k {k}, pitch weight {pitch_weight:g}", "",
            "Zero-shot voice conversion (`speechrep convert --model THIS_DIR`): see `speechrep/convert_knn.py`.", "",
            *_described("feature model", exp_dir, ckpt, state),
            f"  - input features: {features or 'the waveform'}; frame shift {conv.features.frame_shift:g} s",
            *card_vocoder,
            "- how they were trained (recipe, steps) and the package's scores by the independent judges (`speechrep eval vc`): "
            "to be filled in by whoever ships this model.", "",
        ]
        atomic_write_text(tmp / "MODEL_CARD.md", "\n".join(card))
    return Path(out_dir)
