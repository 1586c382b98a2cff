"""FID-compatible InceptionV3: the 2015 TensorFlow graph as ported to PyTorch by pytorch-fid.

FID and Inception Score values are only comparable across papers when they come from this exact network and its
weights, so the structure and the state-dict key names follow pytorch-fid's `FIDInceptionV3` one to one (including
its quirks: TensorFlow-style average pooling that ignores padding, and max pooling in the last block's pool branch).
Weights are never downloaded: the user converts pytorch-fid's release file once to safetensors and points at it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor, nn

from gankit.errors import UserError

WEIGHTS_ENV = "GANKIT_INCEPTION_WEIGHTS"
RELEASE_FILE = "pt_inception-2015-12-05-6726825d.pth"  # pytorch-fid's release asset
WEIGHTS_SOURCE = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{RELEASE_FILE}"
CONVERTED_FILE = Path(RELEASE_FILE).with_suffix(".safetensors").name  # what `gankit weights convert` writes
CONVERT_COMMAND = f"gankit weights convert {RELEASE_FILE}"
PICKLE_SUFFIXES = (".pth", ".pt", ".pkl", ".pickle", ".ckpt", ".bin")
INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_CLASSES = 1008  # the TF graph's 1008-way head (1000 ImageNet classes + 8 unused), kept for the Inception Score


class ConvBNReLU(nn.Module):
    """Bias-free conv, BatchNorm (eps=1e-3, as in the TF graph), ReLU; `.conv` / `.bn` match pytorch-fid's keys."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _chain(x: Tensor, *layers: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply `layers` one after another: one branch of an Inception block."""
    for layer in layers:
        x = layer(x)
    return x


def _pool_3x3(x: Tensor, kind: str) -> Tensor:
    """Stride-1 3x3 pooling of a pool branch, shape preserving.

    'avg' excludes the zero padding from the mean, as TensorFlow does (torch's default would include it);
    'max' is what the TF graph's last block uses instead of the paper's average pooling.
    """
    if kind == "max":
        return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pool branches; (N, C, 35, 35) -> (N, 224 + P, 35, 35)."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_channels, 64, 1)
        self.branch5x5_1 = ConvBNReLU(in_channels, 48, 1)
        self.branch5x5_2 = ConvBNReLU(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, padding=1)
        self.branch_pool = ConvBNReLU(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            self.branch1x1(x),  # 64
            _chain(x, self.branch5x5_1, self.branch5x5_2),  # 64
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),  # 96
            self.branch_pool(_pool_3x3(x, "avg")),  # pool_features
        ]
        return torch.cat(branches, dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): (N, 288, 35, 35) -> (N, 768, 17, 17)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBNReLU(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            self.branch3x3(x),  # 384
            _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2, self.branch3x3dbl_3),  # 96
            F.max_pool2d(x, kernel_size=3, stride=2),  # in_channels (288)
        ]
        return torch.cat(branches, dim=1)


