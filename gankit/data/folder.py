"""Image folders (PNG/JPEG/...): resized on the short side, centre-cropped, labels from sub-folder names."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .base import Dataset

log = logging.getLogger("gankit")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _visible_files(root: Path) -> list[Path]:
    """Files under root, skipping hidden ones and hidden folders (.DS_Store, ._x.png, .ipynb_checkpoints/)."""
    return [p for p in root.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(root).parts) and p.is_file()]


def list_images(root: Path) -> list[Path]:
    """Files under root with an image suffix, sorted so the order (and so every seed) is reproducible."""
    return sorted(p for p in _visible_files(root) if p.suffix.lower() in IMAGE_SUFFIXES)


def open_image(path: Path, channels: int) -> Image.Image:
    """One image file as an L (channels 1) or RGB image at its own size: any mode converted, transparency on white."""
    with Image.open(path) as img:
        img.load()
        if img.mode.startswith("I"):  # 16/32-bit grey: PIL's convert would clip at 255 instead of scaling
            img = Image.fromarray((np.asarray(img, dtype=np.float64) / 257).clip(0, 255).round().astype(np.uint8))
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            img = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img.alpha_composite(rgba)  # transparent pixels become white rather than arbitrary colours
        return img.convert("L" if channels == 1 else "RGB")


def as_array(img: Image.Image) -> np.ndarray:
    """An L or RGB image as (channels, H, W) uint8."""
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def load_image(path: Path, resolution: int, channels: int) -> np.ndarray:
    """One image as (channels, resolution, resolution) uint8: any mode converted, short side resized, centre crop."""
    img = open_image(path, channels)
    w, h = img.size
    scale = resolution / min(w, h)
    new_w, new_h = max(resolution, round(w * scale)), max(resolution, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC, reducing_gap=3.0)
    left, top = (new_w - resolution) // 2, (new_h - resolution) // 2
    return as_array(img.crop((left, top, left + resolution, top + resolution)))


def image_folder(path: str | None, resolution: int = 32, channels: int = 3) -> Dataset:
    """Every readable image under `path`; unreadable files are skipped and counted in one warning."""
    if not path:
        raise UserError("data.path is required for the folder dataset", "e.g. data.path=my_images/")
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"data.path {path} is not a folder", "give a folder of images")
    visible = _visible_files(root)
    files = sorted(p for p in visible if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"data.path {path} holds no image files", f"expected {', '.join(sorted(IMAGE_SUFFIXES))}")
    if len(visible) > len(files):
        log.info("ignoring %d file(s) in %s without an image suffix", len(visible) - len(files), path)
    subdirs = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    labelled = bool(subdirs) and all(len(f.relative_to(root).parts) > 1 for f in files)
    images, labels, bad = [], [], []
    from rich.progress import track

    for f in track(files, description=f"reading {root.name}", transient=True, disable=len(files) < 500):
        try:
            images.append(load_image(f, resolution, channels))
        except Exception:  # noqa: BLE001 - decoders raise many types on malformed files; each such file is skipped
            bad.append(f)
            continue
        if labelled:
            labels.append(subdirs.index(f.relative_to(root).parts[0]))
    if bad:
        log.warning("skipped %d unreadable image file(s) in %s, e.g. %s", len(bad), path, bad[0].name)
    if not images:
        raise UserError(f"data.path {path}: none of the {len(files)} image files could be read", "check the files")
    x = torch.from_numpy(np.stack(images))
    y = torch.tensor(labels, dtype=torch.long) if labelled else None
    return Dataset(name="folder", kind="image", x=x, y=y, class_names=subdirs if labelled else None,
                   info={"path": str(root), "files": len(images), "skipped": len(bad)})
