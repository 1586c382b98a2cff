"""The seed's GAN: alternating D and G steps on any loss of gankit.losses (vanilla GAN, DCGAN, LSGAN, WGAN(-GP), ...).

Stabilisers are config options, not separate variants: gradient penalty, lazy R1/R2, label smoothing, feature
matching, instance noise and DiffAugment act here; spectral norm, minibatch std and PacGAN packing live in the nets.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor

from .. import losses
from ..config import Config
from ..data import Batch
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets import build_discriminator, build_generator
from ..nets.augment import diff_augment
from .base import Phase, Variant


class GAN(Variant):
    """G maps noise to samples, D scores samples; `loss.name` picks the game, `train.n_critic` the D:G step ratio."""

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__()
        if cfg.train.diffaug and spec["kind"] != "image":
            raise UserError("train.diffaug needs image data", f"the data is {spec['kind']}: set train.diffaug=''")
        self.z_dim = cfg.model.z_dim
        self.G = build_generator(cfg.model, spec)
        self.D = build_discriminator(cfg.model, spec)
        self.game = losses.game(cfg.loss.name)
        self.d_game = partial(losses.d_bce, smoothing=cfg.loss.label_smoothing) if cfg.loss.label_smoothing \
            else self.game.d
        self.reg, self.train_cfg = cfg.loss, cfg.train
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]
        if cfg.loss.r1_weight or cfg.loss.r2_weight:  # lazy regularisation: its own D step every reg_every steps
            self.phases.insert(1, Phase("D_reg", "D", interval=cfg.loss.reg_every))
        self._fake: Tensor | None = None  # G(z) of the last D step, reused by the G step (one G forward per iteration)

    @property
    def groups(self) -> dict[str, list]:
        return {"D": [self.D], "G": [self.G]}

    def loss(self, phase: str, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        return {"D": self.d_loss, "D_reg": self.reg_loss, "G": self.g_loss}[phase](batch)

    def critic(self, x: Tensor, progress: float) -> Tensor:
        """D's logits for samples x, after DiffAugment and instance noise (annealed linearly to 0 over training)."""
        if self.train_cfg.diffaug:
            x = diff_augment(x, self.train_cfg.diffaug)
        if self.train_cfg.instance_noise:
            x = x + torch.randn_like(x) * (self.train_cfg.instance_noise * (1 - progress))
        return self.D(x)

    def _score(self, logits: Tensor) -> Tensor:
        """Mean D output to log: the probability D(x) for BCE games, the raw score otherwise."""
        return (logits.sigmoid() if self.game.probabilistic else logits).mean().detach()

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # The graph through G is kept so the G step can reuse these fakes, as the reference DCGAN loop does;
        # D itself sees them detached, so this backward never reaches G.
        self._fake = self.G(self.noise(len(batch)))
        fake = self._fake.detach()
        real_logits, fake_logits = self.critic(batch.x, batch.progress), self.critic(fake, batch.progress)
        loss = self.d_game(real_logits, fake_logits)
        scalars = {"d_real": self._score(real_logits), "d_fake": self._score(fake_logits),
                   "diversity": diversity_ratio(fake, batch.x)}
        if self.reg.gp_weight:
            penalty = losses.gradient_penalty(self.D, batch.x, fake)
            loss = loss + self.reg.gp_weight * penalty
            scalars["gradient_penalty"] = penalty.detach()
        scalars["d_loss"] = loss.detach()
        return loss, scalars

    def reg_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """(γ₁/2)·R1 on reals + (γ₂/2)·R2 on fakes, times reg_every so lazy and every-step runs match in scale."""
        loss, scalars = torch.zeros((), device=batch.x.device), {}
        if self.reg.r1_weight:
            real = batch.x.detach().requires_grad_(True)
            r1 = losses.r1_penalty(self.D(real), real)
            loss = loss + self.reg.r1_weight / 2 * r1
            scalars["r1"] = r1.detach()
        if self.reg.r2_weight:
            with torch.no_grad():
                fake = self.G(self.noise(len(batch)))
            fake.requires_grad_(True)
            r2 = losses.r1_penalty(self.D(fake), fake)
            loss = loss + self.reg.r2_weight / 2 * r2
            scalars["r2"] = r2.detach()
        return loss * self.reg.reg_every, scalars

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        fake, self._fake = (self._fake if self._fake is not None else self.G(self.noise(len(batch)))), None
        fake_logits = self.critic(fake, batch.progress)
        loss = self.game.g(fake_logits)
        scalars = {"d_fake_g": self._score(fake_logits)}
        if self.reg.feature_matching:
            with torch.no_grad():
                real_features = self.D.features(batch.x)
            fm = losses.feature_matching(real_features, self.D.features(fake))
            loss = loss + self.reg.feature_matching * fm
            scalars["feature_matching"] = fm.detach()
        scalars["g_loss"] = loss.detach()
        return loss, scalars

    def generate(self, n: int, *, z: Tensor | None = None, cond: Tensor | None = None,
                 truncation: float = 1.0) -> Tensor:
        return self.G(self.noise(n, truncation=truncation) if z is None else z)
