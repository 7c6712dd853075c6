"""Representations of a trained model as Kaldi ark/scp (behind ``speechrep extract``).

:func:`extract_representations` loads a
checkpoint through :func:`speechrep.train.checkpoint.load_model` (safetensors, never
unpickled), runs ``model.encode`` on every utterance of a data directory and writes::

    OUT_DIR/feats.ark, feats.scp      one (frames, dim) float32 matrix per utterance
    OUT_DIR/utt2num_frames
    OUT_DIR/frame_shift, frame_offset seconds (frame i is centred at offset + i * shift)
    OUT_DIR/feats_config.yaml         the same times plus model, layer and dimension

The input is checked against the model before anything is computed: every utterance of
the data directory needs features, whose dimension must be the model's input dimension
and whose frame shift (``frame_shift`` of the data directory) and feature configuration
(``conf/fbank.yaml`` or ``conf/mfcc.yaml``) must be those of the training data (as far as
the experiment still names them). ``OUT_DIR`` is refused when it is an input or holds
anything but an earlier ``speechrep extract`` output (replaced only with ``force``).
"""

from __future__ import annotations

from pathlib import Path

from speechrep.errors import DataError
from speechrep.train.inputs import model_inputs, refused_input

__all__ = ["LAYERS", "extract_representations"]

LAYERS = ("context", "encoder")


def extract_representations(
    model: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    layer: str = "context",
    which: str = "best",
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Encode every utterance of ``data_dir`` with a trained model.

    Parameters
    ----------
    model : experiment directory (or one checkpoint directory) of ``speechrep train``.
    data_dir : Kaldi data directory; ``wav.scp`` (+ ``segments``) for waveform models,
        ``feats.scp`` for models trained on features.
    out_dir : output directory (built under a temporary name, renamed when complete).
    layer : ``context`` or ``encoder``.
    which : ``best`` or ``last`` checkpoint of an experiment directory.
    force : replace an earlier ``speechrep extract`` output at ``out_dir``.
    progress : show a progress bar.

    Returns
    -------
    Path of ``OUT_DIR/feats.scp``.

    Raises
    ------
    ConfigError
        Unknown layer, a model without ``encode``.
    CheckpointError
        Missing, corrupt or incompatible checkpoint.
    DataError
        Bad data directory or audio, features that do not fit the model (see
        :func:`speechrep.train.inputs.model_inputs`).
    SpeechrepError
        ``out_dir`` is an input or holds other data (see
        :func:`speechrep.utils.io.check_output_dir`).
    """
    import kaldiio
    import torch
    import yaml
    from speechrep.utils.progress import progress_bar

    from speechrep.data.kaldi_dir import write_kaldi_map
    from speechrep.errors import ConfigError
    from speechrep.train.checkpoint import load_model
    from speechrep.utils.io import check_output_dir, output_dir

    if layer not in LAYERS:
        raise ConfigError(f"unknown layer {layer!r} (choose from {', '.join(LAYERS)})", field="--layer")
    # before loading anything: a wrong OUT_DIR fails at once
    where = dict(command="extract", field="OUT_DIR", force=force, inputs=[data_dir], containers=[model])
    check_output_dir(out_dir, **where)
    module, name, cfg = load_model(model, which=which)
    if not hasattr(module, "encode"):
        raise ConfigError(f"model '{name}' has no encode() and cannot extract representations", path=model)
    input_key = getattr(module, "input_key", "wave")
    inputs, total = model_inputs(model, module, cfg, data_dir, which=which)
    out_dir = Path(out_dir).absolute()
    num_frames: dict[str, int] = {}
    dim = 0
    with output_dir(out_dir, **where) as tmp, torch.inference_mode():
        with kaldiio.WriteHelper(f"ark,scp:{tmp / 'feats.ark'},{tmp / 'feats.scp'}") as writer:
            for utt, x in progress_bar(inputs, total=total, desc=f"extract {layer}", unit="utt", enabled=progress):
                batch = {input_key: torch.tensor(x, dtype=torch.float32).unsqueeze(0)}
                with refused_input(utt, x, data_dir):
                    rep = module.encode(batch, layer=layer)[0].float().numpy()
                writer(utt, rep)
                num_frames[utt] = rep.shape[0]
                dim = rep.shape[1]
        if not num_frames:
            raise DataError("no utterances to extract", path=data_dir)
        # the scp must name the ark where it will live after the rename
        scp = (tmp / "feats.scp").read_text(encoding="utf-8")
        (tmp / "feats.scp").write_text(scp.replace(str(tmp / "feats.ark"), str(out_dir / "feats.ark")), encoding="utf-8")
        write_kaldi_map(tmp / "utt2num_frames", num_frames)
        shift, offset = float(module.frame_shift), float(getattr(module, "frame_offset", 0.0))
        (tmp / "frame_shift").write_text(f"{shift:g}\n", encoding="utf-8")
        (tmp / "frame_offset").write_text(f"{offset:g}\n", encoding="utf-8")
        info = {"frame_shift": shift, "frame_offset": offset, "model": str(model), "model_name": name, "layer": layer, "dim": dim}
        (tmp / "feats_config.yaml").write_text(yaml.safe_dump(info, sort_keys=False), encoding="utf-8")
    return out_dir / "feats.scp"
