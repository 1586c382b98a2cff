"""`gankit export`: a trained generator as a TorchScript or ONNX file, to run without gankit.

The exported graph maps noise z (N, z_dim) — and, for conditional models, the resolved condition (class indices
(N,) int64 for class-conditional models, codes (N, K) float for InfoGAN, word ids (N, L) int64 for text-to-image
models) — to samples in the data's layout, the same
as `gankit.load(run).generate(...)` for the same inputs, watermark included where the model carries one. Sampling
options that are Python logic (truncation by redrawing, random labels) stay outside: draw z and the condition
yourself. A model that transforms inputs
(translators, upscalers) is exported as inputs (N, C, H, W) in [-1, 1] -> outputs; a two-way translator in its
default direction, A to B.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from ..errors import UserError
from ..io import atomic_path
from ..variants import Request, Variant
from .pretrained import Generator

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": (".pt", ".pth"), "onnx": (".onnx",)}  # what each format's files are called


class ExportedGenerator(nn.Module):
    """G's forward pass on (z[, condition]) as a plain module, through the generator's output stage (the watermark
    where the model carries one): what the exporters trace."""

    def __init__(self, variant: Variant, stage: nn.Module | None = None) -> None:
        super().__init__()
        self.variant, self.stage = variant, stage or nn.Identity()

    def forward(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.stage(self.variant.run_generator(Request(z.shape[0], z=z, cond=cond, prepared=True)))


class ExportedTranslator(ExportedGenerator):
    """G's forward pass on input images, for models that transform inputs (no noise)."""

    def forward(self, inputs: Tensor) -> Tensor:
        return self.stage(self.variant.run_generator(Request(inputs.shape[0], z=inputs.new_zeros(inputs.shape[0], 0),
                                                             cond=inputs, prepared=True)))


def takes_inputs(gen: Generator) -> bool:
    """A model whose inputs replace the noise (translators, upscalers); a text-to-image model's word ids go beside
    its noise, as its condition."""
    return "inputs" in gen.sampling and not gen.variant.z_dim


def example_inputs(gen: Generator, n: int = 2, seed: int = 0) -> tuple[Tensor, ...]:
    """(z,) or (z, condition) for n samples, drawn like `sample(n, seed=seed)` draws them; (inputs,) of the data's
    shape for a model that transforms inputs."""
    if takes_inputs(gen):
        return (torch.rand(n, *gen.spec["shape"], generator=torch.Generator().manual_seed(seed)) * 2 - 1,)
    z = gen.latents(n, seed)
    request = gen.variant.prepare(Request(n, z=z, generator=torch.Generator().manual_seed(seed + 1)))
    return (request.z,) if request.cond is None else (request.z, request.cond)


def export(gen: Generator, fmt: str, out: str | Path) -> Path:
    """Write the generator as `fmt` (torchscript or onnx) to `out`; returns the path."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format '{fmt}'", f"choose one of: {', '.join(FORMATS)}")
    if Path(out).suffix.lower() not in SUFFIXES[fmt]:
        other = [f for f in FORMATS if Path(out).suffix.lower() in SUFFIXES[f]]
        raise UserError(f"{out}: a {fmt} file is named {' or '.join('FILE' + s for s in SUFFIXES[fmt])}",
                        f"give --out FILE{SUFFIXES[fmt][0]}" + (f", or --format {other[0]}" if other else ""))
    if Path(out).is_dir():
        raise UserError(f"cannot write {out}: it is a folder", "give a file name")
    if not gen.variant.one_pass:
        raise UserError(f"a {gen.variant.name} model draws its samples step by step, which an export of one forward "
                        "pass cannot hold", "sample it with gankit sample or gankit.load(RUN).sample(n)")
    wrapper = ExportedTranslator if takes_inputs(gen) else ExportedGenerator
    module = wrapper(_folded(gen.variant), gen.watermark).cpu().eval()  # eval: exporters restore the mode they found
    inputs = example_inputs(gen)
    out = Path(out)
    with torch.no_grad(), atomic_path(out) as tmp:
        if fmt == "torchscript":
            with warnings.catch_warnings():  # tracing notes Python ints it records as constants; none feed shapes
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                torch.jit.save(torch.jit.trace(module, inputs), str(tmp))
        else:
            _onnx(module, inputs, tmp, ["inputs"] if takes_inputs(gen) else ["z", "condition"][: len(inputs)])
    return out


def _folded(variant: Variant) -> Variant:
    """A copy of the variant whose parametrized weights (spectral norm) are plain tensors of their current value:
    in eval mode they hold still anyway, and ONNX has no operator for torch's power-iteration step (vdot)."""
    folded = copy.deepcopy(variant)
    for module in folded.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return folded


def _onnx(module: nn.Module, inputs: tuple[Tensor, ...], path: Path, names: list[str]) -> None:
    if importlib.util.find_spec("onnx") is None:
        raise UserError("ONNX export needs the onnx package", "pip install 'gankit[onnx]' (or: pip install onnx)")
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its successor; the file is the same
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, inputs, str(path), input_names=names, output_names=["samples"], dynamo=False,
                              dynamic_axes={name: {0: "batch"} for name in [*names, "samples"]})
        except torch.onnx.errors.OnnxExporterError as exc:  # an op or shape ONNX cannot express (a packed GRU's)
            first = str(exc).strip().splitlines()[0].split(" [Caused by")[0]
            raise UserError(f"torch's ONNX exporter cannot write this model: {first}",
                            "export it as TorchScript instead (--format torchscript)") from None
