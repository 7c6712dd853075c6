"""The vocoder interface (trained ones are loaded by :func:`speechrep.train.pretrained.load_vocoder`)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from speechrep.errors import DataError
from speechrep.features.logmel import VC_MEL, MelSpec

__all__ = ["Vocoder", "check_mel"]


class Vocoder(ABC):
    """Turns a log-mel spectrogram (:mod:`speechrep.features.logmel`) into a waveform.

    Attributes
    ----------
    spec : the log-mel definition the vocoder inverts; ``spec.sample_rate`` is the output rate.
    """

    spec: MelSpec = VC_MEL

    @property
    def sample_rate(self) -> int:
        """Sample rate of the waves produced, in Hz."""
        return self.spec.sample_rate

    @abstractmethod
    def mel_to_wave(self, mel: np.ndarray) -> np.ndarray:
        """Synthesise audio from a log-mel spectrogram.

        Parameters
        ----------
        mel : ``(num_frames, n_mels)`` float log-mel.

        Returns
        -------
        np.ndarray
            ``((num_frames - 1) * hop_length,)`` float32 in [-1, 1].
        """


def check_mel(mel: np.ndarray, spec: MelSpec, *, name: str = "mel") -> np.ndarray:
    """Validate a log-mel input of a vocoder; returns it as float32 ``(num_frames, n_mels)``."""
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim != 2 or mel.shape[1] != spec.n_mels:
        raise DataError(f"expected a (frames, {spec.n_mels}) log-mel, got shape {mel.shape}", field=name)
    if mel.shape[0] < 2:
        raise DataError(f"needs at least 2 frames, got {mel.shape[0]}", field=name)
    if not np.all(np.isfinite(mel)):
        raise DataError("log-mel contains NaN or infinite values", field=name)
    return mel
