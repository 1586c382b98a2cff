"""The PacGAN mode metric on hand-made samples."""

import math

import torch

from gankit.data import ring_centers
from gankit.metrics.modes2d import modes2d


def test_perfect_samples_cover_all_modes_uniformly():
    centers = ring_centers(8)
    x = centers.repeat(10, 1)
    r = modes2d(x, centers, std=0.01)
    assert (r.modes, r.hq_fraction, r.reverse_kl) == (8, 1.0, 0.0)


def test_collapse_to_one_mode_and_low_quality():
    centers = ring_centers(8)
    x = torch.cat([centers[:1].repeat(3, 1), torch.zeros(1, 2)])  # 3 samples on mode 0, one far from all modes
    r = modes2d(x, centers, std=0.01)
    assert r.modes == 1 and r.hq_fraction == 0.75
    assert math.isclose(r.reverse_kl, math.log(8))  # KL(δ ‖ uniform over 8) = log 8


def test_threshold_is_three_std():
    centers = torch.zeros(1, 2)
    inside, outside = torch.tensor([[0.0299, 0.0]]), torch.tensor([[0.0301, 0.0]])
    assert modes2d(inside, centers, 0.01).hq_fraction == 1.0
    assert modes2d(outside, centers, 0.01).hq_fraction == 0.0
    assert math.isinf(modes2d(outside, centers, 0.01).reverse_kl)


def test_reverse_kl_of_two_modes_split_unevenly():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.0, 0.0]] * 3 + [[10.0, 0.0]])
    expected = 0.75 * math.log(0.75 * 2) + 0.25 * math.log(0.25 * 2)
    assert math.isclose(modes2d(x, centers, 0.1).reverse_kl, expected, rel_tol=1e-12)
