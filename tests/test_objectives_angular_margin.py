"""Cosine-softmax loss with and without the additive angular margin."""

import math

import torch

from speechrep.objectives.angular_margin import cosine_softmax_loss


def test_plain_cosine_softmax_is_the_cross_entropy_of_the_scaled_cosines():
    cosine = torch.tensor([[0.9, 0.1, -0.2], [0.3, 0.5, 0.0]])
    labels = torch.tensor([0, 1])
    want = torch.nn.functional.cross_entropy(30.0 * cosine, labels)
    torch.testing.assert_close(cosine_softmax_loss(cosine, labels, scale=30.0), want)


def test_angular_margin_widens_the_true_class_angle_only():
    cosine = torch.tensor([[0.9, 0.1, -0.2], [0.3, 0.5, 0.0]])
    labels = torch.tensor([0, 1])
    margin = 0.2
    logits = cosine.clone()
    for i, k in enumerate(labels.tolist()):
        logits[i, k] = math.cos(math.acos(cosine[i, k].item()) + margin)
    want = torch.nn.functional.cross_entropy(30.0 * logits, labels)
    got = cosine_softmax_loss(cosine, labels, scale=30.0, margin=margin)
    torch.testing.assert_close(got, want)
    assert got > cosine_softmax_loss(cosine, labels, scale=30.0)  # the margin asks for more
