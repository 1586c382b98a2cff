"""BigGAN (Brock et al. 2019) G(z, y) and D(x, y) for square images of side 16-256, class-conditional.

G: z is split into one chunk for the 4×4 input projection and one per residual up block (the hierarchical latent);
each block's conditional batch norms take gains and biases from a linear map of [shared class embedding ⊕ its
chunk]. D: residual down blocks, sum pooling, a linear head plus the projection ⟨embed(y), h⟩ (Miyato & Koyama 2018).
Both: spectral norm on every conv and linear layer, one SAGAN self-attention block at `attention` resolution,
orthogonal initialisation. Channels at resolution r are width · min(R / r, 4), so the image side has `width`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

MAX_MULTIPLIER = 4  # channels stop growing at 4·width (BigGAN's 32×32 nets use 4·ch throughout)


def _orthogonal_init(module: nn.Module) -> None:
    """BigGAN's `ortho` init: orthogonal conv/linear/embedding weights, zero biases (call before spectral_norm)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def resolutions(resolution: int) -> list[int]:
    """Block output resolutions of G, 4×4 excluded: 32 -> [8, 16, 32]."""
    levels = int(math.log2(resolution)) - 2
    if resolution != 4 * 2**levels or not 16 <= resolution <= 256:
        raise ValueError(f"BigGAN needs a power-of-two resolution in [16, 256], got {resolution}")
    return [8 * 2**i for i in range(levels)]


