"""Zero-shot voice conversion by k-nearest-neighbour matching (kNN-VC, Baas et al. 2023).

No conversion training: a self-supervised feature model of the toolkit (CPC, DIM, VQ-CPC:
any model whose ``encode`` offers layers, as ``speechrep extract``) encodes the source and
the target utterances at one layer (``context`` or ``encoder``), and every source frame is
replaced by the mean of the log-mel frames of its ``k`` nearest target frames in that
feature space, by cosine distance as in the paper; the vocoder turns the matched log-mel
into audio. With ``pitch_weight`` w > 0 the distance also compares intonation: keys become
``[f / |f|, w z, w v]`` (``z`` the frame's log F0 standardised by its own utterance's median
and spread for the source, by the pooled targets' for the target frames; ``v`` voicing), and
the Euclidean distance between them is ``2 - 2 cos(f, f') + w^2 ((z - z')^2 + (v - v')^2)``.
The ``k`` frames averaged then share a pitch relative to their voice's range, so their
harmonics line up instead of blurring (real voices, whose F0 moves more than a
synthesizer's, lose the most to that blur), and the output follows the source's intonation
in the target's register. The log-mel is the vocoder's
(:class:`speechrep.features.logmel.MelSpec`), so the output is made of the target's real
spectra, in the source's order and timing.

Feature frames and log-mel frames are aligned by time, not by count: feature frame ``j``
is centred at ``frame_offset + j * frame_shift`` (the model's), log-mel frame ``i`` at
``i * hop_length / sample_rate``; each log-mel frame takes the feature frame nearest in
time as its key (:func:`nearest_frames`), for the targets (the matching set: keys and
their log-mel frames) and for the source (the queries). The frames of several targets are
pooled into one matching set. A feature model that reads features (fbank, MFCC) gets them
computed from the audio with its training data's feature configuration.

Models (``--model``): an experiment or checkpoint directory of ``speechrep train``, or a
packaged directory that :func:`speechrep.package_knn.package_knn_model` writes::

    knn.json          {"format": 1, "layer": ..., "k": ..., "checkpoint": "checkpoint",
                       "features": "conf/fbank.yaml" or null, "vocoder": "vocoder" or null,
                       "source": {...}}
    checkpoint/       state.json + model.safetensors (never pickled)
    vocoder/          the neural vocoder, the same way (absent: Griffin-Lim)
    conf/<kind>.yaml  the training data's feature configuration (feature-input models)
    MODEL_CARD.md     what the model is, where it comes from

The packaged default (:data:`DEFAULT_MODEL_DIR`, package data) is used when ``--model`` is
omitted and it holds a model. The layer, ``k`` and vocoder of a packaged directory are its
defaults (:func:`resolve_vocoder`); an experiment directory's are ``context``,
:data:`DEFAULT_K` and Griffin-Lim.

Bad input is refused before any output: unusable audio (:func:`speechrep.data.pairs.read_input_audio`:
unreadable, empty, silent, below 8 kHz), targets with less than :data:`MIN_TARGET_SPEECH`
seconds of non-silent audio in all, a layer the model does not have, ``k < 1``, a negative
``pitch_weight``.
"""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from speechrep.data.pairs import read_input_audio
from speechrep.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # torch-dependent types, imported lazily at run time
    import torch

    from speechrep.vocoder.base import Vocoder

__all__ = [
    "DEFAULT_K",
    "DEFAULT_LAYER",
    "DEFAULT_MODEL_DIR",
    "DEFAULT_PITCH_WEIGHT",
    "KNN_FILE",
    "MIN_TARGET_SPEECH",
    "PACKAGE_FORMAT",
    "FeatureModel",
    "KnnConverter",
    "default_model",
    "is_knn_package",
    "load_knn_converter",
    "model_layers",
    "nearest_frames",
    "packaged_vocoder",
    "resolve_vocoder",
]

