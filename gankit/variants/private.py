"""DP-SGD for a discriminator (Abadi et al. 2016): per-example gradients clipped to a norm C, Gaussian noise of
std σC added to their sum, σ chosen so the whole run spends a target (ε, δ) under Poisson sampling of rows, by
Opacus's Rényi-DP accountant. Only D reads real rows; G learns from D's released gradients' effect, so G's updates
are post-processing and cost no budget.

An "example" is a pair of one real and one fake pack of rows (D judges packs): each real row is in one pair, so
clipping a pair's gradient bounds what any one row can change. Needs `pip install gankit[privacy]` (Opacus).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor, nn

from ..config import Config
from ..errors import UserError


def _opacus():
    try:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.analysis import rdp
        from opacus.accountants.utils import get_noise_multiplier
    except ImportError:
        raise UserError("privacy.epsilon needs Opacus, which is not installed",
                        "pip install 'gankit[privacy]' (or pip install opacus)") from None
    return RDPAccountant, rdp, get_noise_multiplier


@lru_cache(maxsize=16)
def _one_step_rdp(rate: float, sigma: float):
    """The Rényi divergences of one subsampled Gaussian step at the accountant's orders (steps add them up)."""
    accountant, rdp, _ = _opacus()
    return rdp.compute_rdp(q=rate, noise_multiplier=sigma, steps=1, orders=accountant.DEFAULT_ALPHAS)


@dataclass(frozen=True)
class PrivateSGD:
    """The DP-SGD settings of a run: noise multiplier σ, sampling rate q, δ, clipping norm C, D steps planned."""

    sigma: float
    rate: float
    delta: float
    max_grad_norm: float
    steps: int
    target_epsilon: float
    batch: int  # expected rows per step (q × rows)

    @classmethod
    def plan(cls, cfg: Config, rows: int) -> PrivateSGD:
        """σ for the run's target ε: every D step (train.steps × n_critic of them) samples rows at q = batch / rows."""
        noise_for = _opacus()[2]
        rate = cfg.train.batch_size / rows
        if rate >= 1:
            raise UserError(f"train.batch_size={cfg.train.batch_size} is not below the {rows} training rows",
                            "DP-SGD samples a fraction of the rows per step: lower train.batch_size")
        delta = cfg.privacy.delta if cfg.privacy.delta is not None else 1 / (10 * rows)
        steps = cfg.train.steps * cfg.train.n_critic
        sigma = noise_for(target_epsilon=cfg.privacy.epsilon, target_delta=delta, sample_rate=rate, steps=steps,
                          accountant="rdp")
        return cls(float(sigma), rate, delta, cfg.privacy.max_grad_norm, steps, cfg.privacy.epsilon,
                   cfg.train.batch_size)

    def epsilon(self, steps: int) -> float:
        """ε spent after `steps` D steps (at δ), as Opacus's RDP accountant gives it: one step's Rényi divergences
        (computed once), times the steps, converted at the best order."""
        if steps == 0:
            return 0.0
        accountant, rdp, _ = _opacus()
        one_step = _one_step_rdp(self.rate, self.sigma)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "optimal order is the largest/smallest alpha": early or late in a run
            return float(rdp.get_privacy_spent(orders=accountant.DEFAULT_ALPHAS, rdp=one_step * steps,
                                               delta=self.delta)[0])

    def gradients(self, D: nn.Module, game: Callable[[Tensor, Tensor], Tensor], real: Tensor, fake: Tensor,
                  pack: int) -> dict[str, Tensor]:
        """D's DP gradient for one step, by parameter name: per (real pack, fake pack) pair the gradient of
        game(D(real pack), D(fake pack)), clipped to C; summed, plus N(0, σ²C²) noise, over the expected number of
        pairs (so the scale does not depend on how many rows the Poisson draw gave)."""
        from torch.func import functional_call, grad, vmap

        params = {k: p.detach() for k, p in D.named_parameters()}
        buffers = dict(D.named_buffers())
        pairs = len(real) // pack
        if pairs:
            def pair_loss(p: dict[str, Tensor], r: Tensor, f: Tensor) -> Tensor:
                logits = functional_call(D, (p, buffers), (torch.cat([r, f]),))
                return game(logits[:1], logits[1:])

            per = vmap(grad(pair_loss), in_dims=(None, 0, 0), randomness="different")(
                params, real[:pairs * pack].reshape(pairs, pack, -1), fake[:pairs * pack].reshape(pairs, pack, -1))
            norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per.values()))
            factor = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)
            summed = {k: torch.einsum("p,p...->...", factor, g) for k, g in per.items()}
        else:  # the Poisson draw gave less than a pack: the step still happens (and is counted), noise only
            summed = {k: torch.zeros_like(p) for k, p in params.items()}
        expected = self.batch / pack
        return {k: (g + torch.randn_like(g) * (self.sigma * self.max_grad_norm)) / expected for k, g in summed.items()}
