"""Network families; `build_generator` / `build_discriminator` pick one from the model config and the data spec."""

from __future__ import annotations

from torch import nn

from ..config import ModelConfig
from ..errors import UserError
from .biggan import BigGANDiscriminator, BigGANGenerator
from .blocks import MinibatchStd, Packed, count_parameters, dcgan_init, spectral_normalize
from .conditional import ConcatConditionalD, ConcatConditionalG, HeadedD, ProjectionD, feature_shape
from .dcgan import DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from .mlp import MLPDiscriminator, MLPGenerator


def family(cfg: ModelConfig, spec: dict) -> str:
    """The concrete family: `auto` means MLP for vectors and DCGAN for images."""
    if cfg.name != "auto":
        return cfg.name
    return "dcgan" if spec["kind"] == "image" else "mlp"


def _image_size(spec: dict) -> tuple[int, int]:
    channels, height, width = spec["shape"]
    if height != width:
        raise UserError(f"DCGAN needs square images, the data is {height}×{width}", "set data.resolution")
    return channels, height


def _not_biggan(name: str) -> None:
    if name == "biggan":
        raise UserError("model.name=biggan builds class-conditional nets G(z, y) and D(x, y)",
                        "use variant=cgan or acgan with labelled data, or model.name=dcgan")


def _members(cfg: ModelConfig, name: str) -> None:
    """model.members > 1 needs nets whose every layer is per member: MLPs without batch norm or spectral norm."""
    if cfg.members == 1:
        return
    what = (f"model.name={name}" if name != "mlp" else "model.g_batchnorm" if cfg.g_batchnorm
            else "model.spectral_norm" if cfg.spectral_norm else "model.pack" if cfg.pack > 1 else None)
    if what is not None:
        raise UserError(f"model.members={cfg.members} trains independent MLPs, and {what} would share layers or "
                        "statistics between them", "set model.members=1, or use MLP nets without it")


def build_generator(cfg: ModelConfig, spec: dict, extra_inputs: int = 0) -> nn.Module:
    """A generator mapping (N, z_dim + extra_inputs) inputs (noise, then e.g. one-hot labels or codes) to samples."""
    name, shape, inputs = family(cfg, spec), tuple(spec["shape"]), cfg.z_dim + extra_inputs
    _not_biggan(name)
    _members(cfg, name)
    if name == "mlp":
        return MLPGenerator(inputs, shape, cfg.g_hidden, cfg.g_batchnorm, image=spec["kind"] == "image",
                            members=cfg.members)
    if spec["kind"] != "image":
        raise UserError(f"model.name={name} needs image data, but data is {spec['kind']}", "use model.name=mlp")
    channels, resolution = _image_size(spec)
    try:
        return DCGANGenerator(inputs, channels, resolution, cfg.width)
    except ValueError as exc:
        raise UserError(str(exc), "set data.resolution to 16, 32 or 64") from None


def build_discriminator(cfg: ModelConfig, spec: dict, extra_channels: int = 0) -> nn.Module:
    """A discriminator mapping samples to one logit each, (N,) — or one per pack of `model.pack` samples.

    `extra_channels` widens the input for conditioning concatenated to it (one channel or feature per class).
    """
    name, shape = family(cfg, spec), tuple(spec["shape"])
    _not_biggan(name)
    _members(cfg, name)
    in_shape = (shape[0] * cfg.pack + extra_channels, *shape[1:])
    if name == "mlp":
        net: nn.Module = MLPDiscriminator(in_shape, cfg.d_hidden, cfg.minibatch_std, cfg.members)
    else:
        _, resolution = _image_size(spec)
        net = DCGANDiscriminator(in_shape[0], resolution, cfg.width, cfg.d_batchnorm, cfg.minibatch_std)
    if cfg.spectral_norm:
        spectral_normalize(net)
    return Packed(net, cfg.pack) if cfg.pack > 1 else net


def build_biggan(cfg: ModelConfig, spec: dict, num_classes: int,
                 projection: bool = True) -> tuple[BigGANGenerator, BigGANDiscriminator]:
    """BigGAN's class-conditional G(z, y) and D(x, y) for image data with `num_classes` classes; with
    projection=False, D(x) ignores the class (for a variant that adds its own class head)."""
    if spec["kind"] != "image":
        raise UserError(f"model.name=biggan needs image data, but data is {spec['kind']}", "use model.name=mlp")
    channels, resolution = _image_size(spec)
    try:
        return (BigGANGenerator(cfg.z_dim, num_classes, channels, resolution, cfg.width, cfg.shared_dim,
                                cfg.attention),
                BigGANDiscriminator(channels, num_classes if projection else 0, resolution, cfg.width, cfg.attention))
    except ValueError as exc:
        raise UserError(str(exc), "see docs/biggan.md for the sizes BigGAN supports") from None


__all__ = ["build_biggan", "BigGANGenerator", "BigGANDiscriminator", "build_generator", "build_discriminator",
           "count_parameters", "dcgan_init", "spectral_normalize",
           "MinibatchStd", "Packed", "MLPGenerator", "ConcatConditionalD", "ConcatConditionalG", "HeadedD",
           "ProjectionD", "feature_shape",
           "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "DCGANEncoder"]