#: Neighbours averaged per source frame: kNN-VC's choice (4), a compromise between a
#: single frame's artefacts (k = 1) and the blur of many.
DEFAULT_K = 4
#: Layer of an experiment directory (a packaged directory names its own).
DEFAULT_LAYER = "context"
#: Weight of the pitch terms in the matching distance for an experiment directory (a packaged
#: directory names its own; one written before the option matches without them, 0).
DEFAULT_PITCH_WEIGHT = 1.5
#: Where the packaged default model lives (package data; empty until one is shipped).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "pretrained" / "knn_vc"
#: The file that makes a directory a packaged kNN model.
KNN_FILE = "knn.json"
#: Least non-silent target audio, in seconds, pooled over the targets. kNN matching can only
#: give a source frame the sounds the target holds: 2 s of speech hold some 25 phones (at
#: ~12 phones a second), about one example of each of a language's frequent phone classes,
#: so that the ``k`` neighbours of most source frames are the same sound. With less, many
#: source frames can only take another sound and the words are lost (kNN-VC's intelligibility
#: falls steeply as the matching set shrinks; it is best with minutes of target speech).
MIN_TARGET_SPEECH = 2.0
#: A log-mel frame counts as silent when its energy is this far below the loudest frame of
#: its utterance (librosa's ``effects.split`` uses 60 dB; 40 dB also drops breath and hum).
SILENCE_BELOW_PEAK_DB = 40.0
#: ``format`` of ``knn.json`` (:mod:`speechrep.package_knn` writes it)
PACKAGE_FORMAT = 1


def model_layers(module: Any) -> tuple[str, ...]:
    """Layers the model's ``encode`` offers: the values of its ``layer`` argument's
    ``Literal`` annotation (its default alone without one); none without that argument."""
    encode = getattr(module, "encode", None)
    if encode is None:
        return ()
    try:
        param = inspect.signature(encode, eval_str=True).parameters.get("layer")
    except NameError:  # an annotation that does not evaluate: fall back to the default
        param = inspect.signature(encode).parameters.get("layer")
    if param is None:
        return ()
    choices = typing.get_args(param.annotation) if typing.get_origin(param.annotation) is typing.Literal else ()
    return tuple(choices) or ((param.default,) if isinstance(param.default, str) else ())


def nearest_frames(times: np.ndarray, *, num_frames: int, shift: float, offset: float) -> np.ndarray:
    """Index of the frame nearest in time to each of ``times`` (seconds), among
    ``num_frames`` frames centred at ``offset + j * shift``; ``(len(times),)`` int64."""
    return np.clip(np.rint((np.asarray(times, dtype=np.float64) - offset) / shift), 0, num_frames - 1).astype(np.int64)


