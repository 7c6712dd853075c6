"""One Trainer for every model: config, data crops, AdamW + warmup/cosine, AMP, gradient
accumulation, DDP via torchrun, safetensors checkpoints with exact resume, logs.

Models register a builder with :func:`speechrep.models.registry.register_model`; runs start
with :func:`speechrep.train.trainer.train` (``speechrep train CONFIG``). Submodules are
imported on demand so that ``import speechrep.train`` stays cheap.
"""