def channels(resolution: int, r: int, width: int) -> int:
    """Channels of both nets' feature maps at resolution r: `width` at the image side, doubling down to 4·width."""
    return width * min(resolution // r, MAX_MULTIPLIER)


def z_chunks(z_dim: int, blocks: int) -> list[int]:
    """Sizes of the hierarchical latent's chunks: one for the input projection, one per G block; they sum to z_dim.

    64 over 4 slots -> [16, 16, 16, 16]; 10 over 4 -> [3, 3, 2, 2]. Every chunk needs at least one component.
    """
    slots = blocks + 1
    if z_dim < slots:
        raise ValueError(f"BigGAN splits z into {slots} chunks (input + {blocks} blocks), so model.z_dim must be "
                         f"at least {slots}, got {z_dim}")
    return [z_dim // slots + (i < z_dim % slots) for i in range(slots)]


def check_attention(resolution: int, attention: int) -> None:
    """`attention` must be a resolution both nets compute at: G's block outputs 8..R and D's R/2..4, i.e. 8..R/2."""
    valid = [r for r in resolutions(resolution) if r < resolution]
    if attention and attention not in valid:
        raise ValueError(f"model.attention={attention}: at {resolution}×{resolution} both BigGAN nets have feature "
                         f"maps at {', '.join(map(str, valid))} only; choose one of those or 0 (no attention)")


class ConditionalBatchNorm(nn.Module):
    """BN without its own affine; gain 1 + W_γ c and bias W_β c from the block's condition c (N, cond_dim).

    (N, C, H, W) -> (N, C, H, W); every class (and every z chunk) gets its own scale and shift per channel.
    """

    def __init__(self, num_channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_channels, affine=False)
        self.gain, self.bias = nn.Linear(cond_dim, num_channels), nn.Linear(cond_dim, num_channels)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        gain, bias = 1 + self.gain(cond), self.bias(cond)  # (N, C) each
        return self.bn(x) * gain[:, :, None, None] + bias[:, :, None, None]


class SelfAttention(nn.Module):
    """SAGAN self-attention (Zhang et al. 2019) as in BigGAN: x + γ·o(attend(θ(x), φ(x), g(x))), γ starts at 0.

    Keys and values are max-pooled ×2, so a map of HW positions attends over HW/4. (N, C, H, W) -> same shape.
    """

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        key, value = max(1, num_channels // 8), max(1, num_channels // 2)
        self.theta, self.phi = nn.Conv2d(num_channels, key, 1, bias=False), nn.Conv2d(num_channels, key, 1, bias=False)
        self.g, self.o = nn.Conv2d(num_channels, value, 1, bias=False), nn.Conv2d(value, num_channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))  # starts as the identity: local features first, then long range

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        query = self.theta(x).flatten(2)  # (N, C/8, HW)
        key = F.max_pool2d(self.phi(x), 2).flatten(2)  # (N, C/8, HW/4)
        value = F.max_pool2d(self.g(x), 2).flatten(2)  # (N, C/2, HW/4)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (N, HW, HW/4): where each position looks
        out = (value @ attention.transpose(1, 2)).view(n, -1, h, w)  # (N, C/2, H, W)
        return x + self.gamma * self.o(out)


def upsample2(x: Tensor) -> Tensor:
    """Nearest-neighbour ×2 upsampling, (N, C, H, W) -> (N, C, 2H, 2W). F.interpolate, not an expand-and-reshape:
    its dedicated backward kernel makes a whole G forward + backward about 16 % faster on CPU."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class GBlock(nn.Module):
    """CBN → ReLU → upsample ×2 → conv3×3 → CBN → ReLU → conv3×3, plus conv1×1 → upsample on the skip path
    (a 1×1 conv commutes with nearest upsampling, so it runs at the lower resolution: same result, 4× cheaper).

    (N, C_in, H, W), cond (N, cond_dim) -> (N, C_out, 2H, 2W)
    """

    def __init__(self, c_in: int, c_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = ConditionalBatchNorm(c_in, cond_dim), ConditionalBatchNorm(c_out, cond_dim)
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        h = self.conv2(F.relu(self.bn2(self.conv1(upsample2(F.relu(self.bn1(x, cond)))), cond)))
        return h + upsample2(self.skip(x))


class DBlock(nn.Module):
    """(ReLU →) conv3×3 → ReLU → conv3×3 (→ avg-pool ×2), plus a conv1×1 (and pool) skip when the shape changes.

    The first block sees the image itself, so it skips the pre-activation and pools before its skip conv (BigGAN's
    "optimised" block). (N, C_in, H, W) -> (N, C_out, H/2, W/2), or (N, C_out, H, W) when `down` is False.
    """

    def __init__(self, c_in: int, c_out: int, down: bool = True, preactivation: bool = True) -> None:
        super().__init__()
        self.down, self.preactivation = down, preactivation
        self.conv1, self.conv2 = nn.Conv2d(c_in, c_out, 3, padding=1), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if down or c_in != c_out else None

    def _pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 2) if self.down else x

    def forward(self, x: Tensor) -> Tensor:
        h = self._pool(self.conv2(F.relu(self.conv1(F.relu(x) if self.preactivation else x))))
        if self.skip is None:
            return h + x
        skip = self._pool(self.skip(x)) if self.preactivation else self.skip(self._pool(x))
        return h + skip


class BigGANGenerator(nn.Module):
    """G(z (N, z_dim), y (N,) class indices) -> images (N, C, R, R) in [-1, 1]."""

    def __init__(self, z_dim: int, num_classes: int, out_channels: int, resolution: int, width: int = 64,
                 shared_dim: int = 128, attention: int = 16) -> None:
        super().__init__()
        sides = resolutions(resolution)
        check_attention(resolution, attention)
        self.z_dim, self.num_classes, self.attention_resolution = z_dim, num_classes, attention
        self.z_chunks = z_chunks(z_dim, len(sides))
        self.bottom = channels(resolution, 4, width)
        # one class embedding feeds every block's CBN; num_classes 0: the caller gives that vector itself (a text
        # condition), and it also feeds the 4×4 input projection, where the layout of the image is decided
        self.shared = nn.Embedding(num_classes, shared_dim) if num_classes else None
        inputs = self.z_chunks[0] + (0 if num_classes else shared_dim)
        self.linear = nn.Linear(inputs, self.bottom * 4 * 4)  # first chunk (and a given condition) -> (N, C, 4, 4)
        chans = [self.bottom] + [channels(resolution, r, width) for r in sides]
        self.blocks = nn.ModuleList(GBlock(c_in, c_out, shared_dim + chunk)
                                    for c_in, c_out, chunk in zip(chans, chans[1:], self.z_chunks[1:]))
        self.sides = sides
        self.attention = SelfAttention(channels(resolution, attention, width)) if attention else None
        self.out_bn = nn.BatchNorm2d(chans[-1])
        self.out_conv = nn.Conv2d(chans[-1], out_channels, 3, padding=1)
        _orthogonal_init(self)
        _spectral_normalize(self, skip=(self.shared,))

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        """y: class indices (N,), or with num_classes 0 the condition vectors (N, shared_dim) themselves."""
        first, *rest = torch.split(z, self.z_chunks, dim=1)  # the whole z (truncated or not) is used
        if self.shared is None:
            shared, first = y, torch.cat([first, y], dim=1)
        else:
            shared = self.shared(y)  # (N, shared_dim)
        h = self.linear(first).view(z.shape[0], self.bottom, 4, 4)  # not len(z): an export traces the batch size
        for block, side, chunk in zip(self.blocks, self.sides, rest):
            h = block(h, torch.cat([shared, chunk], dim=1))  # (N, C, side, side)
            if side == self.attention_resolution:
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class BigGANDiscriminator(nn.Module):
    """D(x (N, C, R, R), y (N,)) -> logits (N,): residual down blocks to 4×4, one more block, ReLU, sum pooling,
    then linear(h) + ⟨embed(y), h⟩ (the projection discriminator).

    With num_classes=0 there is no projection: D(x) = linear(h), and a class head can sit on `features` (ACGAN).
    """

    def __init__(self, in_channels: int, num_classes: int, resolution: int, width: int = 64,
                 attention: int = 16) -> None:
        super().__init__()
        inputs = resolutions(resolution)[::-1]  # down-block inputs: 32 -> [32, 16, 8]
        check_attention(resolution, attention)
        self.attention_resolution = attention
        chans = [in_channels] + [channels(resolution, r, width) for r in inputs]  # convs at r: G's width at r
        blocks = [DBlock(c_in, c_out, preactivation=i > 0) for i, (c_in, c_out) in enumerate(zip(chans, chans[1:]))]
        self.blocks = nn.ModuleList([*blocks, DBlock(chans[-1], chans[-1], down=False)])
        self.sides = [r // 2 for r in inputs] + [4]  # block outputs: 32 -> [16, 8, 4, 4]
        self.attention = SelfAttention(channels(resolution, 2 * attention, width)) if attention else None
        self.linear = nn.Linear(chans[-1], 1)
        self.embed = nn.Embedding(num_classes, chans[-1]) if num_classes else None
        _orthogonal_init(self)
        _spectral_normalize(self)

    def feature_map(self, x: Tensor) -> Tensor:
        """(N, C, 4, 4) last features after ReLU, before pooling (heads that need to know where, e.g. text's)."""
        h = x
        for block, side in zip(self.blocks, self.sides):
            h = block(h)
            if side == self.attention_resolution:
                h = self.attention(h)
        return F.relu(h)

    def features(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """(N, C) sum-pooled last features (what the heads see; also used for feature matching)."""
        return self.feature_map(x).sum(dim=(2, 3))

    def logits_from(self, h: Tensor) -> Tensor:
        """(N,) unconditional logits from `features` (N, C)."""
        return self.linear(h).flatten()

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.features(x)
        if self.embed is None:
            return self.logits_from(h)
        return self.logits_from(h) + (self.embed(y) * h).sum(1)


def _spectral_normalize(module: nn.Module, skip: tuple[nn.Module, ...] = ()) -> None:
    """Spectral norm on every conv, linear and embedding of `module` except `skip` (BigGAN's G keeps its shared
    embedding plain; D's projection embedding is normalised, like BigGAN's SNEmbedding)."""
    for name, child in list(module.named_children()):
        if any(child is s for s in skip):
            continue
        if isinstance(child, (nn.Conv2d, nn.Linear, nn.Embedding)):
            setattr(module, name, spectral_norm(child))
        else:
            _spectral_normalize(child, skip)
