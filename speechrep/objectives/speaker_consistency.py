"""Speaker consistency: a perceptual loss in the features of a frozen speaker model (the judge).

The judge is a :class:`~speechrep.models.speaker.SpeakerVerifier` trained apart, handed in
by the caller; only its ``encoder.layer_statistics`` and ``mean_normalised`` are used. The
loss compares the pooled statistics (mean and spread over frames) of each of its frame
layers and its embeddings, where a plain L1 on log-mels smooths the detail of a voice away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["speaker_consistency", "judge_features", "feature_distance"]


def speaker_consistency(judge: nn.Module, fake: torch.Tensor, real: torch.Tensor,
                        lengths: torch.Tensor | None = None, *, layers: bool = True) -> torch.Tensor:
    """Speaker-consistency loss of log-mels ``fake`` against ``real`` ``(B, T, n_mels)`` in the
    eyes of a speaker model ``judge`` (a :class:`~speechrep.models.speaker.SpeakerVerifier`):
    the mean absolute difference of the pooled statistics of each of its frame layers,
    averaged over layers (unless ``layers`` is False), plus the mean of 1 - cosine of the
    embeddings. 0 when ``fake`` equals ``real``; gradients reach ``fake`` only."""
    fake_stats, fake_emb = judge_features(judge, fake, lengths)
    with torch.no_grad():
        real_stats, real_emb = judge_features(judge, real, lengths)
    return feature_distance(fake_stats, fake_emb, real_stats, real_emb, layers=layers)


def judge_features(judge: nn.Module, mel: torch.Tensor, lengths: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A speaker model's pooled layer statistics and embedding of log-mels ``(B, T, n_mels)``."""
    return judge.encoder.layer_statistics(judge.mean_normalised(mel, lengths), lengths)


def feature_distance(stats: list[torch.Tensor], emb: torch.Tensor, ref_stats: list[torch.Tensor],
                     ref_emb: torch.Tensor, *, layers: bool = True) -> torch.Tensor:
    """Mean absolute difference of pooled layer statistics (averaged over layers; left out
    when ``layers`` is False) plus the mean of 1 - cosine of the embeddings."""
    distance = (1 - F.cosine_similarity(emb, ref_emb, dim=-1)).mean()
    if layers:
        distance = distance + torch.stack([(f - r).abs().mean() for f, r in zip(stats, ref_stats)]).mean()
    return distance
