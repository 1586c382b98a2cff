"""An invisible watermark in the generator's output stage, and its detector.

Spread spectrum with informed embedding (Cox et al. 1997; Miller, Cox & Bloom 2000): a secret key seeds a smooth
noise pattern p the size of the image. The detector high-passes an image's luminance and correlates it with the
high-passed pattern q, and with 128 decoy patterns of the same spectrum (orthogonal to q); the score is how many
decoy standard deviations the true correlation lies above the decoys' mean, so its null distribution is known
(Student t) on any kind of image. The embedder knows the image, so it adds exactly as much of p (the same amount to
every channel: luminance only, which JPEG keeps at full resolution) as lifts that score to `strength`.

Robust to JPEG re-encoding, rescaling and cropping (measured in benchmarks/watermark.py); not to an adversary who
holds the key, or who averages many samples to estimate p: the pattern is fixed per key.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy import stats
from torch import Tensor, nn

DECOYS = 128  # decoy patterns that calibrate each score
SMOOTH = 0.7  # blur (pixels) of the key's noise: energy in the middle frequencies JPEG and resizing keep
HIGHPASS = 1.5  # the detector removes what a blur of this width predicts: flat areas and gradients of the image
STEPS = 5  # embedding iterations: each corrects for what clipping to [-1, 1] took away
DECOY_SEED = 20241  # decoys are public: only the key's pattern is secret
MIN_SIDE = 8  # smallest image side the filters fit (the blurs reach 5 pixels)


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with reflected borders (H, W > 3σ)."""
    radius = math.ceil(3 * sigma)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = k / k.sum()
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    return F.conv2d(F.conv2d(x, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))


def highpass(luminance: Tensor) -> Tensor:
    """What the detector reads: (N, 1, H, W) minus its blur."""
    return luminance - _blur(luminance, HIGHPASS)


def _noise(seed: int, count: int, height: int, width: int) -> Tensor:
    """`count` smooth unit-variance noise patterns (count, 1, H, W) from one seed."""
    n = torch.randn(count, 1, height, width, generator=torch.Generator().manual_seed(seed))
    n = _blur(n, SMOOTH)
    return n / n.flatten(1).std(1).view(-1, 1, 1, 1)


def key_seed(key: str) -> int:
    """The pattern's seed: 63 bits of the key's sha256."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def fingerprint(key: str) -> str:
    """A short public name of a key (provenance shows it; it does not reveal the key)."""
    return hashlib.sha256(b"gankit-watermark:" + key.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=8)
def _filters(key: str, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """(pattern p (1, 1, H, W), unit q̂ = highpass(p)/|.| (H·W,), its norm, decoys (DECOYS, H·W) unit and ⟂ q̂)."""
    p = _noise(key_seed(key), 1, height, width)
    q = highpass(p).flatten()
    q_unit = q / q.norm()
    d = highpass(_noise(DECOY_SEED, DECOYS, height, width)).flatten(1)
    d = d - (d @ q_unit)[:, None] * q_unit[None]
    return p, torch.cat([q_unit[None], d / d.norm(dim=1, keepdim=True)]), q.norm()


def _scores(residual: Tensor, filters: Tensor) -> Tensor:
    """Scores of flattened residuals (N, H·W) against filters (1 + DECOYS, H·W): (true − decoy mean) / decoy sd."""
    c = residual @ filters.T
    decoys = c[:, 1:]
    return (c[:, 0] - decoys.mean(1)) / decoys.std(1).clamp_min(1e-12)


def p_value(score: Tensor | float, tests: int = 1) -> float:
    """Chance that an image without the mark scores at least `score` in the best of `tests` placements
    (Student t with DECOYS − 1 degrees of freedom, Bonferroni over placements)."""
    t = float(score) / math.sqrt(1 + 1 / DECOYS)
    return min(1.0, tests * float(stats.t.sf(t, DECOYS - 1)))


class Watermark(nn.Module):
    """The output stage that marks images (N, C, H, W) in [-1, 1] of one size with the key's pattern.

    `strength` is the score each image is lifted to (a mark-free image scores about N(0, 1)); higher survives more
    re-encoding and costs more PSNR. The key itself is not kept: only the pattern and the decoys, as buffers.
    """

    def __init__(self, key: str, height: int, width: int, strength: float) -> None:
        super().__init__()
        p, filters, q_norm = _filters(key, height, width)
        self.strength = strength
        self.register_buffer("pattern", p, persistent=False)
        self.register_buffer("filters", filters, persistent=False)
        self.register_buffer("q_norm", q_norm, persistent=False)

    def score(self, images: Tensor) -> Tensor:
        """Each image's score at this size and placement (N,)."""
        return _scores(highpass(images.float().mean(1, keepdim=True)).flatten(1), self.filters)

    def forward(self, images: Tensor) -> Tensor:
        amount = images.new_zeros(images.shape[0])
        for _ in range(STEPS):  # Newton steps on the score, which is linear in `amount` until clipping bites
            marked = (images + amount.view(-1, 1, 1, 1) * self.pattern).clamp(-1, 1)
            residual = highpass(marked.float().mean(1, keepdim=True)).flatten(1)
            decoy_sd = (residual @ self.filters[1:].T).std(1)
            amount = amount + (self.strength - _scores(residual, self.filters)) * decoy_sd / self.q_norm
        return (images + amount.view(-1, 1, 1, 1) * self.pattern).clamp(-1, 1)


@dataclass(frozen=True)
class Detection:
    """What the detector found in one image: its best score, where (how it was read), and the p-value of that
    score for an image without the mark (placements searched counted in)."""

    score: float
    how: str
    p_value: float

    def marked(self, fpr: float) -> bool:
        """Whether the image carries the mark at false-positive rate `fpr`."""
        return self.p_value < fpr


def detect(image: Tensor, key: str, height: int, width: int) -> Detection:
    """Look for the key's mark in one image (C, h, w) in [-1, 1] made at H×W: as it is (h, w = H, W), scaled back
    to H×W, or, when it is smaller, at every placement of a crop inside H×W."""
    luminance = image.float().mean(0, keepdim=True)[None]
    h, w = luminance.shape[-2:]
    _, filters, _ = _filters(key, height, width)
    scaled = luminance if (h, w) == (height, width) else \
        F.interpolate(luminance, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    best = Detection(float(_scores(highpass(scaled).flatten(1), filters)[0]), "as is" if (h, w) == (height, width)
                     else f"scaled {w}x{h} to {width}x{height}", 0.0)
    tests = 1
    if h <= height and w <= width and (h, w) != (height, width) and h >= MIN_SIDE and w >= MIN_SIDE:
        # a crop: slide the image's residual over every window of the full-size filters
        windows = filters.view(-1, 1, height, width)
        residual = highpass(luminance)  # (1, 1, h, w)
        c = F.conv2d(windows, residual).flatten(1)  # (1 + DECOYS, placements)
        norms = F.conv2d(windows**2, torch.ones_like(residual)).flatten(1).sqrt()
        c = c / norms.clamp_min(1e-12)  # each window's filters renormalised
        scores = (c[0] - c[1:].mean(0)) / c[1:].std(0).clamp_min(1e-12)
        tests += scores.numel()
        at = int(scores.argmax())
        if float(scores[at]) > best.score:
            dy, dx = divmod(at, width - w + 1)
            best = Detection(float(scores[at]), f"crop at ({dx}, {dy})", 0.0)
    return Detection(best.score, best.how, p_value(best.score, tests))
