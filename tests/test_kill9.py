"""`kill -9` at random moments of `gankit train`: resuming each time still reaches the last step, bit for bit, and
samples; a run killed before its first checkpoint says how to start it again."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from gankit.variants import resolve
from gankit.train import Trainer, list_checkpoints, read_logs

STEPS = 200
OVERRIDES = [f"train.steps={STEPS}", "train.checkpoint_every=20", "model.width=8", "train.batch_size=16",
             "train.log_every=5", "train.sample_every=0"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # tiny nets: one thread is fastest


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the same arithmetic as the OMP_NUM_THREADS=1 subprocesses
    yield
    torch.set_num_threads(before)


def _gankit(*args):
    return subprocess.Popen([sys.executable, "-m", "gankit", *args, "--no-progress"], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _logged_step(run):
    return max((r.get("step", -1) for r in read_logs(run / "logs.jsonl")), default=-1)


def _wait(proc, ready, timeout=90.0):
    """Poll until `ready()` holds; False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    proc.kill()
    pytest.fail("training made no progress in time")


def _kill9(proc):
    """SIGKILL; False if the process had just finished by itself."""
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode == -signal.SIGKILL


@pytest.mark.slow
def test_kill9_at_random_moments_then_resume_to_the_end(tmp_path, cli, one_thread):
    run, rng = tmp_path / "run", random.Random(0)
    args, kills = ["train", "digits-dcgan", *OVERRIDES, "--out", str(run)], 0
    for _ in range(3):
        target = _logged_step(run) + rng.randint(1, 25)  # past the step this process restarts from
        proc = _gankit(*args)
        # and past the first complete checkpoint: a kill before it has its own test below, and on a loaded machine
        # the first process could otherwise die before step 20's checkpoint however short the random wait
        if _wait(proc, lambda: _logged_step(run) >= target and bool(list_checkpoints(run))):
            time.sleep(rng.uniform(0.0, 0.3))  # then anywhere: mid-step, mid-checkpoint, mid-export, mid-prune
        if not _kill9(proc):  # finished on its own before the kill
            break
        kills += 1
        args = ["train", "--resume", str(run)]
    assert kills >= 2
    code, _, err = cli("train", "--resume", str(run), "--no-progress")
    assert code == 0 and "Traceback" not in err, err
    assert json.loads((run / "model" / "config.json").read_text())["step"] == STEPS
    assert list_checkpoints(run)[-1].name == f"step-{STEPS}"
    assert not [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # leftovers cleaned
    code, _, err = cli("sample", str(run), "-n", "16", "--out", str(tmp_path / "grid.png"))
    assert code == 0 and (tmp_path / "grid.png").is_file(), err

    # every resume restored weights, optimizer, RNG and data order exactly: same result as never being killed
    reference = tmp_path / "reference"
    Trainer(resolve("digits-dcgan", OVERRIDES)[0], reference, progress=False).fit()
    killed, clean = (load_file(str(r / "model" / "model.safetensors")) for r in (run, reference))
    assert killed.keys() == clean.keys() and all(torch.equal(killed[k], clean[k]) for k in clean)


def test_kill9_before_the_first_checkpoint_says_how_to_start_again(tmp_path, cli, one_thread):
    run = tmp_path / "run"
    no_early_save = [*OVERRIDES, "train.steps=100000", "train.checkpoint_every=100000"]
    proc = _gankit("train", "digits-dcgan", *no_early_save, "--out", str(run))
    assert _wait(proc, lambda: (run / "config.yaml").is_file()), proc.stderr.read()
    assert _kill9(proc)
    assert not list_checkpoints(run)
    code, out, err = cli("train", "--resume", str(run), "--no-progress")
    assert code == 2 and "Traceback" not in out + err
    assert err.splitlines()[0] == f"error: {run} has no complete checkpoint to resume from (it stopped before its " \
                                  "first one)"
    hint = err.splitlines()[1]
    assert hint == f"hint: start it again: gankit train {run / 'config.yaml'} --out {run} --force"
    code, _, err = cli(*hint.removeprefix("hint: start it again: gankit ").split(), "train.steps=40", "--no-progress")
    assert code == 0, err
    assert json.loads((run / "model" / "config.json").read_text())["step"] == 40
