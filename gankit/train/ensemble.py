"""Split an ensemble run (`model.members` > 1) into one ordinary run per member.

An ensemble trains independent G/D pairs side by side (gankit.nets.mlp); its samples mix the members, so sampling
and evaluation work on the members' own runs: each gets the member's slice of every ensemble tensor of the newest
checkpoint (weights, EMA weights, Adam moments), a config with `model.members=1` and its share of the batch, and an
exported model/ — sampled, evaluated, refined and resumed like a run trained alone.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch import Tensor

from ..config import to_yaml
from ..errors import UserError
from ..io import write_bytes
from ..nets.mlp import EnsembleLinear
from ..variants import build_variant, resolve
from . import checkpoint as ckpt
from .federated import make_trainer


def split_members(run_dir: str | Path, out: str | Path) -> list[Path]:
    """OUT/member-0, OUT/member-1, ...: one run per member of the ensemble run in `run_dir`, from its newest
    checkpoint. OUT must not exist yet or be empty; it appears whole or not at all."""
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a gankit run (no config.yaml)", "give a run directory made by `gankit train`")
    cfg = resolve(str(run_dir / "config.yaml"))[0]
    members = cfg.model.members
    if members == 1:
        raise UserError(f"{run_dir} trains one model (model.members=1): there is nothing to split",
                        "sample or evaluate the run itself")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder", "give a new folder for the members")
    path, state, files = ckpt.latest_checkpoint(run_dir)
    variant = build_variant(cfg, state["spec"])
    stacked = {f"{name}.{p}" for name, m in variant.named_modules() if isinstance(m, EnsembleLinear)
               for p in ("weight", "bias")}
    # optimizer tensors are stored as GROUP.INDEX.KEY, INDEX counting the group's parameters in order
    names = {id(p): n for n, p in variant.named_parameters()}
    optim_stacked = {group: {i for i, p in enumerate(g.parameters()) if names[id(p)] in stacked}
                     for group, g in variant.groups.items()}

    def member_model(e: int) -> dict[str, Tensor]:
        return {k: v[e].clone() if k.removeprefix("ema.") in stacked else v
                for k, v in files["model.safetensors"].items()}

    def member_optim(e: int) -> dict[str, Tensor]:
        def sliced(key: str) -> bool:
            group, index, _ = key.split(".", 2)
            return int(index) in optim_stacked.get(group, ()) and files["optim.safetensors"][key].dim() > 0
        return {k: v[e].clone() if sliced(k) else v for k, v in files["optim.safetensors"].items()}

    alone = resolve(str(run_dir / "config.yaml"), ["model.members=1",
                                                   f"train.batch_size={cfg.train.batch_size // members}"])[0]
    staging = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        for e in range(members):
            member_cfg = alone.model_copy(update={
                "description": f"member {e} of the {members}-member ensemble run {run_dir.name} ({path.name})"})
            target = staging / f"member-{e}"
            target.mkdir(parents=True)
            write_bytes(target / "config.yaml", to_yaml(member_cfg).encode())
            ckpt.save_checkpoint(target, state["step"], {"model.safetensors": member_model(e),
                                                         "optim.safetensors": member_optim(e)},
                                 {k: v for k, v in state.items() if k not in ("format", "step", "files", "guard")})
            make_trainer(member_cfg, target, resume=True, progress=False).export()  # model/, as training writes it
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / f"member-{e}" for e in range(members)]
