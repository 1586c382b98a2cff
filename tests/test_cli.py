"""The CLI end to end (in-process): commands work, and bad input gives one error line and exit code 2."""

import json

import numpy as np
import pytest
from PIL import Image

FAST = ["train.steps=40", "train.log_every=10", "train.sample_every=0", "train.checkpoint_every=0"]


@pytest.fixture
def ring_run(cli, tmp_path):
    run = tmp_path / "r"
    code, _, err = cli("train", "ring8-gan", *FAST, "--out", str(run), "--no-progress")
    assert code == 0, err
    return run


def test_train_reports_where_outputs_are(ring_run, cli):
    assert (ring_run / "losses.png").is_file() and (ring_run / "samples" / "step-40.png").is_file()


def test_eval_json_has_the_pacgan_keys(ring_run, cli):
    code, out, _ = cli("eval", str(ring_run), "--json")
    result = json.loads(out)
    assert code == 0 and {"modes", "hq_fraction", "reverse_kl", "protocol"} <= result.keys()
    assert result["protocol"]["samples"] == 2500
    assert json.loads((ring_run / "metrics.json").read_text())["modes"] == result["modes"]


@pytest.mark.parametrize("option", [["--features", "raw"], ["--target", "income"], ["--weights", "w.safetensors"]])
def test_eval_refuses_an_option_no_metric_of_the_run_reads(ring_run, cli, option):
    """Toy 2D data is measured by its modes alone: a feature extractor or a table's column would be ignored."""
    code, _, err = cli("eval", str(ring_run), *option)
    assert code == 2 and f"{option[0]} does not apply to {ring_run}" in err and "Traceback" not in err, err
    assert not (ring_run / "metrics.json").exists()


