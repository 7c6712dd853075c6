"""Adversarial objectives: gradient reversal with a scale, the speaker adversary."""

import pytest
import torch

from speechrep.objectives.adversarial import grad_reverse, speaker_adversary_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_grad_reverse_flips_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    (grad_reverse(x, 0.5) * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, -0.5 * torch.arange(4.0).expand(3, 4))
    assert torch.equal(grad_reverse(x, 1.0), x)


@pytest.mark.parametrize("per_frame", [False, True])
def test_speaker_adversary_is_the_classifiers_cross_entropy_with_the_codes_gradient_reversed(per_frame):
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 3)
    # one decision per utterance (pooled over frames) or one per frame
    classifier = linear if per_frame else (lambda codes: linear(codes.mean(1)))
    codes = torch.randn(2, 5, 4, requires_grad=True)
    speakers = torch.tensor([2, 0])
    ce, acc = speaker_adversary_loss(classifier, codes, speakers, scale=0.5)
    logits = classifier(codes)
    labels = speakers[:, None].expand(2, 5) if per_frame else speakers
    plain = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1))
    torch.testing.assert_close(ce, plain)
    assert acc == (logits.argmax(-1) == labels).float().mean() and not acc.requires_grad
    got = torch.autograd.grad(ce, [codes, *linear.parameters()])
    want = torch.autograd.grad(plain, [codes, *linear.parameters()])
    torch.testing.assert_close(got[0], -0.5 * want[0])  # the codes' maker is trained against the classifier
    for g, w in zip(got[1:], want[1:]):
        torch.testing.assert_close(g, w)  # the classifier learns the speakers
