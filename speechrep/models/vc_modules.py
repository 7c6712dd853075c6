"""The parts every voice-conversion family shares: the content encoder and the AdaIN decoder.

The speaker encoder is :class:`speechrep.models.speaker.TDNNSpeakerEncoder`; the model that
puts them together is :class:`speechrep.models.vc.VoiceConversionModel`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ContentEncoder", "AdaINDecoder"]


class _ConvBlock(nn.Module):
    """Residual ``conv -> norm -> ReLU`` on ``(B, C, T)``; the norm may be conditioned."""

    def __init__(self, channels: int, kernel_size: int, norm: nn.Module):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm = norm

    def forward(self, x: torch.Tensor, *cond: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.norm(self.conv(x), *cond))


class ContentEncoder(nn.Module):
    """Normalised log-mel ``(B, T, n_mels)`` -> content code ``(B, T, content_dim)``.

    With ``instance_norm`` every block (and the output) is instance-normalised without
    affine parameters, so per-utterance channel means and scales cannot pass through;
    otherwise the blocks are batch-normalised and the code is left as it is.
    """

    def __init__(self, n_mels: int, *, channels: int, blocks: int, kernel_size: int, content_dim: int,
                 instance_norm: bool):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.InstanceNorm1d(c, affine=False) if instance_norm else nn.BatchNorm1d(c)

        self.conv_in = nn.Conv1d(n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList(_ConvBlock(channels, kernel_size, norm(channels)) for _ in range(blocks))
        self.conv_out = nn.Conv1d(channels, content_dim, 1)
        self.out_norm = nn.InstanceNorm1d(content_dim, affine=False) if instance_norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x.transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            h = block(h)
        return self.out_norm(self.conv_out(h)).transpose(1, 2)  # (B, T, content_dim)


class _AdaIN(nn.Module):
    """Instance norm whose scale and shift are affine functions of the speaker code."""

    def __init__(self, channels: int, speaker_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm1d(channels, affine=False)
        self.affine = nn.Linear(speaker_dim, 2 * channels)

    def forward(self, x: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(speaker).unsqueeze(-1).chunk(2, dim=1)  # (B, C, 1) each
        return self.norm(x) * (1 + gamma) + beta


class AdaINDecoder(nn.Module):
    """Content ``(B, T, in_dim)`` + speaker ``(B, speaker_dim)`` -> normalised log-mel ``(B, T, n_mels)``.

    The speaker enters every block through adaptive instance normalisation (instance-normalise,
    then scale and shift by affine functions of the speaker code).
    """

    def __init__(self, n_mels: int, *, in_dim: int, channels: int, blocks: int, kernel_size: int, speaker_dim: int):
        super().__init__()
        self.conv_in = nn.Conv1d(in_dim, channels, kernel_size, padding=kernel_size // 2)
        self.blocks = nn.ModuleList(
            _ConvBlock(channels, kernel_size, _AdaIN(channels, speaker_dim)) for _ in range(blocks)
        )
        self.conv_out = nn.Conv1d(channels, n_mels, 1)

    def forward(self, content: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(content.transpose(1, 2))  # (B, C, T)
        for block in self.blocks:
            h = block(h, speaker)
        return self.conv_out(h).transpose(1, 2)  # (B, T, n_mels)
