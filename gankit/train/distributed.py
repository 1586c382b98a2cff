"""Data-parallel training over processes started by torchrun: joining the group and one all-reduce per step.

gankit averages gradients itself instead of wrapping G and D in DistributedDataParallel. A variant calls its nets
several times within one phase (D on reals, on fakes, on interpolates for a gradient penalty; D inside G's step
without updating D), and R1 and path-length penalties differentiate twice, which DDP's per-parameter hooks do not
follow. So after each backward the phase's gradients travel in one flat buffer (StyleGAN3 does the same), together
with the loss, so a non-finite loss in any process is seen by all, and a stop flag, so a signal to any process
stops every process after the same step.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor, nn

from ..data import ONE_PROCESS, Shard
from ..errors import UserError

TIMEOUT = timedelta(minutes=10)  # a collective waits this long for a lost peer before the process fails


def launched() -> bool:
    """Whether this process is one of several started by torchrun (WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def restarted() -> bool:
    """Whether torchrun restarted this worker group after a failure (`--max-restarts`)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0


def launch_id() -> str | None:
    """torchrun's id of this job (the same across its restarts), or None outside torchrun."""
    return os.environ.get("TORCHELASTIC_RUN_ID") if launched() else None


def setup(device: torch.device) -> tuple[Shard, torch.device]:
    """This process's shard and device. Under torchrun the process group is joined here (gloo on CPU, nccl on
    CUDA, where each process takes GPU LOCAL_RANK); a plain process is one shard of one."""
    if not launched():
        return ONE_PROCESS, device
    if device.type == "mps":
        raise UserError("several processes cannot share one MPS device", "run one process (no torchrun) on a Mac")
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise UserError(f"process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                            "visible)", "start at most one process per GPU (--nproc / --nproc-per-node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", store=_store(rank, world), rank=rank,
                                world_size=world, timeout=TIMEOUT)
    return Shard(dist.get_rank(), dist.get_world_size()), device


def _store(rank: int, world: int) -> dist.Store:
    """torchrun's key-value store, with keys private to this restart: a group restarted by `--max-restarts` must not
    read the addresses its killed predecessors published there (gloo then fails to connect to a dead process)."""
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=rank == 0 and not agent_hosts, timeout=TIMEOUT)
    return dist.PrefixStore(f"gankit/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)


def finish() -> None:
    """Leave the process group at the end of a torchrun worker, once every process got there (process 0 may still be
    writing the last checkpoint; a process that tears its connections down first can abort its peers)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(shard: Shard) -> None:
    if shard.world > 1:
        dist.barrier()


def broadcast_state(module: nn.Module, shard: Shard) -> None:
    """Every tensor of the module's state (parameters and buffers) as process 0 holds it, in place."""
    if shard.world > 1:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, 0)


def broadcast_text(text: str, shard: Shard) -> str:
    """Process 0's `text` in every process (how a run directory chosen by process 0 reaches the others)."""
    if shard.world == 1:
        return text
    data = torch.tensor(list(text.encode()) if shard.rank == 0 else [], dtype=torch.uint8)
    size = torch.tensor([len(data)])
    dist.broadcast(size, 0)
    if shard.rank:
        data = torch.empty(int(size), dtype=torch.uint8)
    dist.broadcast(data, 0)
    return bytes(data.tolist()).decode()


def reduce_gradients(optimizer: torch.optim.Optimizer, loss: Tensor, stop: bool, shard: Shard) -> tuple[Tensor, Tensor]:
    """Average the gradients of the optimizer's parameters over processes, in place, with one all-reduce.

    Returns the loss averaged over processes and whether any process asked to stop (both tensors, no host sync).
    """
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    like = grads[0] if grads else loss
    flat = torch.cat([g.reshape(-1) for g in grads]
                     + [loss.detach().reshape(1).to(like.dtype), torch.tensor([float(stop)], dtype=like.dtype,
                                                                               device=like.device)])
    dist.all_reduce(flat)
    flat /= shard.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view(g.shape))
        offset += g.numel()
    return flat[-2], flat[-1] > 0


def mean_over_processes(values: Tensor, shard: Shard) -> Tensor:
    """Element-wise mean of `values` over processes (the logged window means)."""
    if shard.world == 1:
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / shard.world


def gather(tensor: Tensor, shard: Shard) -> list[Tensor]:
    """Every process's `tensor`, in rank order; the first dimension may differ between processes, the others not."""
    if shard.world == 1:
        return [tensor]
    counts = torch.zeros(shard.world, dtype=torch.long)
    counts[shard.rank] = len(tensor)
    dist.all_reduce(counts)
    padded = torch.zeros(int(counts.max()), *tensor.shape[1:], dtype=tensor.dtype)
    padded[: len(tensor)] = tensor
    parts = [torch.empty_like(padded) for _ in range(shard.world)]
    dist.all_gather(parts, padded)
    return [part[: int(count)] for part, count in zip(parts, counts)]


def in_group() -> bool:
    """Whether this process has joined a process group already."""
    return dist.is_available() and dist.is_initialized()


def leave(shard: Shard) -> None:
    """Leave the process group without waiting for the others (a process whose share of the work is done)."""
    if shard.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
