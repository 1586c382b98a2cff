"""Convert pytorch-fid's Inception weights (.pth) to the .safetensors file gankit's `inception` extractor reads.

A deliberate one-time step on a file the user chose: it reads the .pth with torch's restricted loader
(`weights_only=True`, which refuses to build arbitrary objects), checks every key and shape against gankit's
InceptionV3FID, and writes safetensors atomically, so gankit itself never has to unpickle anything.

    python scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth inception-fid.safetensors
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout: import the checkout's gankit

from gankit.errors import UserError  # noqa: E402
from gankit.metrics.inception import WEIGHTS_ENV, WEIGHTS_SOURCE, InceptionV3FID  # noqa: E402

RELEASE_SHA256_PREFIX = "6726825d"  # torch.hub names release files by their sha256 prefix


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The .pth state dict, loaded without running code, checked against InceptionV3FID key by key and by shape."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # restricted unpickler refusals, truncated or non-torch files
        raise UserError(f"{path}: cannot be read as a plain PyTorch state dict ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors (pytorch-fid's {Path(WEIGHTS_SOURCE).name})")
    expected = InceptionV3FID().state_dict()
    for key, value in expected.items():
        # files saved by old PyTorch have no BatchNorm step counters; they do not affect inference
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise UserError(
            f"{path}: keys do not match the FID Inception network: "
            f"missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)})",
            hint=f"expected pytorch-fid's {WEIGHTS_SOURCE}",
        )
    wrong = [k for k, v in expected.items() if state[k].shape != v.shape]
    if wrong:
        raise UserError(f"{path}: tensor shapes differ from the FID Inception network for {wrong[:5]}")
    return {key: state[key].detach().clone().contiguous() for key in expected}  # own storage each: safetensors rule


def write_atomic(tensors: dict[str, torch.Tensor], out: Path, metadata: dict[str, str]) -> None:
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


def convert(src: Path, out: Path) -> str:
    """Convert `src` (.pth) to `out` (.safetensors); returns the output's sha256."""
    if not src.is_file():
        raise UserError(f"{src}: no such file", hint=f"download {WEIGHTS_SOURCE}")
    if out.suffix.lower() != ".safetensors":
        raise UserError(f"{out}: the output name must end in .safetensors")
    source_sha256 = sha256_of(src)
    tensors = read_state_dict(src)
    write_atomic(tensors, out, {"format": "pt", "source": src.name, "source_sha256": source_sha256})
    if not source_sha256.startswith(RELEASE_SHA256_PREFIX):
        print(
            f"note: {src.name} is not pytorch-fid's release file (sha256 {source_sha256[:8]}..., expected "
            f"{RELEASE_SHA256_PREFIX}...): FID values from it are not comparable to published ones",
            file=sys.stderr,
        )
    return sha256_of(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert pytorch-fid's FID Inception weights (.pth) to safetensors for gankit.",
        epilog=f"weights:\n  {WEIGHTS_SOURCE}\nthen pass OUT.safetensors with --weights or ${WEIGHTS_ENV}",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the URL on one line
    )
    parser.add_argument("src", type=Path, metavar="IN.pth", help="pytorch-fid state dict (.pth)")
    parser.add_argument("out", type=Path, metavar="OUT.safetensors", help="where to write the safetensors file")
    args = parser.parse_args(argv)
    try:
        digest = convert(args.src, args.out)
    except UserError as err:
        print(f"error: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"hint: {err.hint}", file=sys.stderr)
        return err.exit_code
    print(f"wrote {args.out}")
    print(f"sha256 {digest}")
    print(f"use it with --weights {args.out} or {WEIGHTS_ENV}={args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
