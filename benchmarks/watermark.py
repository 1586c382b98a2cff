"""How invisible is the watermark, and what survives JPEG, rescaling and cropping?

Images of each source pass the generator's output stage (`gankit.nets.watermark.Watermark`, as `watermark.key`
adds it) at several strengths and are saved as 8-bit images; each attack is applied, and `gankit watermark`'s
detector decides at a false-positive rate of 1e-4. Reported: PSNR of marked against unmarked images, the share of
marked images found after each attack (TPR) and the share of unmarked ones flagged (FPR, over the same attacks).

Sources: samples of a DCGAN trained on the 16×16 digits (here, or `--runs`), and 32×32 procedural shapes (real
images marked by the same stage: what the mark costs and keeps on a 32-pixel model's images, whose content it
depends on, not on the weights).

    python benchmarks/watermark.py                 # digits-dcgan at its preset length, 500 images per source
    python benchmarks/watermark.py --runs RUN ...  # trained image runs instead of the digits model
    python benchmarks/watermark.py --quick         # 300 training steps, 100 images
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import gankit
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.data.base import as_float
from gankit.nets.watermark import Watermark, detect
from gankit.train import Trainer

KEY = "benchmark key"
FPR = 1e-4
STRENGTHS = (4.0, 8.0, 12.0)


def as_8bit(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1) * 127.5).round().clamp(0, 255) / 127.5 - 1


def jpeg(quality: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def attack(image: torch.Tensor) -> torch.Tensor:
        arr = ((image + 1) * 127.5).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(buf, "JPEG", quality=quality)
        out = np.asarray(Image.open(buf), dtype=np.float32)
        out = out[..., None] if out.ndim == 2 else out
        return torch.from_numpy(out.copy()).permute(2, 0, 1) / 127.5 - 1
    return attack


def resize(factor: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def attack(image: torch.Tensor) -> torch.Tensor:
        size = [max(1, round(s * factor)) for s in image.shape[-2:]]
        return as_8bit(F.interpolate(image[None], size=size, mode="bilinear", antialias=True)[0])
    return attack


def crop(keep: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def attack(image: torch.Tensor) -> torch.Tensor:  # an off-centre piece, keep × each side
        h, w = image.shape[-2:]
        ch, cw = round(h * keep), round(w * keep)
        top, left = (h - ch) // 3, 2 * (w - cw) // 3
        return image[:, top: top + ch, left: left + cw]
    return attack


ATTACKS = {"none": lambda x: x, "jpeg 90": jpeg(90), "jpeg 70": jpeg(70), "jpeg 50": jpeg(50),
           "resize 1.5": resize(1.5), "resize 0.75": resize(0.75), "resize 0.5": resize(0.5),
           "crop 0.9": crop(0.9), "crop 0.75": crop(0.75)}


def found_share(images: torch.Tensor, attack: Callable, height: int, width: int) -> float:
    return float(np.mean([detect(attack(x), KEY, height, width).marked(FPR) for x in images]))


def measure(name: str, clean: torch.Tensor) -> list[dict]:
    """Rows of (source, strength, PSNR, TPR per attack); FPR per attack on the unmarked images in the first row."""
    h, w = clean.shape[-2:]
    clean = as_8bit(clean)
    rows = [{"source": name, "strength": 0.0, "psnr_db": float("inf"),
             **{a: found_share(clean, attack, h, w) for a, attack in ATTACKS.items()}}]  # the FPR row
    for strength in STRENGTHS:
        marked = as_8bit(Watermark(KEY, h, w, strength)(clean))
        psnr = float(10 * torch.log10(4 / (marked - clean).pow(2).mean()))
        rows.append({"source": name, "strength": strength, "psnr_db": round(psnr, 1),
                     **{a: found_share(marked, attack, h, w) for a, attack in ATTACKS.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, help="trained image runs (default: train digits-dcgan)")
    parser.add_argument("--quick", action="store_true", help="300 training steps and 100 images per source")
    parser.add_argument("--n", type=int, help="images per source (default 500, quick 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.n or (100 if args.quick else 500)
    start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs
        if not runs:
            run = Path(tmp) / "digits-dcgan"
            overrides = [f"seed={args.seed}", "train.sample_every=0"] + (["train.steps=300"] if args.quick else [])
            Trainer(gankit.load_config("digits-dcgan", overrides), run, progress=False).fit()
            runs = [run]
        for run in runs:
            rows += measure(f"{run.name} samples", gankit.load(run).sample(n, seed=args.seed + 1))
    shapes = load_dataset(DataConfig(name="shapes", resolution=32, n=n), args.seed)
    rows += measure("shapes 32px", as_float(shapes.x).float())
    print(f"watermark at FPR {FPR:g}: share of images flagged ({n} per source; strength 0 = unmarked images, "
          f"so its row is the false-positive rate)")
    print(f"{'source':<22} {'strength':>8} {'PSNR dB':>8} " + " ".join(f"{a:>11}" for a in ATTACKS))
    for r in rows:
        print(f"{r['source']:<22} {r['strength']:>8.0f} {r['psnr_db']:>8.1f} "
              + " ".join(f"{r[a]:>11.2f}" for a in ATTACKS))
    print(json.dumps({"benchmark": "watermark", "fpr_target": FPR, "n": n, "quick": args.quick,
                      "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
                      "seconds": round(time.perf_counter() - start, 1),
                      "rows": [{**r, "psnr_db": None if r["strength"] == 0 else r["psnr_db"]} for r in rows]}))


if __name__ == "__main__":
    main()
