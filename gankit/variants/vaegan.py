"""VAE-GAN (Larsen et al. 2016): a VAE whose decoder is also a GAN's generator, reconstructing in D's feature space.

E maps an image to q(z|x) = N(μ, σ²); G decodes z; D tells real images from reconstructions G(E(x)) and from prior
samples G(z). Three groups, three losses:

    E:  β·KL(q(z|x) ‖ N(0, I)) + rec(x, G(z ~ q(z|x)))
    G:  γ·rec(x, G(z ~ q(z|x))) + the adversarial loss of reconstructions and prior samples
    D:  the adversarial loss: real images against reconstructions and prior samples (half the fake weight each)

rec is the squared distance in one of D's feature maps, the last unless `layer` says otherwise (the paper's Dis_l
likelihood: pixel-wise errors punish shifts that a feature match forgives, so the decoder stops blurring) or, with
`reconstruction=pixels`, in pixels; both are summed over the features (pixels) and averaged over the batch, as a
Gaussian log-likelihood is. `train.diffaug` augments what D judges in the adversarial terms, never the images whose
feature maps measure reconstructions. `adversarial=false` drops D and gives the plain VAE with the same encoder and
decoder, the baseline the paper compares with.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from .. import losses
from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets import DCGANDiscriminator, DCGANEncoder, build_discriminator, build_generator
from ..nets.augment import diff_augment
from .base import Context, Group, Phase, Request, Variant
from .registry import register_variant


class VAEGANConfig(Section):
    """VAE-GAN's own keys."""

    kl_weight: float = Field(1.0, ge=0, description="β: weight of KL(q(z|x) ‖ N(0, I)) in the encoder's loss")
    gamma: float = Field(1e-2, ge=0, description="γ: weight of the reconstruction term in G's loss, against the "
                         "adversarial term (the reconstruction is a sum over features, the adversarial loss a mean)")
    reconstruction: Literal["features", "pixels"] = Field(
        "features", description="where x and its reconstruction are compared: a feature map of D (VAE-GAN; "
        "vaegan.layer says which) or "
        "pixels (a VAE's Gaussian likelihood)")
    layer: int = Field(-1, lt=0, description="D's stride-2 block whose feature map measures reconstructions, counted "
                       "from the end: -1 the last (4×4), -2 the one before (8×8), ... (Larsen et al. take the third of "
                       "four: an earlier map keeps more of where things are)")
    adversarial: bool = Field(True, description="train D and G's adversarial term; false: the plain VAE baseline "
                              "(reconstruction=pixels, no D)")


