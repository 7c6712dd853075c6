"""Adversarial objectives: gradient reversal with a scale, least-squares GAN losses, the speaker adversary."""

import pytest
import torch

from speechrep.objectives.adversarial import grad_reverse, lsgan_losses, speaker_adversary_loss

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_grad_reverse_flips_and_scales_the_gradient():
    x = torch.randn(3, 4, requires_grad=True)
    (grad_reverse(x, 0.5) * torch.arange(4.0)).sum().backward()
    assert torch.equal(x.grad, -0.5 * torch.arange(4.0).expand(3, 4))
    assert torch.equal(grad_reverse(x, 1.0), x)


def test_lsgan_losses_train_each_player_only():
    torch.manual_seed(0)
    critic = torch.nn.Sequential(torch.nn.Conv1d(12, 4, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.Conv1d(4, 1, 3))
    real = torch.randn(2, 12, 16)
    fake = torch.randn(2, 12, 16, requires_grad=True)
    critic_loss, generator_loss, feature_loss = lsgan_losses(critic, real, fake)
    assert feature_loss.item() == 0.0  # a critic without features
    with torch.no_grad():
        torch.testing.assert_close(critic_loss, ((critic(real) - 1) ** 2).mean() + (critic(fake) ** 2).mean())
        torch.testing.assert_close(generator_loss, ((critic(fake) - 1) ** 2).mean())
    critic_loss.backward(retain_graph=True)
    assert fake.grad is None  # the critic's loss does not train the generator
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters())
    critic.zero_grad(set_to_none=True)
    generator_loss.backward()
    assert fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())  # nor the generator's the critic


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
