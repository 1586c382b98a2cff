"""Data-parallel training with torchrun (gloo on CPU, 2 processes): processes stay equal to each other and to one
process on the global batch; `gankit train --nproc` runs, its output evaluates, and a killed worker restarted by
torchrun continues from the last checkpoint to the same weights."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.data import BatchSampler, Shard, digits
from gankit.errors import UserError
from gankit.train import Trainer, distributed
from gankit.variants import build_variant

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("distributed_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
RUN = ["ring8-gan", "train.steps=600", "train.checkpoint_every=150", "train.sample_every=0", "seed=0"]


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def launch():
    """Popen in a session of its own; whatever a test leaves running (torchrun's workers too) is killed after it."""
    started = []

    def start(command: list[str], **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(command, env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


COMMON = ["train.sample_every=0", "train.checkpoint_every=0", "seed=0"]
CONFIGS = [  # each trained by one process and by two
    ["ring8-gan", "train.steps=40"],
    # penalties that differentiate twice: WGAN-GP with 2 critic steps, and lazy R1 in its own phase
    ["ring8-gan", "train.steps=15", "loss.name=wasserstein", "loss.gp_weight=1", "train.n_critic=2"],
    ["ring8-gan", "train.steps=16", "loss.r1_weight=1", "loss.reg_every=4"],
]


def test_two_processes_equal_each_other_and_one_process(tmp_path, one_thread, launch):
    configs = " :: ".join(" ".join([*c, *COMMON]) for c in CONFIGS).split()
    proc = _finish(launch([*TORCHRUN, str(WORKER), str(tmp_path / "two"), *configs]))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for i, (preset, *overrides) in enumerate(CONFIGS):
        two = tmp_path / "two" / str(i)
        rank0, rank1 = _weights(two / "rank-0.safetensors"), _weights(two / "rank-1.safetensors")
        assert _max_diff(rank0, rank1) == 0.0, CONFIGS[i]  # gradients were averaged: every process took the same steps
        cfg = gankit.load_config(preset, [*overrides, *COMMON])
        one = Trainer(cfg, tmp_path / "one" / str(i), progress=False)
        one.fit()
        single = {k: v.contiguous() for k, v in one.variant.state_dict().items()}
        assert _max_diff(rank0, single) <= 1e-5, CONFIGS[i]  # one process's rows and noise, split in two
        untrained = Trainer(cfg, tmp_path / "init" / str(i), progress=False).variant.state_dict()
        assert _max_diff(single, dict(untrained)) > 1e-3  # training moved the weights: the comparison means something
        logs = [json.loads(line) for line in (two / "run" / "logs.jsonl").read_text().splitlines()]
        assert logs and all("d_loss" in r for r in logs if "it_s" in r)  # process 0 wrote the logs


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


@pytest.fixture(scope="module")
def nproc_run(tmp_path_factory):
    """`gankit train --nproc 2 ...`, uninterrupted."""
    out = tmp_path_factory.mktemp("nproc") / "R"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", *RUN, "--out", str(out), "--nproc", "2",
                             "--no-progress"], env=ENV, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc = _finish(proc)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "in 2 processes" in proc.stderr
    return out


def test_nproc_trains_and_evaluates(nproc_run):
    record = json.loads((nproc_run / "run.json").read_text())["sessions"]
    assert [(s["processes"], s["to_step"], s["status"]) for s in record] == [(2, 600, "finished")]
    proc = subprocess.run([sys.executable, "-m", "gankit", "eval", str(nproc_run), "--json"], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads(proc.stdout)
    assert scores["total_modes"] == 8 and scores["modes"] >= 1 and scores["protocol"]["step"] == 600


def test_killed_worker_restarts_from_last_checkpoint(tmp_path, nproc_run, launch):
    out = tmp_path / "R"
    proc = launch([*TORCHRUN, "--max-restarts=1", "-m", "gankit", "train", *RUN, "--out", str(out), "--no-progress"])
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step-150").is_dir():
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    victim = [pid for pid in _children(proc.pid) if _rank_of(pid) == 0]
    assert victim, "rank 0 not found"
    os.kill(victim[0], signal.SIGKILL)  # the process that writes the run's files, possibly mid-checkpoint
    err = _finish(proc).stderr
    assert proc.returncode == 0, err[-3000:]
    sessions = json.loads((out / "run.json").read_text())["sessions"]
    assert len(sessions) == 2 and sessions[1]["from_step"] >= 150 and sessions[1]["to_step"] == 600
    assert sessions[0]["launch"] == sessions[1]["launch"]
    # resumed exactly: the same weights as the run nobody interrupted
    final = "checkpoints/step-600/model.safetensors"
    assert _max_diff(_weights(out / final), _weights(nproc_run / final)) == 0.0


def test_sigterm_stops_every_process_at_one_checkpointed_step(tmp_path, launch):
    out = tmp_path / "R"
    proc = launch([sys.executable, "-m", "gankit", "train", *RUN[:1], "train.steps=100000", *RUN[2:], "--out",
                   str(out), "--nproc", "2", "--no-progress"])
    deadline = time.time() + 120
    while not (out / "checkpoints" / "step-150").is_dir():
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the run ended"
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)  # to `gankit train --nproc`, which passes it on to torchrun
    err = _finish(proc, 120).stderr
    assert proc.returncode != 0
    session = json.loads((out / "run.json").read_text())["sessions"][-1]
    assert session["status"] == "interrupted", err[-3000:]
    assert (out / "checkpoints" / f"step-{session['to_step']}").is_dir()
    resumed = subprocess.run([sys.executable, "-m", "gankit", "train", "--resume", str(out),
                              f"train.steps={session['to_step'] + 10}", "--no-progress"], env=ENV,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]  # continued in one process: the state is the same


def test_shards_split_the_global_batch():
    data = digits(8)
    one = BatchSampler(data, 12, seed=3)
    parts = []
    for rank in range(3):
        sampler = BatchSampler(data, 12, seed=3)
        sampler.shard = Shard(rank, 3)
        sampler.next(), sampler.next()
        parts.append(sampler.next().x)
        assert sampler.cursor == 36  # the cursor counts global rows: a checkpoint resumes on any process count
    one.next(), one.next()
    assert torch.equal(torch.cat(parts), one.next().x)


def test_noise_is_this_process_rows_of_the_global_draw():
    cfg = gankit.load_config("ring8-gan", [])
    spec = gankit.data.load_dataset(cfg.data, 0).spec()
    variant = build_variant(cfg, spec)
    torch.manual_seed(5)
    whole = variant.noise(8)
    variant.shard = Shard(1, 2)
    torch.manual_seed(5)
    assert torch.equal(variant.noise(4), whole[4:])
    torch.manual_seed(5)
    assert torch.equal(variant.noise(4, generator=torch.Generator().manual_seed(0)),
                       variant.noise(4, generator=torch.Generator().manual_seed(0)))  # sampling is not sharded


def test_batch_must_divide_over_processes(tmp_path, monkeypatch):
    monkeypatch.setattr(distributed, "setup", lambda device: (Shard(0, 3), device))
    with pytest.raises(UserError, match="batch_size=16 does not divide over 3 processes"):
        Trainer(gankit.load_config("ring8-gan", ["train.batch_size=16"]), tmp_path / "R", progress=False)
    assert not (tmp_path / "R").exists()


def test_eval_shares_the_samples_out_and_gives_one_process_figures(tmp_path):
    # A class-conditional model: each process must draw the labels of the rows before its share too.
    run = tmp_path / "cgan"
    cfg = gankit.load_config("digits-cgan", ["model.width=8", "train.steps=30", "train.sample_every=0",
                                             "train.checkpoint_every=0"])
    Trainer(cfg, run, progress=False).fit()
    scores = []
    for nproc in (1, 2):
        proc = subprocess.run([sys.executable, "-m", "gankit", "eval", str(run), "-n", "700", "--json", "--nproc",
                               str(nproc)], env=ENV, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        scores.append(json.loads(proc.stdout))
    one, two = scores
    assert two["protocol"]["processes"] == 2 and "processes" not in one["protocol"]
    for key in ("fid", "kid", "is", "precision", "recall", "density", "coverage"):  # 1e-11 apart when measured
        assert two[key] == pytest.approx(one[key], rel=1e-6, abs=1e-9), key
    assert two["class_accuracy"] == one["class_accuracy"]  # process 0's own metric, unchanged
