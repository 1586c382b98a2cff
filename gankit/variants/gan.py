"""The seed's GAN: alternating D and G steps on any loss of gankit.losses (vanilla GAN, DCGAN, LSGAN, WGAN...)."""

from __future__ import annotations

from torch import Tensor

from .. import losses
from ..config import Config
from ..data import Batch
from ..metrics.diversity import diversity_ratio
from ..nets import build_discriminator, build_generator
from .base import Phase, Variant


class GAN(Variant):
    """G maps noise to samples, D scores samples; `loss.name` picks the game, `train.n_critic` the D:G step ratio."""

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__()
        self.z_dim = cfg.model.z_dim
        self.G = build_generator(cfg.model, spec)
        self.D = build_discriminator(cfg.model, spec)
        self.game = losses.game(cfg.loss.name)
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]
        self._fake: Tensor | None = None  # G(z) of the last D step, reused by the G step (one G forward per iteration)

    @property
    def groups(self) -> dict[str, list]:
        return {"D": [self.D], "G": [self.G]}

    def loss(self, phase: str, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        return self.d_loss(batch) if phase == "D" else self.g_loss(batch)

    def _score(self, logits: Tensor) -> Tensor:
        """Mean D output to log: the probability D(x) for BCE games, the raw score otherwise."""
        return (logits.sigmoid() if self.game.probabilistic else logits).mean().detach()

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        # The graph through G is kept so the G step can reuse these fakes, as the reference DCGAN loop does;
        # D itself sees them detached, so this backward never reaches G.
        self._fake = self.G(self.noise(len(batch)))
        real_logits, fake_logits = self.D(batch.x), self.D(self._fake.detach())
        loss = self.game.d(real_logits, fake_logits)
        return loss, {"d_loss": loss.detach(), "d_real": self._score(real_logits), "d_fake": self._score(fake_logits),
                      "diversity": diversity_ratio(self._fake, batch.x)}

    def g_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        fake, self._fake = (self._fake if self._fake is not None else self.G(self.noise(len(batch)))), None
        fake_logits = self.D(fake)
        loss = self.game.g(fake_logits)
        return loss, {"g_loss": loss.detach(), "d_fake_g": self._score(fake_logits)}

    def generate(self, n: int, *, z: Tensor | None = None, cond: Tensor | None = None,
                 truncation: float = 1.0) -> Tensor:
        return self.G(self.noise(n, truncation=truncation) if z is None else z)
