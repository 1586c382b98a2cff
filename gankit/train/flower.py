"""Federated training through Flower (flwr): `federated.backend=flower` runs each client of a federated run in its
own process, a Flower client that talks to the run's process over gRPC (Flower's client/server API).

The client code is the simulation's: a client process builds the same FederatedTrainer with its one client
(`only=k`) and runs `FederatedTrainer.client_iteration` on request; the run's process keeps a mirror of every client
(what it last heard from it) for FedAvg, checkpoints and resume, and drives the rounds from the ordinary trainer
loop. One Flower `fit` request per step carries the step number, any weights the client must take first (the global
model after a round; everything at the start of a run or on resume) and what it must send back (its model at the end
of a round, its whole state before a checkpoint); its reply carries the step's loss sums and guard events. So a run
with this backend logs, checkpoints and resumes like a simulated one, and with the same seed trains the same
weights.

Clients on other machines: start the server with `federated.launch_clients=false federated.address=HOST:PORT`,
then on each machine `python -m gankit.train.flower --config RUN/config.yaml --client K --server HOST:PORT`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..config import load_source, to_yaml, validate
from ..errors import UserError
from .guard import Diverged

if TYPE_CHECKING:
    from .federated import Client, FederatedTrainer

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # read when flwr is imported: no usage reports sent home
CONNECT_TIMEOUT = 300.0  # seconds the server waits for every client to connect


def require_flower() -> None:
    """Import Flower, or say how to install it."""
    try:
        importlib.import_module("flwr")
    except ImportError:
        raise UserError("federated.backend=flower needs Flower, which is not installed",
                        "pip install 'gankit[flower]', or use federated.backend=simulated") from None
    logging.getLogger("flwr").setLevel(logging.WARNING)


def pack(tensors: dict[str, Tensor]) -> tuple[list[np.ndarray], list[str]]:
    """Tensors as the arrays Flower carries, and their names in the same order."""
    keys = sorted(tensors)
    return [tensors[k].detach().cpu().contiguous().numpy() for k in keys], keys


def unpack(arrays: list[np.ndarray], keys: list[str]) -> dict[str, Tensor]:
    return {k: torch.from_numpy(np.array(a, copy=True)) for k, a in zip(keys, arrays)}


def _free_address(address: str) -> str:
    host, _, port = address.rpartition(":")
    if port != "0":
        return address
    with socket.socket() as s:
        s.bind((host, 0))
        return f"{host}:{s.getsockname()[1]}"


class RemoteClients:
    """The run's side: Flower's gRPC server, a proxy per client index, and the client processes it started."""

    def __init__(self, trainer: FederatedTrainer) -> None:
        require_flower()
        from flwr.server.client_manager import SimpleClientManager
        from flwr.server.superlink.fleet.grpc_bidi.grpc_server import start_grpc_server

        fed = trainer.cfg.federated
        self.n = len(trainer.clients)
        self.pending = "full"  # what the clients must take before their next step: all of their mirror's state
        self.address = _free_address(fed.address)
        self.manager = SimpleClientManager()
        try:
            self.server = start_grpc_server(client_manager=self.manager, server_address=self.address)
        except RuntimeError as exc:
            raise UserError(f"federated.address={fed.address}: Flower's server cannot listen there ({exc})",
                            "use a free HOST:PORT (port 0 picks one)") from None
        self.procs: list[subprocess.Popen] = []
        self.logs_dir = trainer.run_dir / "flower"
        self.pool = ThreadPoolExecutor(max_workers=self.n)
        self.proxies: dict[int, Any] = {}
        try:
            if fed.launch_clients:
                self._launch(trainer)
            self._connect()
        except BaseException:
            self.close()
            raise

    def _launch(self, trainer: FederatedTrainer) -> None:
        """One `python -m gankit.train.flower` per client, in its own session (a Ctrl-C reaches the run, which then
        checkpoints and closes them), logging to RUN/flower/client-K.log."""
        self.logs_dir.mkdir(exist_ok=True)
        self._config = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="gankit-flower-", delete=False)
        self._config.write(to_yaml(trainer.cfg))
        self._config.close()
        threads = max(1, torch.get_num_threads() // self.n)
        for k in range(self.n):
            with open(self.logs_dir / f"client-{k}.log", "wb") as out:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "gankit.train.flower", "--config", self._config.name, "--client", str(k),
                     "--server", self.address, "--threads", str(threads)],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))

    def _connect(self) -> None:
        from flwr.common import GetPropertiesIns

        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not self.manager.wait_for(self.n, timeout=1):
            for k, proc in enumerate(self.procs):
                if proc.poll() is not None:
                    raise self._client_failed(k)
            if time.monotonic() > deadline:
                raise UserError(f"only {self.manager.num_available()} of {self.n} Flower clients connected to "
                                f"{self.address} within {CONNECT_TIMEOUT:.0f} s",
                                "start every client (python -m gankit.train.flower --client K ...)")
        for proxy in self.manager.all().values():
            k = int(proxy.get_properties(GetPropertiesIns(config={}), timeout=60, group_id=None).properties["client"])
            if k in self.proxies or not 0 <= k < self.n:
                raise UserError(f"a Flower client says it is client {k}, which is taken or not one of 0..{self.n - 1}",
                                "start each client index once")
            self.proxies[k] = proxy

    def _client_failed(self, k: int) -> UserError:
        log_file = self.logs_dir / f"client-{k}.log"
        tail = log_file.read_text(errors="replace").strip().splitlines()[-5:] if log_file.is_file() else []
        return UserError(f"Flower client {k} stopped: " + (" | ".join(tail) or "no output"),
                         f"see {log_file}" if log_file.is_file() else "see the client's output")

    def close(self) -> None:
        """Tell the clients to disconnect, wait for their processes, stop the server."""
        from flwr.common import ReconnectIns

        for proxy in self.proxies.values():
            try:
                proxy.reconnect(ReconnectIns(seconds=None), timeout=10, group_id=None)
            except Exception:  # noqa: BLE001 - a client that already left has nothing more to say
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.pool.shutdown()
        self.server.stop(grace=1)
        if self.procs:
            Path(self._config.name).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------------- requests

    def _request(self, trainer: FederatedTrainer, steps: int, pull: str) -> list[tuple[dict[str, Tensor], dict]]:
        """One fit request to every client at once: take what is pending, run `steps` iterations, send `pull`."""
        from flwr.common import FitIns, ndarrays_to_parameters, parameters_to_ndarrays

        def one(client: Client) -> tuple[dict[str, Tensor], dict]:
            request: dict[str, Any] = {"step": trainer.step, "steps": steps, "pull": pull, "push": self.pending}
            if self.pending == "full":
                tensors, entry = trainer.client_files(client)
                request["entry"] = entry
            elif self.pending == "model":
                tensors = client.variant.state_dict()
            else:
                tensors = {}
            arrays, request["keys"] = pack(tensors)
            try:
                res = self.proxies[client.index].fit(
                    FitIns(ndarrays_to_parameters(arrays), {"request": json.dumps(request)}), timeout=None,
                    group_id=None)
            except Exception:  # noqa: BLE001 - a broken connection: what the client's log says is the news
                raise self._client_failed(client.index) from None
            report = json.loads(str(res.metrics["report"]))
            return unpack(parameters_to_ndarrays(res.parameters), report.pop("keys")), report

        replies = list(self.pool.map(one, trainer.clients))
        self.pending = None
        return replies

    def iterate(self, trainer: FederatedTrainer, window: dict[str, list]) -> None:
        """Every client runs one iteration in its process; their loss sums, guard events and learning rates come
        back into the run's window, guard and mirrors."""
        diverged = None
        for client, (_, report) in zip(trainer.clients, self._request(trainer, 1, "")):
            for key, (total, count) in report["window"].items():
                entry = window.setdefault(key, [0.0, 0])
                entry[0] += total
                entry[1] += count
            trainer.guard.skipped += report["skipped"]
            trainer.guard.events += report["events"]
            trainer.overflows += report["overflows"]
            for name, lr in report["lrs"].items():
                for group in client.optimizers[name].param_groups:
                    group["lr"] = lr
            diverged = diverged or report["diverged"]
        if diverged:
            raise Diverged(*diverged)

    def pull(self, trainer: FederatedTrainer, what: str) -> None:
        """Bring every client's model ("model") or whole state ("full") into its mirror."""
        for client, (tensors, report) in zip(trainer.clients, self._request(trainer, 0, what)):
            if what == "model":
                client.variant.load_state_dict(tensors)
            else:
                trainer.load_client_files(client, tensors, report["entry"], report["entry"]["optim"])


