"""Variants: each combines nets and losses into "what one D step / one G step is". Chosen by `variant:`."""

from __future__ import annotations

from ..config import Config
from .base import Phase, Variant, truncated_noise
from .gan import GAN

VARIANTS: dict[str, type[Variant]] = {"gan": GAN}


def build_variant(cfg: Config, spec: dict) -> Variant:
    """The variant a config names, with freshly initialised networks for data described by `spec`."""
    return VARIANTS[cfg.variant](cfg, spec)


__all__ = ["Phase", "Variant", "VARIANTS", "build_variant", "truncated_noise", "GAN"]
