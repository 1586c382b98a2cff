"""Federated averaging (FedAvg, McMahan et al. 2017) of a whole variant over clients simulated in this process
(or, with federated.backend=flower, each in its own process: gankit.train.flower).

Each client holds its own part of the training data (a seeded IID partition, or a few classes each), its own copy of
the variant, its own optimizers (their moments stay on the client, as they would on a real one), its own fp16 loss
scales, its own NaN guard and its own random stream (noise, augmentation). Every step, each client runs one ordinary
trainer iteration (Trainer._iteration, the one loop) on its own data; every `federated.local_steps` steps the server
replaces the global model by the mean of the clients' models, weighted by their row counts, and sends it back to
every client. The global model is the run's variant: samples,
EMA, checkpoints and model/ show it, so the run directory is an ordinary gankit run.

What is averaged: every floating-point entry of the variant's state dict, i.e. the parameters of every group (G and D
for a GAN, encoders, mapping nets, ...) and float buffers (batch-norm statistics, spectral-norm vectors); integer
buffers (batch-norm's batch counter) advance alike on every client and are taken from the first. The EMA shadow is
the server's: an average of the global model, updated once per step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor

from ..config import Config, FederatedConfig
from ..data import BatchSampler, Dataset, load_dataset
from ..errors import UserError
from ..io import write_json
from ..variants import Group, Variant
from . import checkpoint as ckpt
from . import distributed
from .guard import NanGuard
from .trainer import Trainer, make_optimizer

log = logging.getLogger("gankit")
CLIENTS_FILE = "clients.safetensors"  # in each checkpoint: every client's model and optimizer tensors


def split_rows(data: Dataset, fed: FederatedConfig, seed: int) -> list[Tensor]:
    """Each client's rows of `data` (sorted indices), by `fed.split`:

    iid: a random partition seeded by `seed` into `fed.clients` parts of equal size (±1 row).
    classes: client k holds classes k·c, k·c+1, ..., k·c+c-1, counted modulo the number of classes C, for
    c = classes_per_client. With clients·c > C classes wrap round and a class held by several clients is shared out
    between them in equal random parts; with clients·c < C the classes no client holds are left out of training.
    """
    n, clients = len(data), fed.clients
    if clients > n:
        raise UserError(f"federated.clients={clients} is more than the {n} training rows", f"use at most {n} clients")
    g = torch.Generator().manual_seed(seed)
    if fed.split == "iid":
        return [part.sort().values for part in torch.randperm(n, generator=g).tensor_split(clients)]
    if data.y is None or not data.num_classes:
        raise UserError(f"federated.split=classes needs labelled data, and {data.name} has no labels",
                        "use federated.split=iid, or labelled data (digits, shapes, a folder with one sub-folder per "
                        "class, an npz with labels_key)")
    num_classes, per = data.num_classes, fed.classes_per_client
    if per > num_classes:
        raise UserError(f"federated.classes_per_client={per} is more than the {num_classes} classes of {data.name}",
                        f"use at most {num_classes}")
    held = [[(k * per + j) % num_classes for j in range(per)] for k in range(clients)]
    parts: list[list[Tensor]] = [[] for _ in range(clients)]
    for c in range(num_classes):
        holders = [k for k in range(clients) if c in held[k]]
        rows = (data.y == c).nonzero().flatten()
        if not holders:
            if len(rows):
                log.warning("federated: no client holds class %s (%d rows): it is left out of training",
                            data.class_names[c], len(rows))
            continue
        rows = rows[torch.randperm(len(rows), generator=g)]
        for k, share in zip(holders, rows.tensor_split(len(holders))):
            parts[k].append(share)
    out = []
    for k, shares in enumerate(parts):
        rows = torch.cat(shares).sort().values
        if not len(rows):
            names = ", ".join(data.class_names[c] for c in held[k])
            raise UserError(f"federated: client {k} holds classes {names}, which have no rows",
                            "use fewer clients or more federated.classes_per_client")
        out.append(rows)
    return out


@torch.no_grad()
def fedavg(states: list[dict[str, Tensor]], weights: list[float]) -> dict[str, Tensor]:
    """Σ_k w_k·state_k / Σ_k w_k for every floating-point entry; other entries (integer counters) from the first."""
    total = float(sum(weights))
    out = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            out[key] = first.clone()
            continue
        mean = first * (weights[0] / total)
        for state, w in zip(states[1:], weights[1:]):
            mean.add_(state[key], alpha=w / total)
        out[key] = mean
    return out


@dataclass
class Client:
    """One simulated client: its rows of the data and everything it trains with."""

    index: int
    rows: Tensor  # indices into the run's dataset
    classes: list[str] | None  # the class names it holds (split=classes), None for an IID split
    variant: Variant
    groups: dict[str, Group]
    optimizers: dict[str, torch.optim.Optimizer]
    sampler: BatchSampler
    guard: NanGuard
    scalers: dict[str, torch.amp.GradScaler]  # its own fp16 loss scales (train.precision=fp16), else empty
    rng: dict[str, Any]  # its own random stream (noise, augmentation), as checkpoint.rng_state() writes it


class FederatedTrainer(Trainer):
    """A Trainer whose variant is the global model of FedAvg over `federated.clients` simulated clients."""

    def __init__(self, cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 dataset: Dataset | None = None, only: int | None = None) -> None:
        """`only`: build client `only` alone (what a Flower client process holds)."""
        self.only, self.remote = only, None  # remote: the Flower server while fit() runs with backend=flower
        if distributed.launched():
            raise UserError("federated.clients simulates every client in one process", "run without torchrun / --nproc")
        if cfg.train.compile:
            raise UserError("train.compile is not supported with federated.clients (every client holds a copy of "
                            "the nets)", "drop train.compile")
        if cfg.federated.backend == "flower" and only is None:
            from .flower import require_flower

            require_flower()  # before the run directory is written
        if cfg.federated.backend == "flower" and dataset is not None:
            raise UserError("federated.backend=flower: every client process loads its data from the config, so a "
                            "dataset passed from Python cannot reach them", "describe the data in data.*, or use "
                            "federated.backend=simulated")
        torch.manual_seed(cfg.seed)
        data = dataset if dataset is not None else load_dataset(cfg.data, cfg.seed)
        if type(data) is not Dataset:
            raise UserError(f"federated.clients: {type(data).__name__} data cannot be split between clients yet",
                            "use data of one domain without captions (points, images, tables, tokens)")
        self.client_rows = split_rows(data, cfg.federated, cfg.seed)  # checked before the run directory is written
        self.clients: list[Client] = []
        super().__init__(cfg, run_dir, resume=resume, progress=progress, dataset=data)
        if not self.clients:
            self._make_clients()
        if self.main and not resume:
            write_json(self.run_dir / "federated.json", self.describe())

    def fit(self) -> dict[str, Any]:
        """Train; with federated.backend=flower the clients run in their own processes for as long as this lasts."""
        if self.cfg.federated.backend != "flower":
            return super().fit()
        from .flower import RemoteClients

        self.remote = RemoteClients(self)
        try:
            return super().fit()
        finally:
            self.remote.close()
            self.remote = None

    def _make_clients(self) -> None:
        cfg = self.cfg
        names = self.data.class_names
        for k, rows in enumerate(self.client_rows):
            if self.only is not None and k != self.only:
                continue
            variant = copy.deepcopy(self.variant)  # the global model's weights, buffers and settings
            groups = variant.groups
            optimizers = {name: make_optimizer(group) for name, group in groups.items()}
            held = sorted(set(self.data.y[rows].tolist())) if cfg.federated.split == "classes" else None
            guard = NanGuard(variant, optimizers, None, {n: g.lr for n, g in groups.items()}, cfg.train.nan_patience,
                             cfg.train.max_rollbacks, cfg.train.rollback_lr_factor)
            guard.snapshot(self.step)
            sampler = self.kind.sampler(self.data.subset(rows), cfg.train.batch_size, (cfg.seed + 1) * 7919 + k,
                                        self.device)
            scalers = {name: torch.amp.GradScaler(self.device.type) for name in groups} if self.scalers else {}
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
                torch.manual_seed((cfg.seed + 1) * 104729 + k)
                rng = ckpt.rng_state()
            self.clients.append(Client(k, rows, [names[c] for c in held] if held is not None else None, variant,
                                       groups, optimizers, sampler, guard, scalers, rng))

    def describe(self) -> dict[str, Any]:
        """What federated.json records: the split, and each client's rows, classes and FedAvg weight."""
        total = sum(len(c.rows) for c in self.clients)
        return {"split": self.cfg.federated.model_dump(), "rows": total, "clients": [
            {"client": c.index, "rows": len(c.rows), "weight": len(c.rows) / total, "classes": c.classes}
            for c in self.clients]}

    # ------------------------------------------------------------------------------------------- the round

    def _iteration(self, window: dict[str, list]) -> None:
        """Every client runs one ordinary iteration on its data; at the end of a round the server averages them."""
        if self.remote is not None:  # federated.backend=flower: the same iteration, in each client's own process
            self.remote.iterate(self, window)
        else:
            for client in self.clients:
                self.client_iteration(client, window)
        if (self.step + 1) % self.cfg.federated.local_steps == 0:
            if self.remote is not None:
                self.remote.pull(self, "model")
            self.average()
            if self.remote is not None:
                self.remote.pending = "model"  # the clients take the global model before their next step
        if self.ema is not None:
            self.ema.update(self.variant)
        for name, optimizer in self.optimizers.items():  # logged learning rates: the clients' mean
            lr = sum(c.optimizers[name].param_groups[0]["lr"] for c in self.clients) / len(self.clients)
            for group in optimizer.param_groups:
                group["lr"] = lr

    def client_iteration(self, client: Client, window: dict[str, list]) -> None:
        """One client's ordinary trainer iteration on its own data (also what a Flower client process runs)."""
        if self.snapshot_due() and client.guard.clean:
            client.guard.snapshot(self.step)
        outer = ckpt.rng_state()
        ckpt.set_rng_state(client.rng)  # the client's own stream, wherever it runs: its own process or this one
        try:
            with self._acting_as(client):
                super()._iteration(window)
        finally:
            client.rng = ckpt.rng_state()
            ckpt.set_rng_state(outer)
        skipped, events = client.guard.take_window()  # into the run's log, with the client named
        self.guard.skipped += skipped
        self.guard.events += [{**event, "client": client.index} for event in events]

    @contextlib.contextmanager
    def _acting_as(self, client: Client) -> Iterator[None]:
        """The trainer's model, optimizers, loss scales, data and guard are the client's for one iteration (no EMA:
        the EMA is the server's)."""
        server = self.variant, self.groups, self.optimizers, self.scalers, self.sampler, self.guard, self.ema
        self.variant, self.groups, self.optimizers = client.variant, client.groups, client.optimizers
        self.scalers, self.sampler, self.guard, self.ema = client.scalers, client.sampler, client.guard, None
        try:
            yield
        finally:
            self.variant, self.groups, self.optimizers, self.scalers, self.sampler, self.guard, self.ema = server

    @torch.no_grad()
    def average(self) -> None:
        """FedAvg: the global model becomes the clients' mean weighted by their row counts, and every client gets it.
        Logs a `round` event with the clients' drift (weighted mean of |θ_k - θ| / |θ| over parameters)."""
        states = [c.variant.state_dict() for c in self.clients]
        weights = [len(c.rows) for c in self.clients]
        mean = fedavg(states, weights)
        params = [k for k, _ in self.variant.named_parameters()]
        norm = torch.linalg.vector_norm(torch.stack([mean[k].norm() for k in params]))
        drift = sum(w * torch.linalg.vector_norm(torch.stack([(s[k] - mean[k]).norm() for k in params])).item()
                    for s, w in zip(states, weights)) / sum(weights) / max(norm.item(), 1e-12)
        self.variant.load_state_dict(mean)
        for client in self.clients:
            client.variant.load_state_dict(mean)
        if self.logs is not None:
            self.logs.write({"step": self.step + 1, "event": "round",
                             "round": (self.step + 1) // self.cfg.federated.local_steps, "drift": drift})

    # ------------------------------------------------------------------------------------------- resume

    def client_files(self, client: Client) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """One client's model, optimizer state, data cursor, guard and loss scales as tensors (named as in the
        checkpoint's clients file) and JSON metadata."""
        tensors = {f"{client.index}.{k}": v for k, v in client.variant.state_dict().items()}
        optim, meta = ckpt.optimizer_to_files({f"{client.index}/{g}": o for g, o in client.optimizers.items()})
        tensors.update({f"optim.{k}": v for k, v in optim.items()})
        # a client snapshots at the start of its iteration, so a resumed run takes this step's snapshot again
        snapshot, guard = client.guard.to_files(self.snapshot_due() and client.guard.clean)
        tensors.update({f"guard.{client.index}.{k}": v for k, v in (snapshot or {}).items()})
        return tensors, {"optim": meta, "rows": len(client.rows), "sampler": client.sampler.state_dict(),
                         "guard": guard,
                         "lr_scale": client.guard.lr_scale, "rollbacks": client.guard.rollbacks,
                         "loss_scales": {g: sc.state_dict() for g, sc in client.scalers.items()}, "rng": client.rng}

    def load_client_files(self, client: Client, tensors: dict[str, Tensor], entry: dict[str, Any],
                          optim_meta: dict[str, Any]) -> None:
        """Inverse of client_files; `tensors` may hold other clients' entries too."""
        prefix = f"{client.index}."
        ckpt.optimizer_from_files({f"{client.index}/{g}": o for g, o in client.optimizers.items()},
                                  {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")},
                                  optim_meta)
        client.variant.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
        client.sampler.load_state_dict(entry["sampler"])
        client.guard.lr_scale, client.guard.rollbacks = entry["lr_scale"], entry["rollbacks"]
        client.rng = entry.get("rng", client.rng)  # checkpoints of 2026-12-02 and before have none
        for group, saved_scale in entry.get("loss_scales", {}).items():
            if group in client.scalers:
                client.scalers[group].load_state_dict(saved_scale)
        client.guard.apply_lrs()
        mine = f"guard.{client.index}."
        snapshot = {k[len(mine):]: v for k, v in tensors.items() if k.startswith(mine)}
        client.guard.from_files(self.step, snapshot or None, entry.get("guard"))

    def _save_mode_state(self, files: dict[str, dict[str, Tensor]], state: dict[str, Any]) -> None:
        """Each client's model (it differs from the global one within a round), optimizer state, data cursor and
        guard, so a run stopped mid-round resumes exactly."""
        if self.remote is not None:
            self.remote.pull(self, "full")  # what the client processes hold now
        tensors: dict[str, Tensor] = {}
        optim: dict[str, Any] = {}
        entries = []
        for client in self.clients:
            client_tensors, entry = self.client_files(client)
            tensors.update(client_tensors)
            optim.update(entry.pop("optim"))
            entries.append(entry)
        files[CLIENTS_FILE] = tensors
        state["federated"] = {"optim": optim, "clients": entries}

    def _restore_mode_state(self, state: dict[str, Any], files: dict[str, dict[str, Tensor]]) -> None:
        if "federated" not in state or CLIENTS_FILE not in files:
            raise UserError(f"{self.run_dir}'s checkpoint was not written by a federated run",
                            "resume it without federated.clients, or start a new run")
        saved = state["federated"]["clients"]
        if [s["rows"] for s in saved] != [len(rows) for rows in self.client_rows]:
            raise UserError("the checkpoint's clients do not match this config's split",
                            "resume without changing federated.* or data.* keys")
        self._make_clients()
        for client, entry in zip(self.clients, saved):
            self.load_client_files(client, files[CLIENTS_FILE], entry, state["federated"]["optim"])


def make_trainer(cfg: Config, run_dir: str | Path, **kwargs: Any) -> Trainer:
    """The trainer a config asks for: FedAvg over simulated clients when `federated.clients` is set, else the plain
    one (arguments as Trainer's)."""
    return (FederatedTrainer if cfg.federated.clients else Trainer)(cfg, run_dir, **kwargs)
