"""Autoregressive context networks: (B, T, D_in) codes -> (B, T, D) contexts.

Frame ``t`` of the output depends on frames ``<= t`` of the input only, which is what lets
CPC ask it to predict frames ``t + 1 .. t + K``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn

__all__ = ["ContextKind", "RecurrentContext", "CausalTransformerContext", "build_context"]

ContextKind = Literal["gru", "lstm", "transformer"]


class RecurrentContext(nn.Module):
    """Unidirectional GRU or LSTM.

    Parameters
    ----------
    kind : ``"gru"`` or ``"lstm"``.
    input_dim, dim : input and hidden sizes.
    num_layers : stacked layers.
    """

    def __init__(self, kind: Literal["gru", "lstm"], input_dim: int, dim: int, *, num_layers: int = 1):
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(input_dim, dim, num_layers=num_layers, batch_first=True)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) -> (B, T, dim).

        Under CPU autocast the recurrence runs in float32: CPU autocast casts LSTMs to
        bfloat16, which oneDNN cannot run on CPUs without native bfloat16 (it fails to
        create the primitive), and the recurrence is a small share of a step anyway.
        """
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                return self.rnn(x.float())[0]
        return self.rnn(x)[0]


class CausalTransformerContext(nn.Module):
    """Pre-norm transformer encoder with a causal mask and sinusoidal positions.

    Parameters
    ----------
    input_dim, dim : input size and model width.
    num_layers : transformer layers.
    num_heads : attention heads (``dim`` must be divisible by it).
    """

    def __init__(self, input_dim: int, dim: int, *, num_layers: int = 2, num_heads: int = 4):
        super().__init__()
        self.dim = dim
        self.proj = nn.Linear(input_dim, dim) if input_dim != dim else nn.Identity()
        layer = nn.TransformerEncoderLayer(dim, num_heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def _positions(self, length: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, self.dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(length, self.dim, device=device)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq[: self.dim // 2])
        return pe

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) -> (B, T, dim)."""
        T = x.shape[1]
        h = self.proj(x) + self._positions(T, x.device).to(x.dtype)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=x.device)
        return self.norm(self.layers(h, mask=mask, is_causal=True))


def build_context(kind: ContextKind, input_dim: int, dim: int, *, num_layers: int = 1) -> nn.Module:
    """Context network by name (``gru``, ``lstm``, ``transformer``)."""
    if kind in ("gru", "lstm"):
        return RecurrentContext(kind, input_dim, dim, num_layers=num_layers)
    if kind == "transformer":
        return CausalTransformerContext(input_dim, dim, num_layers=num_layers)
    raise ValueError(f"unknown context network {kind!r} (gru, lstm, transformer)")
