"""InfoGAN (Chen et al. 2016): interpretable latent codes, learnt without labels by maximising their mutual
information with G's output.

G sees z ⊕ c, where c is one categorical code c0 (one-hot, `model.info_categorical` values, drawn uniformly) and
`model.info_continuous` codes c1, c2, ... ~ U(-1, 1). A Q head on D's features (one body pass for both) predicts c0's
logits and, per continuous code, a factored Gaussian's mean and log-std. The variational lower bound on
I(c; G(z, c)) becomes λ·CE(c0) + λ_cont·Gaussian NLL(c1, c2, ...), minimised by Q in the D step (on detached fakes)
and by G in its step (through the fakes). Labels are never used: the data may be unlabelled.

Optionally (`infogan.real_weight`), Q also clusters the real batch into confident, balanced values of c0, so the
values G learns to draw are the data's own groups rather than whatever Q could read first (docs/infogan.md).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from .. import losses
from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..nets import HeadedD, build_discriminator, build_generator, feature_shape
from ..nets.augment import affine, translation
from .base import Context, Request, categorical_index
from .gan import GAN
from .registry import register_variant

LOG_STD_MIN, LOG_STD_MAX = -4.0, 2.0  # Q's log-std is clamped so the NLL cannot run off to -inf on one code value
TRAVERSAL_RANGE, TRAVERSAL_STEPS = 2.0, 8  # continuous traversals go beyond the training range U(-1, 1) to ±2


class InfoGANConfig(Section):
    """infogan's own keys: the codes and the weights of their mutual-information terms."""

    categorical: int = Field(10, ge=0, description="values of the categorical code c0 (0: none)")
    continuous: int = Field(2, ge=0, description="number of continuous codes c1, c2, ... ~ U(-1, 1)")
    weight: float = Field(1.0, ge=0, description="weight λ of the categorical code's MI term")
    continuous_weight: float = Field(0.1, ge=0, description="weight of the continuous codes' MI term")
    real_weight: float = Field(0.0, ge=0, description="weight of a clustering term on real data: Q's c0 confident "
                               "per image and balanced over the batch (no labels used)")
    real_balance: float = Field(1.0, ge=0, description="weight, inside the clustering term, of using every value "
                                "of c0 equally against deciding each image confidently (IMSAT's μ)")
    augment_weight: float = Field(0.0, ge=0, description="weight of a consistency term on real data: Q's c0 for a "
                                  "perturbed image (infogan.augment) must match its c0 for the image (IMSAT's "
                                  "self-augmentation)")
    augment: Literal["shift", "affine"] = Field("shift", description="the perturbation of the consistency term: "
                                                "shift (up to 2 pixels) or affine (also rotation and scaling)")
    augment_degrees: float = Field(15.0, ge=0, le=180, description="affine perturbation: rotation by up to ± this "
                                   "many degrees")
    augment_scale: float = Field(0.1, ge=0, lt=1, description="affine perturbation: scaling by up to 1 ± this")


