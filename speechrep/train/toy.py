"""``toy``: a tiny linear next-frame predictor for tests and smoke runs of the Trainer.

Waveform input is cut into frames of ``frame`` samples; feature input uses its frames.
The model predicts frame t+1 from frame t through a ``hidden``-dim bottleneck; the loss is
the mean squared error, which falls quickly on any correlated signal.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from speechrep.config import dataclass
from speechrep.models.registry import register_model

__all__ = ["ToyConfig", "ToyModel", "build_toy"]


@dataclass
class ToyConfig:
    hidden: int = 8
    frame: int = 160  #: samples per frame for waveform input (10 ms at 16 kHz)
    dropout: float = 0.0
    num_speakers: int | None = None  #: filled by the Trainer; sizes a speaker-logit head
    sleep: float = 0.0  #: seconds slept per forward (lets tests interrupt a run mid-way)


class ToyModel(nn.Module):
    """Linear next-frame predictor.

    Parameters
    ----------
    cfg : ToyConfig
    input_dim : feature dimension D, or None for waveform input (frames of ``cfg.frame``).
    """

    def __init__(self, cfg: ToyConfig, *, input_dim: int | None):
        super().__init__()
        self.cfg = cfg
        self.key = "wave" if input_dim is None else "feats"
        dim = cfg.frame if input_dim is None else input_dim
        self.frame_shift = cfg.frame / 16000 if input_dim is None else 0.01
        self.encoder = nn.Linear(dim, cfg.hidden)
        self.dropout = nn.Dropout(cfg.dropout)
        self.decoder = nn.Linear(cfg.hidden, dim)
        self.speaker = nn.Linear(cfg.hidden, cfg.num_speakers or 1)
        self.register_buffer("steps_done", torch.zeros((), dtype=torch.int64))

    def on_step_end(self, step: int) -> None:
        """Record the optimizer steps taken (shows the Trainer calls the hook)."""
        self.steps_done.fill_(step)

    def _frames(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        x = batch[self.key]
        if self.key == "wave":
            b, t = x.shape
            x = x[:, : t - t % self.cfg.frame].reshape(b, -1, self.cfg.frame)  # (B, T', frame)
        return x  # (B, T', D)

    def encode(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, T', hidden) codes of each frame."""
        return self.encoder(self._frames(batch))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self.cfg.sleep:
            time.sleep(self.cfg.sleep)
        x = self._frames(batch)  # (B, T', D)
        h = self.dropout(self.encoder(x[:, :-1]))  # (B, T'-1, hidden)
        mse = (self.decoder(h).float() - x[:, 1:].float()).pow(2).mean()
        spk_logits = self.speaker(h.mean(1)).float()  # (B, num_speakers)
        spk_loss = nn.functional.cross_entropy(spk_logits, batch["speaker"])
        acc = (spk_logits.argmax(-1) == batch["speaker"]).float().mean()
        return {"loss": mse + 0.01 * spk_loss, "mse": mse.detach(), "speaker/acc": acc}


@register_model("toy", config=ToyConfig)
def build_toy(cfg: ToyConfig, *, input_dim: int | None) -> ToyModel:
    return ToyModel(cfg, input_dim=input_dim)