class FeatureModel:
    """A self-supervised feature model at one layer, fed from audio.

    Parameters
    ----------
    module : the loaded model (``encode(batch, layer=...)``, ``input_key``, ``frame_shift``,
        ``frame_offset``).
    name : its registered name (for messages).
    layer : one of :func:`model_layers`.
    source : the directory it was loaded from (for messages).
    features : path of the training data's feature configuration (``fbank.yaml`` or
        ``mfcc.yaml``); required for a model that reads features.
    input_dim : the feature dimension the model takes (None: not checked).
    device : torch device of the module.

    Raises
    ------
    ConfigError
        A layer the model does not have.
    CheckpointError
        A feature-input model without a feature configuration.
    """

    def __init__(self, module: Any, name: str, layer: str, *, source: str | Path, features: str | Path | None = None,
                 input_dim: int | None = None, device: str = "cpu"):
        from speechrep.features.options import feature_config

        layers = model_layers(module)
        if layer not in layers:
            offers = f"offers {', '.join(layers)}" if layers else "has no layers to encode with"
            raise ConfigError(f"model '{name}' of {source} has no layer {layer!r} (it {offers})", field="--layer")
        self.module, self.name, self.layer, self.device = module.to(device).eval(), name, layer, device
        self.input_key = getattr(module, "input_key", "wave")
        # a waveform model trained beside features does not use them
        self.features_conf = Path(features) if features is not None and self.input_key == "feats" else None
        self.input_dim = input_dim
        self.feature_cfg: Any = None
        if self.input_key == "feats":
            if self.features_conf is None:
                raise CheckpointError(f"model '{name}' reads features, and the feature configuration of its training "
                                      "data (conf/fbank.yaml or conf/mfcc.yaml beside data.train) is not known",
                                      path=source, field="data.train")
            self.feature_cfg = feature_config(self.features_conf.stem, self.features_conf)

    @property
    def sample_rate(self) -> int:
        """Rate of the audio the model (or its features) read, in Hz."""
        if self.feature_cfg is not None:
            return int(self.feature_cfg.sample_frequency)
        return int(getattr(self.module.cfg, "sample_rate", 16000))

    @property
    def frame_shift(self) -> float:
        """Seconds between representation frames."""
        return float(self.module.frame_shift)

    @property
    def frame_offset(self) -> float:
        """Centre of representation frame 0, in seconds."""
        return float(getattr(self.module, "frame_offset", 0.0))

    def inputs(self, wave: np.ndarray) -> np.ndarray:
        """The model's input for a wave ``(samples,)`` at :attr:`sample_rate`: the wave, or
        its features ``(frames, dim)`` as ``speechrep features make-*`` computes them."""
        if self.feature_cfg is None:
            return wave
        from speechrep.features.options import feature_kind, function_options

        options = function_options(self.feature_cfg)
        options["seed"] = np.random.default_rng(self.feature_cfg.seed)  # dither, the same on every call
        feats = feature_kind(self.features_conf.stem)[1](wave * np.float32(self.feature_cfg.wave_scale), **options)
        if self.input_dim is not None and feats.shape[1] != self.input_dim:
            raise DataError(f"features of dimension {feats.shape[1]}, the model takes {self.input_dim}",
                            path=self.features_conf)
        return feats

    def encode(self, wave: np.ndarray, *, name: str | Path = "audio") -> "torch.Tensor":
        """Representation ``(frames, dim)`` of a wave ``(samples,)`` at :attr:`sample_rate`
        (``name``: the file, for the error when the model cannot take it)."""
        import torch

        from speechrep.train.inputs import refused_input

        x = self.inputs(wave)
        with torch.inference_mode(), refused_input(Path(name).name, x, name):
            return self.module.encode({self.input_key: torch.as_tensor(x, dtype=torch.float32, device=self.device)[None]},
                                      layer=self.layer)[0].float()


