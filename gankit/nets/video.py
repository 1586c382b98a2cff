"""MoCoGAN-style video nets (Tulyakov et al. 2018): a generator that splits content from motion, a 3D-conv video D.

G: a content code z_c, fixed for the whole clip, and motion codes z_m(t) from a GRU driven by fresh noise ε(t) each
frame; each frame is one shared image generator applied to [z_c, z_m(t)]: DCGAN's, or BigGAN's residual one whose
conditional batch norms all read the frame's latent; or (sprite) one object drawn from z_c per clip, moved in each
frame by a shift read from z_m(t). All randomness of a clip is one flat latent
z = [z_c | h_0 | ε(1) ... ε(T)], so a seed gives the same clip and the trainer's noise stays (N, z_dim).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .biggan import BigGANGenerator
from .blocks import MinibatchStd
from .dcgan import DCGANGenerator, _levels
from .text import compose


def clip_colours(content: int, outputs: int, width: int) -> nn.Sequential:
    """The small MLP that gives a clip its colours (before tanh) from the content part alone: the layered G's object
    and background, the sprite G's background."""
    return nn.Sequential(nn.Linear(content, 4 * width), nn.LeakyReLU(0.2), nn.Linear(4 * width, outputs))


class VideoGenerator(nn.Module):
    """z (N, z_dim) -> clips (N, T, C, R, R) in [-1, 1].

    `framewise=True` is the baseline without motion: every frame gets its own independent latent (content and
    motion parts alike), so it is T independent draws of an image GAN. `categories` > 0 adds a categorical content
    code: G(z, c) with c (N, categories) one-hot, joined to z_c (frame-wise: to every frame's latent), so it holds for
    the whole clip. `residual=True` draws each frame with BigGAN's G (spectral norm, residual blocks) whose input
    projection and every block's conditional batch norm read the whole frame latent (start 4 only).

    `layered=True` (LR-GAN's layers, as text-to-image's layered G): the image G draws only a mask per frame, and a
    small MLP gives the object's colour and the background's, one each per clip, from the content part alone; a
    frame is the object's colour where the mask is and the background's elsewhere. Colour then holds for the clip
    by construction, and what the frames must keep is the mask's shape. `coords=True` gives the DCGAN image G's
    upsampling convs the pixels' coordinates (CoordConv).

    `sprite=True` (a transformation-based G, as in ST-GAN's and LR-GAN's affine layers): the image G reads the
    content part alone and draws one object per clip, colour and opacity (C + 1 channels); a small MLP gives
    the clip's background colour, and a linear head on z_m(t) gives the frame's shift. Each frame is the object moved
    by its shift (bilinear resampling) over the background: motion is where the object is drawn, and what it is holds
    for the clip by construction (not with `framewise`, `layered`, `residual` or `coords`).
    """

    def __init__(self, frames: int, channels: int, resolution: int, content_dim: int = 32, motion_dim: int = 16,
                 noise_dim: int = 8, width: int = 32, framewise: bool = False, start: int = 4,
                 categories: int = 0, residual: bool = False, layered: bool = False, coords: bool = False,
                 sprite: bool = False) -> None:
        super().__init__()
        self.frames, self.content_dim, self.motion_dim, self.noise_dim = frames, content_dim, motion_dim, noise_dim
        self.framewise, self.categories, self.residual = framewise, categories, residual
        latent = content_dim + categories + motion_dim
        if residual and start != 4:
            raise ValueError(f"BigGAN's frame generator starts from a 4×4 map, not {start}×{start}")
        if residual and coords:
            raise ValueError("coordinate channels are for DCGAN's frame generator, not BigGAN's")
        if sprite and (framewise or layered or residual or coords):
            raise ValueError("the sprite G draws one object per clip with DCGAN's net; it takes no framewise, layered, "
                             "residual or coordinate options")
        drawn = 1 if layered else channels + 1 if sprite else channels  # a mask; a sprite's colour and opacity
        self.sprite = sprite
        if sprite:
            self.image = DCGANGenerator(content_dim + categories, drawn, resolution, width, start)
            self.ground = clip_colours(content_dim + categories, channels, width)
            self.shift = nn.Linear(motion_dim, 2)
        else:
            self.image = BigGANGenerator(latent, 0, drawn, resolution, width, latent, attention=0) if residual \
                else DCGANGenerator(latent, drawn, resolution, width, start, coords)
        self.colours = clip_colours(content_dim + categories, 2 * channels, width) if layered else None
        self.rnn = None if framewise else nn.GRUCell(noise_dim, motion_dim)

    @property
    def z_dim(self) -> int:
        per_frame = self.content_dim + self.motion_dim
        return self.frames * per_frame if self.framewise else self.content_dim + self.motion_dim + \
            self.frames * self.noise_dim

    def latents(self, z: Tensor, code: Tensor | None = None) -> Tensor:
        """Per-frame latents (N, T, content + motion): [z_c(, c), z_m(t)] with z_m(t) = GRU(ε(t), z_m(t-1)),
        z_m(0) = h_0."""
        n, t = z.shape[0], self.frames  # not len(z): an export traces the batch size
        if (code is None) != (not self.categories):
            raise ValueError(f"this generator takes a categorical code of {self.categories} values with z"
                             if self.categories else "this generator takes no categorical code")
        if self.framewise:  # the code, when there is one, is still the clip's
            frames = z.view(n, t, -1)
            return frames if code is None else torch.cat([frames, code.unsqueeze(1).expand(-1, t, -1)], dim=2)
        content, h = z[:, :self.content_dim], z[:, self.content_dim:self.content_dim + self.motion_dim]
        if code is not None:
            content = torch.cat([content, code], dim=1)
        noise = z[:, self.content_dim + self.motion_dim:].view(n, t, self.noise_dim)
        motion = []
        for step in range(t):  # (N, noise) -> (N, motion): the recurrent motion path
            h = self.rnn(noise[:, step], h)
            motion.append(h)
        steps = torch.stack(motion, dim=1)  # (N, T, motion)
        return torch.cat([content.unsqueeze(1).expand(-1, t, -1), steps], dim=2)

    def forward(self, z: Tensor, code: Tensor | None = None) -> Tensor:
        return self.clips(self.latents(z, code))

    def frames_at(self, z: Tensor, code: Tensor | None, t: Tensor) -> Tensor:
        """Frame t[i] of clip i (N, C, R, R), without drawing the clips' other frames: every frame's latent (the GRU
        is cheap), the image G on one per clip."""
        return self.clips(self.latents(z, code)[torch.arange(len(z), device=z.device), t].unsqueeze(1))[:, 0]

    def clips(self, per_frame: Tensor) -> Tensor:
        """Per-frame latents (N, K, d) -> frames (N, K, C, R, R)."""
        n, t, d = per_frame.shape
        if self.sprite:
            return self.place(per_frame)
        frames = self.draw(per_frame.reshape(n * t, d))
        return frames.view(n, t, *frames.shape[1:])

    def place(self, per_frame: Tensor) -> Tensor:
        """The sprite G: one object per clip from the content part, moved in each frame by the shift z_m(t) gives, over
        the clip's background colour. Shifts are in half-sides ([-1, 1] moves the canvas's centre to an edge).

        The geometry runs in float32 even under autocast (bf16 positions are off by up to a sixth of a pixel at 32
        px); the grid is the pixel centres minus the shift, built without affine_grid so ONNX needs only
        GridSample (opset 16)."""
        n, t, _ = per_frame.shape
        content, motion = per_frame[:, 0, :self.content_dim + self.categories], \
            per_frame[:, :, self.content_dim + self.categories:]
        drawn = self.image(content)  # (N, C + 1, R, R) in [-1, 1]
        side = drawn.shape[-1]
        with torch.autocast(drawn.device.type, enabled=False):
            drawn, shift = drawn.float(), torch.tanh(self.shift(motion.float()))  # shift: (N, T, 2) as (x, y)
            alpha = 0.5 * (drawn[:, -1:] + 1)
            layers = torch.cat([drawn[:, :-1] * alpha, alpha], dim=1)  # premultiplied: resampling blends edges right
            centres = (2 * torch.arange(side, device=drawn.device, dtype=drawn.dtype) + 1) / side - 1
            ys, xs = torch.meshgrid(centres, centres, indexing="ij")
            pixels = torch.stack([xs, ys], dim=-1)  # (R, R, 2): where each output pixel samples, unshifted
            grid = pixels[None, None] - shift[:, :, None, None]  # (N, T, R, R, 2): sampling at x - s moves by +s
            moved = F.grid_sample(layers, grid.view(n, t * side, side, 2), align_corners=False)  # (N, C+1, T·R, R)
            moved = moved.view(n, -1, t, side, side).transpose(1, 2)  # (N, T, C + 1, R, R)
            ground = torch.tanh(self.ground(content.float()))[:, None, :, None, None]
            return moved[:, :, :-1] + (1 - moved[:, :, -1:]) * ground

    def draw(self, flat: Tensor) -> Tensor:
        """Per-frame latents (M, d) -> frames (M, C, R, R): one shared image G (and, layered, the clip's colours);
        the sprite G draws per clip instead (`place`)."""
        frames = self.image(flat, flat) if self.residual else self.image(flat)
        if self.colours is not None:  # frames are masks (N·T, 1, R, R); the colours read the content part only
            content = torch.cat([flat[:, :self.content_dim], flat[:, self.content_dim + self.motion_dim:]], dim=1) \
                if self.framewise else flat[:, :self.content_dim + self.categories]
            thing, ground = torch.tanh(self.colours(content))[:, :, None, None].chunk(2, dim=1)
            frames = compose(0.5 * (frames + 1), thing, ground)
        return frames


