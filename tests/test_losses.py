"""Every loss pinned against values computed by hand."""

import math

import pytest
import torch

from gankit import losses

real = torch.tensor([2.0, -1.0])
fake = torch.tensor([0.5, -3.0])


def _sp(x: float) -> float:
    return math.log1p(math.exp(x))


def test_bce_discriminator_matches_hand_values():
    # -[log σ(r) + log(1 - σ(f))] averaged: softplus(-r) + softplus(f)
    expected = (_sp(-2.0) + _sp(1.0)) / 2 + (_sp(0.5) + _sp(-3.0)) / 2
    assert losses.d_bce(real, fake).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_optimum_value_is_minus_log4():
    # With D(x) = 1/2 everywhere (logit 0) the game's value log D + log(1 - D) is -log 4; D minimises its negative.
    zeros = torch.zeros(5)
    assert -losses.d_bce(zeros, zeros).item() == pytest.approx(-math.log(4), abs=1e-7)
    assert losses.g_minimax(zeros).item() == pytest.approx(math.log(0.5), abs=1e-7)


def test_minimax_and_non_saturating_generators():
    # minimax G minimises log(1 - σ(f)); non-saturating G minimises -log σ(f)
    assert losses.g_minimax(fake).item() == pytest.approx(-(_sp(0.5) + _sp(-3.0)) / 2, rel=1e-6)
    assert losses.g_non_saturating(fake).item() == pytest.approx((_sp(-0.5) + _sp(3.0)) / 2, rel=1e-6)


def test_saturating_gradient_vanishes_when_d_wins_but_non_saturating_does_not():
    f = torch.tensor([-8.0], requires_grad=True)  # D is confident the fake is fake
    (g_sat,) = torch.autograd.grad(losses.g_minimax(f), f)
    (g_ns,) = torch.autograd.grad(losses.g_non_saturating(f), f)
    assert abs(g_sat.item()) < 1e-3 and abs(g_ns.item()) > 0.99


def test_wasserstein():
    assert losses.d_wasserstein(real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert losses.g_wasserstein(fake).item() == pytest.approx(1.25)


def test_hinge():
    # relu(1 - r): [0, 2] -> 1.0 ; relu(1 + f): [1.5, 0] -> 0.75
    assert losses.d_hinge(real, fake).item() == pytest.approx(1.75)
    assert losses.game("hinge").g(fake).item() == pytest.approx(1.25)


def test_least_squares():
    # 0.5 mean((r-1)^2) = 0.5 * (1 + 4)/2 = 1.25 ; 0.5 mean(f^2) = 0.5 * (0.25 + 9)/2 = 2.3125
    assert losses.d_least_squares(real, fake).item() == pytest.approx(1.25 + 2.3125)
    assert losses.g_least_squares(fake).item() == pytest.approx(0.5 * (0.25 + 16) / 2)


def test_every_configurable_loss_has_a_game():
    from gankit.config import LossConfig

    names = LossConfig.model_fields["name"].annotation.__args__
    assert set(names) == set(losses.GAMES)


def test_label_smoothing_changes_only_the_real_term():
    s = 0.1
    expected = ((1 - s) * _sp(-2.0) + s * _sp(2.0) + (1 - s) * _sp(1.0) + s * _sp(-1.0)) / 2 + (_sp(0.5) + _sp(-3.0)) / 2
    assert losses.d_bce(real, fake, smoothing=s).item() == pytest.approx(expected, rel=1e-6)


def test_gradient_penalty_uses_one_alpha_per_example_and_per_example_norms():
    seen = {}

    def critic(x):  # f(x) = Σ x² per example, so ∇f = 2x and ‖∇f‖ = 2‖x‖ for each example separately
        seen["x"] = x
        return x.pow(2).flatten(1).sum(1)

    real_x, fake_x = torch.ones(6, 3, 4, 4), torch.zeros(6, 3, 4, 4)
    penalty = losses.gradient_penalty(critic, real_x, fake_x)
    mixed = seen["x"].detach()
    alphas = mixed.flatten(1)
    assert torch.allclose(alphas, alphas[:, :1].expand_as(alphas))  # one α per example, not per pixel
    assert alphas[:, 0].unique().numel() == 6  # and a different one for each example
    norms = 2 * mixed.flatten(1).norm(dim=1)
    assert penalty.item() == pytest.approx(((norms - 1) ** 2).mean().item(), rel=1e-5)


def test_gradient_penalty_of_a_1_lipschitz_linear_critic_is_zero():
    w = torch.tensor([0.6, 0.8])  # ‖w‖ = 1
    penalty = losses.gradient_penalty(lambda x: x @ w, torch.randn(10, 2), torch.randn(10, 2))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


def test_r1_penalty_of_a_linear_discriminator_is_the_squared_weight_norm():
    w = torch.tensor([1.0, -2.0, 2.0])
    x = torch.randn(5, 3, requires_grad=True)
    assert losses.r1_penalty(x @ w, x).item() == pytest.approx(9.0)


def test_feature_matching_is_squared_distance_of_means():
    r = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    f = torch.tensor([[0.0, 0.0], [2.0, 2.0]])  # mean (1, 1)
    assert losses.feature_matching(r, f).item() == pytest.approx(1.0 + 4.0)


def test_area_excess_counts_only_what_a_mask_covers_beyond_the_limit():
    mask = torch.zeros(2, 1, 2, 2)
    mask[0, 0, :, :] = torch.tensor([[1.0, 1.0], [1.0, 0.0]])  # covers 3/4: 1/4 beyond one half
    mask[1, 0, 0, 0] = 1.0  # covers 1/4: within the limit, no penalty
    assert losses.area_excess(mask, 0.5).item() == pytest.approx(0.25 / 2)
    assert losses.area_excess(mask, 0.8).item() == 0.0


def test_gaussian_kl_matches_the_closed_form_by_hand():
    # KL(N(μ, σ²) ‖ N(0, 1)) = ½(μ² + σ² − 1 − log σ²) per dimension, summed, averaged over the rows
    mu = torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    log_var = torch.tensor([[0.0, math.log(4.0)], [0.0, 0.0]])
    row0 = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 4 - 1 - math.log(4.0))
    row1 = 0.0 + 0.5 * (4 + 1 - 1 - 0)
    assert losses.gaussian_kl(mu, log_var).item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    assert losses.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0.0  # the prior itself


def test_policy_gradient_is_minus_the_reward_weighted_log_likelihood_over_kept_positions():
    log_probs = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.25, -4.0]], requires_grad=True)
    rewards = torch.tensor([[1.0, 0.5, 9.0], [2.0, 0.0, 9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]])  # the last positions are padding
    loss = losses.policy_gradient(log_probs, rewards, mask)
    assert loss.item() == pytest.approx(-(-1.0 - 1.0 - 1.0 + 0.0) / 4, rel=1e-6)
    loss.backward()  # descending it raises the log-probability of rewarded tokens; the rewards get no gradient
    assert torch.equal(log_probs.grad, -rewards.detach() * mask / 4) and rewards.grad is None