class KnnConverter:
    """Zero-shot conversion by kNN matching (see the module docstring).

    Parameters
    ----------
    features : the feature model and layer.
    vocoder : a :class:`speechrep.vocoder.base.Vocoder`; its log-mel is matched and vocoded.
    k : target frames averaged per source frame.
    pitch_weight : weight w of the intonation terms of the distance (module docstring; 0:
        the feature model's cosine alone).

    Raises
    ------
    ConfigError
        ``k < 1``; ``pitch_weight`` negative or not finite.
    """

    def __init__(self, features: FeatureModel, vocoder: "Vocoder", *, k: int = DEFAULT_K, pitch_weight: float = 0.0):
        if k < 1:
            raise ConfigError(f"kNN matching needs k >= 1, got {k}", field="--k")
        if not (np.isfinite(pitch_weight) and pitch_weight >= 0):
            raise ConfigError(f"must be a number >= 0, got {pitch_weight}", field="--pitch-weight")
        self.features, self.vocoder, self.k, self.pitch_weight = features, vocoder, k, float(pitch_weight)
        # batch mode converts pair after pair with the same targets: their matching set is kept
        self._cached: tuple[tuple[str, ...], tuple["torch.Tensor", "torch.Tensor"]] | None = None

    @property
    def sample_rate(self) -> int:
        """Rate of outputs (the vocoder's), in Hz."""
        return self.vocoder.sample_rate

    def frames(self, path: str | Path, *, field_name: str) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Keys ``(N, dim)`` and log-mel frames ``(N, n_mels)`` of an audio file, one per log-mel
        frame: its key is the representation frame nearest in time."""
        return self._frames(path, field_name=field_name)[:2]

    def _frames(self, path: str | Path, *, field_name: str) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor | None"]:
        """:meth:`frames` and, with a pitch weight, the F0 of each log-mel frame ``(N,)`` in Hz
        (0 where unvoiced; :func:`speechrep.models.pitch.estimate_f0`), else None."""
        import torch

        from speechrep.features.logmel import log_mel
        from speechrep.models.pitch import estimate_f0

        spec = self.vocoder.spec
        mel_wave = read_input_audio(path, sample_rate=spec.sample_rate, field_name=field_name)
        rate = self.features.sample_rate
        wave = mel_wave if rate == spec.sample_rate else read_input_audio(path, sample_rate=rate, field_name=field_name)
        reps = self.features.encode(wave, name=path)
        mel = torch.from_numpy(log_mel(mel_wave, spec)).to(reps.device)
        idx = nearest_frames(np.arange(mel.shape[0]) * spec.frame_shift, num_frames=reps.shape[0],
                             shift=self.features.frame_shift, offset=self.features.frame_offset)
        f0 = None
        if self.pitch_weight > 0:
            track = np.nan_to_num(estimate_f0(mel_wave, sample_rate=spec.sample_rate, hop_length=spec.hop_length))
            track = np.pad(track[: mel.shape[0]], (0, max(0, mel.shape[0] - len(track))))
            f0 = torch.from_numpy(track).to(device=reps.device, dtype=torch.float32)
        return reps[torch.from_numpy(idx).to(reps.device)], mel, f0

    def _keys(self, reps: "torch.Tensor", f0: "torch.Tensor | None") -> "torch.Tensor":
        """Matching keys of frames ``reps`` ``(N, dim)`` with F0 ``f0`` ``(N,)`` of one voice
        (pooled for the targets, one utterance for the source): the representations alone
        without a pitch weight, else ``[reps / |reps|, w z, w v]`` with ``[z, v]`` the voice's
        :func:`~speechrep.models.pitch.normalised_log_f0`."""
        import torch

        from speechrep.models.pitch import normalised_log_f0

        if f0 is None:
            return reps
        pitch = normalised_log_f0(f0[None])[0]
        return torch.cat([torch.nn.functional.normalize(reps, dim=-1), self.pitch_weight * pitch], 1)

    def matching_set(self, targets: Iterable[str | Path]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Keys ``(N, dim)`` and log-mel frames ``(N, n_mels)`` of all target frames, pooled.

        Raises
        ------
        DataError
            Unusable target audio, or less than :data:`MIN_TARGET_SPEECH` s of non-silent
            audio in all.
        """
        import torch

        targets = list(targets)
        if not targets:
            raise ConfigError("at least one target utterance is needed", field="target")
        keys, values, f0s, speech = [], [], [], 0.0
        for t in targets:
            k, mel, f0 = self._frames(t, field_name="target")
            keys.append(k)
            values.append(mel)
            f0s.append(f0)
            speech += _speech_frames(mel) * self.vocoder.spec.frame_shift
        if speech < MIN_TARGET_SPEECH:
            more = f" (and {len(targets) - 1} more targets)" if len(targets) > 1 else ""
            raise DataError(f"{speech:.2f} s of non-silent target audio{more}; kNN matching needs at least "
                            f"{MIN_TARGET_SPEECH:g} s (give a longer target, or several --target)",
                            path=targets[0], field="target")
        return self._keys(torch.cat(keys), None if self.pitch_weight == 0 else torch.cat(f0s)), torch.cat(values)

    def queries(self, source: str | Path) -> "torch.Tensor":
        """Matching keys ``(T, ·)`` of the log-mel frames of audio file ``source``."""
        reps, _, f0 = self._frames(source, field_name="source")
        return self._keys(reps, f0)

    def match(self, queries: "torch.Tensor", matching: tuple["torch.Tensor", "torch.Tensor"]) -> "torch.Tensor":
        """Matched log-mel ``(T, n_mels)``: the mean of the ``k`` nearest frames of ``matching``
        for each of ``queries`` (cosine of the representations; Euclidean with the pitch columns)."""
        from speechrep.models.frame_matching import match_frames

        return match_frames(queries, *matching, self.k, metric="euclidean" if self.pitch_weight > 0 else "cosine")

    def convert_wave(self, source: str | Path, matching: tuple["torch.Tensor", "torch.Tensor"]) -> np.ndarray:
        """Converted wave ``(samples,)`` at :attr:`sample_rate` of audio file ``source``, each
        of its log-mel frames replaced by the mean of its ``k`` nearest frames of ``matching``."""
        mel = self.match(self.queries(source), matching)
        return self.vocoder.mel_to_wave(mel.cpu().numpy())

    def convert(self, source: str | Path, targets: Iterable[str | Path]) -> np.ndarray:
        """Converted wave of audio file ``source`` in the voice of audio files ``targets`` (the
        matching set of the last targets is reused)."""
        key = tuple(str(Path(t).absolute()) for t in targets)
        if self._cached is None or self._cached[0] != key:
            self._cached = (key, self.matching_set(key))
        return self.convert_wave(source, self._cached[1])