class VideoDiscriminator(nn.Module):
    """clips (N, T, C, R, R) -> logits (N,): 3D convs (3 frames × 4 × 4 kernels) halving space and, while at least
    4 frames are left, time; batch norm after the first; then one conv over what is left of the clip (with the
    minibatch std as one more channel when asked)."""

    def __init__(self, frames: int, channels: int, resolution: int, width: int = 32, batchnorm: bool = True,
                 minibatch_std: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch_in, ch, t = channels, width, frames
        for level in range(_levels(resolution)):  # (N, c, t, s, s) -> (N, 2c, t/2, s/2, s/2)
            stride = 2 if t >= 4 else 1
            norm = [nn.BatchNorm3d(ch)] if batchnorm and level else []
            layers += [nn.Conv3d(ch_in, ch, (3, 4, 4), (stride, 2, 2), (1, 1, 1), bias=not norm), *norm,
                       nn.LeakyReLU(0.2, True)]
            t = (t - 1) // stride + 1
            ch_in, ch = ch, ch * 2
        self.body = nn.Sequential(*layers)
        self.mbstd = MinibatchStd() if minibatch_std else nn.Identity()
        self.head = nn.Conv3d(ch_in + int(minibatch_std), 1, (t, 4, 4), bias=False)  # (N, c, t, 4, 4) -> N logits
        for m in self.modules():  # DCGAN's initialisation, in 3D
            if isinstance(m, nn.Conv3d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """The last features (N, c, t, 4, 4) the head reads (a projection D reads them too)."""
        return self.mbstd(self.body(x.transpose(1, 2)))  # (N, T, C, H, W) -> (N, C, T, H, W)

    def logits_from(self, h: Tensor) -> Tensor:
        return self.head(h).flatten()

    def forward(self, x: Tensor) -> Tensor:
        return self.logits_from(self.features(x))
