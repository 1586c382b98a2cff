"""Class-conditional GANs: cGAN (Mirza & Osindero 2014) with a concat or projection D, and ACGAN (Odena et al. 2017).

Both condition G on the label by concatenating its one-hot code to z (with `model.name=biggan`: through BigGAN's
conditional batch norm); fakes in a D step take the real batch's labels, so the label distribution of fakes matches
the data.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ..config import Config, Section
from ..data import Batch
from ..errors import UserError
from ..nets import ConcatConditionalD, ConcatConditionalG, HeadedD, ProjectionD, build_biggan, build_discriminator, \
    build_generator, feature_shape
from .base import Request
from .gan import GAN
from .registry import register_variant


def _classes(spec: dict, variant: str) -> list[str]:
    names = spec.get("class_names")
    if not names:
        raise UserError(f"variant {variant} needs labelled data", "use digits, shapes, a folder with sub-folders "
                        "or an .npz with data.labels_key")
    return list(names)


class _LabelConditioned(GAN):
    """Shared by cGAN and ACGAN: G(z ⊕ onehot(y)), labels from the batch, random or chosen labels when sampling."""

    packs = False
    sampling = frozenset({"truncation", "labels"})

    def fake_condition(self, batch: Batch) -> Tensor:
        return batch.y

    def real_condition(self, batch: Batch) -> Tensor:
        return batch.y

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G(z, cond)

    def condition(self, request: Request) -> Tensor:
        labels = request.labels
        if labels is None:
            labels = torch.randint(len(self.class_names), (request.n,), generator=request.generator)
        return labels.to(self.device)

    def progress_request(self, n: int, generator: torch.Generator, inputs: Tensor | None = None) -> Request:
        """Progress grids cycle through the classes, so each row of 8 shows every class in turn."""
        return Request(n, labels=torch.arange(n) % len(self.class_names), generator=generator)


class CGANConfig(Section):
    """cgan's own keys."""

    cond: Literal["projection", "concat"] = Field(
        "projection", description="how D sees the label (projection discriminator or one-hot concatenation)")


@register_variant("cgan")
class CGAN(_LabelConditioned):
    """cGAN: D(x, y) sees the label by projection (default, `cgan.cond=projection`) or one-hot concatenation.

    With `model.name=biggan` both nets are BigGAN's own: G conditions every block through conditional batch norm and
    D always projects, so `cgan.cond` does not apply.
    """

    Config = CGANConfig
    legacy_keys = {"model.cond": "cond"}

    def __init__(self, cfg: Config, spec: dict) -> None:
        names = _classes(spec, "cgan")
        k = len(names)
        cond = self.read_options(cfg)
        if cfg.model.name == "biggan":
            G, D = build_biggan(cfg.model, spec, k)
        else:
            G = ConcatConditionalG(build_generator(cfg.model, spec, extra_inputs=k), k)
            if cond.cond == "concat":
                D = ConcatConditionalD(build_discriminator(cfg.model, spec, extra_channels=k), k)
            else:
                net = build_discriminator(cfg.model, spec)
                D = ProjectionD(net, k, feature_shape(net, tuple(spec["shape"]))[0])
        super().__init__(cfg, spec, G, D)
        self.class_names = names

    def d_forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.D(x, cond)

    def d_features(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.D.features(x, cond)


class ACGANConfig(Section):
    """acgan's own keys."""

    aux_weight: float = Field(1.0, ge=0, description="weight of the auxiliary classification loss")


@register_variant("acgan")
class ACGAN(_LabelConditioned):
    """ACGAN: D is unconditional but also classifies every sample; both players minimise the class loss.

    With `model.name=biggan` G is BigGAN's (conditional batch norm) and D is BigGAN's without the projection; the
    class head sits on its pooled features (BigGAN's nets with ACGAN's conditioning, as in StudioGAN's "AC" option).
    """

    Config = ACGANConfig
    legacy_keys = {"loss.aux_weight": "aux_weight"}

    def __init__(self, cfg: Config, spec: dict) -> None:
        names = _classes(spec, "acgan")
        k = len(names)
        if cfg.model.name == "biggan":
            G, net = build_biggan(cfg.model, spec, k, projection=False)
        else:
            G = ConcatConditionalG(build_generator(cfg.model, spec, extra_inputs=k), k)
            net = build_discriminator(cfg.model, spec)
        super().__init__(cfg, spec, G, HeadedD(net, feature_shape(net, tuple(spec["shape"])), k))
        self.class_names, self.aux_weight = names, self.options.aux_weight

    def aux_d_loss(self, real_aux: Tensor | None, fake_aux: Tensor | None, real_cond: Tensor | None,
                   fake_cond: Tensor | None) -> tuple[Tensor, dict[str, Tensor]]:
        real_ce, fake_ce = F.cross_entropy(real_aux, real_cond), F.cross_entropy(fake_aux, fake_cond)
        accuracy = (real_aux.argmax(1) == real_cond).float().mean()
        return self.aux_weight * (real_ce + fake_ce), {"d_class_loss": real_ce.detach(), "d_class_acc": accuracy}

    def aux_g_loss(self, fake_aux: Tensor | None, fake_cond: Tensor | None, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        ce = F.cross_entropy(fake_aux, fake_cond)
        return self.aux_weight * ce, {"g_class_loss": ce.detach()}
