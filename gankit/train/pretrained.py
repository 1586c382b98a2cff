"""Loading a trained generator for sampling, without the trainer: model/config.json + model/model.safetensors."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from torch import Tensor

from ..config import Config
from ..errors import UserError
from ..variants import Variant, build_variant
from . import checkpoint as ckpt

log = logging.getLogger("gankit")


class Generator:
    """A trained generator: `sample(n, seed=..., truncation=...)` returns samples in the data's layout."""

    def __init__(self, variant: Variant, config: Config, spec: dict, info: dict) -> None:
        self.variant, self.config, self.spec, self.info = variant.eval(), config, spec, info

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def device(self) -> torch.device:
        return self.variant.device

    def to(self, device: str | torch.device) -> Generator:
        self.variant.to(device)
        return self

    @property
    def class_names(self) -> list[str] | None:
        """Classes a class-conditional model can be asked for (None for unconditional models)."""
        return self.variant.class_names

    def label_indices(self, labels: int | str | Sequence[int | str] | Tensor, n: int) -> Tensor:
        """Class indices (n,) from one class or n classes, given by index or by name."""
        names = self.class_names
        if not names:
            raise UserError("this model is not class-conditional: it takes no class", "sample without --class")
        items = labels.tolist() if isinstance(labels, Tensor) else labels
        items = [items] * n if isinstance(items, (int, str)) else list(items)
        out = []
        for item in items:
            index = names.index(item) if isinstance(item, str) and item in names else item
            if isinstance(index, str) and index.isdigit():
                index = int(index)
            if not isinstance(index, int) or not 0 <= index < len(names):
                raise UserError(f"unknown class {item!r}", f"choose an index 0-{len(names) - 1} or one of: "
                                f"{', '.join(names[:20])}")
            out.append(index)
        if len(out) != n:
            raise UserError(f"got {len(out)} classes for {n} samples", "give one class, or one per sample")
        return torch.tensor(out, dtype=torch.long)

    def latents(self, n: int, seed: int | None = None, truncation: float = 1.0) -> Tensor:
        """The noise `sample(n, seed=seed)` starts from, (n, z_dim): for interpolation and editing."""
        if not 0 < truncation <= 1:
            raise UserError(f"truncation must be in (0, 1], got {truncation}", "1 means no truncation")
        return self.variant.noise(n, truncation=truncation, generator=_generator(seed))

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None, truncation: float = 1.0,
               labels: int | str | Sequence[int | str] | Tensor | None = None, codes: dict[str, float] | None = None,
               batch_size: int = 1024) -> Tensor:
        """n samples on the CPU: images (n, C, H, W) in [-1, 1] or vectors (n, D); the same seed gives the same samples.

        Class-conditional models take `labels` (one class or one per sample, by index or name; random if None);
        InfoGAN models take `codes` such as {"c0": 3, "c1": 0.5} (the rest random).
        """
        if n < 1:
            raise UserError(f"cannot sample {n} samples", "ask for at least 1")
        return self.generate(self.latents(n, seed, truncation), labels=labels, codes=codes, seed=seed,
                             batch_size=batch_size)

    @torch.no_grad()
    def generate(self, z: Tensor, labels: int | str | Sequence[int | str] | Tensor | None = None,
                 codes: dict[str, float] | None = None, seed: int | None = None, batch_size: int = 1024) -> Tensor:
        """Samples from given latents z (n, z_dim); random labels or codes come from `seed`."""
        n = len(z)
        label_index = self.label_indices(labels, n) if labels is not None else None
        gen = _generator(None if seed is None else seed + 1)  # conditions draw from their own stream
        chunks = []
        for start in range(0, n, batch_size):
            part_z = z[start : start + batch_size].to(self.device)
            part = None if label_index is None else label_index[start : start + len(part_z)].to(self.device)
            try:
                cond = self.variant.condition(len(part_z), generator=gen, labels=part, **(codes or {}))
            except ValueError as exc:
                raise UserError(str(exc)) from None
            chunks.append(self.variant.generate(len(part_z), z=part_z, cond=cond).cpu())
        return torch.cat(chunks)


def _generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with `seed`, or from the global RNG when None."""
    return torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**62, ()).item()))


def _read_model_dir(model_dir: Path) -> tuple[dict, dict[str, Tensor]]:
    try:
        info = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{model_dir}/config.json is unreadable: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("sha256", ""), str):
        raise UserError(f"{model_dir}/config.json is not a gankit model description")
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"{weights} is missing")
    return info, ckpt.load_tensors(weights, info.get("sha256"))


def _from_checkpoint(run_dir: Path) -> tuple[dict, dict[str, Tensor]]:
    """Fallback when model/ is missing or corrupt: the newest verified checkpoint's generator weights."""
    path, state, files = ckpt.latest_checkpoint(run_dir)
    try:
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise UserError(f"{run_dir}/config.yaml is unreadable: {exc}") from None
    model = files["model.safetensors"]
    ema = {k[4:]: v for k, v in model.items() if k.startswith("ema.")}
    info = {"config": cfg, "spec": state.get("spec"), "step": state["step"], "weights": "ema" if ema else "raw"}
    return info, ema or {k: v for k, v in model.items() if not k.startswith("ema.")}


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> Generator:
    """The generator of a run directory (or of its model/ folder), ready to `.sample(n)`."""
    run_dir = Path(run_dir)
    if run_dir.name == "model" and (run_dir / "config.json").is_file():
        run_dir = run_dir.parent
    if not run_dir.is_dir():
        problem = "is not a directory" if run_dir.exists() else "does not exist"
        raise UserError(f"{run_dir} {problem}", "give a run directory made by `gankit train`")
    model_dir = run_dir / "model"
    if (model_dir / "config.json").is_file():
        try:
            info, weights = _read_model_dir(model_dir)
        except UserError as exc:
            if not ckpt.list_checkpoints(run_dir):
                raise
            log.warning("%s; using the newest verified checkpoint instead", exc.message)
            info, weights = _from_checkpoint(run_dir)
    elif ckpt.list_checkpoints(run_dir) and (run_dir / "config.yaml").is_file():
        info, weights = _from_checkpoint(run_dir)
    else:
        ckpt.refuse_pickles(run_dir)
        raise UserError(f"{run_dir} is not a gankit run (no model/config.json)", "train one with `gankit train`")
    try:
        config = Config.model_validate(info["config"])
        spec = info["spec"]
        variant = build_variant(config, spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{run_dir}: saved model description is invalid: {exc}") from None
    missing = set(variant.generator_state()) - set(weights)
    if missing:
        raise UserError(f"{run_dir}: saved weights lack {len(missing)} generator tensors, e.g. {sorted(missing)[0]}")
    try:
        variant.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shapes that do not match the saved config
        raise UserError(f"{run_dir}: saved weights do not fit the saved model description",
                        str(exc).splitlines()[-1].strip()) from None
    return Generator(variant.to(device), config, spec, info)
