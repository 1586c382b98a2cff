"""Variants: each combines nets and losses into "what one D step / one G step is". Chosen by `variant:`."""

from __future__ import annotations

from ..config import Config
from .base import Phase, Variant, slerp, truncated_noise
from .conditional import ACGAN, CGAN
from .gan import GAN
from .infogan import InfoGAN

VARIANTS: dict[str, type[Variant]] = {"gan": GAN, "cgan": CGAN, "acgan": ACGAN, "infogan": InfoGAN}


def build_variant(cfg: Config, spec: dict) -> Variant:
    """The variant a config names, with freshly initialised networks for data described by `spec`."""
    return VARIANTS[cfg.variant](cfg, spec)


__all__ = ["Phase", "Variant", "slerp", "VARIANTS", "build_variant", "truncated_noise", "GAN", "CGAN", "ACGAN",
           "InfoGAN"]
