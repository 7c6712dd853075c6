"""Experiment config (``TrainConfig``) read from YAML.

Example
-------
.. code-block:: yaml

    exp_dir: exp/cpc_tiny
    data:  {train: data/train, valid: data/dev, input: wave, crop: 20480, batch_size: 8}
    model: {name: cpc, args: {hidden: 256}}
    optim: {lr: 2e-4, warmup_steps: 100, max_steps: 1000, grad_clip: 1.0, accum_steps: 1, amp: none}
    train: {seed: 0, log_every: 10, valid_every: 200, ckpt_every: 200, keep_last: 2, device: auto}

Relative paths are taken relative to the working directory (recipes run from their
``egs/<corpus>/<task>`` directory, as in Kaldi).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Literal

from speechrep.config import dataclass, field, load_config, override_keys, source_of
from speechrep.errors import ConfigError

__all__ = ["DataConfig", "ModelSection", "OptimConfig", "RunConfig", "TrainConfig", "resolve_config"]


@dataclass
class DataConfig:
    """Where the training crops come from."""

    train: str = ""  #: Kaldi data dir with wav.scp (wave) or feats.scp (feats)
    valid: str | None = None  #: optional validation data dir
    input: Literal["wave", "feats"] = "wave"
    crop: int = 20480  #: crop length: samples (wave) or frames (feats)
    batch_size: int = 8  #: crops per process per micro-batch
    num_workers: int = 0  #: DataLoader worker processes (0: load in the main process)
    speakers_per_batch: int | None = None  #: batch = this many speakers x (batch_size / it) crops
    short: Literal["pad", "skip"] = "skip"  #: utterances shorter than the crop
    sample_rate: int = 16000  #: waveform rate the audio is resampled to
    memory_budget_mb: float = 2048.0  #: load the corpus into RAM when it fits, else read per crop
    #: waveform augmentation of training crops, e.g. ``[{name: reverb, rt60: [0.2, 0.6], p: 0.5}]``
    #: (transforms and their parameters: speechrep.data.augment)
    augment: list[dict[str, Any]] = field(default_factory=list)
    #: both: the model reads the augmented crop; past: it reads the clean crop as ``wave`` and
    #: the augmented one as ``wave_aug`` (CPC: context from ``wave_aug``, targets from ``wave``)
    augment_side: Literal["past", "both"] = "both"
    #: phone CTMs of the train/valid utterances (wave input): batches carry the CTC targets of
    #: their crops (``phones``, ``phone_lengths``; silences dropped) and ``model.args.phones``
    #: defaults to their inventory
    phones: list[str] | None = None


@dataclass
class ModelSection:
    """Registered model name and its own config keys."""

    name: str = ""
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW with linear warmup and cosine decay."""

    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    max_steps: int = 1000
    min_lr_ratio: float = 0.0  #: final lr as a fraction of lr
    grad_clip: float | None = 1.0  #: max global gradient norm; null disables clipping
    accum_steps: int = 1  #: micro-batches per optimizer step
    amp: Literal["none", "bf16", "fp16"] = "none"


@dataclass
class RunConfig:
    """Seeding, logging, validation and checkpoint cadence."""

    seed: int = 0
    log_every: int = 10
    valid_every: int = 200
    ckpt_every: int = 200
    keep_last: int = 2
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    num_threads: int | None = None  #: torch CPU threads per process (None: torch's default)
    deterministic: bool = True
    valid_max_batches: int | None = None  #: cap on validation batches (None: whole valid set)
    find_unused_parameters: bool = False  #: DDP option for models with conditional branches
    tensorboard: bool = True
    progress: bool = True
    #: weights to start from (an experiment or checkpoint directory; ``best`` of an
    #: experiment): tensors of the model that it lacks keep their initialisation; ignored on --resume
    init_from: str | None = None


@dataclass
class TrainConfig:
    """A whole experiment."""

    exp_dir: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: RunConfig = field(default_factory=RunConfig)


def resolve_config(config: str | Path | TrainConfig, overrides: Iterable[str] = ()) -> tuple[TrainConfig, str]:
    """Load and check a :class:`TrainConfig`.

    Parameters
    ----------
    config : YAML path or an already built config.
    overrides : ``"a.b=value"`` strings (``--set``).

    Returns
    -------
    (cfg, source) : the config and the name errors should cite (the YAML path).

    Raises
    ------
    ConfigError
        Unknown key, wrong type, or an inconsistent value (named with the file and field).
    """
    overrides = list(overrides)
    if isinstance(config, TrainConfig):
        from speechrep.config import apply_overrides, from_dict, to_dict

        source = "<config>"
        cfg = from_dict(
            TrainConfig, apply_overrides(to_dict(config), overrides), source=source, overridden=override_keys(overrides)
        )
    else:
        source = str(config)
        cfg = load_config(TrainConfig, config, overrides=overrides)
    _check(cfg, source, override_keys(overrides))
    return cfg, source


def _check(cfg: TrainConfig, source: str, overridden: frozenset[str] = frozenset()) -> None:
    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise ConfigError(message, path=source_of(key, source, overridden), field=key)

    need(bool(cfg.exp_dir), "exp_dir", "required (directory for logs and checkpoints)")
    need(bool(cfg.data.train), "data.train", "required (a Kaldi data directory)")
    need(bool(cfg.model.name), "model.name", "required")
    d, o, t = cfg.data, cfg.optim, cfg.train
    need(d.crop > 0, "data.crop", "must be positive")
    need(d.batch_size > 0, "data.batch_size", "must be positive")
    need(d.num_workers >= 0, "data.num_workers", "must be >= 0")
    need(d.sample_rate > 0, "data.sample_rate", "must be positive")
    need(not d.phones or d.input == "wave", "data.phones", "phone targets need data.input: wave")
    if d.speakers_per_batch is not None:
        need(
            d.speakers_per_batch > 0 and d.batch_size % d.speakers_per_batch == 0,
            "data.speakers_per_batch",
            f"must divide data.batch_size ({d.batch_size})",
        )
    if d.augment:
        from speechrep.data.augment import parse_augment

        need(d.input == "wave", "data.augment",
             "waveform augmentation needs data.input: wave (features cannot be augmented)")
        transforms = parse_augment(d.augment, sample_rate=d.sample_rate, source=source, overridden=overridden)
        need(d.augment_side == "both" or all(t.input_ratio() == 1.0 for t in transforms), "data.augment_side",
             "past needs the augmented crop aligned with the clean one: no speed transform")
    need(o.lr > 0, "optim.lr", "must be positive")
    need(o.max_steps > 0, "optim.max_steps", "must be positive")
    need(0 <= o.warmup_steps <= o.max_steps, "optim.warmup_steps", "must be between 0 and optim.max_steps")
    need(0.0 <= o.min_lr_ratio <= 1.0, "optim.min_lr_ratio", "must be in [0, 1]")
    need(o.grad_clip is None or o.grad_clip > 0, "optim.grad_clip", "must be positive or null")
    need(o.accum_steps >= 1, "optim.accum_steps", "must be >= 1")
    for key in ("log_every", "valid_every", "ckpt_every", "keep_last"):
        need(getattr(t, key) >= 1, f"train.{key}", "must be >= 1")
    need(t.num_threads is None or t.num_threads >= 1, "train.num_threads", "must be >= 1 or null")
    need(t.valid_max_batches is None or t.valid_max_batches >= 1, "train.valid_max_batches", "must be >= 1 or null")
