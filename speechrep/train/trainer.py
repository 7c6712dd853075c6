"""The Trainer: one training loop for every registered model.

``train(config)`` reads a :class:`~speechrep.train.config.TrainConfig`, builds the model
through the registry, and runs AdamW with warmup + cosine decay, gradient accumulation,
gradient clipping and AMP, under DistributedDataParallel when started by ``torchrun``.
Rank 0 writes the resolved ``config.yaml``, ``speakers.txt``, logs and checkpoints; a
``resume`` run restores weights, optimizer, sampler position and RNG states from the
newest checkpoint and reproduces the loss curve of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import dataclasses
import os
import random
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from speechrep.config import override_keys, save_config, source_of, to_dict
from speechrep.errors import CheckpointError, ConfigError, DataError, SpeechrepError
from speechrep.train import checkpoint as ckpt_io
from speechrep.train.checkpoint import attach_frozen_models
from speechrep.train.config import TrainConfig, resolve_config
from speechrep.train.data import (CropDataset, attach_phones, build_augmenter, load_corpus, make_loader,
                                  read_phone_alignments, read_speakers, valid_batches)
from speechrep.train.distributed import DistInfo, all_gather_object, all_reduce_sum, cleanup, init_distributed
from speechrep.train.logging import RunLogger
from speechrep.models.registry import build_model, get_model_entry
from speechrep.train.sampler import CropSampler
from speechrep.train.schedule import lr_at

__all__ = ["train", "rng_state", "set_rng_state"]

log = logging.getLogger("speechrep.train")


def train(config: str | Path | TrainConfig, overrides: Iterable[str] = (), resume: bool = False) -> Path:
    """Train the model an experiment config describes; return its ``exp_dir``.

    Parameters
    ----------
    config : YAML path or :class:`TrainConfig`.
    overrides : ``"a.b=value"`` strings applied on top (``--set``).
    resume : continue from the newest checkpoint in ``exp_dir`` (a fresh start when there
        is none). Without it, an ``exp_dir`` that already holds checkpoints is an error.

    Raises
    ------
    ConfigError, DataError, CheckpointError
        Bad config key/value, missing or unusable data directory, unusable checkpoint.
    """
    overrides = list(overrides)
    cfg, source = resolve_config(config, overrides)
    info = init_distributed(cfg.train.device, source=source_of("train.device", source, override_keys(overrides)))
    try:
        return _Run(cfg, source, info, resume=resume).run()
    finally:
        cleanup(info)


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU, CUDA) RNG states as JSON-safe lists of ints."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(mt), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _use_deterministic_algorithms() -> None:
    import sys

    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        # The public call also imports the torch.compile stack (seconds on a busy 2-core
        # machine) only to set a flag that eager training does not read.
        torch._C._set_deterministic_algorithms(True, warn_only=True)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def _state_field(ckpt: Path, field: str) -> Iterator[None]:
    """Report a ``state.json`` value that torch or numpy refuse (a hand edit) as that field."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"unusable value ({type(e).__name__}: {e})", path=ckpt / "state.json",
                              field=field) from None