def _speech_frames(mel: "torch.Tensor") -> int:
    """Non-silent frames of a log-mel ``(T, n_mels)``: energy within :data:`SILENCE_BELOW_PEAK_DB`
    of the loudest frame."""
    import torch

    level = torch.logsumexp(2 * mel, dim=1) * (10 / np.log(10))  # dB of the mel power
    return int((level > level.max() - SILENCE_BELOW_PEAK_DB).sum())


def is_knn_package(path: str | Path) -> bool:
    """Whether ``path`` is a packaged kNN model directory (holds :data:`KNN_FILE`)."""
    return (Path(path) / KNN_FILE).is_file()


def default_model() -> Path:
    """The packaged default model directory.

    Raises
    ------
    ConfigError
        No model is packaged there (then ``--model`` is required).
    """
    if not is_knn_package(DEFAULT_MODEL_DIR):
        raise ConfigError(f"is required: no default model is packaged in {DEFAULT_MODEL_DIR} (no {KNN_FILE})",
                          field="--model")
    return DEFAULT_MODEL_DIR


def _read_package(path: Path) -> dict[str, Any]:
    """``knn.json`` of a packaged directory, checked field by field."""
    file = path / KNN_FILE
    try:
        info = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"unreadable or corrupt JSON ({e})", path=file) from None
    if not isinstance(info, dict) or info.get("format") != PACKAGE_FORMAT:
        raise CheckpointError(f"not a packaged kNN model (format {PACKAGE_FORMAT} expected)", path=file, field="format")
    from speechrep.features.options import FEATURE_KINDS

    def inside(v: Any) -> bool:  # a relative name that stays in the package
        return isinstance(v, str) and (path / v).resolve().is_relative_to(path.resolve())

    checks = {
        "layer": (lambda v: isinstance(v, str), "a layer name"),
        "k": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
        "checkpoint": (lambda v: inside(v) and (path / v / "state.json").is_file(),
                       "the name of a checkpoint directory inside the package"),
        "features": (lambda v: v is None or (inside(v) and (path / v).is_file() and Path(v).stem in FEATURE_KINDS),
                     f"null or a feature configuration inside the package ({', '.join(FEATURE_KINDS)}.yaml)"),
        # optional (packages written before vocoders were packaged have none): Griffin-Lim
        "vocoder": (lambda v: v is None or (inside(v) and (path / v / "state.json").is_file()),
                    "null or the name of a vocoder checkpoint directory inside the package"),
        # optional (packages written before pitch-aware matching have none): 0
        "pitch_weight": (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)
                                                 and bool(np.isfinite(v)) and v >= 0), "a number >= 0"),
    }
    for key, (ok, words) in checks.items():
        if (key not in info and key not in ("vocoder", "pitch_weight")) or not ok(info.get(key)):
            raise CheckpointError(f"must be {words}, got {json.dumps(info.get(key))}", path=file, field=key)
    return info