def _strict(text: str):
    """json.loads that refuses NaN and Infinity, as JavaScript's JSON.parse and other standard parsers do."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_eval_and_info_json_write_an_infinite_metric_as_null(ring_run, cli, monkeypatch):
    import dataclasses

    from gankit.metrics.modes2d import modes2d
    from gankit.report import evaluate

    # a G whose samples miss every mode has an infinite reverse KL
    monkeypatch.setattr(evaluate, "modes2d", lambda *a: dataclasses.replace(modes2d(*a), reverse_kl=float("inf")))
    code, out, err = cli("eval", str(ring_run), "--json")
    assert code == 0, err
    assert _strict(out)["reverse_kl"] is None
    assert _strict((ring_run / "metrics.json").read_text())["reverse_kl"] is None
    code, out, _ = cli("info", str(ring_run), "--json")
    assert code == 0 and _strict(out)["metrics"]["reverse_kl"] is None
    code, out, _ = cli("info", str(ring_run))
    assert code == 0 and "reverse_kl undefined" in out


def test_sample_npz_and_scatter(ring_run, cli, tmp_path):
    assert cli("sample", str(ring_run), "-n", "1000", "--out", str(tmp_path / "s.npz"))[0] == 0
    with np.load(tmp_path / "s.npz") as f:
        assert f["samples"].shape == (1000, 2)
    assert cli("sample", str(ring_run), "-n", "300", "--out", str(tmp_path / "s.png"))[0] == 0
    assert Image.open(tmp_path / "s.png").info["gankit:generated"] == "true"


def test_resume_continues_to_raised_steps(ring_run, cli):
    code, _, err = cli("train", "--resume", str(ring_run), "train.steps=60", "--no-progress")
    assert code == 0, err
    assert json.loads((ring_run / "model" / "config.json").read_text())["step"] == 60


def test_info_and_presets(ring_run, cli):
    code, out, _ = cli("info", str(ring_run), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["step"] == 40 and summary["parameters"]["G"] > 0
    assert summary["training_seconds"] > 0 and summary["model"] == "mlp"
    assert "width" not in summary["config"]["model"] and "resolution" not in summary["config"]["data"]  # n/a here
    assert {"modes", "radius"} <= summary["config"]["data"].keys() and "g_hidden" in summary["config"]["model"]
    code, out, _ = cli("info", str(ring_run))
    assert code == 0 and out.startswith(f"{ring_run}: gan (mlp nets, non_saturating loss) on ring")
    assert "steps       40 of" in out and "parameters  D " in out and "metrics     none yet" in out
    code, out, _ = cli("presets")
    assert code == 0 and "digits-dcgan" in out


def test_digits_sample_grid_is_8x8(cli, tmp_path):
    run = tmp_path / "d"
    assert cli("train", "digits-dcgan", "train.steps=2", "model.width=8", *FAST[1:], "--out", str(run),
               "--no-progress")[0] == 0
    assert cli("sample", str(run), "-n", "64", "--out", str(tmp_path / "grid.png"))[0] == 0
    img = Image.open(tmp_path / "grid.png")
    side = (8 * (16 + 1) + 1) * 4  # 8 digits of 16 pixels with 1 pixel of padding, enlarged ×4
    assert img.size == (side, side)
    assert cli("sample", str(run), "-n", "3", "--out", str(tmp_path / "each") + "/")[0] == 0
    assert len(list((tmp_path / "each").glob("*.png"))) == 3


@pytest.mark.parametrize("args, fragment", [
    (["train", "nosuchpreset"], "unknown preset 'nosuchpreset'"),
    (["train", "ring8-gan", "train.stepz=10"], "unknown config key 'train.stepz'"),
    (["train", "ring8-gan", "train.steps=-5"], "invalid value for 'train.steps'"),
    (["train", "ring8-gan", "train.steps=ten"], "invalid value for 'train.steps'"),
    (["sample", "/no/such/run", "--out", "x.png"], "does not exist"),
    (["train", "--resume", "/no/such/run"], "not a run directory"),
])
def test_bad_input_is_one_line_exit_2(cli, args, fragment):
    code, out, err = cli(*args)
    assert code == 2
    assert fragment in err and "Traceback" not in err + out
    assert err.splitlines()[0].startswith("error: ")


def test_existing_run_is_not_overwritten_without_force(ring_run, cli):
    code, _, err = cli("train", "ring8-gan", *FAST, "--out", str(ring_run), "--no-progress")
    assert code == 2 and "already holds a run" in err
    code, _, _ = cli("train", "ring8-gan", *FAST, "--out", str(ring_run), "--force", "--no-progress")
    assert code == 0


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_an_out_that_is_a_file_is_refused_and_kept(cli, tmp_path, force):
    picture = tmp_path / "s.png"
    picture.write_bytes(b"not a run")
    code, _, err = cli("train", "ring8-gan", *FAST, "--out", str(picture), "--no-progress", *force)
    assert code == 2 and "is a file" in err and "Traceback" not in err and picture.read_bytes() == b"not a run"


def test_sample_of_a_folder_that_is_no_run(cli, tmp_path):
    code, _, err = cli("sample", str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert code == 2 and "not a gankit run" in err
    (tmp_path / "weights.pth").write_bytes(b"\x80\x04K\x01.")
    code, _, err = cli("sample", str(tmp_path), "--out", str(tmp_path / "x.png"))
    assert code == 2 and "arbitrary code" in err


def test_force_keeps_the_old_run_when_the_new_one_cannot_start(ring_run, cli):
    before = (ring_run / "model" / "model.safetensors").read_bytes()
    code, _, err = cli("train", "digits-dcgan", "data.name=folder", "data.path=/no/such/folder", "--out", str(ring_run),
                       "--force", "--no-progress")
    assert code == 2 and "data.path" in err
    assert (ring_run / "model" / "model.safetensors").read_bytes() == before
    assert not list(ring_run.parent.glob(".*replaced*"))


def test_a_run_being_trained_is_locked(ring_run, cli):
    import subprocess
    import sys

    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (ring_run / ".lock").write_text(str(sleeper.pid))
        code, _, err = cli("train", "--resume", str(ring_run), "train.steps=50", "--no-progress")
        assert code == 2 and f"being trained by process {sleeper.pid}" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    code, _, err = cli("train", "--resume", str(ring_run), "train.steps=50", "--no-progress")  # stale lock: taken over
    assert code == 0, err
    assert not (ring_run / ".lock").exists()


def test_out_of_memory_is_a_user_error(ring_run, cli, monkeypatch):
    from gankit.train import Trainer

    def no_memory(self):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(Trainer, "fit", no_memory)
    code, _, err = cli("train", "--resume", str(ring_run), "train.steps=50", "--no-progress")
    assert code == 2 and "out of memory" in err and "train.batch_size" in err and "Traceback" not in err


def test_cli_starts_without_torch_and_train_stays_a_function():
    import subprocess
    import sys

    probe = ("import sys, gankit.cli; print('torch' in sys.modules); "
             "import gankit; from gankit.train import Trainer; print(callable(gankit.train), Trainer.__name__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "Trainer"]


def test_eval_of_2d_data_always_measures_pacgans_2500_samples_from_the_given_seed(ring_run, cli, monkeypatch):
    import torch

    from gankit.metrics.modes2d import modes2d
    from gankit.report import evaluate
    from gankit.train import load

    measured = []
    monkeypatch.setattr(evaluate, "modes2d", lambda x, *a: measured.append(len(x)) or modes2d(x, *a))
    code, out, err = cli("eval", str(ring_run), "-n", "100", "--seed", "3", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"]["samples"] == 2500 and result["protocol"]["seed"] == 3
    gen = load(ring_run)
    report = modes2d(gen.sample(2500, seed=3), torch.tensor(gen.spec["centers"]), gen.spec["std"])
    assert measured == [2500] and result["hq_fraction"] == pytest.approx(report.hq_fraction)


def test_summary_lines_and_training_time_say_what_the_run_records(tmp_path):
    from gankit.report.info import _duration, _training_seconds, summary_lines

    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"sessions": [
        {"start": "2024-01-01T00:00:00+00:00", "end": "2024-01-01T00:01:00+00:00"},
        {"start": "2024-01-01T01:00:00+00:00", "end": "2024-01-01T01:02:05+00:00"},
        {"start": "2024-01-01T02:00:00+00:00", "end": None}]}))  # still running (or killed): not counted
    assert _training_seconds(run) == 185.0
    assert _duration(185) == "3 min 5 s" and _duration(3725) == "1 h 2 min" and _duration(7) == "7 s"
    info = {"run": "r", "variant": "gan", "nets": "mlp nets", "loss": "hinge", "data": "ring", "kind": "points",
            "sample": "2", "step": 5, "target_steps": 5, "checkpoints": [], "training_seconds": 185.0,
            "parameters": {"G": 10}, "weights": "ema", "metrics": {"fid": 1.5, "kid": 0.25}}
    lines = summary_lines(info)
    assert "weights     ema (sampling uses the EMA generator)" in lines and "trained     3 min 5 s (run.json)" in lines
    assert lines[-1] == "metrics     fid 1.5, kid 0.25 (metrics.json)"
    assert "EMA" not in "\n".join(summary_lines({**info, "weights": "live"}))
