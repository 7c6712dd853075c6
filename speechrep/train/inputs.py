"""A trained model's inputs from a data directory, checked against what it was trained on.

:func:`model_inputs` yields the features (``feats.scp``) or audio (``wav.scp``) of every
utterance in the form the model reads them, after checking that every utterance has its
features, that their dimension is the model's input dimension, and that their frame shift
(``frame_shift`` of the data directory) and feature configuration (``conf/fbank.yaml`` or
``conf/mfcc.yaml``) are those of the training data (as far as the experiment still names
them). :func:`refused_input` turns a model's failure on one input into a one-line error.
Used by ``speechrep extract`` and ``speechrep units``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from speechrep.errors import DataError

__all__ = ["model_inputs", "refused_input", "training_feature_conf"]

#: Feature configurations written by ``speechrep features make-*`` beside the features.
_FEATURE_CONFS = ("fbank.yaml", "mfcc.yaml")
#: Keys of a feature configuration that do not change the features.
_CONF_NOISE = ("dither", "seed")


def model_inputs(
    model: str | Path, module: Any, cfg: Any, data_dir: str | Path, *, which: str
) -> tuple[Iterator[tuple[str, np.ndarray]], int]:
    """The inputs of a trained model over a data directory, checked against the model.

    Parameters
    ----------
    model : experiment or checkpoint directory the module was loaded from.
    module : the loaded model (its ``input_key``).
    cfg : its config dataclass (``sample_rate``, ``feat_frame_shift``).
    data_dir : Kaldi data directory.
    which : ``best`` or ``last``: the checkpoint the module came from.

    Returns
    -------
    (iterator of (utt, input), number of utterances) : waveforms ``(samples,)`` from
    ``wav.scp`` or feature matrices ``(frames, dim)`` from ``feats.scp``, C-sorted.

    Raises
    ------
    DataError
        No ``feats.scp`` for a feature model, an utterance without features, features of
        another dimension, frame shift or configuration than the model's, an unreadable
        ark; bad audio.
    """
    from speechrep.data.audio import iter_audio
    from speechrep.data.kaldi_dir import DataDir

    dd = DataDir.load(data_dir)
    if getattr(module, "input_key", "wave") != "feats":
        return iter_audio(dd, sample_rate=getattr(cfg, "sample_rate", 16000)), len(dd.utts)
    scp = dd.path / "feats.scp"
    if dd.feats_scp is None:
        # the model knows its front end: the feature configuration of its training data
        train_conf = training_feature_conf(model, which)
        if train_conf is None:
            raise DataError("the model reads features but the data directory has no feats.scp, and the training "
                            "data's feature configuration (conf/fbank.yaml or conf/mfcc.yaml) is not known to compute "
                            "them", path=dd.path, field="feats.scp")
        return _computed_feats(dd, *train_conf, _input_dim(model, which)), len(dd.utts)
    missing = [u for u in dd.utts if u not in dd.feats_scp]
    if missing:
        raise DataError(f"{len(missing)} of {len(dd.utts)} utterances have no features (first: {missing[0]})", path=scp)
    want_shift = getattr(cfg, "feat_frame_shift", None)
    found = _input_frame_shift(dd.path)
    if want_shift is not None and found is not None and abs(found[0] - want_shift) > 1e-6:
        raise DataError(f"the features have a frame shift of {found[0]:g} s, the model was trained on {want_shift:g} s",
                        path=found[1])
    _check_feature_conf(model, which, dd.path)
    return _read_feats(dd.utts, dd.feats_scp, scp, _input_dim(model, which)), len(dd.utts)


@contextlib.contextmanager
def refused_input(utt: str, x: np.ndarray, data_dir: str | Path) -> Iterator[None]:
    """Turn the model's failure on one input into a :class:`DataError` naming the utterance.

    The inputs are checked against what the model was trained on (:func:`model_inputs`);
    what is left is an input the network cannot take, e.g. audio shorter than the front
    end's analysis window (torch reports that as a RuntimeError about padding), or a single
    frame where an instance normalisation needs two (a ValueError).
    """
    import torch

    try:
        yield
    except (RuntimeError, ValueError) as e:
        if isinstance(e, torch.cuda.OutOfMemoryError):
            raise
        reason = (str(e).strip().splitlines() or ["?"])[0]
        raise DataError(f"utterance {utt}: the model cannot take this input of shape {tuple(np.shape(x))} "
                        f"(too short?): {reason}", path=data_dir) from None


def _input_frame_shift(data_dir: Path) -> tuple[float, Path] | None:
    """Frame shift in seconds of a data directory's features, and the file that says so.

    ``frame_shift`` (seconds) first, then ``frame_shift`` of the feature configuration
    (milliseconds, as make-fbank/make-mfcc write it); None when neither is there.
    """
    shift_file = data_dir / "frame_shift"
    if shift_file.is_file():
        try:
            return float(shift_file.read_text(encoding="utf-8").split()[0]), shift_file
        except (ValueError, IndexError):
            raise DataError("expected one number of seconds", path=shift_file) from None
    conf = _feature_conf(data_dir)
    if conf is not None and isinstance(conf[1].get("frame_shift"), (int, float)):
        return float(conf[1]["frame_shift"]) / 1000, conf[0]
    return None


def _input_dim(model: str | Path, which: str) -> int | None:
    from speechrep.train.checkpoint import find_checkpoint, read_state

    spec = read_state(find_checkpoint(model, which=which)).get("model") or {}
    dim = spec.get("input_dim")
    return int(dim) if isinstance(dim, int) else None


def _read_feats(utts: list[str], entries: dict[str, str], scp: Path, dim: int | None) -> Iterator[tuple[str, np.ndarray]]:
    import kaldiio

    for utt in utts:
        ark = entries[utt].rsplit(":", 1)[0]
        try:
            x = np.asarray(kaldiio.load_mat(entries[utt]))
        except FileNotFoundError:
            raise DataError(f"utterance {utt}: ark file not found", path=ark) from None
        except Exception as e:  # kaldiio reports a cut-off ark as ValueError, EOFError or struct.error
            raise DataError(f"utterance {utt}: unreadable (truncated or corrupt ark: {e})", path=ark) from None
        if x.ndim != 2:
            raise DataError(f"utterance {utt}: expected a (frames, dim) matrix, got shape {x.shape}", path=scp)
        if dim is not None and x.shape[1] != dim:
            raise DataError(f"utterance {utt}: features of dimension {x.shape[1]}, the model takes {dim}", path=scp)
        yield utt, x


def _check_feature_conf(model: str | Path, which: str, data_dir: Path) -> None:
    """Refuse features made with another configuration than the training data's.

    The experiment's ``config.yaml`` names its training data directory; when that one and
    ``data_dir`` both carry a feature configuration, they must agree (dither and its seed
    aside). Without either, nothing can be compared and nothing is refused.
    """
    train_conf, conf = training_feature_conf(model, which), _feature_conf(data_dir)
    if train_conf is None or conf is None:
        return
    (train_path, train_values), (path, values) = train_conf, conf
    if train_path.name != path.name:
        raise DataError(f"features made by {path.stem}, the model was trained on {train_path.stem} ({train_path})", path=path)
    for key in sorted(set(train_values) | set(values)):
        if key not in _CONF_NOISE and train_values.get(key) != values.get(key):
            raise DataError(f"{values.get(key)!r} here, {train_values.get(key)!r} in the training data's {train_path}",
                            path=path, field=key)


def training_feature_conf(model: str | Path, which: str) -> tuple[Path, dict] | None:
    """The feature configuration of the experiment's training data (``data.train`` of its
    ``config.yaml``), or None when the experiment or that directory no longer says."""
    import yaml

    from speechrep.train.checkpoint import find_checkpoint

    exp_config = find_checkpoint(model, which=which).parent.parent / "config.yaml"
    try:
        train_dir = Path(((yaml.safe_load(exp_config.read_text(encoding="utf-8")) or {}).get("data") or {})["train"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    return _feature_conf(train_dir)


def _computed_feats(dd: Any, conf_path: Path, values: dict, dim: int | None) -> Iterator[tuple[str, np.ndarray]]:
    """Features of every utterance computed from ``wav.scp`` with the training data's
    configuration (``conf_path``), as ``speechrep features make-*`` would write them."""
    from speechrep.config import from_dict
    from speechrep.data.make_features import audio_rule, iter_features
    from speechrep.errors import ConfigError
    from speechrep.features.options import feature_kind

    kind = conf_path.stem
    try:
        cfg = from_dict(feature_kind(kind)[0], values)
    except ConfigError as e:
        raise DataError(f"unusable feature configuration of the training data: {e}", path=conf_path) from None
    for utt, x in iter_features(dd.path, kind, cfg, audio_rule(cfg)):
        if dim is not None and x.shape[1] != dim:
            raise DataError(f"features of dimension {x.shape[1]} from {conf_path}, the model takes {dim}", path=conf_path)
        yield utt, x


def _feature_conf(data_dir: Path) -> tuple[Path, dict] | None:
    import yaml

    for name in _FEATURE_CONFS:
        path = data_dir / "conf" / name
        if path.is_file():
            try:
                values = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError):
                return None
            return (path, values) if isinstance(values, dict) else None
    return None
