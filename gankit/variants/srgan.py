"""SRGAN and SRResNet (Ledig et al. 2017): ×2^k super-resolution of images.

One variant, two stages on the phase list: `mse` steps train the SRResNet generator on the pixel MSE to the
high-resolution truth until `srgan.pretrain` steps; after that D and G play the GAN game, G minimising
content loss + `srgan.adversarial_weight` · adversarial loss (the paper's 10⁻³). The content loss is the pixel MSE
or, with `srgan.content=features`, the MSE between features of gankit's shipped evaluator of the data (the shapes or
digits classifier, frozen) — the paper uses VGG features; no weights are downloaded here. `srgan.pretrain` equal to
`train.steps` trains SRResNet alone (the `shapes-srresnet` preset).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from ..config import Config, Section
from ..data import PairBatch
from ..errors import UserError
from ..metrics import load_evaluator
from ..nets.sr import SRDiscriminator, SRResNet
from .base import Context, Phase
from .paired import PairedGAN
from .registry import register_variant


class SRGANConfig(Section):
    """srgan's own keys."""

    pretrain: int = Field(1000, ge=0, description="steps of SRResNet training (pixel MSE) before the GAN game starts")
    content: Literal["pixels", "features"] = Field(
        "pixels", description="content loss of the GAN stage: pixel MSE, or MSE of the data's evaluator features")
    adversarial_weight: float = Field(1e-3, ge=0, description="weight of G's adversarial loss (the paper's 1e-3)")
    feature_scale: float = Field(1.0, gt=0, description="content=features: features are divided by this first")
    width: int = Field(64, ge=4, description="channels of G's residual blocks and D's first layer")
    blocks: int = Field(16, ge=1, description="residual blocks of G (the paper's 16)")
    bicubic_skip: bool = Field(False, description="G adds the bicubic upsampling of its input to its output, so it "
                               "starts as bicubic and learns the correction (not in the paper)")


@register_variant("srgan")
class SRGAN(PairedGAN):
    """G: low resolution -> high (SRResNet); D: real or generated high-resolution image; phases mse, then D and G."""

    Config = SRGANConfig
    own_nets = "SRResNet G, SRGAN D"
    verb = "upscales"
    transforms = ("downscale",)

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        o = self.options
        try:
            self.G = SRResNet(self.shape[0], self.shape_b[-1] // self.shape[-1], o.width, o.blocks, o.bicubic_skip)
        except ValueError as exc:
            raise UserError(str(exc), "set data.scale to 2, 4 or 8") from None
        self.D = SRDiscriminator(self.shape[0], self.shape_b[-1], o.width)
        self.content, self.adversarial_weight, self.feature_scale = o.content, o.adversarial_weight, o.feature_scale
        # the frozen feature net sits outside the module tree: no optimizer, checkpoint or export holds it
        self._features: tuple[nn.Module, ...] = ()
        if o.content == "features":
            evaluator = spec.get("evaluator", {}).get("name")
            if evaluator not in ("shapes", "digits"):
                raise UserError("srgan.content=features uses the shipped evaluator of the data (shapes or digits)",
                                "use srgan.content=pixels for other data")
            self._evaluator = load_evaluator(evaluator)
            self._features = (self._evaluator.net.eval().requires_grad_(False),)
        self.phases = [Phase("mse", "G", stop=o.pretrain), Phase("D", "D", start=o.pretrain),
                       Phase("G", "G", start=o.pretrain)]

    def _feature(self, x: Tensor) -> Tensor:
        net = self._features[0].to(x.device)
        return net(self._evaluator.prepare(x))[0] / self.feature_scale

    def content_loss(self, fake: Tensor, real: Tensor) -> Tensor:
        """Pixel MSE, or MSE of the frozen evaluator's features (content=features)."""
        if self.content == "features":
            return F.mse_loss(self._feature(fake), self._feature(real))
        return F.mse_loss(fake, real)

    def loss(self, phase: str, batch: PairBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if phase == "mse":
            mse = F.mse_loss(self.G(batch.x), batch.b)
            return mse, {"mse": mse.detach()}
        if phase == "D":
            fake = self.d_step_fakes(batch, ctx)
            real_logits, fake_logits = self.D(batch.b), self.D(fake.detach())
            loss = self.game.d(real_logits, fake_logits)
            keys = self.log_keys
            return loss, {keys.d_loss: loss.detach(), keys.d_real: self.game.mean_output(real_logits),
                          keys.d_fake: self.game.mean_output(fake_logits)}
        batch, fake = self.g_step_fakes(batch, ctx)
        adversarial = self.game.g(self.D(fake))
        content = self.content_loss(fake, batch.b)
        loss = content + self.adversarial_weight * adversarial
        return loss, {self.log_keys.g_loss: loss.detach(), "content": content.detach(),
                      "g_adv": adversarial.detach(), "mse": F.mse_loss(fake, batch.b).detach()}
