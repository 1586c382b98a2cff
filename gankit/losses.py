"""Adversarial losses as pure functions of discriminator logits: no modules, no state.

Conventions: `real` / `fake` are D's raw outputs (logits, or critic scores for Wasserstein), shape (N,).
Every function returns a scalar to *minimise*: `d_*` for the discriminator, `g_*` for the generator.
For the BCE games D(x) = sigmoid(logit), and log D = -softplus(-logit), log(1 - D) = -softplus(logit).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch.nn.functional as F
from torch import Tensor


def d_bce(real: Tensor, fake: Tensor) -> Tensor:
    """D of the original game maximises log D(x) + log(1 - D(G(z))); we minimise its negative."""
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_minimax(fake: Tensor) -> Tensor:
    """Saturating G (Goodfellow et al. 2014): minimise log(1 - D(G(z))); its gradient vanishes while D wins."""
    return -F.softplus(fake).mean()


def g_non_saturating(fake: Tensor) -> Tensor:
    """Non-saturating G: maximise log D(G(z)), i.e. train G against the "real" label, so early gradients stay large."""
    return F.softplus(-fake).mean()


def d_wasserstein(real: Tensor, fake: Tensor) -> Tensor:
    """WGAN critic (Arjovsky et al. 2017): maximise E[f(x)] - E[f(G(z))]; needs a Lipschitz constraint (GP, SN)."""
    return fake.mean() - real.mean()


def g_wasserstein(fake: Tensor) -> Tensor:
    """WGAN generator: maximise the critic's score of fakes."""
    return -fake.mean()


def d_hinge(real: Tensor, fake: Tensor) -> Tensor:
    """Hinge D (Lim & Ye 2017, used by SAGAN/BigGAN): push real scores above +1 and fake scores below -1."""
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def d_least_squares(real: Tensor, fake: Tensor) -> Tensor:
    """LSGAN D (Mao et al. 2017) with targets b=1 for real and a=0 for fake: 1/2 E[(D(x)-1)²] + 1/2 E[D(G(z))²]."""
    return 0.5 * (real - 1.0).pow(2).mean() + 0.5 * fake.pow(2).mean()


def g_least_squares(fake: Tensor) -> Tensor:
    """LSGAN G with target c=1: 1/2 E[(D(G(z)) - 1)²]."""
    return 0.5 * (fake - 1.0).pow(2).mean()


class Game(NamedTuple):
    """A D loss, a G loss, and whether D's output is a probability logit (so sigmoid(logit) = D(x) is meaningful)."""

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    probabilistic: bool


GAMES: dict[str, Game] = {
    "minimax": Game(d_bce, g_minimax, True),
    "non_saturating": Game(d_bce, g_non_saturating, True),
    "wasserstein": Game(d_wasserstein, g_wasserstein, False),
    "hinge": Game(d_hinge, g_wasserstein, False),  # G side of hinge is the Wasserstein G loss
    "least_squares": Game(d_least_squares, g_least_squares, False),
}


def game(name: str) -> Game:
    """The (D loss, G loss) pair that `loss.name` selects."""
    return GAMES[name]
