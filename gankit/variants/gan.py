"""The seed's GAN: alternating D and G steps on any loss of gankit.losses (vanilla GAN, DCGAN, LSGAN, WGAN(-GP), ...).

Stabilisers are config options, not separate variants: gradient penalty, lazy R1/R2, label smoothing, feature
matching, instance noise and DiffAugment act here; spectral norm, minibatch std and PacGAN packing live in the nets.
Conditional variants (cGAN, ACGAN, InfoGAN) subclass this one and override the few hooks marked below.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from .. import losses
from ..config import Config
from ..data import Batch
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets import build_discriminator, build_generator, feature_shape
from ..nets.augment import diff_augment, simclr_view
from .base import STABILISERS, Context, Group, Phase, Request, Variant, adversarial_groups
from .registry import register_variant

NO_AUX = (None, {})
FAKE = "fake"  # Context key: (G(z), its condition) of the last D step, reused by the G step


@register_variant("gan")
class GAN(Variant):
    """G maps noise to samples, D scores samples; `loss.name` picks the game, `train.n_critic` the D:G step ratio."""

    packs = True  # PacGAN packing (model.pack) is supported; subclasses whose D takes conditions turn it off
    ensembles = True  # model.members: every term below is a mean of per-row terms (not feature matching: refused)
    stabilisers = frozenset(STABILISERS)

    def __init__(self, cfg: Config, spec: dict, G: nn.Module | None = None, D: nn.Module | None = None) -> None:
        super().__init__(cfg, spec)
        if cfg.model.pack > 1 and not self.packs:
            raise UserError(f"model.pack works with variant gan only, not {cfg.variant}", "set model.pack=1")
        if spec["kind"] == "pairs":
            raise UserError(f"variant {cfg.variant} generates from noise; data.pair makes two domains for "
                            "image-to-image models", "drop data.pair, or use variant=pix2pix, cyclegan or srgan")
        if cfg.model.members > 1 and cfg.loss.feature_matching:
            raise UserError("loss.feature_matching compares batch means of D's features, which would mix the "
                            f"model.members={cfg.model.members} members", "set loss.feature_matching=0 or members=1")
        if cfg.train.diffaug and spec["kind"] != "image":
            raise UserError("train.diffaug needs image data", f"the data is {spec['kind']}: set train.diffaug=''")
        if cfg.loss.contrastive and (spec["kind"] != "image" or cfg.model.pack > 1 or cfg.model.members > 1
                                     or type(self).real_condition is not GAN.real_condition):
            raise UserError("loss.contrastive compares D's features of two views of each real image: it needs image "
                            "data, one image per D input and no class given to D (variant "
                            f"{cfg.variant}, data {spec['kind']}, model.pack={cfg.model.pack}, "
                            f"model.members={cfg.model.members})", "set loss.contrastive=0, or train variant gan, "
                            "infogan or stylegan on images with model.pack=1 and model.members=1")
        self.z_dim = cfg.model.z_dim
        self.pack = cfg.model.pack  # D judges this many rows together: gradient penalties treat them as one input
        self.G = G if G is not None else build_generator(cfg.model, spec)
        self.D = D if D is not None else build_discriminator(cfg.model, spec)
        if cfg.loss.contrastive:  # SimCLR's projection head: D's pooled features -> the space the term compares
            width = feature_shape(self.D, tuple(spec["shape"]))[0]
            self.projection = nn.Sequential(nn.Linear(width, 2 * width), nn.ReLU(), nn.Linear(2 * width, 128))
        self.game = losses.game(cfg.loss.name)
        self.d_game = partial(losses.d_bce, smoothing=cfg.loss.label_smoothing) if cfg.loss.label_smoothing \
            else self.game.d
        self.reg, self.train_cfg, self.optim_cfg = cfg.loss, cfg.train, cfg.optim
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]
        if cfg.loss.r1_weight or cfg.loss.r2_weight:  # lazy regularisation: its own D step every reg_every steps
            self.phases.insert(1, Phase("D_reg", "D", every=cfg.loss.reg_every))

    @property
    def groups(self) -> dict[str, Group]:
        heads = [self.projection] if self.reg.contrastive else []
        return adversarial_groups(self.optim_cfg, [self.D, *heads], [self.G])

    # ------------------------------------------------------------------------------------- hooks for subclasses

    def fake_condition(self, batch: Batch) -> Tensor | None:
        """What G is conditioned on for this batch's fakes (labels, codes); None for an unconditional GAN."""
        return None

    def real_condition(self, batch: Batch) -> Tensor | None:
        """What D is told about the real samples (their labels for a cGAN); None when D is unconditional."""
        return None

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G(z)

    def d_forward(self, x: Tensor, cond: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
        """D's logits, or (logits, auxiliary outputs) when D has an extra head (ACGAN, InfoGAN)."""
        return self.D(x)

    def d_features(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.D.features(x)

    def aux_d_loss(self, real_aux: Tensor | None, fake_aux: Tensor | None, real_cond: Tensor | None,
                   fake_cond: Tensor | None) -> tuple[Tensor | None, dict[str, Tensor]]:
        """An extra D-step term from the auxiliary head (ACGAN's classifier, InfoGAN's Q); none here."""
        return NO_AUX

    def aux_g_loss(self, fake_aux: Tensor | None, fake_cond: Tensor | None, fake: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        """An extra G-step term from the auxiliary head (or from the fakes themselves); none here."""
        return NO_AUX

    # ------------------------------------------------------------------------------------- the game

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return {"D": self.d_loss, "D_reg": self.reg_loss, "G": self.g_loss}[phase](batch, ctx)

    def critic(self, x: Tensor, cond: Tensor | None, progress: float) -> tuple[Tensor, Tensor | None]:
        """(logits, auxiliary outputs or None) for x, after DiffAugment and instance noise (annealed to 0)."""
        if self.train_cfg.diffaug:
            x = diff_augment(x, self.train_cfg.diffaug)
        if self.train_cfg.instance_noise:
            x = x + torch.randn_like(x) * (self.train_cfg.instance_noise * (1 - progress))
        out = self.d_forward(x, cond)
        return out if isinstance(out, tuple) else (out, None)

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """D's logit for x as is (no augmentation or instance noise); `cond` reaches D only if D is conditional."""
        out = self.d_forward(x, cond)
        return out[0] if isinstance(out, tuple) else out

    def d_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        # The graph through G is kept so the G step can reuse these fakes, as the reference DCGAN loop does;
        # D itself sees them detached, so this backward never reaches G.
        fake_cond, real_cond = self.fake_condition(batch), self.real_condition(batch)
        fake_live = self.g_forward(self.noise(len(batch)), fake_cond)
        ctx.values[FAKE] = (fake_live, fake_cond)
        fake = fake_live.detach()
        d_cond = fake_cond if real_cond is not None else None  # a conditional D judges fakes by their labels
        real_logits, real_aux = self.critic(batch.x, real_cond, ctx.progress)
        fake_logits, fake_aux = self.critic(fake, d_cond, ctx.progress)
        loss = self.d_game(real_logits, fake_logits)
        keys = self.log_keys
        scalars = {keys.d_real: self.game.mean_output(real_logits), keys.d_fake: self.game.mean_output(fake_logits),
                   keys.diversity: diversity_ratio(fake, batch.x)}
        aux, aux_scalars = self.aux_d_loss(real_aux, fake_aux, real_cond, fake_cond)
        if aux is not None:
            loss = loss + aux
            scalars.update(aux_scalars)
        if self.reg.gp_weight:
            alpha = self.local_rows(len(batch) // self.pack, lambda m: torch.rand(m, device=fake.device))
            penalty = losses.gradient_penalty(lambda x: self.critic(x, real_cond, 1.0)[0], batch.x, fake,
                                              group=self.pack, alpha=alpha)
            loss = loss + self.reg.gp_weight * penalty
            scalars["gradient_penalty"] = penalty.detach()
        if self.reg.drift:
            drift = real_logits.square().mean()
            loss = loss + self.reg.drift * drift
            scalars["drift"] = drift.detach()
        scalars[keys.d_loss] = loss.detach()  # the game's loss: the doctor's thresholds read it without the term below
        if self.reg.contrastive:
            views = self.d_features(torch.cat([simclr_view(batch.x), simclr_view(batch.x)]), None)
            a, b = self.projection(views.mean((2, 3)) if views.dim() == 4 else views).chunk(2)
            contrast = losses.nt_xent(a, b, temperature=self.reg.contrastive_temperature)
            loss = loss + self.reg.contrastive * contrast
            scalars["contrastive"] = contrast.detach()
        return loss, scalars

    def reg_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        """(γ₁/2)·R1 on reals + (γ₂/2)·R2 on fakes, times reg_every so lazy and every-step runs match in scale."""
        loss, scalars = torch.zeros((), device=batch.x.device), {}
        cond = self.real_condition(batch)
        if self.reg.r1_weight:
            real = batch.x.detach().requires_grad_(True)
            r1 = losses.r1_penalty(self.critic(real, cond, 1.0)[0], real)
            loss = loss + self.reg.r1_weight / 2 * r1
            scalars["r1"] = r1.detach()
        if self.reg.r2_weight:
            fake_cond = self.fake_condition(batch)
            with torch.no_grad():
                fake = self.g_forward(self.noise(len(batch)), fake_cond)
            fake.requires_grad_(True)
            r2 = losses.r1_penalty(self.critic(fake, fake_cond if cond is not None else None, 1.0)[0], fake)
            loss = loss + self.reg.r2_weight / 2 * r2
            scalars["r2"] = r2.detach()
        return loss * self.reg.reg_every, scalars

    def g_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if FAKE in ctx.values:
            fake, fake_cond = ctx.values.pop(FAKE)
        else:  # no D step in this iteration: fresh fakes
            fake_cond = self.fake_condition(batch)
            fake = self.g_forward(self.noise(len(batch)), fake_cond)
        d_cond = fake_cond if self.real_condition(batch) is not None else None
        fake_logits, fake_aux = self.critic(fake, d_cond, ctx.progress)
        loss = self.game.g(fake_logits)
        scalars = {"d_fake_g": self.game.mean_output(fake_logits)}
        aux, aux_scalars = self.aux_g_loss(fake_aux, fake_cond, fake)
        if aux is not None:
            loss = loss + aux
            scalars.update(aux_scalars)
        if self.reg.feature_matching:
            with torch.no_grad():
                real_features = self.d_features(batch.x, self.real_condition(batch))
            fm = losses.feature_matching(real_features, self.d_features(fake, d_cond))
            loss = loss + self.reg.feature_matching * fm
            scalars["feature_matching"] = fm.detach()
        scalars[self.log_keys.g_loss] = loss.detach()
        return loss, scalars

    def features(self, x: Tensor) -> Tensor:
        if type(self).real_condition is not GAN.real_condition:
            raise ValueError(f"{self.name}'s D judges samples together with their class")
        return self.d_features(x, None).flatten(1)

    def run_generator(self, request: Request) -> Tensor:
        return self.g_forward(request.z, request.cond)