def packaged_vocoder(path: str | Path) -> Path | None:
    """The vocoder checkpoint directory of a packaged kNN model; None when it has none
    (Griffin-Lim) or ``path`` is no package.

    Raises
    ------
    CheckpointError
        A corrupt ``knn.json``.
    """
    path = Path(path)
    if not is_knn_package(path):
        return None
    name = _read_package(path).get("vocoder")
    return path / name if name else None


def resolve_vocoder(model: str | Path, vocoder: str | Path | None) -> str | Path:
    """The vocoder a conversion with ``model`` uses: ``vocoder`` when given; else the
    model's packaged vocoder when it has one; else ``"griffinlim"``."""
    return vocoder if vocoder is not None else packaged_vocoder(model) or "griffinlim"


def load_knn_converter(model: str | Path, vocoder: "Vocoder", *, device: str = "cpu", layer: str | None = None,
                       k: int | None = None, pitch_weight: float | None = None,
                       loaded: tuple[Any, str] | None = None) -> KnnConverter:
    """A :class:`KnnConverter` of a packaged directory or a feature model's experiment directory.

    Parameters
    ----------
    model : packaged directory (:data:`KNN_FILE`), experiment or checkpoint directory.
    vocoder : the loaded vocoder.
    layer, k, pitch_weight : override the package's (or the defaults :data:`DEFAULT_LAYER`,
        :data:`DEFAULT_K`, :data:`DEFAULT_PITCH_WEIGHT`).
    loaded : ``(module, name)`` already loaded from ``model`` (its best checkpoint), to skip
        loading it again.

    Raises
    ------
    CheckpointError
        Corrupt package or checkpoint; a model that is no feature model (no layers).
    ConfigError
        A layer the model does not have, ``k < 1``.
    """
    from speechrep.train.checkpoint import find_checkpoint, load_model, read_state

    model = Path(model)
    if is_knn_package(model):
        info = _read_package(model)
        ckpt, features = model / info["checkpoint"], (model / info["features"] if info["features"] else None)
        layer, k = layer or info["layer"], k if k is not None else info["k"]
        pitch_weight = pitch_weight if pitch_weight is not None else info.get("pitch_weight") or 0.0
    else:
        from speechrep.train.inputs import training_feature_conf

        ckpt = find_checkpoint(model, which="best")
        conf = training_feature_conf(model, "best")
        features = conf[0] if conf is not None else None
        layer, k = layer or DEFAULT_LAYER, k if k is not None else DEFAULT_K
        pitch_weight = pitch_weight if pitch_weight is not None else DEFAULT_PITCH_WEIGHT
    module, name = loaded if loaded is not None else load_model(ckpt, map_location=device)[:2]
    if not model_layers(module):
        raise CheckpointError(f"holds a '{name}' model: not a voice-conversion model (vc_*), nor a feature model "
                              "whose encode() has layers (cpc, dim, vqcpc) for kNN conversion", path=model, field="model")
    input_dim = (read_state(ckpt).get("model") or {}).get("input_dim")
    feats = FeatureModel(module, name, layer, source=model, features=features, input_dim=input_dim, device=device)
    return KnnConverter(feats, vocoder, k=k, pitch_weight=pitch_weight)
