"""Variants: each combines nets and losses into "what one D step / one G step is". Chosen by `variant:`.

A variant registers itself (`@register_variant`); importing this package registers gankit's own.
"""

from __future__ import annotations

from .base import DIRECTIONS, SAMPLING_OPTIONS, Context, Group, LogKeys, Phase, Request, Variant, grad_norm_key, \
    refused, slerp, truncated_noise
from .registry import DEFAULT_VARIANT, VARIANTS, build_variant, check_config, plugin_names, register_variant, resolve, \
    upgrade_legacy_keys, validate_config, variant_class
from .gan import GAN  # noqa: E402 - gankit's own variants register on import
from .conditional import ACGAN, CGAN  # noqa: E402
from .infogan import InfoGAN  # noqa: E402
from .pix2pix import Pix2Pix  # noqa: E402
from .srgan import SRGAN  # noqa: E402
from .cyclegan import CycleGAN  # noqa: E402
from .vaegan import VAEGAN  # noqa: E402
from .ganomaly import GANomaly  # noqa: E402
from .tabular import TabularGAN  # noqa: E402
from .seqgan import SeqGAN  # noqa: E402
from .pggan import PGGAN  # noqa: E402
from .stylegan import StyleGAN  # noqa: E402
from .text2img import Text2Img  # noqa: E402
from .mocogan import MoCoGAN  # noqa: E402

__all__ = ["DIRECTIONS", "SAMPLING_OPTIONS", "Context", "Group", "LogKeys", "Phase", "Request", "Variant",
           "grad_norm_key", "refused", "slerp", "truncated_noise", "DEFAULT_VARIANT", "VARIANTS", "plugin_names", "build_variant", "check_config",
           "register_variant", "resolve", "upgrade_legacy_keys", "validate_config", "variant_class", "GAN", "CGAN",
           "ACGAN", "InfoGAN", "Pix2Pix", "SRGAN", "CycleGAN", "VAEGAN", "GANomaly", "TabularGAN", "SeqGAN",
           "PGGAN", "StyleGAN", "Text2Img", "MoCoGAN"]
