"""Critics: score how well a code goes with an input.

Every critic has the same method, so an objective never needs to know which one it
holds: ``scores(codes (M, G), inputs (N, F)) -> (M, N)``, all pairs; an estimator
(:func:`speechrep.objectives.mi.estimator_loss`) reads the positive pairs, and the
negatives if it uses them.

:class:`SeparableCritic` embeds both sides and takes a dot product (Deep InfoMax);
:class:`ReconstructionCritic` decodes the code and scores the negative reconstruction
error, which turns Deep InfoMax into an autoencoder.

CPC scores predictions against candidate frames with one matrix product
(:func:`speechrep.objectives.infonce.infonce_logits`); its two critics,
:class:`PredictionDotCritic` and :class:`PredictionDistanceCritic`, are therefore the
two sides of a dot product: ``pair(p, z) -> (a, b)`` with ``<a, b> / dim(a)`` the score.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from speechrep.objectives.reconstruction import pairwise_reconstruction_scores

__all__ = ["mlp", "SeparableCritic", "ReconstructionCritic", "PredictionDotCritic", "PredictionDistanceCritic"]


def mlp(input_dim: int, hidden: int, output_dim: int, *, layers: int = 2) -> nn.Sequential:
    """Per-frame MLP: ``layers`` linear maps with ReLUs between them."""
    mods: list[nn.Module] = []
    dim = input_dim
    for _ in range(layers - 1):
        mods += [nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    mods.append(nn.Linear(dim, output_dim))
    return nn.Sequential(*mods)


class SeparableCritic(nn.Module):
    """``s(c, x) = <phi(c), psi(x)> / sqrt(P)`` with MLP embeddings phi and psi.

    Parameters
    ----------
    code_dim, input_dim : G and F.
    proj_dim : P, the embedding size.
    """

    def __init__(self, code_dim: int, input_dim: int, *, proj_dim: int = 256):
        super().__init__()
        self.phi = mlp(code_dim, proj_dim, proj_dim)
        self.psi = mlp(input_dim, proj_dim, proj_dim)
        self.scale = proj_dim**-0.5

    def scores(self, codes: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(M, G), (N, F) -> (M, N)."""
        return self.phi(codes) @ self.psi(inputs).T * self.scale


class ReconstructionCritic(nn.Module):
    """``s(c, x) = -||decoder(c) - x||^2 / F`` with an MLP decoder.

    Parameters
    ----------
    code_dim, input_dim : G and F (F: the frame being reconstructed).
    hidden : decoder width.
    layers : decoder depth.
    """

    def __init__(self, code_dim: int, input_dim: int, *, hidden: int = 256, layers: int = 2):
        super().__init__()
        self.decoder = mlp(code_dim, hidden, input_dim, layers=layers)

    def scores(self, codes: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(M, G), (N, F) -> (M, N)."""
        return pairwise_reconstruction_scores(self.decoder(codes), inputs)


class PredictionDotCritic(nn.Module):
    """CPC's separable critic ``s(p, z) = <p, z> / D``: the predictor is its code embedding."""

    def pair(self, pred: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., D), (..., D) -> the same tensors."""
        return pred, z


class PredictionDistanceCritic(nn.Module):
    """CPC's reconstruction critic ``s(p, z) = -||p - z||^2 / D``: the predictor decodes.

    Written as a dot product of augmented vectors, ``<[2p, -|p|^2, -1], [z, 1, |z|^2]>``,
    so that the candidate scoring of CPC (one matrix product, then a gather) serves it too.
    """

    def pair(self, pred: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., D), (..., D) -> (..., D + 2) each; ``<a, b> / (D + 2) = -||p - z||^2 / D``."""
        D = pred.shape[-1]
        pred, z = pred.float(), z.float()
        ones_p, ones_z = pred.new_ones(*pred.shape[:-1], 1), z.new_ones(*z.shape[:-1], 1)
        a = torch.cat([2 * pred, -pred.pow(2).sum(-1, keepdim=True), -ones_p], dim=-1) * ((D + 2) / D)
        b = torch.cat([z, ones_z, z.pow(2).sum(-1, keepdim=True)], dim=-1)
        return a, b
