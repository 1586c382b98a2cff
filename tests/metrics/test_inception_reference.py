"""gankit's FID Inception against an independent re-implementation of pytorch-fid's FIDInceptionV3, number for number.

pytorch-fid 0.3.0 and torch-fidelity 0.4.0 cannot be installed beside gankit's torch, so `Reference` writes their
network out from the published architecture (Szegedy et al. 2016, Inception-v3, with the changes of the 2015 TF FID
graph that pytorch-fid's FIDInceptionA/C/E_1/E_2 make): functional, with its own layer declarations, its own
BatchNorm arithmetic and its own TF-style average pooling, addressing weights by pytorch-fid's state-dict names.
Both networks get the same seeded random weights, scaled so activations stay O(1) through the 94 conv layers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gankit.metrics.inception import InceptionV3FID

Kernel = int | tuple[int, int]


class Reference:
    """pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)` forward, op by op.

    Each weight is drawn the first time its layer runs, with the shape this class declares (never gankit's), and
    every read is counted, so a test can check that each tensor is used exactly once.
    """

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.params: dict[str, Tensor] = {}
        self.uses: Counter[str] = Counter()

    def param(self, name: str, draw: Callable[[], Tensor]) -> Tensor:
        """The tensor `name`, drawn once, counted at every read."""
        if name not in self.params:
            self.params[name] = draw()
        self.uses[name] += 1
        return self.params[name]

    def normal(self, *shape: int, std: float) -> Tensor:
        return std * torch.randn(shape, generator=self.generator)

    def conv(self, x: Tensor, name: str, out_channels: int, kernel: Kernel, stride: int = 1,
             padding: Kernel = 0) -> Tensor:
        """BasicConv2d: bias-free conv, BatchNorm with running statistics and TF's eps 0.001, ReLU.

        He-scaled weights and BatchNorm near the identity keep activations O(1) through the 94 layers."""
        n, (kh, kw) = out_channels, (kernel, kernel) if isinstance(kernel, int) else kernel
        std = math.sqrt(2.0 / (x.shape[1] * kh * kw))
        weight = self.param(f"{name}.conv.weight", lambda: self.normal(n, x.shape[1], kh, kw, std=std))
        mean = self.param(f"{name}.bn.running_mean", lambda: self.normal(n, std=0.1))
        var = self.param(f"{name}.bn.running_var", lambda: self.normal(n, std=0.2).exp())
        gamma = self.param(f"{name}.bn.weight", lambda: 1 + self.normal(n, std=0.1))
        beta = self.param(f"{name}.bn.bias", lambda: self.normal(n, std=0.1))
        y = F.conv2d(x, weight, stride=stride, padding=padding)
        y = (y - mean[:, None, None]) * (gamma / torch.sqrt(var + 0.001))[:, None, None] + beta[:, None, None]
        return F.relu(y)

    def chain(self, x: Tensor, prefix: str, *layers: tuple) -> Tensor:
        """Convs one after another: (branch name, out channels, kernel[, stride[, padding]]) each."""
        for branch, *args in layers:
            x = self.conv(x, f"{prefix}.{branch}", *args)
        return x

    @staticmethod
    def tf_avg_pool(x: Tensor) -> Tensor:
        """3x3 stride-1 average over the window's cells inside the map only (TF 'SAME'): sum / number of cells."""
        count = F.avg_pool2d(torch.ones_like(x[:1, :1]), 3, stride=1, padding=1)  # cells inside / 9
        return F.avg_pool2d(x, 3, stride=1, padding=1) / count

    def block_a(self, x: Tensor, p: str, pool_features: int) -> Tensor:
        """FIDInceptionA (Mixed_5b-d)."""
        return torch.cat([
            self.chain(x, p, ("branch1x1", 64, 1)),
            self.chain(x, p, ("branch5x5_1", 48, 1), ("branch5x5_2", 64, 5, 1, 2)),
            self.chain(x, p, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3, 1, 1),
                       ("branch3x3dbl_3", 96, 3, 1, 1)),
            self.chain(self.tf_avg_pool(x), p, ("branch_pool", pool_features, 1)),
        ], dim=1)

    def block_b(self, x: Tensor, p: str) -> Tensor:
        """InceptionB (Mixed_6a), unchanged by pytorch-fid."""
        return torch.cat([
            self.chain(x, p, ("branch3x3", 384, 3, 2)),
            self.chain(x, p, ("branch3x3dbl_1", 64, 1), ("branch3x3dbl_2", 96, 3, 1, 1), ("branch3x3dbl_3", 96, 3, 2)),
            F.max_pool2d(x, 3, stride=2),
        ], dim=1)

    def block_c(self, x: Tensor, p: str, c7: int) -> Tensor:
        """FIDInceptionC (Mixed_6b-e)."""
        row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))  # (kernel, padding) of the factorised 7x7
        return torch.cat([
            self.chain(x, p, ("branch1x1", 192, 1)),
            self.chain(x, p, ("branch7x7_1", c7, 1), ("branch7x7_2", c7, row[0], 1, row[1]),
                       ("branch7x7_3", 192, col[0], 1, col[1])),
            self.chain(x, p, ("branch7x7dbl_1", c7, 1), ("branch7x7dbl_2", c7, col[0], 1, col[1]),
                       ("branch7x7dbl_3", c7, row[0], 1, row[1]), ("branch7x7dbl_4", c7, col[0], 1, col[1]),
                       ("branch7x7dbl_5", 192, row[0], 1, row[1])),
            self.chain(self.tf_avg_pool(x), p, ("branch_pool", 192, 1)),
        ], dim=1)

    def block_d(self, x: Tensor, p: str) -> Tensor:
        """InceptionD (Mixed_7a), unchanged by pytorch-fid."""
        return torch.cat([
            self.chain(x, p, ("branch3x3_1", 192, 1), ("branch3x3_2", 320, 3, 2)),
            self.chain(x, p, ("branch7x7x3_1", 192, 1), ("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
                       ("branch7x7x3_3", 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 3, 2)),
            F.max_pool2d(x, 3, stride=2),
        ], dim=1)

    def block_e(self, x: Tensor, p: str, pool: Callable[[Tensor], Tensor]) -> Tensor:
        """FIDInceptionE_1 (Mixed_7b, TF average pool) or FIDInceptionE_2 (Mixed_7c, max pool), as `pool` says."""
        stem = self.chain(x, p, ("branch3x3_1", 384, 1))
        dbl = self.chain(x, p, ("branch3x3dbl_1", 448, 1), ("branch3x3dbl_2", 384, 3, 1, 1))
        return torch.cat([
            self.chain(x, p, ("branch1x1", 320, 1)),
            self.chain(stem, p, ("branch3x3_2a", 384, (1, 3), 1, (0, 1))),
            self.chain(stem, p, ("branch3x3_2b", 384, (3, 1), 1, (1, 0))),
            self.chain(dbl, p, ("branch3x3dbl_3a", 384, (1, 3), 1, (0, 1))),
            self.chain(dbl, p, ("branch3x3dbl_3b", 384, (3, 1), 1, (1, 0))),
            self.chain(pool(x), p, ("branch_pool", 192, 1)),
        ], dim=1)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """[0, 1] images (N, 3, H, W) -> pool3 features (N, 2048) and fc logits without bias (N, 1008)."""
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # pytorch-fid's normalize_input, after the resize
        x = self.conv(x, "Conv2d_1a_3x3", 32, 3, stride=2)
        x = self.conv(x, "Conv2d_2a_3x3", 32, 3)
        x = self.conv(x, "Conv2d_2b_3x3", 64, 3, padding=1)
        x = F.max_pool2d(x, 3, stride=2)
        x = self.conv(x, "Conv2d_3b_1x1", 80, 1)
        x = self.conv(x, "Conv2d_4a_3x3", 192, 3)
        x = F.max_pool2d(x, 3, stride=2)
        for name, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = self.block_a(x, name, pool_features)
        x = self.block_b(x, "Mixed_6a")
        for name, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = self.block_c(x, name, c7)
        x = self.block_d(x, "Mixed_7a")
        x = self.block_e(x, "Mixed_7b", self.tf_avg_pool)
        x = self.block_e(x, "Mixed_7c", lambda t: F.max_pool2d(t, 3, stride=1, padding=1))
        pool3 = x.mean(dim=(2, 3))
        fc = self.param("fc.weight", lambda: self.normal(1008, 2048, std=1 / math.sqrt(2048)))
        return pool3, pool3 @ fc.T  # torch-fidelity's logits_unbiased: the IS uses no fc bias


def relative_error(actual: Tensor, expected: Tensor) -> float:
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def test_gankit_inception_matches_the_reference_forward() -> None:
    torch.manual_seed(1)
    ramp = torch.linspace(0, 1, 360).expand(3, 40, 360) * torch.tensor([1.0, 0.5, 0.0])[:, None, None]
    images = torch.stack([torch.rand(3, 40, 360), ramp])  # two unlike images, resized up (40) and down (360)
    reference = Reference(seed=0)
    with torch.no_grad():
        ref_features, ref_logits = reference.forward(images)

    net = InceptionV3FID()
    unused = {"fc.bias": torch.randn(1008)}  # in the state dict, never in the logits (a bias would move the IS)
    unused |= {k: torch.tensor(5) for k in net.state_dict() if k.endswith("num_batches_tracked")}  # not in inference
    assert set(reference.params).isdisjoint(unused)
    net.load_state_dict(reference.params | unused, strict=True)  # every name and shape the reference drew exists
    assert len(reference.params) == 94 * 5 + 1 and set(reference.uses.values()) == {1}  # each tensor read once
    with torch.no_grad():
        features, logits = net.eval()(2 * images - 1)  # gankit takes [-1, 1] images

    # the weights keep activations O(1) and the two images apart, so agreement at 1e-4 means something
    assert 0.05 < ref_features.abs().max().item() < 50 and (ref_features > 0).float().mean() > 0.3
    assert relative_error(ref_features[0], ref_features[1]) > 0.1
    assert ref_features.std(dim=1).min() > 0.1 * ref_features.mean(dim=1).max()
    assert relative_error(features, ref_features) <= 1e-4
    assert relative_error(logits, ref_logits) <= 1e-4