# ----------------------------------------------------------------------------------------------- client process


def _client_app(trainer: FederatedTrainer, client: Client) -> Any:
    """The Flower client: one fit request = take the pushed weights, run the asked iterations, reply."""
    from flwr.client import NumPyClient

    class GankitClient(NumPyClient):
        def get_properties(self, config: dict) -> dict:
            return {"client": client.index, "rows": len(client.rows)}

        def fit(self, parameters: list[np.ndarray], config: dict) -> tuple[list[np.ndarray], int, dict]:
            request = json.loads(str(config["request"]))
            tensors = unpack(parameters, request["keys"])
            if request["push"] == "full":
                trainer.load_client_files(client, tensors, request["entry"], request["entry"]["optim"])
            elif request["push"] == "model":
                client.variant.load_state_dict(tensors)
            trainer.step = request["step"]
            window: dict[str, list] = {}
            diverged = None
            try:
                for _ in range(request["steps"]):
                    trainer.client_iteration(client, window)
            except Diverged as exc:
                diverged = [exc.message, exc.hint]
            skipped, events = trainer.guard.take_window()
            report: dict[str, Any] = {
                "window": {k: [float(total), int(count)] for k, (total, count) in window.items()},
                "skipped": skipped, "events": events, "overflows": trainer.overflows, "diverged": diverged,
                "lrs": {name: opt.param_groups[0]["lr"] for name, opt in client.optimizers.items()}}
            trainer.overflows = 0
            out: dict[str, Tensor] = {}
            if request["pull"] == "model":
                out = client.variant.state_dict()
            elif request["pull"] == "full":
                out, report["entry"] = trainer.client_files(client)
            arrays, report["keys"] = pack(out)
            return arrays, len(client.rows), {"report": json.dumps(report)}

    return GankitClient().to_client()


def main(argv: list[str] | None = None) -> None:
    """`python -m gankit.train.flower --config RUN/config.yaml --client K --server HOST:PORT`: one Flower client."""
    parser = argparse.ArgumentParser(prog="python -m gankit.train.flower", description=main.__doc__)
    parser.add_argument("--config", required=True, help="the run's config (RUN/config.yaml, federated.backend=flower)")
    parser.add_argument("--client", type=int, required=True, help="this client's index, 0 .. federated.clients-1")
    parser.add_argument("--server", required=True, help="HOST:PORT the run's Flower server listens on")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    try:
        require_flower()
        from flwr.compat.client.app import start_client

        from .federated import FederatedTrainer

        raw, source = load_source(args.config)
        cfg = validate(raw, source)
        if not 0 <= args.client < cfg.federated.clients:
            raise UserError(f"--client {args.client} is not one of the config's {cfg.federated.clients} clients",
                            f"use 0 .. {cfg.federated.clients - 1}")
        if args.threads:
            torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory(prefix="gankit-flower-client-") as scratch:
            trainer = FederatedTrainer(cfg, scratch, progress=False, only=args.client)
            start_client(server_address=args.server, client=_client_app(trainer, trainer.clients[0]), insecure=True)
    except UserError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
