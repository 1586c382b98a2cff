"""GANomaly (Akcay et al. 2018): anomaly detection by an encoder–decoder–encoder generator trained on normal images.

G maps an image x to a latent z = G_E(x), draws it back as x̂ = G_D(z) and encodes that again, ẑ = E(x̂). Trained on
normal images only, the second encoding agrees with the first for them and not for images unlike them, so the
anomaly score is the latent distance ‖G_E(x) − E(x̂)‖² (no search at test time). G minimises

    w_adv·‖f_D(x) − f_D(x̂)‖² + w_con·‖x − x̂‖₁ + w_enc·‖z − ẑ‖²

(D's features, the image, the latent; the paper's weights 1, 50, 1), while D tells real images from x̂.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from .. import losses
from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets import DCGANEncoder, build_discriminator, build_generator
from .base import Context, Group, Phase, Request, Variant
from .registry import register_variant


class GANomalyConfig(Section):
    """GANomaly's own keys."""

    w_adv: float = Field(1.0, ge=0, description="weight of the feature match ‖f_D(x) − f_D(x̂)‖² in G's loss")
    w_con: float = Field(50.0, ge=0, description="weight of the image distance ‖x − x̂‖₁ in G's loss")
    w_enc: float = Field(1.0, ge=0, description="weight of the latent distance ‖z − ẑ‖² in G's loss")


@register_variant("ganomaly")
class GANomaly(Variant):
    """G = (G_E, G_D, E) on images; D judges images against their redraws. Scores images by
    ‖G_E(x) − E(G_D(G_E(x)))‖² (`gankit score`); `gankit reconstruct` draws G_D(G_E(x))."""

    Config = GANomalyConfig
    sampling = frozenset({"truncation"})
    generator_names = ("GE", "GD", "E")  # the exported model encodes, redraws and scores
    encodes = True
    scores_anomalies = True

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        if spec["kind"] != "image" or cfg.model.name != "dcgan":
            raise UserError("ganomaly needs images and DCGAN nets", "use image data and model.name=dcgan")
        self.z_dim = cfg.model.z_dim
        channels, resolution = spec["shape"][0], spec["shape"][-1]
        self.GE = DCGANEncoder(channels, resolution, self.z_dim, cfg.model.width)
        self.GD = build_generator(cfg.model, spec)
        self.E = DCGANEncoder(channels, resolution, self.z_dim, cfg.model.width)
        self.D = build_discriminator(cfg.model, spec)
        self.game = losses.game(cfg.loss.name)
        self.optim_cfg = cfg.optim
        self.phases = [Phase("D", "D"), Phase("G", "G")]

    @property
    def groups(self) -> dict[str, Group]:
        betas = (self.optim_cfg.beta1, self.optim_cfg.beta2)
        return {"D": Group([self.D], self.optim_cfg.lr_d, betas),
                "G": Group([self.GE, self.GD, self.E], self.optim_cfg.lr_g, betas, ema=self.optim_cfg.ema is not None)}

    def redraw(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(z = G_E(x), x̂ = G_D(z), ẑ = E(x̂))."""
        z = self.GE(x)
        x_hat = self.GD(z)
        return z, x_hat, self.E(x_hat)

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return self.d_loss(batch) if phase == "D" else self.g_loss(batch)

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            _, x_hat, _ = self.redraw(batch.x)
        real_logits, fake_logits = self.D(batch.x), self.D(x_hat)
        loss = self.game.d(real_logits, fake_logits)
        keys = self.log_keys
        return loss, {keys.d_loss: loss.detach(), keys.d_real: self.game.mean_output(real_logits),
                      keys.d_fake: self.game.mean_output(fake_logits), keys.diversity: diversity_ratio(x_hat, batch.x)}

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        o = self.options
        z, x_hat, z_hat = self.redraw(batch.x)
        adversarial = (self.D.features(batch.x) - self.D.features(x_hat)).pow(2).mean()
        contextual = F.l1_loss(x_hat, batch.x)
        encoder = (z - z_hat).pow(2).mean()
        loss = o.w_adv * adversarial + o.w_con * contextual + o.w_enc * encoder
        return loss, {self.log_keys.g_loss: loss.detach(), "g_adv": adversarial.detach(),
                      "g_con": contextual.detach(), "g_enc": encoder.detach()}

    def encode(self, x: Tensor) -> Tensor:
        return self.GE(x.to(self.device))

    def anomaly_score(self, x: Tensor) -> Tensor:
        """‖G_E(x) − E(G_D(G_E(x)))‖², mean over the latent, per image (N,): higher is more anomalous."""
        z, _, z_hat = self.redraw(x.to(self.device))
        return (z - z_hat).pow(2).mean(1)

    def features(self, x: Tensor) -> Tensor:
        return self.D.features(x).flatten(1)

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.D(x)

    def run_generator(self, request: Request) -> Tensor:
        return self.GD(request.z)
