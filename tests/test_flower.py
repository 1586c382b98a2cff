"""Federated training through Flower (federated.backend=flower, the `flower` extra): client processes running the
simulation's client code train bit-identically to the simulation, checkpoint and resume, and fail with clear
messages."""

import signal
import socket
import subprocess
import sys
import threading

import pytest
import torch
from safetensors.torch import load_file

from gankit.errors import UserError
from gankit.train import flower, make_trainer, read_logs
from gankit.variants import resolve

TINY = ["data.n=400", "model.g_hidden=[16]", "model.d_hidden=[16]", "train.batch_size=16", "train.log_every=2",
        "train.sample_every=0", "train.checkpoint_every=0", "federated.clients=3", "federated.local_steps=3"]


def _cfg(*overrides):
    return resolve("ring8-gan", [*TINY, *overrides])[0]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_flower_clients_train_what_the_simulation_trains_and_resume_mid_round(tmp_path):
    simulated = make_trainer(_cfg("train.steps=12"), tmp_path / "sim", progress=False)
    simulated.fit()
    cfg = _cfg("train.steps=12", "federated.backend=flower")
    trainer = make_trainer(cfg, tmp_path / "fl", progress=False)
    iteration = trainer._iteration

    def stop_after_step_5(window):  # mid-round: the clients' own models and Adam moments must come back on resume
        iteration(window)
        if trainer.step == 4:
            trainer.stop_signal = signal.SIGINT

    trainer._iteration = stop_after_step_5
    assert trainer.fit()["step"] == 5
    assert sorted(p.name for p in (tmp_path / "fl" / "flower").iterdir()) == [f"client-{k}.log" for k in range(3)]
    resumed = make_trainer(cfg, tmp_path / "fl", resume=True, progress=False)
    resumed.fit()
    assert _same(resumed.variant.state_dict(), simulated.variant.state_dict())
    for name in ("model/model.safetensors", "checkpoints/step-12/clients.safetensors"):
        assert _same(load_file(str(tmp_path / "sim" / name)), load_file(str(tmp_path / "fl" / name))), name
    sim_logs, fl_logs = (read_logs(tmp_path / r / "logs.jsonl") for r in ("sim", "fl"))
    losses = [{r["step"]: r["d_loss"] for r in logs if "d_loss" in r and r["step"] != 6}
              for logs in (sim_logs, fl_logs)]
    assert len(losses[0]) == 5 and losses[1] == pytest.approx(losses[0], rel=1e-6)  # the clients' sums came back
    # (the window of step 6 straddles the stop, so the resumed run logs only its last step)
    assert [r["round"] for r in fl_logs if r.get("event") == "round"] == [1, 2, 3, 4]


def test_flower_clients_roll_back_where_the_simulation_does_across_a_resume(tmp_path):
    """Client guards live in the client processes: their rollbacks (events, restored step, lowered learning rates)
    come back to the run, and a run stopped and resumed sends each client its guard's snapshot and streaks back."""
    unstable = ["train.steps=16", "federated.clients=2", "federated.local_steps=4", "optim.lr_d=1e6",
                "optim.lr_g=1e6", "train.rollback_lr_factor=1e-6", "train.max_rollbacks=5", "train.log_every=1"]
    make_trainer(_cfg(*unstable), tmp_path / "sim", progress=False).fit()
    cfg = _cfg(*unstable, "federated.backend=flower")
    trainer = make_trainer(cfg, tmp_path / "fl", progress=False)
    iteration = trainer._iteration

    def stop_after_step_3(window):
        iteration(window)
        if trainer.step == 2:
            trainer.stop_signal = signal.SIGINT

    trainer._iteration = stop_after_step_3
    assert trainer.fit()["step"] == 3
    make_trainer(cfg, tmp_path / "fl", resume=True, progress=False).fit()
    events = [[(e["step"], e.get("client"), e.get("restored_step"), e.get("lr_scale"))
               for e in read_logs(tmp_path / r / "logs.jsonl") if e.get("event") == "rollback"] for r in ("sim", "fl")]
    assert events[0] and events[1] == events[0]
    assert any(step > 3 for step, *_ in events[0])  # some rollback came after the resume
    for name in ("checkpoints/step-16/model.safetensors", "checkpoints/step-16/clients.safetensors"):
        assert _same(load_file(str(tmp_path / "sim" / name)), load_file(str(tmp_path / "fl" / name))), name


def test_clients_started_by_hand_join_the_run(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    cfg = _cfg("train.steps=6", "federated.clients=2", "federated.backend=flower", f"federated.address={address}",
               "federated.launch_clients=false")
    trainer = make_trainer(cfg, tmp_path / "run", progress=False)
    result = {}
    server = threading.Thread(target=lambda: result.update(trainer.fit()))
    server.start()
    clients = [subprocess.Popen([sys.executable, "-m", "gankit.train.flower", "--config", str(tmp_path / "run" /
                                 "config.yaml"), "--client", str(k), "--server", address, "--threads", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for k in range(2)]
    server.join(timeout=240)
    assert not server.is_alive() and result["step"] == 6
    assert [c.wait(timeout=60) for c in clients] == [0, 0]
    simulated = make_trainer(_cfg("train.steps=6", "federated.clients=2"), tmp_path / "sim", progress=False)
    simulated.fit()
    assert _same(trainer.variant.state_dict(), simulated.variant.state_dict())


def test_errors_name_the_problem(tmp_path, monkeypatch):
    code = subprocess.run([sys.executable, "-m", "gankit.train.flower", "--config", "missing.yaml", "--client", "0",
                           "--server", "127.0.0.1:1"], capture_output=True, text=True)
    assert code.returncode == 2 and "missing.yaml" in code.stderr and "Traceback" not in code.stderr
    monkeypatch.setattr(flower, "CONNECT_TIMEOUT", 2.0)
    trainer = make_trainer(_cfg("train.steps=6", "federated.backend=flower", "federated.launch_clients=false"),
                           tmp_path / "alone", progress=False)
    with pytest.raises(UserError, match="only 0 of 3 Flower clients connected"):
        trainer.fit()
    cfg = _cfg("train.steps=6", "federated.backend=flower")
    with pytest.raises(UserError, match="a dataset passed from Python"):
        make_trainer(cfg, tmp_path / "x", dataset=make_trainer(_cfg("train.steps=6"), tmp_path / "y").data)
    monkeypatch.setitem(sys.modules, "flwr", None)  # as if the extra were not installed
    with pytest.raises(UserError, match=r"gankit\[flower\]"):
        make_trainer(cfg, tmp_path / "z", progress=False)
    assert not (tmp_path / "z").exists()  # refused before anything was written
