"""An iSTFT-head vocoder generator in the style of Vocos (Siuzdak, 2023).

Every layer runs at the frame rate: a 1-D convolution lifts the log-mel frames to ``dim``
channels, ConvNeXt blocks (depthwise convolution, layer norm, a pointwise MLP with GELU,
layer scale, residual) refine them, and a linear head predicts per frame the log-magnitude
and the phase of an STFT of ``n_fft`` points at the mel hop; the inverse STFT (Hann window,
overlap-add) gives the wave. No upsampling stack at the sample rate, unlike
:class:`~speechrep.vocoder.neural.HifiGenerator`: a step costs a fraction of one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNeXtBlock", "IstftGenerator"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block of 1-D sequences ``(B, C, T) -> (B, C, T)``: depthwise convolution,
    layer norm, pointwise MLP (``intermediate`` wide, GELU), layer scale, residual."""

    def __init__(self, dim: int, intermediate: int, *, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, intermediate)
        self.pw2 = nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = self.norm(self.dwconv(x).transpose(1, 2))  # (B, T, C)
        y = self.gamma * self.pw2(F.gelu(self.pw1(y)))
        return x + y.transpose(1, 2)


class IstftGenerator(nn.Module):
    """Log-mel ``(B, T, n_mels)`` to wave ``(B, T * hop)`` through an inverse STFT (as long as
    :class:`~speechrep.vocoder.neural.HifiGenerator`'s; the last hop, past the centre of the
    last frame, is silent).

    Parameters
    ----------
    n_mels : input bands.
    dim, intermediate, layers : width, MLP width and number of the ConvNeXt blocks.
    n_fft : size of the predicted STFT (window length too); ``hop`` its hop, the mel hop, so
        that frame t of the output is centred where mel frame t was (``center=True``).
    """

    def __init__(self, *, n_mels: int, dim: int, intermediate: int, layers: int, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.embed = nn.Conv1d(n_mels, dim, 7, padding=3)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(dim, intermediate, layer_scale=1.0 / layers) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, n_fft + 2)  # log-magnitude and phase of n_fft // 2 + 1 bins
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:  # noqa: D102  (on the class)
        x = self.embed(mel.transpose(1, 2))  # (B, C, T)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        logmag, phase = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)  # (B, F, T)
        mag = torch.exp(logmag).clamp(max=1e2)
        spec = torch.polar(mag, phase)
        wave = torch.istft(spec, self.n_fft, hop_length=self.hop, win_length=self.n_fft, window=self.window,
                           center=True, length=(mel.shape[1] - 1) * self.hop)
        # the last hop would be divided by a vanishing window sum: zeros instead
        return F.pad(wave, (0, self.hop))