@register_variant("vaegan")
class VAEGAN(Variant):
    """E: x -> q(z|x); G: z -> x (DCGAN nets from `model.*`); D judges reals against reconstructions and prior
    samples. `gankit reconstruct` draws G(μ(x)); `gankit sample` draws from the prior."""

    Config = VAEGANConfig
    sampling = frozenset({"truncation"})
    generator_names = ("G", "E")  # the exported model reconstructs, so it keeps the encoder
    encodes = True
    stabilisers = frozenset({"train.diffaug"})  # D's adversarial inputs only: reconstructions compare clean images

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        o = self.options
        if spec["kind"] != "image" or cfg.model.name != "dcgan":
            raise UserError("vaegan needs images and DCGAN nets", "use image data (digits, shapes, a folder) and "
                            "model.name=dcgan")
        if o.adversarial is False and o.reconstruction == "features":
            raise UserError("vaegan.adversarial=false has no D, so nothing to take features from",
                            "set vaegan.reconstruction=pixels (the plain VAE)")
        if o.adversarial is False and cfg.train.diffaug:
            raise UserError("vaegan.adversarial=false has no D for train.diffaug to augment the inputs of",
                            "drop train.diffaug (the plain VAE)")
        self.z_dim = cfg.model.z_dim
        channels, resolution = spec["shape"][0], spec["shape"][-1]
        self.G = build_generator(cfg.model, spec)
        self.E = DCGANEncoder(channels, resolution, 2 * self.z_dim, cfg.model.width)  # (μ, log σ²)
        self.D = build_discriminator(cfg.model, spec) if o.adversarial else None
        if o.reconstruction == "features" and o.layer != -1:
            blocks = sum(isinstance(m, nn.LeakyReLU) for m in getattr(self.D, "body", []))
            if not isinstance(self.D, DCGANDiscriminator) or -o.layer > blocks:
                raise UserError(f"vaegan.layer={o.layer}: D has {blocks} stride-2 blocks to take features from",
                                f"use -1 ... -{blocks} (a packed D, model.pack > 1, takes -1 only)" if blocks
                                else "use -1 (this D gives its last features only)")
        self.game = losses.game(cfg.loss.name)
        self.diffaug = cfg.train.diffaug
        self.optim_cfg = cfg.optim
        self.phases = ([Phase("D", "D")] if o.adversarial else []) + [Phase("E", "E"), Phase("G", "G")]

    @property
    def groups(self) -> dict[str, Group]:
        betas = (self.optim_cfg.beta1, self.optim_cfg.beta2)
        groups = {"E": Group([self.E], self.optim_cfg.lr_g, betas),
                  "G": Group([self.G], self.optim_cfg.lr_g, betas, ema=self.optim_cfg.ema is not None)}
        if self.D is not None:
            groups["D"] = Group([self.D], self.optim_cfg.lr_d, betas)
        return groups

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) of q(z|x), each (N, z_dim); log σ² clamped so σ stays finite."""
        mu, log_var = self.E(x).chunk(2, dim=1)
        return mu, log_var.clamp(-12, 6)

    def encode(self, x: Tensor) -> Tensor:
        """μ(x): the latent `gankit reconstruct` decodes."""
        return self.posterior(x.to(self.device))[0]

    def reconstruct_sample(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(G(z) for z ~ q(z|x) by the reparameterisation trick, KL(q(z|x) ‖ N(0, I)) per sample averaged)."""
        mu, log_var = self.posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        return self.G(z), losses.gaussian_kl(mu, log_var)

    def rec(self, x: Tensor, x_rec: Tensor) -> Tensor:
        """Squared distance of x and its reconstruction, summed over D's features (or pixels), batch-averaged."""
        if self.options.reconstruction == "features":
            block = {} if self.options.layer == -1 else {"block": self.options.layer}  # any D gives its last map
            x, x_rec = self.D.features(x, **block), self.D.features(x_rec, **block)
        return (x - x_rec).pow(2).flatten(1).sum(1).mean()

    def judge(self, x: Tensor) -> Tensor:
        """D's logits for the adversarial terms, after DiffAugment when `train.diffaug` asks for it."""
        return self.D(diff_augment(x, self.diffaug) if self.diffaug else x)

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return {"D": self.d_loss, "E": self.e_loss, "G": self.g_loss}[phase](batch)

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            rec, _ = self.reconstruct_sample(batch.x)
            prior = self.G(self.noise(len(batch)))
        real_logits = self.judge(batch.x)
        fake_logits = torch.cat([self.judge(rec), self.judge(prior)])  # each kind of fake weighs half
        loss = self.game.d(real_logits, fake_logits)
        keys = self.log_keys
        return loss, {keys.d_loss: loss.detach(), keys.d_real: self.game.mean_output(real_logits),
                      keys.d_fake: self.game.mean_output(fake_logits), keys.diversity: diversity_ratio(prior, batch.x)}

    def e_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        rec, kl = self.reconstruct_sample(batch.x)
        distance = self.rec(batch.x, rec)
        loss = self.options.kl_weight * kl + distance
        return loss, {"kl": kl.detach(), "rec": distance.detach(), "e_loss": loss.detach()}

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            mu, log_var = self.posterior(batch.x)
            z = mu + torch.randn_like(mu) * (0.5 * log_var).exp()
        rec = self.G(z)
        distance = self.rec(batch.x, rec)
        if self.D is None:
            return distance, {self.log_keys.g_loss: distance.detach()}
        prior = self.G(self.noise(len(batch)))
        adversarial = self.game.g(torch.cat([self.judge(rec), self.judge(prior)]))
        loss = self.options.gamma * distance + adversarial
        return loss, {self.log_keys.g_loss: loss.detach(), "g_adv": adversarial.detach(), "g_rec": distance.detach()}

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        if self.D is None:
            raise ValueError("this VAE was trained without a discriminator (vaegan.adversarial=false)")
        return self.D(x)

    def run_generator(self, request: Request) -> Tensor:
        return self.G(request.z)
