"""A compact HiFi-GAN-style neural vocoder trained with a multi-resolution STFT loss.

Generator (after Kong, Kim and Bae, 2020): a 1-D convolution lifts the log-mel frames to
``channels``, transposed convolutions upsample by ``upsample_rates`` (whose product is the
mel hop) while halving the channels, and after each upsampling a multi-receptive-field
fusion block (the mean of residual stacks of dilated convolutions) refines the signal; a
final convolution and ``tanh`` give the wave. It is trained with the multi-resolution STFT
loss of Parallel WaveGAN (spectral convergence + log-magnitude L1 at several STFT sizes)
plus an L1 loss on the log-mel of the output, which gives intelligible speech on a CPU
budget. (HiFi-GAN's adversarial fine-tuning was tried and deleted: it made neither generator's
copy synthesis better at a CPU budget, docs/results/negative_results.md.)

``generator: istft`` replaces the generator by
:class:`~speechrep.vocoder.istft.IstftGenerator` (Vocos-style: ConvNeXt blocks at the frame
rate and an inverse-STFT head), trained with the same losses.

Registered as model ``vocoder``; :class:`NeuralVocoder` loads a trained one for inference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechrep.errors import ConfigError, DataError
from speechrep.models.frozen import FrozenModels, FrozenSpec
from speechrep.models.registry import register_model
from speechrep.vocoder.base import Vocoder, check_mel
from speechrep.vocoder.istft import IstftGenerator
from speechrep.features.logmel import VC_MEL, MelSpec
from speechrep.models.frontend import LogMel

__all__ = [
    "NeuralVocoderConfig",
    "HifiGenerator",
    "NeuralVocoderModel",
    "NeuralVocoder",
    "stft_magnitude_torch",
    "multi_resolution_stft_loss",
    "build_vocoder",
    "GENERATORS",
]

GENERATORS = ("hifigan", "istft")


@dataclass
class NeuralVocoderConfig:
    """Neural vocoder hyper-parameters (``model.args`` of a ``vocoder`` experiment).

    Attributes
    ----------
    generator : ``hifigan`` (:class:`HifiGenerator`) or ``istft``
        (:class:`~speechrep.vocoder.istft.IstftGenerator`).
    channels : width after the input convolution; ``hifigan`` halves it at every
        upsampling, ``istft`` keeps it through its ConvNeXt blocks.
    upsample_rates : ``hifigan``'s upsampling factors; their product must equal the mel hop (160).
    layers, intermediate : ``istft``'s number of ConvNeXt blocks and their MLP width
        (0: three times ``channels``).
    n_fft : ``istft``'s STFT size (and window length), at the mel hop.
    resblock_kernel_sizes, resblock_dilations : one residual stack per kernel size, each
        with one dilated convolution per dilation (the multi-receptive-field fusion).
    stft_resolutions : ``[n_fft, hop, win]`` triples of the multi-resolution STFT loss.
    mel_loss_weight : weight of the L1 loss between input and output log-mels.
    gta_model : experiment directory of a trained voice-conversion model (``vc_*``, with a
        speaker encoder). The generator then reads that model's reconstruction of each crop
        (:meth:`~speechrep.models.vc.VoiceConversionModel.reconstruct`: its own content,
        speaker code and pitch) instead of the crop's log-mel, and learns the real wave from
        it (ground-truth-aligned training, usually a fine-tuning with ``train.init_from``),
        so that it meets in training the smoothed spectra the model gives it in conversion.
        The losses still compare with the real wave and its log-mel; the VC model is frozen
        and not saved with the vocoder.
    gta_fraction : share of the crops of a batch that get the reconstruction (the first
        ``round(gta_fraction * B)``); the others keep their real log-mel.
    """

    generator: str = "hifigan"
    channels: int = 128
    layers: int = 8
    intermediate: int = 0
    n_fft: int = 640
    upsample_rates: list[int] = field(default_factory=lambda: [5, 4, 4, 2])
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 7])
    resblock_dilations: list[int] = field(default_factory=lambda: [1, 3, 9])
    stft_resolutions: list[list[int]] = field(default_factory=lambda: [[512, 50, 240], [1024, 120, 600], [2048, 240, 1200]])
    mel_loss_weight: float = 1.0
    gta_model: str | None = None
    gta_fraction: float = 1.0

    #: the deleted adversarial fine-tuning's options, as every checkpoint saved before holds
    #: them (:func:`speechrep.models.registry.drop_retired`): only ``adv_weight: 0`` (no
    #: discriminator) loads; the discriminator's shape options did nothing without it
    retired_options: ClassVar[dict[str, Any]] = {"adv_weight": 0.0, "fm_weight": 0.0, "disc_periods": None,
                                                 "disc_scales": None, "disc_channels": None}


class _ResStack(nn.Module):
    """Residual dilated convolutions of one kernel size; ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2) for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, 0.1))
        return x


