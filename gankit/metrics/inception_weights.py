"""The FID Inception weight file: convert pytorch-fid's release .pth to safetensors once, and verify a converted file.

Converting is the only time gankit reads a pickle-based file, and only one the user names: torch's restricted loader
(`weights_only=True`) builds tensors and plain containers and refuses every other object, so nothing in the file
runs. The output depends only on the input's bytes (its single metadata entry is the source's sha256), so the release
file always converts to the same file, and every protocol's `weights_sha256` then names the same weights.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ..errors import UserError
from .inception import RELEASE_FILE, WEIGHTS_SOURCE, check_state_dict, load_inception, resolve_weights

RELEASE_SHA256_PREFIX = "6726825d"  # torch.hub names release files by the start of their sha256
SOURCE_KEY = "source_sha256"  # the one metadata entry: several would be written in a varying order


@dataclass(frozen=True)
class WeightsFile:
    """A converted weights file, its sha256 and the sha256 of the .pth it was converted from (None: not recorded)."""

    path: Path
    sha256: str
    source_sha256: str | None

    @property
    def from_release(self) -> bool | None:
        """Whether the source was pytorch-fid's release file, judged by its sha256 prefix; None when not recorded."""
        return None if self.source_sha256 is None else self.source_sha256.startswith(RELEASE_SHA256_PREFIX)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _summary(err: Exception) -> str:
    """`Type: first line` of an exception, for a one-line message: torch's run over many lines."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0][:160]}" if lines else type(err).__name__


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The .pth state dict, loaded without running code and checked against InceptionV3FID key by key and by shape."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:  # the restricted unpickler met an object other than tensors and containers
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        raise UserError(
            f"{path}: refused: it pickles {found.group(1) if found else 'objects'} besides tensors, so it is not a "
            "plain state dict, and gankit never runs code from a file",
            hint=f"convert pytorch-fid's {RELEASE_FILE}, a plain state dict",
        ) from err
    except Exception as err:  # truncated, damaged or not a torch file at all
        raise UserError(f"{path}: cannot be read as a PyTorch file ({_summary(err)})",
                        hint=f"download {WEIGHTS_SOURCE} again") from err
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors, found {type(state).__name__}",
                        hint=f"convert pytorch-fid's {RELEASE_FILE}")
    for key in [key for key in state if key.endswith(".running_var")]:
        # files saved by old PyTorch have no BatchNorm step counters; they do not affect inference
        state.setdefault(key.removesuffix("running_var") + "num_batches_tracked", torch.tensor(0))
    check_state_dict(state, path)
    return {key: value.detach().clone().contiguous() for key, value in state.items()}  # own storage: safetensors rule


def _write_atomic(tensors: dict[str, Tensor], out: Path, metadata: dict[str, str]) -> None:
    """Write safetensors to a temp file beside `out`, then rename, so `out` is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def convert(src: Path, out: Path | None = None) -> WeightsFile:
    """Convert pytorch-fid's state dict `src` (.pth) to `out` (default: `src` with the suffix .safetensors)."""
    if src.suffix.lower() == ".safetensors":
        raise UserError(f"{src}: already safetensors, nothing to convert", hint=f"check it with `gankit weights "
                        f"verify {src}`")
    if not src.is_file():
        raise UserError(f"{src}: no such file", hint=f"download {WEIGHTS_SOURCE}")
    out = src.with_suffix(".safetensors") if out is None else out
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"{out}: the output name must end in .safetensors", hint="e.g. --out inception.safetensors")
    source_sha256 = sha256_of(src)
    _write_atomic(read_state_dict(src), out, {SOURCE_KEY: source_sha256})
    return WeightsFile(out, sha256_of(out), source_sha256)


def verify(weights: str | Path | None = None) -> WeightsFile:
    """Check a converted file (default: $GANKIT_INCEPTION_WEIGHTS) exactly as `gankit fid` loads it: readable, the
    network's keys and shapes, finite values; refuse it in one line otherwise."""
    path = resolve_weights(weights)
    load_inception(path)
    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    return WeightsFile(path, sha256_of(path), metadata.get(SOURCE_KEY))