class _Run:
    """State of one training run on one rank."""

    def __init__(self, cfg: TrainConfig, source: str, info: DistInfo, *, resume: bool):
        self.cfg, self.source, self.info = cfg, source, info
        self.exp_dir = Path(cfg.exp_dir)
        self.ckpt_root = self.exp_dir / "checkpoints"
        self.resume_from = self._resume_point(resume)
        t = cfg.train
        if t.num_threads is not None:
            torch.set_num_threads(t.num_threads)
        if t.deterministic:
            # cuBLAS needs this set before its first use to be deterministic
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            _use_deterministic_algorithms()
            torch.backends.cudnn.benchmark = False
        _seed_all(t.seed)

        d = cfg.data
        for key, path in (("data.train", d.train), ("data.valid", d.valid)):
            if path is not None and not Path(path).is_dir():
                raise DataError("data directory not found", path=path, field=key)
        self.speakers = self._speakers()
        corpus_args = dict(input=d.input, crop=d.crop, speakers=self.speakers, short=d.short,
                           sample_rate=d.sample_rate, memory_budget_mb=d.memory_budget_mb)
        self.train_corpus = load_corpus(d.train, field="data.train", **corpus_args)
        self.valid_corpus = load_corpus(d.valid, field="data.valid", **corpus_args) if d.valid else None
        alignments = read_phone_alignments(d.phones) if d.phones else None
        if alignments is not None:
            if "phones" not in {f.name for f in dataclasses.fields(get_model_entry(cfg.model.name)[1])}:
                raise ConfigError(f"model '{cfg.model.name}' has no phone inventory to train on", path=source,
                                  field="data.phones")
            cfg.model.args.setdefault("phones", sorted({ph for segs in alignments.values() for _, _, ph in segs}))

        # Same seed on every rank: identical initial weights (DDP also broadcasts rank 0's).
        torch.manual_seed(t.seed)
        self.module, model_cfg = build_model(cfg.model.name, cfg.model.args, input_dim=self.train_corpus.dim,
                                             num_speakers=len(self.speakers), source=source)
        self.module.to(info.device)
        if alignments is not None:
            for corpus in (self.train_corpus, self.valid_corpus):
                if corpus is not None:
                    attach_phones(corpus, alignments, model_cfg.phones, sample_rate=d.sample_rate)
        self.init_note = ""
        if t.init_from and self.resume_from is None:
            self._init_from(t.init_from)
        attach_frozen_models(self.module)  # before anything is written: a missing judge fails cleanly
        self.augment = build_augmenter(d, seed=t.seed, source=source, accepts_past=getattr(
            self.module, "accepts_wave_aug", False))
        cfg.model.args = to_dict(model_cfg)
        self.model_spec = {"name": cfg.model.name, "args": cfg.model.args, "input_dim": self.train_corpus.dim}
        self._check_saved_config()

        o = cfg.optim
        if o.amp == "fp16" and info.device.type != "cuda":
            raise ConfigError("fp16 needs a CUDA device (use bf16 on CPU)", path=source, field="optim.amp")
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[o.amp]
        self.scaler = torch.amp.GradScaler(info.device.type, enabled=o.amp == "fp16")
        # Biases and norm gains (1-D) are not decayed, as usual for AdamW.
        params = [p for p in self.module.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": o.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=o.lr, betas=tuple(o.betas))
        self.model: torch.nn.Module = self.module
        if info.distributed:
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                find_unused_parameters=t.find_unused_parameters)

        self.step = 0
        self.batches = 0  # micro-batches consumed per rank
        self.best: dict[str, Any] | None = None
        self.valid_step = -1
        self.last_valid: float | None = None
        # Per-rank seeds for what happens during training (dropout, sampled negatives).
        _seed_all(t.seed + 1000003 * info.rank)
        if self.resume_from is not None:
            self._restore_newest_usable()

    # -- setup helpers ----------------------------------------------------------------
    def _resume_point(self, resume: bool) -> Path | None:
        for path in (self.exp_dir, self.ckpt_root):
            if path.exists() and not path.is_dir():
                # before any work: mkdir would fail only once the data is loaded
                raise ConfigError("exists and is not a directory; choose another exp_dir", path=path, field="exp_dir")
        ckpts = ckpt_io.list_checkpoints(self.ckpt_root)
        if ckpts and not resume:
            raise ConfigError(f"already holds checkpoints (up to step {ckpts[-1][0]}); resume with --resume or "
                              "choose another exp_dir", path=self.exp_dir, field="exp_dir")
        self.resume_candidates = [path for _, path in reversed(ckpts)]  # newest first
        self.resume_skipped: list[str] = []  # warnings, logged once the run's log is open
        return ckpts[-1][1] if ckpts else None

    def _init_from(self, path: str) -> None:
        if not Path(path).exists():
            raise ConfigError("not found", path=path, field="train.init_from")
        ckpt = ckpt_io.find_checkpoint(path, which="best")
        state = ckpt_io.read_state(ckpt)
        name = (state.get("model") or {}).get("name")
        if name != self.cfg.model.name:
            raise ConfigError(f"holds a '{name}' model, this run trains '{self.cfg.model.name}'", path=ckpt,
                              field="train.init_from")
        missing = ckpt_io.load_weights(self.module, ckpt, state=state, allow_missing=True)
        # logged by _describe, once the run's log file is open
        self.init_note = (f"initialised from {ckpt}: {len(self.module.state_dict()) - len(missing)} tensors loaded, "
                          f"{len(missing)} new" + (f" (first: {missing[0]})" if missing else ""))

    def _speakers(self) -> list[str]:
        path = self.exp_dir / "speakers.txt"
        if self.resume_from is not None and path.is_file():
            return path.read_text(encoding="utf-8").split()
        dirs = [self.cfg.data.train] + ([self.cfg.data.valid] if self.cfg.data.valid else [])
        return read_speakers(dirs)

    def _check_saved_config(self) -> None:
        import yaml

        saved = self.exp_dir / "config.yaml"
        if self.resume_from is None or not saved.is_file():
            return
        old = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("model")
        if old != to_dict(self.cfg.model):
            raise ConfigError("model section differs from the run being resumed (see its config.yaml)",
                              path=saved, field="model")

    def _restore_newest_usable(self) -> None:
        """Restore the newest checkpoint that loads. A corrupt one (a bad disk block, a hand
        edit) is skipped with a warning, as the one before it is still a good place to go
        on from; only when none loads is it an error (the newest one's)."""
        errors: list[CheckpointError] = []
        for ckpt in self.resume_candidates:
            try:
                self._restore(ckpt)
            except CheckpointError as e:
                errors.append(e)
                self.resume_skipped.append(f"skipping unusable checkpoint {ckpt}: {e}")
                continue
            self.resume_from = ckpt
            return
        if len(errors) == 1:
            raise errors[0]
        raise CheckpointError(f"none of the {len(errors)} checkpoints can be resumed from; the newest: {errors[0]}",
                              path=self.ckpt_root)

    def _restore(self, ckpt: Path) -> None:
        """Load weights, optimizer, scaler, step, sampler position and RNG from ``ckpt``."""
        state = ckpt_io.read_state(ckpt)
        ckpt_io.check_resume_state(ckpt, state)
        ckpt_io.load_weights(self.module, ckpt, state=state)
        ckpt_io.load_optimizer(self.optimizer, ckpt, state=state)
        if state.get("scaler"):
            with _state_field(ckpt, "scaler"):
                self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        sampler = state["sampler"]
        same_layout = (sampler["world_size"], sampler["batch_size"]) == (self.info.world_size, self.cfg.data.batch_size)
        self.batches = int(sampler["batches"])
        rngs = state.get("rng") or []
        self.exact_resume = same_layout and len(rngs) == self.info.world_size
        if self.exact_resume:
            with _state_field(ckpt, "rng"):
                set_rng_state(rngs[self.info.rank])
        else:
            self.batches = int(sampler["batches"]) * sampler["world_size"] * sampler["batch_size"] // (
                self.info.world_size * self.cfg.data.batch_size)
        self.best = state.get("best")
        self.last_valid = state.get("valid_loss")
        self.valid_step = self.step if self.last_valid is not None else -1

    def _write_run_files(self) -> None:
        from speechrep.utils.io import atomic_write_text

        save_config(self.cfg, self.exp_dir / "config.yaml")
        atomic_write_text(self.exp_dir / "speakers.txt", "".join(s + "\n" for s in self.speakers))

    # -- training ---------------------------------------------------------------------
    def run(self) -> Path:
        cfg, info = self.cfg, self.info
        if info.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_files()
        unit = "samples" if cfg.data.input == "wave" else "frames"
        logger = RunLogger(self.exp_dir, enabled=info.is_main, start_step=self.step, max_steps=cfg.optim.max_steps,
                           tensorboard=cfg.train.tensorboard, progress=cfg.train.progress, unit=unit)
        try:
            self._describe()
            if self.resume_from is not None:
                for warning in self.resume_skipped:
                    log.warning("%s", warning)
                log.info("resuming from %s (step %d)", self.resume_from, self.step)
                if not self.exact_resume:
                    log.warning("world size or batch size changed: the data order and RNG streams differ from "
                                "an uninterrupted run")
            self._loop(logger)
        finally:
            logger.close()
        return self.exp_dir

    def _describe(self) -> None:
        c, n_params = self.train_corpus, sum(p.numel() for p in self.module.parameters())
        log.info("config %s -> %s; model %s (%d parameters) on %s, world size %d", self.source, self.exp_dir,
                 self.cfg.model.name, n_params, self.info.device, self.info.world_size)
        if self.init_note:
            log.info("%s", self.init_note)
        for name, corpus in (("train", c), ("valid", self.valid_corpus)):
            if corpus is not None:
                log.info("%s: %s, %d utterances of %d speakers, %s; %d shorter than the crop (%s)", name,
                         corpus.path, len(corpus.utts), len(np.unique(corpus.speaker)),
                         "in memory" if corpus.data is not None else "read per crop", corpus.num_short,
                         "skipped" if corpus.short == "skip" else "zero-padded")

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.info.device.type, dtype=self.amp_dtype)

    def _to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.to(self.info.device, non_blocking=True) for k, v in batch.items()}

    def _loop(self, logger: RunLogger) -> None:
        cfg, info = self.cfg, self.info
        o, t, d = cfg.optim, cfg.train, cfg.data
        sampler = CropSampler(self.train_corpus.lengths, self.train_corpus.speaker, crop=d.crop,
                              batch_size=d.batch_size, seed=t.seed, rank=info.rank, world_size=info.world_size,
                              speakers_per_batch=d.speakers_per_batch, start=self.batches, numbered=True)
        dataset = CropDataset(self.train_corpus, input=d.input, crop=d.crop, augment=self.augment,
                              augment_side=d.augment_side)
        batches = iter(make_loader(dataset, sampler, num_workers=d.num_workers, seed=t.seed,
                                   pin_memory=info.device.type == "cuda"))
        per_step = d.batch_size * d.crop * o.accum_steps * info.world_size
        sums: dict[str, torch.Tensor] = {}
        count, tic = 0, time.perf_counter()
        while self.step < o.max_steps:
            lr = lr_at(self.step, lr=o.lr, warmup_steps=o.warmup_steps, max_steps=o.max_steps,
                       min_lr_ratio=o.min_lr_ratio)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.model.train()
            for micro in range(o.accum_steps):
                batch = self._to_device(next(batches))
                sync = micro == o.accum_steps - 1 or not info.distributed
                with contextlib.nullcontext() if sync else self.model.no_sync():
                    with self._autocast():
                        out = self.model(batch)
                    loss = out["loss"]
                    self.scaler.scale(loss / o.accum_steps).backward()
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float()
                self.batches += 1
            self.scaler.unscale_(self.optimizer)
            if o.grad_clip is not None:
                norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), o.grad_clip)
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + norm.detach().float() * o.accum_steps
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            count += o.accum_steps
            hook = getattr(self.module, "on_step_end", None)
            if hook is not None:
                hook(self.step)

            final = self.step == o.max_steps
            if self.step % t.log_every == 0 or final:
                values = self._mean_over_ranks(sums, count)
                if not math.isfinite(values["loss"]) and o.amp != "fp16":
                    raise SpeechrepError(f"training diverged: loss is {values['loss']} at step {self.step} "
                                         "(lower optim.lr or set optim.grad_clip)", path=self.source)
                elapsed = time.perf_counter() - tic
                rate = per_step * count / o.accum_steps / elapsed if elapsed > 0 else 0.0
                values.update(lr=lr, **{f"{'samples' if d.input == 'wave' else 'frames'}_per_s": rate})
                logger.scalars(self.step, "train", values)
                logger.advance(1, loss=values["loss"], rate=rate)
                sums, count, tic = {}, 0, time.perf_counter()
            else:
                logger.advance(1)
            paused = time.perf_counter()
            if self.valid_corpus is not None and (self.step % t.valid_every == 0 or self.step % t.ckpt_every == 0
                                                  or final):
                self._validate(logger)
            if self.step % t.ckpt_every == 0 or final:
                self._save()
            tic += time.perf_counter() - paused  # throughput counts training time only
        self._finish()

    def _mean_over_ranks(self, sums: dict[str, torch.Tensor], count: int) -> dict[str, float]:
        keys = sorted(sums)
        stacked = torch.stack([torch.as_tensor(sums[k], dtype=torch.float32, device=self.info.device) for k in keys])
        total = all_reduce_sum(stacked, self.info) / (count * self.info.world_size)
        return {k: float(v) for k, v in zip(keys, total.tolist())}

    @torch.no_grad()
    def _validate(self, logger: RunLogger) -> None:
        cfg, info = self.cfg, self.info
        d = cfg.data
        specs = valid_batches(self.valid_corpus, crop=d.crop, batch_size=d.batch_size, seed=cfg.train.seed,
                              max_batches=cfg.train.valid_max_batches)
        mine = specs[info.rank :: info.world_size]
        # A rank left without a batch evaluates one with weight 0, so that every rank
        # reduces the same metric names.
        weight = 1.0 if mine else 0.0
        dataset = CropDataset(self.valid_corpus, input=d.input, crop=d.crop)
        sums: dict[str, torch.Tensor] = {}
        n = 0
        self.module.eval()
        # A fixed seed: the same negatives/dropout every time, and training RNG untouched.
        devices = [info.device] if info.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(cfg.train.seed)
            for spec in mine or specs[:1]:
                batch = self._to_device(dataset[spec])
                with self._autocast():
                    out = self.module(batch)
                rows = len(spec[0]) * weight
                for k, v in out.items():
                    sums[k] = sums.get(k, 0.0) + v.detach().float() * rows
                n += rows
        keys = sorted(sums)
        local = torch.stack([torch.as_tensor(sums.get(k, 0.0), dtype=torch.float32, device=info.device)
                             for k in keys] + [torch.tensor(float(n), device=info.device)])
        total = all_reduce_sum(local, info)
        values = {k: float(v) / float(total[-1]) for k, v in zip(keys, total[:-1].tolist())}
        logger.scalars(self.step, "valid", values)
        self.valid_step, self.last_valid = self.step, values["loss"]

    def _save(self) -> None:
        cfg, info = self.cfg, self.info
        rngs = all_gather_object(rng_state(), info)
        if not info.is_main:
            return
        if self.valid_step == self.step and (self.best is None or self.last_valid < self.best["valid_loss"]):
            self.best = {"step": self.step, "valid_loss": self.last_valid}
        state = {
            "model": self.model_spec,
            "speakers": self.speakers,
            "sampler": {"batches": self.batches, "world_size": info.world_size, "batch_size": cfg.data.batch_size,
                        "seed": cfg.train.seed},
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "rng": rngs,
            "valid_loss": self.last_valid if self.valid_step == self.step else None,
            "best": self.best,
        }
        path = ckpt_io.save_checkpoint(self.ckpt_root, self.step, module=self.module, optimizer=self.optimizer,
                                       state=state)
        if self.best is not None and self.best["step"] == self.step:
            ckpt_io.write_best(self.ckpt_root, self.step, self.best["valid_loss"])
        removed = ckpt_io.prune_checkpoints(self.ckpt_root, keep_last=cfg.train.keep_last)
        log.info("saved %s%s", path, f" (removed {', '.join(p.name for p in removed)})" if removed else "")

    def _finish(self) -> None:
        from speechrep.utils.io import atomic_write_json

        digest = hashlib.sha256(ckpt_io.weights_bytes(self.module)).hexdigest()
        digests = all_gather_object(digest, self.info)
        if not self.info.is_main:
            return
        if len(set(digests)) != 1:
            log.error("ranks ended with different weights: %s", digests)
        atomic_write_json(self.exp_dir / "train_summary.json", {
            "step": self.step, "world_size": self.info.world_size, "best": self.best,
            "weights_sha256": digests, "checkpoint": str(ckpt_io.find_checkpoint(self.exp_dir, which="last")),
        })
        log.info("done: step %d, weights sha256 %s", self.step, digests[0][:16])
