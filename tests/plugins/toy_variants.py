"""A variant written outside gankit, as a user would: it must plug in without editing gankit.

`PhasedGAN` pre-trains G alone (moment matching on the real batch) for `phasedgan.pretrain_steps` steps (the section
of `variant: toy_variants:PhasedGAN` is named after the class), then plays the
non-saturating game; it logs under its own key names and takes `inputs` when sampling (samples = input + G(z) · a
learnt scale), so the generic `--input` path has a user. `CALLS` records (step, phase) for the schedule tests.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor, nn

from gankit import losses
from gankit.config import Section
from gankit.variants import Context, Group, LogKeys, Phase, Request, Variant

CALLS: list[tuple[int, str]] = []


class PhasedConfig(Section):
    """PhasedGAN's own keys."""

    pretrain_steps: int = Field(5, ge=0, description="steps of G pre-training before the adversarial phases")
    hidden: int = Field(16, ge=1, description="width of both nets")


class PhasedGAN(Variant):
    Config = PhasedConfig
    log_keys = LogKeys(d_loss="critic_loss", g_loss="generator_loss", d_real="critic_real", d_fake="critic_fake",
                       diversity="spread", discriminator_group="critic", generator_group="generator")
    sampling = frozenset({"truncation", "inputs"})

    def __init__(self, cfg, spec: dict) -> None:
        super().__init__(cfg, spec)
        dim, width = spec["shape"][0], self.options.hidden
        self.z_dim = cfg.model.z_dim
        self.G = nn.Sequential(nn.Linear(self.z_dim, width), nn.ReLU(), nn.Linear(width, dim))
        self.D = nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, 1))
        self.optim = cfg.optim
        stop = self.options.pretrain_steps
        self.phases = [Phase("pretrain", "generator", stop=stop), Phase("D", "critic", start=stop),
                       Phase("G", "generator", start=stop)]

    @property
    def groups(self) -> dict[str, Group]:
        return {"critic": Group([self.D], self.optim.lr_d), "generator": Group([self.G], self.optim.lr_g, ema=True)}

    def loss(self, phase: str, batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        CALLS.append((ctx.step, phase))
        keys = self.log_keys
        if phase == "pretrain":  # match the batch's mean and spread
            fake = self.G(self.noise(len(batch)))
            loss = (fake.mean(0) - batch.x.mean(0)).pow(2).sum() + (fake.std(0) - batch.x.std(0)).pow(2).sum()
            return loss, {"pretrain_loss": loss.detach()}
        if phase == "D":
            fake = self.G(self.noise(len(batch)))
            ctx.values["fake"] = fake
            real_logits, fake_logits = self.D(batch.x).squeeze(1), self.D(fake.detach()).squeeze(1)
            loss = losses.game("non_saturating").d(real_logits, fake_logits)
            return loss, {keys.d_loss: loss.detach(), keys.d_real: real_logits.sigmoid().mean().detach(),
                          keys.d_fake: fake_logits.sigmoid().mean().detach(),
                          keys.diversity: fake.detach().std() / batch.x.std()}
        fake = ctx.values.pop("fake")
        loss = losses.game("non_saturating").g(self.D(fake).squeeze(1))
        return loss, {keys.g_loss: loss.detach()}

    def run_generator(self, request: Request) -> Tensor:
        out = self.G(request.z)
        return out if request.inputs is None else request.inputs + out
