"""HiFi-GAN's wave discriminators, compact enough to train beside the vocoder on a CPU.

- :class:`PeriodDiscriminator` folds the wave into ``period`` columns (``(B, 1, L / p, p)``)
  and convolves along time within each column: it sees the periodic structure (the
  harmonics of a voice) at that period. :class:`MultiPeriodDiscriminator` holds one per
  period (HiFi-GAN's 2, 3, 5, 7, 11: primes, so that the periods overlap little).
- :class:`ScaleDiscriminator` convolves the wave with strided, grouped 1-D convolutions;
  :class:`MultiScaleDiscriminator` runs one on the wave and on versions average-pooled by
  2, 4, ...: the spectral envelope and the transients at several resolutions.

:class:`WaveDiscriminator` combines both and returns ``(scores, features)``, the score map
of every sub-discriminator and the activations of all their layers, as
:func:`speechrep.objectives.adversarial.lsgan_losses` expects (after Kong, Kim and Bae, 2020; the
channel widths here scale with one ``channels`` argument, 16 for a CPU recipe).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PeriodDiscriminator", "MultiPeriodDiscriminator", "ScaleDiscriminator", "MultiScaleDiscriminator",
           "WaveDiscriminator"]


def _run(layers: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), 0.1)
        features.append(x)
    x = post(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    """Wave ``(B, L)`` -> scores ``(B, frames)`` and the activations of its layers."""

    def __init__(self, period: int, channels: int):
        super().__init__()
        self.period = period
        widths = [1, channels, 4 * channels, 8 * channels, 8 * channels]
        self.layers = nn.ModuleList(
            nn.Conv2d(cin, cout, (5, 1), (3 if i < 3 else 1, 1), padding=(2, 0))
            for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.post = nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        b, length = wave.shape
        pad = (-length) % self.period
        if pad:
            wave = F.pad(wave, (0, pad), mode="reflect" if pad < length else "constant")
        x = wave.view(b, 1, -1, self.period)  # (B, 1, L / p, p)
        return _run(self.layers, self.post, x)


class ScaleDiscriminator(nn.Module):
    """Wave ``(B, L)`` -> scores ``(B, frames)`` and the activations of its layers."""

    def __init__(self, channels: int):
        super().__init__()
        c = channels
        # (in, out, kernel, stride, groups): grouped strided convolutions as in MelGAN / HiFi-GAN
        # (fewer groups where the widths are too narrow to split)
        spec = [(1, c, 15, 1, 1), (c, 4 * c, 41, 4, 4), (4 * c, 8 * c, 41, 4, 16), (8 * c, 8 * c, 41, 4, 16),
                (8 * c, 8 * c, 5, 1, 1)]
        self.layers = nn.ModuleList(nn.Conv1d(i, o, k, s, padding=k // 2, groups=math.gcd(g, i, o))
                                    for i, o, k, s, g in spec)
        self.post = nn.Conv1d(8 * c, 1, 3, padding=1)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return _run(self.layers, self.post, wave[:, None])


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`PeriodDiscriminator` per period."""

    def __init__(self, periods: list[int], channels: int):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, channels) for p in periods)

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, features = [], []
        for d in self.discriminators:
            s, f = d(wave)
            scores.append(s)
            features.extend(f)
        return scores, features


class MultiScaleDiscriminator(nn.Module):
    """:class:`ScaleDiscriminator` on the wave and on it average-pooled 1, 2, ... times by 2."""

    def __init__(self, scales: int, channels: int):
        super().__init__()
        self.discriminators = nn.ModuleList(ScaleDiscriminator(channels) for _ in range(scales))

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        scores, features = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                wave = F.avg_pool1d(wave[:, None], 4, 2, padding=2).squeeze(1)
            s, f = d(wave)
            scores.append(s)
            features.extend(f)
        return scores, features


class WaveDiscriminator(nn.Module):
    """Multi-period and multi-scale discriminators together: ``(scores, features)`` of both."""

    def __init__(self, periods: list[int], scales: int, channels: int):
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(periods, channels)
        self.msd = MultiScaleDiscriminator(scales, channels)

    def forward(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        s1, f1 = self.mpd(wave)
        s2, f2 = self.msd(wave)
        return s1 + s2, f1 + f2