@register_variant("infogan")
class InfoGAN(GAN):
    """GAN whose G also takes latent codes that a Q head on D's features must recover from the samples."""

    Config = InfoGANConfig
    legacy_keys = {"model.info_categorical": "categorical", "model.info_continuous": "continuous",
                   "loss.info_weight": "weight", "loss.info_continuous_weight": "continuous_weight",
                   "loss.info_real_weight": "real_weight"}
    packs = False
    sampling = frozenset({"truncation", "codes"})

    def __init__(self, cfg: Config, spec: dict) -> None:
        options = self.read_options(cfg)
        self.categories, self.continuous = options.categorical, options.continuous
        if self.categories == 1 or self.categories + self.continuous == 0:
            raise UserError("infogan needs a latent code", "set infogan.categorical >= 2 or "
                            "infogan.continuous >= 1")
        if options.real_weight and not self.categories:
            raise UserError("infogan.real_weight clusters the data into values of c0, but this model has none",
                            "set infogan.categorical >= 2 or infogan.real_weight=0")
        codes = self.categories + self.continuous
        G = build_generator(cfg.model, spec, extra_inputs=codes)
        net = build_discriminator(cfg.model, spec)
        # Q's outputs: c0's logits (K), then each continuous code's mean (C) and log-std (C)
        Q = HeadedD(net, feature_shape(net, tuple(spec["shape"])), self.categories + 2 * self.continuous)
        super().__init__(cfg, spec, G, Q)
        self.info_weight, self.info_continuous_weight = options.weight, options.continuous_weight
        self.info_real_weight, self.info_real_balance = options.real_weight, options.real_balance
        self.info_augment_weight, self.info_augment = options.augment_weight, options.augment
        self.info_augment_degrees, self.info_augment_scale = options.augment_degrees, options.augment_scale

    @property
    def code_names(self) -> list[str]:
        """c0 is the categorical code (when there is one), c1, c2, ... the continuous ones."""
        return (["c0"] if self.categories else []) + [f"c{i + 1}" for i in range(self.continuous)]

    # ------------------------------------------------------------------------------------- codes

    def _codes(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Random codes: c0 indices (n,) uniform over its values and continuous values (n, C) ~ U(-1, 1)."""
        category = torch.randint(max(self.categories, 1), (n,), generator=generator)
        values = torch.rand(n, self.continuous, generator=generator) * 2 - 1
        return category, values

    def _join(self, category: Tensor, values: Tensor) -> Tensor:
        """The condition G sees: onehot(c0) ⊕ c1..cC, (n, K + C) on this variant's device."""
        onehot = F.one_hot(category, self.categories) if self.categories else category.new_zeros(len(category), 0)
        return torch.cat([onehot.float(), values], dim=1).to(self.device)

    def fake_condition(self, batch: Batch) -> Tensor:
        return self.local_rows(len(batch), lambda n: self._join(*self._codes(n)))

    def condition(self, request: Request) -> Tensor:
        """Codes for n samples: those named (c0=3, c1=0.5) fixed for all n, the rest random from the request's
        generator. All codes are drawn even when fixed, so fixing one leaves the others' draws (and a traversal's
        rows) unchanged."""
        category, values = self._codes(request.n, request.generator)
        for name, value in request.codes.items():
            if name not in self.code_names:
                raise ValueError(f"unknown code {name!r}: this model's codes are {self._describe()}")
            if name == "c0":
                category = torch.full_like(category, categorical_index(name, value, self.categories))
            else:
                values[:, int(name[1:]) - 1] = float(value)
        return self._join(category, values)

    def _describe(self) -> str:
        parts = [f"c0 (categorical, 0-{self.categories - 1})"] if self.categories else []
        if self.continuous:
            parts.append(f"{', '.join(self.code_names[-self.continuous:])} (continuous, trained on -1 to 1)")
        return " and ".join(parts)

    def categorical_code(self) -> str | None:
        return "c0" if self.categories else None

    @torch.no_grad()
    def predict_code(self, x: Tensor, name: str) -> Tensor:
        """Q's arg-max value of c0 for samples x (real images, say): (N,) indices on the CPU.

        D and Q run in eval mode (batch norm on its running statistics, so each image's answer is its own) and are
        put back in the mode they were in; x is taken as it is (no DiffAugment, no instance noise)."""
        if name != self.categorical_code():
            raise ValueError(f"Q reads back only the categorical code; this model's codes are {self._describe()}")
        training = self.D.training
        self.D.eval()
        try:
            _, q = self.D(x.to(self.device))
        finally:
            self.D.train(training)
        return q[:, : self.categories].argmax(1).cpu()

    def code_values(self, name: str) -> list[float]:
        """c0: every category; a continuous code: 8 values from -2 to 2 (past the training range, to show its use)."""
        if name not in self.code_names:
            raise ValueError(f"this model has no latent code {name!r}; its codes are {self._describe()}")
        if name == "c0":
            return [float(i) for i in range(self.categories)]
        return torch.linspace(-TRAVERSAL_RANGE, TRAVERSAL_RANGE, TRAVERSAL_STEPS).tolist()

    # ------------------------------------------------------------------------------------- the game

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G(torch.cat([z, cond], dim=1))

    def info_loss(self, q: Tensor, cond: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """λ·CE(c0) + λ_cont·NLL of c1..cC under Q's factored Gaussian: minus the MI lower bound, up to H(c)."""
        k, c = self.categories, self.continuous
        loss, scalars = q.new_zeros(()), {}
        if k:
            target = cond[:, :k].argmax(1)
            loss = loss + self.info_weight * F.cross_entropy(q[:, :k], target)
            scalars["q_accuracy"] = (q[:, :k].argmax(1) == target).float().mean().detach()
        if c:
            mean, log_std = q[:, k : k + c], q[:, k + c :].clamp(LOG_STD_MIN, LOG_STD_MAX)
            nll = (0.5 * ((cond[:, k:] - mean) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi))
            loss = loss + self.info_continuous_weight * nll.sum(1).mean()
            scalars["q_continuous_mse"] = (cond[:, k:] - mean).pow(2).mean().detach()
        return loss, scalars

    def d_forward(self, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.D(x)

    def aux_d_loss(self, real_aux: Tensor | None, fake_aux: Tensor | None, real_cond: Tensor | None,
                   fake_cond: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        # Q (and D's shared body) learn to read the codes back from the detached fakes of this D step
        loss, scalars = self.info_loss(fake_aux, fake_cond)
        scalars = {"info_loss": loss.detach(), **scalars}
        if self.info_real_weight:
            cluster = losses.cluster_entropy(real_aux[:, : self.categories], balance=self.info_real_balance)
            loss = loss + self.info_real_weight * cluster
            scalars["q_real_cluster"] = cluster.detach()
        return loss, scalars

    def d_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        loss, scalars = super().d_loss(batch, ctx)
        if self.info_augment_weight:
            k = self.categories
            with torch.no_grad():
                target = F.softmax(self.D(batch.x)[1][:, :k], dim=1)
            ratio = 2 / batch.x.shape[-1]  # up to 2 pixels
            moved = translation(batch.x, ratio) if self.info_augment == "shift" else \
                affine(batch.x, self.info_augment_degrees, self.info_augment_scale, shift=ratio)
            sat = losses.soft_cross_entropy(target, self.D(moved)[1][:, :k])
            loss = loss + self.info_augment_weight * sat
            scalars["q_real_shift"] = sat.detach()
        return loss, scalars

    def aux_g_loss(self, fake_aux: Tensor | None, fake_cond: Tensor | None, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # G makes its codes readable: the same bound, through the live fakes
        loss, _ = self.info_loss(fake_aux, fake_cond)
        return loss, {"g_info_loss": loss.detach()}
