"""Representations of a trained model as Kaldi ark/scp (behind ``speechrep extract``).

:func:`extract_representations` loads a
checkpoint through :func:`speechrep.train.checkpoint.load_model` (safetensors, never
unpickled), runs ``model.encode`` on every utterance of a data directory and writes::

    OUT_DIR/feats.ark, feats.scp      one (frames, dim) float32 matrix per utterance
    OUT_DIR/utt2num_frames
    OUT_DIR/frame_shift, frame_offset seconds (frame i is centred at offset + i * shift)
    OUT_DIR/feats_config.yaml         the same times plus model, layer and dimension

The directory is built under a temporary name and renamed when complete.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["LAYERS", "extract_representations"]

LAYERS = ("context", "encoder")


def extract_representations(
    model: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    layer: str = "context",
    which: str = "best",
    progress: bool = True,
) -> Path:
    """Encode every utterance of ``data_dir`` with a trained model.

    Parameters
    ----------
    model : experiment directory (or one checkpoint directory) of ``speechrep train``.
    data_dir : Kaldi data directory; ``wav.scp`` (+ ``segments``) for waveform models,
        ``feats.scp`` for models trained on features.
    out_dir : output directory (replaced when complete).
    layer : ``context`` or ``encoder``.
    which : ``best`` or ``last`` checkpoint of an experiment directory.
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
        Bad data directory or audio, missing ``feats.scp`` for a feature model.
    """
    import kaldiio
    import torch
    import yaml
    from speechrep.utils.progress import progress_bar

    from speechrep.data.audio import iter_audio
    from speechrep.data.kaldi_dir import DataDir, write_kaldi_map
    from speechrep.errors import ConfigError, DataError
    from speechrep.train.checkpoint import load_model
    from speechrep.utils.io import atomic_dir

    if layer not in LAYERS:
        raise ConfigError(f"unknown layer {layer!r} (choose from {', '.join(LAYERS)})", field="--layer")
    module, name, cfg = load_model(model, which=which)
    if not hasattr(module, "encode"):
        raise ConfigError(f"model '{name}' has no encode() and cannot extract representations", path=model)
    input_key = getattr(module, "input_key", "wave")
    dd = DataDir.load(data_dir)
    if input_key == "feats":
        if dd.feats_scp is None:
            raise DataError(f"model '{name}' reads features but there is no feats.scp", path=data_dir)
        inputs = ((utt, kaldiio.load_mat(dd.feats_scp[utt])) for utt in dd.utts if utt in dd.feats_scp)
        total = len(dd.feats_scp)
    else:
        inputs = iter_audio(data_dir, sample_rate=getattr(cfg, "sample_rate", 16000))
        total = len(dd.utts)
    out_dir = Path(out_dir).absolute()
    num_frames: dict[str, int] = {}
    dim = 0
    with atomic_dir(out_dir) as tmp, torch.inference_mode():
        with kaldiio.WriteHelper(f"ark,scp:{tmp / 'feats.ark'},{tmp / 'feats.scp'}") as writer:
            for utt, x in progress_bar(inputs, total=total, desc=f"extract {layer}", unit="utt", enabled=progress):
                batch = {input_key: torch.tensor(x, dtype=torch.float32).unsqueeze(0)}
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
