"""The torch log-mel front end of the models (training-time twin of
:func:`speechrep.features.logmel.log_mel`, with the same filterbank)."""

from __future__ import annotations

import numpy as np
import torch

from speechrep.features.logmel import VC_MEL, MelSpec, mel_filterbank

__all__ = ["LogMel", "warp_frequency"]


class LogMel(torch.nn.Module):
    """Torch version of :func:`speechrep.features.logmel.log_mel` for batches (no trainable
    parameters).

    ``forward(wave)`` maps ``(batch, num_samples)`` to ``(batch, num_frames, n_mels)``.
    Use :meth:`frame_lengths` to turn sample lengths into frame lengths.

    ``forward(wave, warp=alpha)`` with factors ``alpha`` ``(batch,)`` first stretches each
    utterance's magnitude spectrum along frequency, ``|S'(f)| = |S(f / alpha)|`` (linear
    interpolation between STFT bins; past the Nyquist frequency the last bin is repeated):
    formants and harmonics move up by ``alpha`` > 1 and down by ``alpha`` < 1, as with a
    shorter or longer vocal tract (vocal-tract length perturbation).
    """

    def __init__(self, spec: MelSpec = VC_MEL):
        super().__init__()
        self.spec = spec
        self.register_buffer("fb", torch.from_numpy(np.array(mel_filterbank(spec))), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.win_length, periodic=True), persistent=False)

    def forward(self, wave: torch.Tensor, warp: torch.Tensor | None = None) -> torch.Tensor:  # noqa: D102  (on the class)
        s = self.spec
        stft = torch.stft(
            wave.float(),
            n_fft=s.n_fft,
            hop_length=s.hop_length,
            win_length=s.win_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )  # (B, F, T)
        mag = stft.abs().transpose(1, 2)  # (B, T, F)
        if warp is not None:
            mag = warp_frequency(mag, warp)
        return torch.log(torch.clamp(mag @ self.fb.T, min=s.log_floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per utterance for sample lengths ``(batch,)`` int64."""
        return 1 + lengths // self.spec.hop_length


def warp_frequency(mag: torch.Tensor, warp: torch.Tensor) -> torch.Tensor:
    """Magnitude spectra ``(B, T, F)`` stretched along frequency by ``warp`` ``(B,)``:
    bin ``g`` of the output reads bin ``g / warp`` of the input (linearly interpolated,
    the last bin repeated past the end)."""
    n = mag.shape[-1]
    pos = (torch.arange(n, device=mag.device, dtype=mag.dtype)[None, :] / warp.to(mag.dtype)[:, None]).clamp(max=n - 1)
    lo = pos.floor().long()  # (B, F)
    hi = (lo + 1).clamp(max=n - 1)
    frac = (pos - lo.to(mag.dtype))[:, None, :]  # (B, 1, F)
    index = lambda i: i[:, None, :].expand(-1, mag.shape[1], -1)  # noqa: E731
    return torch.gather(mag, 2, index(lo)) * (1 - frac) + torch.gather(mag, 2, index(hi)) * frac
