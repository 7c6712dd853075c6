"""Frame encoders: raw 16 kHz waveform or log-fbank features -> (B, T', D) codes.

:class:`WaveEncoder` is the CPC_audio convolution stack (strides 5, 4, 2, 2, 2, kernels
10, 8, 4, 4, 4: one frame every 160 samples = 10 ms); :class:`FeatureEncoder` is a small
convolution stack over precomputed log-mel frames for fast CPU runs. Both normalise each
frame over its channels (:class:`ChannelNorm`), which keeps the code scale independent of
the loudness of the input.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["ChannelNorm", "strided_conv_btc", "WaveEncoder", "FeatureEncoder"]


class ChannelNorm(nn.Module):
    """Normalise each frame over its channels, with a learned per-channel affine map.

    Input and output (B, C, T).
    """

    def __init__(self, channels: int, *, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # layer_norm over the channel axis of the (B, T, C) view: one fused kernel
        return F.layer_norm(x.transpose(1, 2), (self.channels,), self.weight, self.bias, self.eps).transpose(1, 2)


class _ConvStack(nn.Module):
    """conv -> ChannelNorm -> ReLU blocks over (B, C, T)."""

    def __init__(self, in_channels: int, dim: int, kernels: Sequence[int], strides: Sequence[int], paddings: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for kernel, stride, padding in zip(kernels, strides, paddings, strict=True):
            layers += [nn.Conv1d(channels, dim, kernel, stride=stride, padding=padding), ChannelNorm(dim), nn.ReLU()]
            channels = dim
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def strided_conv_btc(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """``conv`` applied to a (B, T, C) sequence, as one matrix product; (B, T', C') out.

    Equal to ``conv(x.transpose(1, 2)).transpose(1, 2)`` for a convolution whose kernel is
    a multiple m of its stride s (the wave encoder's 10/5, 8/4, 4/2). Viewed as blocks of
    s frames, the (B, T, C) input is a (B, T/s, s*C) matrix without copying; one product
    with the kernel's m taps side by side gives every block's contribution to the m
    outputs it touches, and output t sums block t's first part with block t+1's second
    part, ... CPUs run this product at full matrix-multiply speed, where a strided 1-D
    convolution on (B, C, T) runs at a third of it and needs layout copies both ways.
    """
    (k,), (s,), (p,) = conv.kernel_size, conv.stride, conv.padding
    if k % s or conv.dilation != (1,) or conv.groups != 1 or conv.padding_mode != "zeros":
        raise ValueError(f"strided_conv_btc needs kernel = m * stride, no dilation or groups; got {conv}")
    m = k // s
    B, T, C = x.shape
    out_len = (T + 2 * p - k) // s + 1
    if out_len < 1:
        raise ValueError(f"input of {T} frames is shorter than the kernel ({k}, padding {p})")
    need = s * (out_len + m - 1)  # input frames covered by whole blocks, padding included
    x = F.pad(x, (0, 0, p, max(0, need - T - p)))[:, :need]
    if C * k <= 64:
        # few input channels (the waveform): a product with k*C columns would be too thin
        # to run at speed; copy the (small) input into its k-frame windows instead
        windows = x.unfold(1, k, s).reshape(B, out_len, C * k)  # column c*k + tap
        return F.linear(windows, conv.weight.view(conv.out_channels, C * k), conv.bias)
    blocks = x.reshape(B, out_len + m - 1, s * C)
    out_ch = conv.out_channels
    # weight (O, C, m*s) -> (s*C, m*O): row j*C + c, column i*O + o = weight[o, c, i*s + j]
    w = conv.weight.view(out_ch, C, m, s).permute(3, 1, 2, 0).reshape(s * C, m * out_ch)
    out = _ShiftSum.apply((blocks @ w).view(B, out_len + m - 1, m, out_ch))
    return out + conv.bias if conv.bias is not None else out


class _ShiftSum(torch.autograd.Function):
    """(B, L + m - 1, m, O) -> (B, L, O): out[:, t] = sum_i y[:, t + i, i].

    The backward writes each part of the gradient once into one new tensor (slicing
    would zero-fill a full-size gradient per tap and add them up).
    """

    @staticmethod
    def forward(ctx, y: torch.Tensor) -> torch.Tensor:
        m = ctx.m = y.shape[2]
        L = y.shape[1] - m + 1
        out = y[:, :L, 0].clone()
        for i in range(1, m):
            out += y[:, i : i + L, i]
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        B, L, O = g.shape
        m = ctx.m
        grad = g.new_empty(B, L + m - 1, m, O)
        for i in range(m):
            grad[:, i : i + L, i] = g
            grad[:, :i, i] = 0
            grad[:, i + L :, i] = 0
        return grad


class WaveEncoder(nn.Module):
    """CPC_audio strided convolution encoder on raw waveform.

    Parameters
    ----------
    dim : output channels (256 in CPC_audio).
    sample_rate : input rate; sets :attr:`frame_shift` (160 samples per frame).
    """

    KERNELS = (10, 8, 4, 4, 4)
    STRIDES = (5, 4, 2, 2, 2)
    PADDINGS = (3, 2, 1, 1, 1)

    def __init__(self, dim: int = 256, *, sample_rate: int = 16000):
        super().__init__()
        self.dim = dim
        self.hop = 1
        for s in self.STRIDES:
            self.hop *= s
        self.frame_shift = self.hop / sample_rate
        # centre of frame 0 in samples, through the stack: o -> o * stride - pad + (kernel - 1) / 2
        centre = 0.0
        for k, s, p in reversed(list(zip(self.KERNELS, self.STRIDES, self.PADDINGS))):
            centre = centre * s - p + (k - 1) / 2
        self.frame_offset = (centre + 0.5) / sample_rate  # + half a sample: time of the sample's middle
        self.convs = _ConvStack(1, dim, self.KERNELS, self.STRIDES, self.PADDINGS)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, S) samples -> (B, S // 160, dim) codes."""
        if wave.dim() != 2:
            raise ValueError(f"wave must be (batch, samples), got shape {tuple(wave.shape)}")
        # the (B, T, C) layout throughout: each conv is one matrix product
        # (strided_conv_btc), each ChannelNorm a layer norm over the last axis
        x = wave.unsqueeze(-1)
        layers = list(self.convs.net)
        for conv, norm in zip(layers[0::3], layers[1::3]):
            x = F.layer_norm(strided_conv_btc(x, conv), (norm.channels,), norm.weight, norm.bias, norm.eps)
            x = F.relu(x, inplace=True)  # layer_norm's backward needs its input, not its output
        return x


class FeatureEncoder(nn.Module):
    """Convolutions (kernel 3, stride 1) over log-fbank frames.

    With ``stride`` 2 the first convolution has kernel 4, stride 2 and padding 1: output
    frame ``j`` is centred between input frames ``2j`` and ``2j + 1`` and the encoder
    emits one frame per two input frames (20 ms codes from 10 ms features).

    Parameters
    ----------
    input_dim : feature dimension (e.g. 40 or 80 log-mel bins).
    dim : output channels.
    num_layers : conv blocks.
    frame_shift : frame shift of the input features, in seconds.
    frame_offset : centre time of the first input frame, in seconds (0.0125 for Kaldi
        features with 25 ms windows and ``snip_edges``).
    stride : 1 or 2, input frames per output frame.
    """

    def __init__(
        self,
        input_dim: int,
        dim: int = 256,
        *,
        num_layers: int = 3,
        frame_shift: float = 0.01,
        frame_offset: float = 0.0125,
        stride: int = 1,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.dim = dim
        self.stride = stride
        self.frame_shift = frame_shift * stride
        # kernel-3 'same' convolutions keep frame centres; the kernel-4 stride-2 one moves
        # them half an input frame later
        self.frame_offset = frame_offset + (stride - 1) * frame_shift / 2
        # log energies carry corpus-dependent offsets: per-utterance mean and variance
        # normalisation of each bin over time (CMVN), which keeps the frame energy contour
        self.input_norm = nn.InstanceNorm1d(input_dim, eps=1e-5)
        kernels = [3] * num_layers
        strides = [1] * num_layers
        if stride == 2:
            kernels[0], strides[0] = 4, 2
        self.convs = _ConvStack(input_dim, dim, kernels, strides, [1] * num_layers)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, T, input_dim) features -> (B, T, dim) codes."""
        if feats.dim() != 3:
            raise ValueError(f"feats must be (batch, frames, dim), got shape {tuple(feats.shape)}")
        return self.convs(self.input_norm(feats.transpose(1, 2))).transpose(1, 2)
