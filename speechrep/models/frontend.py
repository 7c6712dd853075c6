"""The torch log-mel front end of the models (training-time twin of
:func:`speechrep.features.logmel.log_mel`, with the same filterbank)."""

from __future__ import annotations

import numpy as np
import torch

from speechrep.features.logmel import VC_MEL, MelSpec, mel_filterbank

__all__ = ["LogMel"]


class LogMel(torch.nn.Module):
    """Torch version of :func:`speechrep.features.logmel.log_mel` for batches (no trainable
    parameters).

    ``forward(wave)`` maps ``(batch, num_samples)`` to ``(batch, num_frames, n_mels)``.
    Use :meth:`frame_lengths` to turn sample lengths into frame lengths.
    """

    def __init__(self, spec: MelSpec = VC_MEL):
        super().__init__()
        self.spec = spec
        self.register_buffer("fb", torch.from_numpy(np.array(mel_filterbank(spec))), persistent=False)
        self.register_buffer("window", torch.hann_window(spec.win_length, periodic=True), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # noqa: D102  (on the class)
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
        return torch.log(torch.clamp(mag @ self.fb.T, min=s.log_floor))

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Valid frames per utterance for sample lengths ``(batch,)`` int64."""
        return 1 + lengths // self.spec.hop_length
