"""A newcomer's first hour: --version, helpful --help, one-line errors from the command line itself, devices that do
not exist, the Python API refusing to overwrite a run, model folders under any name, short runs in the doctor, pipes,
and what every run records about itself (run.json, time stamps, the loss plot)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

import gankit
from gankit.cli import app
from gankit.train import Trainer, read_logs

COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands]


def _one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.count("error:") == 1 and fragment in err and "Traceback" not in err and "╭" not in err, err


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"gankit {gankit.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_examples(cli, command):
    code, out, _ = cli(command, "--help")
    assert code == 0 and "Examples:" in out and f"gankit {command}" in out


def test_train_help_keeps_its_brackets(cli):
    assert "--resume RUN [key=value...]" in " ".join(cli("train", "--help")[1].split())


def test_help_and_messages_are_not_read_as_markup(cli, tmp_path):
    """Rich reads `[onnx]` as a style tag and drops it: the extra to install and run paths with brackets print whole."""
    assert "pip install gankit[onnx]" in " ".join(cli("export", "--help")[1].replace("│", " ").split())
    run = tmp_path / "[bold]" / "r"
    code, out, err = cli("train", "ring8-gan", "train.steps=4", "--out", str(run), "--no-progress")
    assert code == 0 and f"step 4 saved in {run}:" in out + err and f"gankit report {run}" in out + err, out + err


@pytest.mark.parametrize("args, fragment", [
    (["sample"], "Missing argument"),
    (["sample", "runs/x", "--n", "3", "--out", "x.png"], "No such option"),  # typer >= 0.28 and click word it apart
    (["sample", "runs/x", "-n", "many", "--out", "x.png"], "Invalid value for '-n'"),
    (["trian"], "No such command"),
    (["sample", "runs/x", "--seed", "99999999999999999999", "--out", "x.png"], "Invalid value for '--seed'"),
    (["train", "ring8-gan", "seed=99999999999999999999"], "invalid value for 'seed'"),
])
def test_command_line_mistakes_are_one_line(cli, args, fragment):
    _one_line_error(*cli(*args)[::2], fragment)


@pytest.mark.parametrize("device, fragment", [("tpu", "not a device name"), ("cuda:7", "cuda")])
def test_a_device_this_machine_lacks_is_exit_2_without_a_run_dir(cli, tmp_path, device, fragment):
    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has that device")
    code, _, err = cli("train", "ring8-gan", f"train.device={device}", "--out", str(tmp_path / "r"), "--no-progress")
    _one_line_error(code, err, fragment)
    assert not (tmp_path / "r").exists()


def test_python_api_refuses_to_train_over_a_run(tmp_path, ring_cfg):
    gankit.train(ring_cfg("train.steps=2"), tmp_path / "r", progress=False)
    with pytest.raises(gankit.UserError, match="already holds a run"):
        gankit.train(ring_cfg("train.steps=2"), tmp_path / "r", progress=False)


def test_model_folders_load_under_any_name_and_save_pretrained_round_trips(tmp_path, ring_cfg):
    gankit.train(ring_cfg("train.steps=2"), tmp_path / "r", progress=False)
    shutil.copytree(tmp_path / "r" / "model", tmp_path / "my-model")
    expected = gankit.load(tmp_path / "r").sample(20, seed=4)
    assert torch.equal(gankit.load(tmp_path / "my-model").sample(20, seed=4), expected)
    gankit.load(tmp_path / "r").save_pretrained(tmp_path / "saved")
    assert torch.equal(gankit.load(tmp_path / "saved").sample(20, seed=4), expected)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["schema"] == 2


def test_doctor_says_when_a_run_is_too_short_to_judge(cli, tmp_path, ring_cfg):
    gankit.train(ring_cfg("train.steps=20"), tmp_path / "r", progress=False)
    code, out, _ = cli("doctor", str(tmp_path / "r"))
    assert code == 0 and "too short to judge" in out and "no problems found" not in out
    assert json.loads(cli("doctor", str(tmp_path / "r"), "--json")[1])["judged"] is False


def test_a_closed_pipe_ends_quietly():
    read, write = os.pipe()
    os.close(read)  # the reader is gone before gankit writes a byte
    proc = subprocess.run([sys.executable, "-m", "gankit", "variants"], stdout=write, stderr=subprocess.PIPE,
                          text=True, timeout=120)
    os.close(write)
    assert proc.returncode == 1 and proc.stderr == ""  # quiet; 1 is click's exit code for a broken pipe


def test_every_run_and_resume_is_recorded(tmp_path, ring_cfg):
    gankit.train(ring_cfg("train.steps=4", "train.checkpoint_every=2"), tmp_path / "r", progress=False)
    Trainer(ring_cfg("train.steps=6"), tmp_path / "r", resume=True, progress=False).fit()
    sessions = json.loads((tmp_path / "r" / "run.json").read_text())["sessions"]
    assert [(s["from_step"], s["to_step"], s["status"]) for s in sessions] == [(0, 4, "finished"), (4, 6, "finished")]
    for s in sessions:
        assert s["gankit"] == gankit.__version__ and s["torch"] == torch.__version__ and s["threads"] >= 1
        assert {"python", "platform", "device", "argv", "git_commit", "start", "end"} <= s.keys()
    assert all(isinstance(r["time"], float) for r in read_logs(tmp_path / "r" / "logs.jsonl"))
    assert (tmp_path / "r" / "losses.png").is_file()  # drawn at the checkpoint, with no CLI involved


def test_no_arguments_show_the_help_without_an_error(cli):
    code, out, err = cli()
    assert code == 0 and "train" in out + err and "error:" not in err


def test_running_out_of_memory_is_one_line_with_a_hint(cli, tmp_path, monkeypatch):
    import importlib

    training = importlib.import_module("gankit.train")  # the package (gankit.train is also a function's name)

    def too_big(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 25600000000 bytes.")

    monkeypatch.setattr(training, "load", too_big)
    code, _, err = cli("sample", str(tmp_path), "-n", "100000000", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "error: out of memory" in err and "smaller -n" in err and "Traceback" not in err
    monkeypatch.setattr(training, "load", lambda *a, **k: 1 / 0)  # a bug keeps its traceback
    with pytest.raises(ZeroDivisionError):
        cli("sample", str(tmp_path), "--out", str(tmp_path / "x.png"))


def test_run_record_keeps_the_process_count_and_launch_of_a_session(tmp_path):
    from gankit.train.runrecord import RunRecord

    record = RunRecord(tmp_path)
    record.start(torch.device("cpu"), 3, processes=2, launch="job-1")
    record.end(7, "finished")
    session = json.loads((tmp_path / "run.json").read_text())["sessions"][0]
    assert (session["processes"], session["launch"], session["from_step"], session["to_step"]) == (2, "job-1", 3, 7)