class InceptionC(nn.Module):
    """17x17 block with factorised 7x7 convs (Mixed_6b-e): (N, 768, 17, 17) -> (N, 768, 17, 17)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = ConvBNReLU(in_channels, 192, 1)
        self.branch7x7_1 = ConvBNReLU(in_channels, c7, 1)
        self.branch7x7_2 = ConvBNReLU(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBNReLU(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBNReLU(in_channels, c7, 1)
        self.branch7x7dbl_2 = ConvBNReLU(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBNReLU(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBNReLU(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBNReLU(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBNReLU(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            self.branch1x1(x),
            _chain(x, self.branch7x7_1, self.branch7x7_2, self.branch7x7_3),
            _chain(
                x,
                self.branch7x7dbl_1,
                self.branch7x7dbl_2,
                self.branch7x7dbl_3,
                self.branch7x7dbl_4,
                self.branch7x7dbl_5,
            ),
            self.branch_pool(_pool_3x3(x, "avg")),
        ]
        return torch.cat(branches, dim=1)  # 4 x 192


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): (N, 768, 17, 17) -> (N, 1280, 8, 8)."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBNReLU(in_channels, 192, 1)
        self.branch3x3_2 = ConvBNReLU(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBNReLU(in_channels, 192, 1)
        self.branch7x7x3_2 = ConvBNReLU(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBNReLU(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBNReLU(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        branches = [
            _chain(x, self.branch3x3_1, self.branch3x3_2),  # 320
            _chain(x, self.branch7x7x3_1, self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4),  # 192
            F.max_pool2d(x, kernel_size=3, stride=2),  # in_channels (768)
        ]
        return torch.cat(branches, dim=1)


class InceptionE(nn.Module):
    """8x8 block with split 1x3 / 3x1 convs (Mixed_7b-c): (N, C, 8, 8) -> (N, 2048, 8, 8).

    `pool` is 'avg' for Mixed_7b and 'max' for Mixed_7c, as in the TF graph (pytorch-fid's FIDInceptionE_1 / _2).
    """

    def __init__(self, in_channels: int, pool: str) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = ConvBNReLU(in_channels, 320, 1)
        self.branch3x3_1 = ConvBNReLU(in_channels, 384, 1)
        self.branch3x3_2a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBNReLU(in_channels, 448, 1)
        self.branch3x3dbl_2 = ConvBNReLU(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBNReLU(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        branch3x3 = self.branch3x3_1(x)
        branch3x3dbl = _chain(x, self.branch3x3dbl_1, self.branch3x3dbl_2)
        branches = [
            self.branch1x1(x),  # 320
            self.branch3x3_2a(branch3x3),  # 384
            self.branch3x3_2b(branch3x3),  # 384
            self.branch3x3dbl_3a(branch3x3dbl),  # 384
            self.branch3x3dbl_3b(branch3x3dbl),  # 384
            self.branch_pool(_pool_3x3(x, self.pool)),  # 192
        ]
        return torch.cat(branches, dim=1)


class InceptionV3FID(nn.Module):
    """pytorch-fid's FIDInceptionV3 (no aux head): 2048-d pool3 features for FID/KID, 1008 bias-free logits for IS.

    The Inception Score's logits are pool3 @ fc.weightᵀ without fc.bias, as in the original IS code (its `w` only)
    and torch-fidelity's `logits_unbiased`; the bias is loaded with the weights but never used.
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBNReLU(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBNReLU(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBNReLU(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBNReLU(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBNReLU(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def prepare(self, x: Tensor) -> Tensor:
        """Images (N, 1|3, H, W) in [-1, 1] -> (N, 3, 299, 299) in [-1, 1] on the network's device and dtype.

        pytorch-fid resizes [0, 1] images and then maps them to [-1, 1]; bilinear resizing is affine-equivariant
        (weights sum to 1), so resizing gankit's [-1, 1] images directly gives the same tensor.
        """
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (N, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.to(device=self.fc.weight.device, dtype=self.fc.weight.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grayscale -> RGB
        return F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images (N, 1|3, H, W) in [-1, 1] -> (features (N, 2048), logits (N, 1008)) in one pass."""
        x = self.prepare(x)  # (N, 3, 299, 299)
        x = self.Conv2d_1a_3x3(x)  # (N, 32, 149, 149)
        x = self.Conv2d_2a_3x3(x)  # (N, 32, 147, 147)
        x = self.Conv2d_2b_3x3(x)  # (N, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 64, 73, 73)
        x = self.Conv2d_3b_1x1(x)  # (N, 80, 73, 73)
        x = self.Conv2d_4a_3x3(x)  # (N, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (N, 192, 35, 35)
        x = _chain(x, self.Mixed_5b, self.Mixed_5c, self.Mixed_5d)  # (N, 288, 35, 35)
        x = self.Mixed_6a(x)  # (N, 768, 17, 17)
        x = _chain(x, self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e)  # (N, 768, 17, 17)
        x = self.Mixed_7a(x)  # (N, 1280, 8, 8)
        x = _chain(x, self.Mixed_7b, self.Mixed_7c)  # (N, 2048, 8, 8)
        features = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 2048): "pool3", the FID features
        # No bias, as published IS values were computed; dropout before fc is an identity at inference.
        return features, F.linear(features, self.fc.weight)

    def features(self, x: Tensor) -> Tensor:
        """Images (N, 1|3, H, W) in [-1, 1] -> (N, 2048) pool3 features, as used by FID and KID."""
        return self(x)[0]

    def logits(self, x: Tensor) -> Tensor:
        """Images (N, 1|3, H, W) in [-1, 1] -> (N, 1008) class logits without the fc bias, as the Inception Score
        uses them."""
        return self(x)[1]


def _missing_weights_error() -> UserError:
    return UserError(
        "the FID Inception weights are needed: gankit never downloads them",
        hint=f"download {RELEASE_FILE} from pytorch-fid's GitHub releases ({WEIGHTS_SOURCE}), convert it once with "
        f"`{CONVERT_COMMAND}`, then pass --weights {CONVERTED_FILE} or `export {WEIGHTS_ENV}=$PWD/{CONVERTED_FILE}`",
    )


def resolve_weights(weights: str | Path | None) -> Path:
    """The weights file from the argument or $GANKIT_INCEPTION_WEIGHTS, checked to be an existing .safetensors."""
    if weights is None or str(weights) == "":
        weights = os.environ.get(WEIGHTS_ENV) or None
    if weights is None:
        raise _missing_weights_error()
    path = Path(weights).expanduser()
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise UserError(
            f"{path}: gankit never loads pickle-based files ({suffix}), because unpickling can run arbitrary code",
            hint=f"convert it once with `gankit weights convert {path}`, then pass {path.with_suffix('.safetensors')}",
        )
    if suffix != ".safetensors":
        raise UserError(f"{path}: expected a .safetensors file", hint=f"convert weights with `{CONVERT_COMMAND}`")
    if not path.is_file():
        raise UserError(f"{path}: no such file", hint=f"check --weights or ${WEIGHTS_ENV}")
    return path


def _few(items: list[str], n: int = 5) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def check_state_dict(state: Mapping[str, Tensor], path: Path) -> None:
    """Refuse, in one line naming `path`, a state dict unlike InceptionV3FID's in keys or shapes, or not finite."""
    with torch.device("meta"):  # names and shapes only, no memory
        expected = InceptionV3FID().state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    hint = f"expected pytorch-fid's {RELEASE_FILE} or its conversion by `{CONVERT_COMMAND}`"
    if missing or unexpected:
        problems = [f"{label} keys: {_few(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected))
                    if keys]
        raise UserError(f"{path}: not the FID Inception weights; " + "; ".join(problems), hint=hint)
    wrong = [f"{key} {tuple(state[key].shape)} instead of {tuple(value.shape)}"
             for key, value in expected.items() if state[key].shape != value.shape]
    if wrong:
        raise UserError(f"{path}: tensor shapes do not match the FID Inception network: {_few(wrong, 3)}", hint=hint)
    broken = [key for key, value in state.items() if not torch.isfinite(value).all()]
    if broken:
        raise UserError(f"{path}: non-finite values (NaN or inf) in {_few(broken, 3)}", hint=hint)


def load_inception(weights: str | Path | None = None) -> InceptionV3FID:
    """The FID Inception network with weights from `weights` or $GANKIT_INCEPTION_WEIGHTS, frozen, in eval mode.

    Only safetensors are read (no pickle); keys and shapes must match pytorch-fid's state dict exactly, values finite.
    """
    path = resolve_weights(weights)
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as err:
        raise UserError(
            f"{path}: not a readable safetensors file ({err})",
            hint=f"the file is damaged or not safetensors: convert {RELEASE_FILE} again with `{CONVERT_COMMAND}`",
        ) from err
    check_state_dict(state, path)
    model = InceptionV3FID()
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)
