"""Ctrl-C / SIGTERM during training: finish the step, checkpoint, exit 130 / 143, and the run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest


def _start(run, *extra):
    cmd = [sys.executable, "-m", "gankit", "train", "ring8-gan", "train.steps=100000", "train.log_every=5",
           "train.sample_every=0", "train.checkpoint_every=0", "--out", str(run), "--no-progress", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_logs(proc, run, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (run / "logs.jsonl").is_file() and (run / "logs.jsonl").read_text().count("\n") >= 2:
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    pytest.fail("training produced no logs in time")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_and_exits(tmp_path, sig, code):
    run = tmp_path / "r"
    proc = _start(run)
    _wait_for_logs(proc, run)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "resume with" in err
    step = json.loads((run / "model" / "config.json").read_text())["step"]
    assert step > 0 and (run / "checkpoints" / f"step-{step}" / "state.json").is_file()
    resumed = subprocess.run([sys.executable, "-m", "gankit", "train", "--resume", str(run),
                              f"train.steps={step + 10}", "--no-progress"], capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / "model" / "config.json").read_text())["step"] == step + 10


def test_a_signal_before_the_first_log_record_still_saves_and_says_how_to_resume(tmp_path):
    """Nothing to report on yet (no log record): the report is skipped, not turned into an error (exit 2)."""
    run = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", "digits-dcgan", "model.width=8",
                             "train.steps=100000", "train.log_every=100000", "train.sample_every=0",
                             "train.checkpoint_every=0", "--out", str(run), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / "run.json").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the loop, its signal handlers installed
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "error:" not in err and "resume with" in err
    step = json.loads((run / "model" / "config.json").read_text())["step"]
    assert (run / "checkpoints" / f"step-{step}" / "state.json").is_file()
