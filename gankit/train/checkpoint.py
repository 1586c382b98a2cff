"""Checkpoints as safetensors + JSON, written atomically, verified by checksum on load; never pickle.

    checkpoints/step-N/model.safetensors   variant weights (+ "ema." entries)
    checkpoints/step-N/optim.safetensors   optimizer tensors; the rest of their state is in state.json
    checkpoints/step-N/state.json          step, RNG states, data cursor, ... and the sha256 of each file (written last)

A checkpoint directory appears under its final name only once complete (temp directory + rename), so a
crash at any moment leaves either the previous checkpoint or the new one. What a killed save leaves behind
(`.tmp-step-N-PID`, `.old-step-N-PID`, `.trash-step-N-PID`) is repaired or removed by the next save; reading never
changes the directory, so sampling from a run that is still training is safe.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..errors import UserError
from ..io import DISK_FULL, write_json

log = logging.getLogger("gankit")
FORMAT = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
_STEP = re.compile(r"step-(\d+)")
_LEFTOVER = re.compile(r"\.(tmp|old|trash)-step-(\d+)-(\d+)")  # kind, step, pid of the process that made it


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    """safetensors needs contiguous CPU tensors that share no storage; copy the ones that would."""
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        if v.untyped_storage().data_ptr() in seen:
            v = v.clone()
        seen.add(v.untyped_storage().data_ptr())
        out[k] = v
    save_file(out, str(path))


def load_tensors(path: Path, expected_sha: str | None = None) -> dict[str, Tensor]:
    """Tensors of a safetensors file; a checksum mismatch or an unreadable file is a UserError."""
    try:
        if expected_sha is not None and sha256(path) != expected_sha:
            raise UserError(f"{path} is corrupt (checksum mismatch)", "it was truncated or changed after saving")
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, MemoryError) as exc:
        raise UserError(f"{path} is not a readable safetensors file: {exc}") from None


# ------------------------------------------------------------------------------------------- optimizer state


def optimizer_to_files(optimizers: dict[str, torch.optim.Optimizer]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split optimizer state dicts into tensors (for safetensors) and JSON-safe metadata."""
    return state_dicts_to_files({group: opt.state_dict() for group, opt in optimizers.items()})