class HifiGenerator(nn.Module):
    """Log-mel ``(B, T, n_mels)`` to wave ``(B, T * prod(upsample_rates))`` in [-1, 1]."""

    def __init__(self, cfg: NeuralVocoderConfig, *, n_mels: int):
        super().__init__()
        self.conv_pre = nn.Conv1d(n_mels, cfg.channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.mrfs = nn.ModuleList()
        ch = cfg.channels
        for r in cfg.upsample_rates:
            # kernel 2r, padding ceil(r/2), output_padding r%2: exactly r times longer
            self.ups.append(nn.ConvTranspose1d(ch, ch // 2, 2 * r, stride=r, padding=(r + 1) // 2, output_padding=r % 2))
            ch //= 2
            self.mrfs.append(nn.ModuleList(_ResStack(ch, k, cfg.resblock_dilations) for k in cfg.resblock_kernel_sizes))
        self.conv_post = nn.Conv1d(ch, 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel.transpose(1, 2))  # (B, C, T)
        for up, mrf in zip(self.ups, self.mrfs):
            x = up(F.leaky_relu(x, 0.1))  # (B, C/2, T*r)
            x = sum(stack(x) for stack in mrf) / len(mrf)
        return torch.tanh(self.conv_post(F.leaky_relu(x, 0.1))).squeeze(1)  # (B, samples)


def stft_magnitude_torch(wave: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    """Magnitude STFT ``(B, samples) -> (B, frames, n_fft // 2 + 1)``, floored for stable gradients."""
    window = torch.hann_window(win, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop_length=hop, win_length=win, window=window, return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-7)).transpose(1, 2)


def multi_resolution_stft_loss(
    pred: torch.Tensor, target: torch.Tensor, resolutions: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-resolution STFT loss (Yamamoto, Song and Kim, 2020).

    For each ``(n_fft, hop, win)``: spectral convergence ``||T - P||_F / ||T||_F`` and the
    mean absolute log-magnitude difference, both averaged over the resolutions.

    Parameters
    ----------
    pred, target : ``(batch, samples)`` waves.

    Returns
    -------
    (spectral_convergence, log_magnitude) : two 0-dim tensors; both 0 when ``pred == target``.
    """
    sc = pred.new_zeros(())
    mag = pred.new_zeros(())
    for n_fft, hop, win in resolutions:
        p = stft_magnitude_torch(pred, n_fft, hop, win)
        t = stft_magnitude_torch(target, n_fft, hop, win)
        sc = sc + torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp(min=1e-7)
        mag = mag + F.l1_loss(torch.log(p), torch.log(t))
    return sc / len(resolutions), mag / len(resolutions)


class NeuralVocoderModel(FrozenModels, nn.Module):
    """Trainable vocoder: generator + losses, following the speechrep model contract.

    ``forward(batch)`` takes ``batch["wave"]`` ``(B, samples)`` at 16 kHz, computes its VC
    log-mel, resynthesises it and returns ``loss``, ``loss/sc``, ``loss/logmag``, ``loss/mel``.
    """

    def __init__(self, cfg: NeuralVocoderConfig, spec: MelSpec = VC_MEL):
        super().__init__()
        if cfg.generator not in GENERATORS:
            raise ConfigError(f"unknown generator '{cfg.generator}' (choose {', '.join(GENERATORS)})",
                              field="model.args.generator")
        hop = int(np.prod(cfg.upsample_rates))
        if cfg.generator == "hifigan" and hop != spec.hop_length:
            raise ConfigError(
                f"product of upsample_rates {cfg.upsample_rates} is {hop}, must equal the mel hop {spec.hop_length}",
                field="model.args.upsample_rates",
            )
        if cfg.generator == "hifigan" and cfg.channels >> len(cfg.upsample_rates) < 1:
            raise ConfigError(
                f"channels {cfg.channels} too small to halve {len(cfg.upsample_rates)} times", field="model.args.channels"
            )
        if cfg.generator == "istft" and (cfg.channels < 1 or cfg.layers < 1 or cfg.intermediate < 0
                                         or cfg.n_fft < spec.hop_length):
            raise ConfigError(f"istft needs channels, layers >= 1, intermediate >= 0 and n_fft >= the hop "
                              f"{spec.hop_length}, got {cfg.channels}, {cfg.layers}, {cfg.intermediate}, {cfg.n_fft}",
                              field="model.args.n_fft")
        self.cfg = cfg
        self.spec = spec
        self.frame_shift = spec.frame_shift
        self.mel = LogMel(spec)
        if cfg.gta_model and not 0 < cfg.gta_fraction <= 1:
            raise ConfigError(f"gta_fraction must be in (0, 1], got {cfg.gta_fraction}", field="model.args.gta_fraction")
        self.generator = (HifiGenerator(cfg, n_mels=spec.n_mels) if cfg.generator == "hifigan" else
                          IstftGenerator(n_mels=spec.n_mels, dim=cfg.channels, intermediate=cfg.intermediate or 3 * cfg.channels,
                                         layers=cfg.layers, n_fft=cfg.n_fft, hop=spec.hop_length))

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:  # noqa: D102
        if "wave" not in batch:
            raise ConfigError("the vocoder trains on waves: set data.input to 'wave'", field="data.input")
        wave = batch["wave"]  # (B, L)
        with torch.no_grad():
            mel = self.mel(wave)  # (B, 1 + L // hop, n_mels)
            inp = mel
            n = round(self.cfg.gta_fraction * wave.shape[0]) if self.cfg.gta_model else 0
            if n > 0:  # the first n crops read the VC model's reconstruction
                lengths = batch.get("lengths")
                recon = self.frozen("gta", wave.device).reconstruct(wave[:n], None if lengths is None else lengths[:n])
                inp = torch.cat([recon.to(mel.dtype), mel[n:]])
        pred = self.generator(inp)[:, : wave.shape[1]]  # (B, L)
        sc, logmag = multi_resolution_stft_loss(pred, wave, self.cfg.stft_resolutions)
        mel_l1 = F.l1_loss(self.mel(pred), mel)
        loss = sc + logmag + self.cfg.mel_loss_weight * mel_l1
        return {"loss": loss, "loss/sc": sc.detach(), "loss/logmag": logmag.detach(), "loss/mel": mel_l1.detach()}

    def frozen_models(self) -> dict[str, FrozenSpec]:
        """The VC model of ``gta_model`` whose reconstructions the vocoder reads in training."""
        from speechrep.models.vc import VoiceConversionModel

        return {"gta": FrozenSpec(self.cfg.gta_model, "model.args.gta_model", VoiceConversionModel)} if self.cfg.gta_model else {}


@register_model("vocoder", config=NeuralVocoderConfig)
def build_vocoder(cfg: NeuralVocoderConfig, *, input_dim: int | None = None) -> NeuralVocoderModel:
    """Registry builder of the ``vocoder`` model (``input_dim`` unused: it reads waves)."""
    return NeuralVocoderModel(cfg)


class NeuralVocoder(Vocoder):
    """Inference wrapper of a trained :class:`NeuralVocoderModel`."""

    def __init__(self, model: NeuralVocoderModel, *, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.spec = model.spec
        self.device = device

    @torch.no_grad()
    def mel_to_wave(self, mel: np.ndarray) -> np.ndarray:  # noqa: D102  (see Vocoder)
        mel = check_mel(mel, self.spec)
        x = torch.from_numpy(mel).to(self.device)[None]  # (1, T, n_mels)
        wave = self.model.generator(x)[0, : (mel.shape[0] - 1) * self.spec.hop_length]
        if not torch.isfinite(wave).all():
            raise DataError("vocoder produced non-finite samples", field="mel")
        return wave.cpu().numpy().astype(np.float32)
