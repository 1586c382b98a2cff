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