def state_dicts_to_files(state_dicts: dict[str, dict[str, Any]]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer state dicts by group (live ones, or copies such as the NaN guard's snapshot) as tensors named
    GROUP.INDEX.KEY and JSON-safe metadata."""
    tensors: dict[str, Tensor] = {}
    meta: dict[str, Any] = {}
    for group, sd in state_dicts.items():
        extra: dict[str, dict[str, Any]] = {}
        for pid, entry in sd["state"].items():
            for key, value in entry.items():
                if isinstance(value, Tensor):
                    tensors[f"{group}.{pid}.{key}"] = value
                else:
                    extra.setdefault(str(pid), {})[key] = value
        meta[group] = {"param_groups": sd["param_groups"], "extra": extra}
    return tensors, meta


def state_dicts_from_files(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Inverse of state_dicts_to_files: an optimizer state dict per group."""
    states: dict[str, dict[int, dict[str, Any]]] = {group: {} for group in meta}
    for name, value in tensors.items():
        group, pid, key = name.split(".", 2)
        if group in states:
            states[group].setdefault(int(pid), {})[key] = value
    for group, entry in meta.items():
        for pid, extra in entry["extra"].items():
            states[group].setdefault(int(pid), {}).update(extra)
    return {group: {"state": states[group], "param_groups": entry["param_groups"]} for group, entry in meta.items()}


def optimizer_from_files(optimizers: dict[str, torch.optim.Optimizer], tensors: dict[str, Tensor],
                         meta: dict[str, Any]) -> None:
    """Inverse of optimizer_to_files: load each optimizer's state exactly. A group the checkpoint does not know (a
    variant that gained one since) starts fresh."""
    state_dicts = state_dicts_from_files(tensors, meta)
    for group, opt in optimizers.items():
        if group not in state_dicts:
            log.warning("the checkpoint has no optimizer state for group %s: it starts fresh", group)
            continue
        opt.load_state_dict(state_dicts[group])
        match_layouts(opt)


def match_layouts(opt: torch.optim.Optimizer) -> None:
    """Give per-parameter state the memory layout of its parameter (files hold it contiguous): fused optimizers
    walk a parameter and its moments as flat memory, so a channels-last weight needs channels-last moments."""
    for group in opt.param_groups:
        for p in group["params"]:
            for key, value in opt.state.get(p, {}).items():
                if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                    laid = torch.empty_strided(p.shape, p.stride(), dtype=value.dtype, device=value.device)
                    opt.state[p][key] = laid.copy_(value)


# ------------------------------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Torch RNG states (CPU and every CUDA device) as base64 strings for state.json."""
    enc = lambda t: base64.b64encode(t.numpy().tobytes()).decode()  # noqa: E731
    state = {"torch": enc(torch.get_rng_state())}
    if torch.cuda.is_available():
        state["cuda"] = [enc(s) for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    dec = lambda s: torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)  # noqa: E731
    torch.set_rng_state(dec(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([dec(s) for s in state["cuda"]])


# ------------------------------------------------------------------------------------------- directories


def checkpoint_root(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(run_dir: Path, step: int, files: dict[str, dict[str, Tensor]], state: dict[str, Any]) -> Path:
    """Write checkpoints/step-N atomically; state.json (with each file's sha256) goes last.

    Checkpoints numbered above `step` are removed: training continued from an older one, so they belong to an
    abandoned past (they were skipped as corrupt on resume) and must not be resumed or outlive the new one.
    """
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    repair_leftovers(run_dir)
    final, tmp = root / f"step-{step}", root / f".tmp-step-{step}-{os.getpid()}"
    tmp.mkdir()
    try:
        sums = {}
        for name, tensors in files.items():
            save_tensors(tmp / name, tensors)
            _fsync_file(tmp / name)
            sums[name] = sha256(tmp / name)
        write_json(tmp / "state.json", {**state, "format": FORMAT, "step": step, "files": sums})
    except BaseException as exc:  # the half-written directory goes; the previous checkpoint is untouched
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL:
            raise UserError(f"cannot save checkpoint step-{step}: {exc.strerror}",
                            "free some disk space, then resume; the previous checkpoint is intact") from None
        raise
    if final.exists():  # re-saving the same step (e.g. a resume with nothing left to train)
        old = root / f".old-step-{step}-{os.getpid()}"
        os.replace(final, old)  # a kill between these two renames is repaired by repair_leftovers
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    for path in list_checkpoints(run_dir):
        if _step_of(path) > step:
            log.warning("removed checkpoint %s: newer than step %d just saved, so left from before a resume that "
                        "went further back", path.name, step)
            _remove(path)
    return final


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    if os.name != "posix":  # directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_of(path: Path) -> int | None:
    """N of `step-N` or of a leftover `.tmp/.old/.trash-step-N-PID`; None for other names."""
    if m := _STEP.fullmatch(path.name):
        return int(m.group(1))
    m = _LEFTOVER.fullmatch(path.name)
    return int(m.group(2)) if m else None


def _remove(path: Path) -> None:
    """Delete a checkpoint directory so that it vanishes at once (renamed first), even if killed half-way."""
    trash = path.parent / f".trash-step-{_step_of(path)}-{os.getpid()}"
    try:
        os.replace(path, trash)
    except OSError:
        trash = path
    shutil.rmtree(trash, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    """Whether another process with this id runs here (its save may be under way); our own leftovers are stale."""
    if pid == os.getpid():
        return False
    if os.name != "posix":
        return True  # no cheap check: leave the directory alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def repair_leftovers(run_dir: Path) -> None:
    """Clean up after killed saves: an orphaned `.old-step-N` (killed between the two renames of a re-save) becomes
    step-N again; temp and trash directories of processes that no longer run are deleted. Called by the trainer only."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):  # ".old-" sorts before ".tmp-": restore first, then delete the rest
        m = _LEFTOVER.fullmatch(path.name)
        if not m or _process_alive(int(m.group(3))):
            continue
        final = root / f"step-{m.group(2)}"
        if m.group(1) == "old" and not final.exists() and (path / "state.json").is_file():
            os.replace(path, final)
            log.warning("restored checkpoint %s left by an interrupted save", final.name)
        else:
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint directories with a state.json, oldest first (temp directories are ignored)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _STEP.fullmatch(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=_step_of)


def _candidates(run_dir: Path) -> list[Path]:
    """Checkpoints to resume from, oldest first: the listed ones plus any orphaned `.old-step-N` whose step-N is
    missing (a save killed between its two renames; read here without repairing, since readers must not write)."""
    found = {_step_of(p): p for p in list_checkpoints(run_dir)}
    root = checkpoint_root(run_dir)
    if root.is_dir():
        for path in sorted(root.iterdir()):
            m = _LEFTOVER.fullmatch(path.name)
            if m and m.group(1) == "old" and (path / "state.json").is_file():
                found.setdefault(int(m.group(2)), path)
    return [found[step] for step in sorted(found)]


def read_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Tensor]]]:
    """state.json and every tensor file of one checkpoint, verified against the recorded checksums."""
    try:
        state = json.loads((path / "state.json").read_text())
        sums, step = state["files"], state["step"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}/state.json is unreadable: {exc!r}") from None
    named_step = _step_of(path)
    if not isinstance(sums, dict) or "model.safetensors" not in sums or named_step not in (None, step):
        raise UserError(f"{path}/state.json does not describe this checkpoint")
    files = {}
    for name, digest in sums.items():
        if Path(name).name != name or not (path / name).is_file():
            raise UserError(f"{path}/{name} is missing", "the checkpoint is incomplete")
        files[name] = load_tensors(path / name, digest)
    return state, files


def latest_checkpoint(run_dir: Path) -> tuple[Path, dict[str, Any], dict[str, dict[str, Tensor]]]:
    """The newest checkpoint that verifies; corrupt newer ones are skipped with a warning."""
    candidates = _candidates(run_dir)
    restart = f"start it again: gankit train {Path(run_dir) / 'config.yaml'} --out {run_dir} --force"
    if not candidates:
        raise UserError(f"{run_dir} has no complete checkpoint to resume from (it stopped before its first one)",
                        restart)
    for path in reversed(candidates):
        try:
            state, files = read_checkpoint(path)
            return path, state, files
        except UserError as exc:
            log.warning("skipping checkpoint %s: %s; trying an older one", path.name, exc.message)
    raise UserError(f"every checkpoint in {checkpoint_root(run_dir)} is corrupt", restart)


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` (at least 1) checkpoints, and what killed saves left behind.

    Temp directories are not listed, so the newest complete checkpoint always survives, even when a newer
    incomplete one exists; save_checkpoint has removed any numbered above the one just written.
    """
    for path in list_checkpoints(run_dir)[: -max(keep, 1)]:
        _remove(path)
    repair_leftovers(run_dir)


def refuse_pickles(run_dir: Path) -> None:
    """A directory holding only pickle-based weights (in it or one folder down, as other libraries save them) is
    refused: unpickling can run arbitrary code. Deeper files are another project's business, not a model's."""
    near = [*Path(run_dir).glob("*"), *Path(run_dir).glob("*/*")]
    pickles = [p.name for p in near if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise UserError(f"{run_dir} holds pickle-based weights ({', '.join(sorted(pickles)[:3])}) and no gankit model",
                        "gankit never loads .pt/.pth/.pkl/.ckpt files because unpickling can run arbitrary code; "
                        "convert them to safetensors yourself if you trust their source")


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold RUN/.lock (this process's pid) while training, so two trainers never write one run at once.

    A lock whose process is gone (killed with -9, machine rebooted) is stale and taken over.
    """
    lock = Path(run_dir) / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _alive(pid):
                raise UserError(f"{run_dir} is being trained by process {pid}",
                                "wait for it to finish or stop it (Ctrl-C saves a checkpoint) before resuming") from None
            lock.unlink(missing_ok=True)  # stale
        except OSError as exc:
            raise UserError(f"cannot write {lock}: {exc.strerror or exc}", "training writes into the run folder: "
                            "make it writable, or copy the run and resume the copy") from None
    else:
        raise UserError(f"cannot lock {run_dir} for training", "another process keeps creating its lock file")
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
