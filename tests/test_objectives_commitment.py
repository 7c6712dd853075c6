"""The vector quantiser's commitment and codebook terms."""

import torch

from speechrep.objectives.commitment import commitment_loss


def test_commitment_trains_the_encoder_and_the_codebook_term_the_codes():
    z = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]], [[5.0, 5.0]]], requires_grad=True)  # (N=3, G=1, d=2)
    q = torch.tensor([[[0.0, 2.0]], [[1.0, 1.0]], [[0.0, 0.0]]], requires_grad=True)
    valid = torch.tensor([True, True, False])  # the last row is padding
    sq = (1.0 + 0.0 + 1.0 + 1.0) / (2 * 2)  # mean squared error over the valid rows' values
    only_commit = commitment_loss(z, q, valid, beta=0.25, codebook_loss=False)
    assert only_commit.item() == 0.25 * sq
    only_commit.backward()
    assert q.grad is None and z.grad[2].abs().sum() == 0 and z.grad[:2].abs().sum() > 0
    z.grad = None
    both = commitment_loss(z, q, valid, beta=0.25, codebook_loss=True)
    assert both.item() == 1.25 * sq
    both.backward()
    torch.testing.assert_close(q.grad, -z.grad / 0.25)  # each term moves its side towards the other
