"""Arrays from a .npz file: (N, D) vectors or images as (N, H, W), (N, C, H, W) or (N, H, W, C)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from .base import Dataset

MAX_CLASSES = 100_000  # labels index class embeddings, so they must be small non-negative integers


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a .npz, never unpickling (object arrays are refused)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path} does not exist", "give the path of a .npz file")
    if not zipfile.is_zipfile(p):
        raise UserError(f"{path} is not a readable .npz file (not a zip archive)", "save it with numpy.savez")
    try:
        with np.load(p, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except MemoryError:
        raise UserError(f"{path} is too large to load into memory") from None
    except Exception as exc:  # noqa: BLE001 - a damaged archive fails in zipfile, zlib or numpy with many types
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UserError(f"{path} holds object (pickled) arrays", "gankit only reads numeric arrays") from None
        raise UserError(f"{path} is not a readable .npz file: {type(exc).__name__}: {exc}") from None


def _as_images(arr: np.ndarray, where: str) -> torch.Tensor:
    """(N, H, W) | (N, C, H, W) | (N, H, W, C) with C in {1, 3} -> (N, C, H, W) float32 in [-1, 1]."""
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.shape[1] not in (1, 3):
        raise UserError(f"{where} has shape {arr.shape}: images need 1 or 3 channels", "use (N, C, H, W) or (N, H, W, C)")
    if arr.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(arr)).float() / 127.5 - 1
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    lo, hi = float(x.min()), float(x.max())
    if lo >= 0 and hi <= 1:
        return x * 2 - 1
    if lo >= -1 and hi <= 1:
        return x
    raise UserError(f"{where} values span [{lo:g}, {hi:g}]", "images must be uint8, floats in [0, 1] or in [-1, 1]")


def refuse_non_finite(arr: np.ndarray, where: str) -> None:
    """A UserError naming `where` (e.g. "x.npz['samples']") when the array holds NaN or infinite values."""
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise UserError(f"{where} contains NaN or infinite values", "clean the array first")


def finite_float32(arr: np.ndarray, where: str) -> np.ndarray:
    """A finite array of numbers as contiguous float32, refusing values beyond float32's range."""
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(values).all():
        raise UserError(f"{where} has values beyond float32's range (about ±3.4e38)", "rescale the data")
    return values


def npz_dataset(path: str | None, key: str | None = None, labels_key: str | None = None,
                resolution: int | None = None) -> Dataset:
    """A Dataset from a .npz: 2D arrays are vectors, 3D/4D arrays images; optional integer labels."""
    if not path:
        raise UserError("data.path is required for the npz dataset", "e.g. data.path=points.npz")
    arrays = read_npz(path)
    if not arrays:
        raise UserError(f"{path} holds no arrays")
    key = key or next(iter(arrays))
    if key not in arrays:
        raise UserError(f"{path} has no array '{key}'", f"it holds: {', '.join(arrays)}")
    arr, where = arrays[key], f"{path}['{key}']"
    if arr.dtype.kind not in "fiu" or arr.ndim not in (2, 3, 4) or 0 in arr.shape:
        raise UserError(f"{where} has shape {arr.shape} and dtype {arr.dtype}",
                        "expected numbers shaped (N, D) for vectors or (N, [C,] H, W[, C]) for images, none empty")
    refuse_non_finite(arr, where)
    if arr.ndim == 2:
        x, kind = torch.from_numpy(finite_float32(arr, where)), "vector"
    else:
        x, kind = _as_images(arr, where), "image"
        if resolution and x.shape[-1] != resolution:
            x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False)
    y, names = None, None
    if labels_key:
        if labels_key not in arrays:
            raise UserError(f"{path} has no array '{labels_key}'", f"it holds: {', '.join(arrays)}")
        lab = arrays[labels_key]
        if lab.shape != (len(x),) or lab.dtype.kind not in "iu" or (lab < 0).any() or lab.max() >= MAX_CLASSES:
            raise UserError(f"{path}['{labels_key}'] must be {len(x)} integers in [0, {MAX_CLASSES}), "
                            f"got shape {lab.shape} {lab.dtype}")
        y = torch.from_numpy(lab.astype(np.int64))
        names = [str(i) for i in range(int(lab.max()) + 1)]
    return Dataset(name="npz", kind=kind, x=x, y=y, class_names=names, info={"path": str(path), "key": key})
