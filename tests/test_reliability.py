"""Reliability: corrupt checkpoints and weights, leftovers of killed saves, bad input, messy data, huge learning
rates and pickles. Each failure ends in a fallback with a warning, or in one `error:` line and exit code 2."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import gankit
from gankit.variants import resolve
from gankit.data.folder import load_image
from gankit.errors import UserError
from gankit.train import Trainer, latest_checkpoint, list_checkpoints
from gankit.train import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ["model.width=8", "train.batch_size=16", "train.log_every=10", "train.sample_every=0"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny nets train fastest on one thread (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A 40-step digits-dcgan run with checkpoints at steps 20 and 40; tests that damage it use `run_copy`."""
    run = tmp_path_factory.mktemp("base") / "run"
    cfg = resolve("digits-dcgan", [*DIGITS, "train.steps=40", "train.checkpoint_every=20"])[0]
    Trainer(cfg, run, progress=False).fit()
    return run


@pytest.fixture
def run_copy(digits_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    return run


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path: Path) -> None:
    """Same size, valid header, one weight changed: only the checksum can tell."""
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def _model_step(run: Path) -> int:
    return json.loads((run / "model" / "config.json").read_text())["step"]


def _one_error(code: int, out: str, err: str, fragment: str) -> str:
    """Exit 2, no traceback, exactly one `error:` line (containing `fragment`); returns the rest of stderr."""
    assert code == 2, err
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and fragment in errors[0], err
    return err


# ----------------------------------------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("damage, steps, kept", [
    (_truncate, 60, ["step-20", "step-40", "step-60"]),  # training passes step 40 again and rewrites it
    (_flip_a_byte, 30, ["step-20", "step-30"]),  # stops before: the skipped step-40 must not outlive step-30
])
def test_resume_falls_back_past_a_corrupt_newest_checkpoint(run_copy, cli, damage, steps, kept):
    damage(run_copy / "checkpoints" / "step-40" / "model.safetensors")
    code, out, err = cli("train", "--resume", str(run_copy), f"train.steps={steps}", "--no-progress")
    assert code == 0 and "Traceback" not in out + err, err
    assert "warning: skipping checkpoint step-40" in err and "checksum mismatch" in err
    assert _model_step(run_copy) == steps
    assert [p.name for p in list_checkpoints(run_copy)] == kept
    for path in list_checkpoints(run_copy):
        ckpt.read_checkpoint(path)  # every checkpoint left verifies


def test_sample_falls_back_to_the_newest_verified_checkpoint(run_copy, cli, tmp_path):
    out_file = str(tmp_path / "s.npz")
    _truncate(run_copy / "model" / "model.safetensors")
    code, _, err = cli("sample", str(run_copy), "-n", "4", "--out", out_file)
    assert code == 0 and "warning:" in err and "corrupt" in err and "newest verified checkpoint" in err, err
    assert gankit.load(run_copy).info["step"] == 40

    _flip_a_byte(run_copy / "checkpoints" / "step-40" / "model.safetensors")
    code, _, err = cli("sample", str(run_copy), "-n", "4", "--out", out_file)
    assert code == 0 and "skipping checkpoint step-40" in err, err
    assert gankit.load(run_copy).info["step"] == 20

    _truncate(run_copy / "checkpoints" / "step-20" / "model.safetensors")  # nothing valid is left
    _one_error(*cli("sample", str(run_copy), "-n", "4", "--out", out_file), "is corrupt")


def test_truncated_weights_and_no_checkpoint_is_exit_2(run_copy, cli, tmp_path):
    shutil.rmtree(run_copy / "checkpoints")
    _truncate(run_copy / "model" / "model.safetensors")
    _one_error(*cli("sample", str(run_copy), "--out", str(tmp_path / "x.png")), "model.safetensors is corrupt")


def test_resume_with_other_network_sizes_is_exit_2(run_copy, cli):
    _one_error(*cli("train", "--resume", str(run_copy), "model.width=16", "--no-progress"), "does not fit this config")


def test_a_read_only_run_is_one_error_for_training_and_no_cache_for_edits(run_copy, monkeypatch, caplog):
    """Root ignores file modes, so the refusals of a read-only folder are simulated at the system calls."""
    from gankit.edit import cached_module

    real_open = os.open

    def no_lock(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_lock)
    with pytest.raises(UserError, match=r"cannot write .*\.lock: Permission denied"):
        Trainer(resolve(str(run_copy / "config.yaml"), ["train.steps=60"])[0], run_copy, resume=True,
                progress=False).fit()
    monkeypatch.setattr(os, "open", real_open)

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    trained = torch.nn.Linear(2, 2)
    with caplog.at_level("WARNING"):
        got = cached_module(run_copy / "edit" / "encoder", {"fingerprint": "x"}, lambda meta: torch.nn.Linear(2, 2),
                            lambda: (trained, {}))
    assert got is trained and "not kept" in caplog.text and not (run_copy / "edit" / "encoder.json").exists()
    from gankit.edit import run_directions

    caplog.clear()
    with caplog.at_level("WARNING"):
        found = run_directions(gankit.load(run_copy), run_copy, None)
    assert "sefa0" in found.items and "finds them again" in caplog.text
    assert not (run_copy / "edit" / "directions.json").exists()


def test_hand_edited_run_files_are_one_error_or_skipped_never_a_traceback(run_copy, cli):
    """run.json, metrics.json and logs.jsonl edited to wrong types: info/report name the file (exit 2), the doctor
    and a resume skip log lines that are no records, and a resume starts the run record again."""
    record = (run_copy / "run.json").read_text()
    (run_copy / "run.json").write_text('{"sessions": 5}')
    _one_error(*cli("info", str(run_copy)), "run.json: its sessions are not gankit's run record")
    (run_copy / "run.json").write_text('{"sessions": [{"start": "x", "end": "y"}]}')
    _one_error(*cli("report", str(run_copy)), "run.json: its sessions")
    (run_copy / "run.json").write_text(record)
    (run_copy / "metrics.json").write_text("[1, 2]")
    _one_error(*cli("info", str(run_copy)), "metrics.json holds a JSON list, not an object")
    (run_copy / "metrics.json").unlink()
    (run_copy / "run.json").write_text('{"sessions": 5}')
    with open(run_copy / "logs.jsonl", "a") as f:
        f.write('{"step": "abc", "d_loss": 1}\n[1, 2]\n')
    code, _, err = cli("doctor", str(run_copy))
    assert code in (0, 1) and "Traceback" not in err and "2 line(s) that are not training records" in err, err
    code, _, err = cli("train", "--resume", str(run_copy), "train.steps=50", "--no-progress")
    assert code == 0, err
    assert "abc" not in (run_copy / "logs.jsonl").read_text()
    sessions = json.loads((run_copy / "run.json").read_text())["sessions"]
    assert [s["to_step"] for s in sessions] == [50]


@pytest.mark.parametrize("z_dim, problem", [("abc", "invalid value for 'model.z_dim'"), (7, "do not fit")])
def test_a_model_description_edited_wrong_falls_back_to_the_checkpoint_or_names_the_file(run_copy, cli, tmp_path,
                                                                                          z_dim, problem):
    path = run_copy / "model" / "config.json"
    info = json.loads(path.read_text())
    info["generator"]["model"]["z_dim"] = z_dim
    path.write_text(json.dumps(info))
    code, _, err = cli("sample", str(run_copy), "-n", "2", "--out", str(tmp_path / "a.png"))
    assert code == 0 and f"{path}: " in err and problem in err and "newest verified checkpoint" in err, err
    shutil.rmtree(run_copy / "checkpoints")
    err = _one_error(*cli("sample", str(run_copy), "-n", "2", "--out", str(tmp_path / "b.png")), f"{path}: ")
    assert problem in err and not (tmp_path / "b.png").exists()


def test_a_run_directory_given_as_the_preset_points_to_resume(run_copy, cli):
    err = _one_error(*cli("train", str(run_copy), "--no-progress"), "is a run directory")
    assert f"gankit train --resume {run_copy}" in err


def test_resume_below_the_runs_step_is_exit_2_and_changes_nothing(run_copy, cli):
    before = {name: (run_copy / name).read_bytes() for name in ("config.yaml", "run.json", "logs.jsonl")}
    err = _one_error(*cli("train", "--resume", str(run_copy), "train.steps=10", "--no-progress"), "train.steps=10")
    assert "at (40)" in err and "train.steps=80" in err
    assert {name: (run_copy / name).read_bytes() for name in before} == before


def _save(run: Path, step: int) -> Path:
    return ckpt.save_checkpoint(run, step, {"model.safetensors": {"w": torch.full((3,), float(step))}}, {})


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_saves_are_read_safely_and_repaired_by_the_next_save(tmp_path):
    run, dead = tmp_path / "run", _dead_pid()
    root = run / "checkpoints"
    _save(run, 10)
    _save(run, 20)
    os.replace(root / "step-20", root / f".old-step-20-{dead}")  # killed between the two renames of a re-save
    (root / f".tmp-step-20-{dead}").mkdir()
    (root / f".tmp-step-30-{dead}").mkdir()  # killed while writing step 30
    (root / f".tmp-step-30-{dead}" / "model.safetensors").write_bytes(b"half a file")
    (root / f".trash-step-5-{dead}").mkdir()  # killed while pruning
    before = sorted(p.name for p in root.iterdir())

    path, state, files = latest_checkpoint(run)  # readers use the orphaned copy and change nothing
    assert state["step"] == 20 and path.name == f".old-step-20-{dead}"
    assert sorted(p.name for p in root.iterdir()) == before

    _save(run, 30)
    assert sorted(p.name for p in root.iterdir()) == ["step-10", "step-20", "step-30"]
    assert ckpt.read_checkpoint(root / "step-20")[1]["model.safetensors"]["w"][0] == 20


def test_pruning_keeps_the_newest_complete_checkpoint(tmp_path):
    run = tmp_path / "run"
    root = run / "checkpoints"
    _save(run, 10)
    _save(run, 20)
    live = root / f".tmp-step-30-{os.getppid()}"  # a newer save still being written by a live process
    live.mkdir()
    ckpt.prune_checkpoints(run, keep=1)
    assert [p.name for p in list_checkpoints(run)] == ["step-20"] and live.is_dir()
    ckpt.prune_checkpoints(run, keep=0)  # never below one
    assert [p.name for p in list_checkpoints(run)] == ["step-20"]


def test_a_save_after_a_fallback_drops_the_skipped_newer_checkpoint(tmp_path, caplog):
    run = tmp_path / "run"
    for step in (10, 20, 40):
        _save(run, step)
    _truncate(run / "checkpoints" / "step-40" / "model.safetensors")
    assert latest_checkpoint(run)[1]["step"] == 20 and "skipping checkpoint step-40" in caplog.text
    _save(run, 30)  # training went on from step 20 and saved step 30
    ckpt.prune_checkpoints(run, keep=1)
    assert [p.name for p in list_checkpoints(run)] == ["step-30"]  # not the corrupt step-40


def test_checkpoint_with_a_foreign_state_json_is_skipped(tmp_path, caplog):
    run = tmp_path / "run"
    _save(run, 10)
    _save(run, 20)
    (run / "checkpoints" / "step-20" / "state.json").write_text("[1, 2]")
    assert latest_checkpoint(run)[1]["step"] == 10 and "state.json is unreadable" in caplog.text


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    _save(run, 10)

    def disk_full(path, tensors):
        Path(path).write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ckpt, "save_tensors", disk_full)
    with pytest.raises(UserError, match="cannot save checkpoint step-20: No space left"):
        _save(run, 20)
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-10"]


# ----------------------------------------------------------------------------------------------- bad input


def _bad_inputs(d: Path) -> dict[str, tuple[list[str], str, str | None]]:
    """Case -> (gankit arguments, fragment of the error line, fragment of the hint or None); files made in d."""
    (d / "bad.yaml").write_text("train:\n  steps: 10\n   oops: [\n")
    (d / "a_file").write_text("not a directory")
    (d / "no_images").mkdir()
    (d / "no_images" / "readme.txt").write_text("hello")
    (d / "all_corrupt").mkdir()
    for name in ("a.png", "b.jpg"):
        (d / "all_corrupt" / name).write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(40)))
    np.savez(d / "shape.npz", pixels=np.zeros((4, 5, 6, 7), np.float32))
    np.savez(d / "empty.npz", points=np.zeros((4, 0), np.float32))
    np.savez(d / "nan.npz", points=np.array([[0.0, 1.0], [np.inf, 2.0]]))
    np.savez(d / "huge.npz", points=np.array([[0.0, 1e300]]))
    ring = ["train", "ring8-gan"]
    return {
        "unknown preset": (["train", "digits-dcgn"], "unknown preset 'digits-dcgn'", "did you mean 'digits-dcgan'"),
        "misspelt key": ([*ring, "train.stepz=10"], "unknown config key 'train.stepz'", "did you mean 'train.steps'"),
        "float for an int": ([*ring, "train.steps=2.5"], "invalid value for 'train.steps'", None),
        "text for a float": ([*ring, "optim.lr_d=fast"], "invalid value for 'optim.lr_d'", None),
        "missing config file": (["train", str(d / "nope.yaml")], "does not exist", None),
        "malformed yaml": (["train", str(d / "bad.yaml")], "malformed YAML at line 3", None),
        "out under a file": ([*ring, "--out", str(d / "a_file" / "run")], "cannot write to", "writable"),
        "no data.path": ([*ring, "data.name=folder"], "data.path is required", "data.path="),
        "no npz data.path": ([*ring, "data.name=npz"], "data.path is required", None),
        "folder of no images": ([*ring, "data.name=folder", f"data.path={d / 'no_images'}"], "holds no image files",
                                ".png"),
        "all-corrupt folder": ([*ring, "data.name=folder", f"data.path={d / 'all_corrupt'}"],
                               "none of the 2 image files could be read", None),
        "npz channels": ([*ring, "data.name=npz", f"data.path={d / 'shape.npz'}"], "shape.npz['pixels'] has shape",
                         None),
        "npz empty rows": ([*ring, "data.name=npz", f"data.path={d / 'empty.npz'}"], "empty.npz['points'] has shape",
                           None),
        "npz non-finite": ([*ring, "data.name=npz", f"data.path={d / 'nan.npz'}"], "nan.npz['points'] contains NaN",
                           None),
        "npz beyond float32": ([*ring, "data.name=npz", f"data.path={d / 'huge.npz'}"],
                               "huge.npz['points'] has values beyond float32", None),
        "npz not a zip": ([*ring, "data.name=npz", f"data.path={d / 'bad.yaml'}"], "not a readable .npz", None),
        "sample a file": (["sample", str(d / "a_file"), "--out", str(d / "x.png")], "is not a directory", None),
    }


CASES = [  # the keys of _bad_inputs
    "unknown preset", "misspelt key", "float for an int", "text for a float", "missing config file", "malformed yaml",
    "out under a file", "no data.path", "no npz data.path", "folder of no images", "all-corrupt folder",
    "npz channels", "npz empty rows", "npz non-finite", "npz beyond float32", "npz not a zip", "sample a file"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_before_any_work(case, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where runs/NAME would appear
    args, fragment, hint = _bad_inputs(tmp_path)[case]
    err = _one_error(*cli(*args, "--no-progress") if args[0] == "train" else cli(*args), fragment)
    if hint:
        assert "hint: " in err and hint in err.split("hint: ", 1)[1], err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run was started


def test_sample_to_a_place_that_cannot_be_written_is_exit_2(digits_run, cli, tmp_path):
    (tmp_path / "a_file").write_text("not a directory")
    for out in ("x.png", "x.npz", "each/"):
        _one_error(*cli("sample", str(digits_run), "-n", "2", "--out", f"{tmp_path / 'a_file'}/{out}"), "cannot write")


@pytest.mark.parametrize("command", [["invert", "--out", "z.npz"], ["score", "--out", "s.csv", "--knn", "2"]])
def test_input_arrays_that_are_empty_or_not_finite_are_exit_2_before_any_output(digits_run, cli, tmp_path,
                                                                               command):
    shape = gankit.load(digits_run).spec["shape"]
    np.savez(tmp_path / "empty.npz", samples=np.zeros((0, *shape), np.float32))
    bad = np.zeros((3, *shape), np.float32)
    bad[1, 0, 4, 4] = np.nan
    np.savez(tmp_path / "nan.npz", samples=bad)
    name, *rest = command
    rest = [str(tmp_path / part) if part.endswith((".npz", ".csv")) else part for part in rest]
    for given, fragment in (("empty.npz", "empty.npz['samples'] holds no inputs"),
                            ("nan.npz", "nan.npz['samples'] contains NaN")):
        _one_error(*cli(name, str(digits_run), str(tmp_path / given), *rest), fragment)
    assert not (tmp_path / "z.npz").exists() and not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("command", [
    ["interpolate", "--out", "{d}/walk.gif"],
    ["invert", "{imgs}", "--out", "{d}/z.npz"],
    ["invert", "{imgs}", "--out", "{d}/y.npz", "--grid"],  # y.png is the folder
    ["score", "{imgs}", "--out", "{d}/s.csv", "--knn", "2"],
    ["score", "{imgs}", "--out", "{d}/t.csv", "--knn", "2", "--roc", "{d}/roc.png"],
    ["report", "--out", "{d}/r.html"],
    ["directions", "--grid", "{d}/dirs.png"]])
def test_an_output_file_that_is_a_folder_is_exit_2_before_any_output(digits_run, cli, tmp_path, command):
    d, imgs = tmp_path / "d", tmp_path / "imgs"
    for name in ("walk.gif", "z.npz", "y.png", "s.csv", "roc.png", "r.html", "dirs.png"):
        (d / name).mkdir(parents=True)
    imgs.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(imgs / f"{i}.png")
    name, *rest = command
    _one_error(*cli(name, str(digits_run), *(a.format(d=d, imgs=imgs) for a in rest)), "it is a folder")
    assert sorted(p.name for p in d.iterdir()) == sorted(["walk.gif", "z.npz", "y.png", "s.csv", "roc.png", "r.html",
                                                          "dirs.png"])  # nothing else written


def test_a_folder_of_samples_appears_whole_or_not_at_all(digits_run, cli, tmp_path, monkeypatch):
    out = tmp_path / "many"
    (out / "000002.png").mkdir(parents=True)  # a name the samples need is taken by a folder
    _one_error(*cli("sample", str(digits_run), "-n", "4", "--out", f"{out}/"), "it is a folder")
    assert [p.name for p in out.iterdir()] == ["000002.png"]  # none of the other three, and no temporary files

    from gankit import io

    real_write = io.write_bytes
    calls = []

    def disk_full_at_the_third(path, data):
        calls.append(path)
        if len(calls) == 3:  # the disk fills while the third file is written
            with io.atomic_path(path):
                raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(io, "write_bytes", disk_full_at_the_third)
    _one_error(*cli("sample", str(digits_run), "-n", "5", "--out", f"{tmp_path / 'new' / 'deep'}/"), "No space left")
    assert len(calls) == 3 and not (tmp_path / "new").exists()  # no half-set, no folder left behind


def test_a_command_says_it_wrote_its_outputs_only_once_they_are_in_place(digits_run, cli, tmp_path, monkeypatch):
    from gankit import io

    moved = []
    real_move = io._move_into_place

    def move(tmp, path):
        real_move(tmp, path)
        moved.append(path)

    monkeypatch.setattr(io, "_move_into_place", move)
    code, _, err = cli("sample", str(digits_run), "-n", "3", "--out", f"{tmp_path / 'ok'}/")
    assert code == 0 and len(moved) == 3 and "wrote 3" in err, err  # three PNGs, moved into place at the end

    def fail_at_the_second(tmp, path):
        if moved:
            raise UserError(f"cannot write {path}: No space left on device", "choose a writable location")
        move(tmp, path)

    moved.clear()
    monkeypatch.setattr(io, "_move_into_place", fail_at_the_second)
    err = _one_error(*cli("sample", str(digits_run), "-n", "3", "--out", f"{tmp_path / 'full'}/"), "No space left")
    assert "wrote 3" not in err  # the line used to come before the files were moved, and stayed when they were not


def test_a_folder_named_like_a_file_is_refused_unless_the_name_ends_in_a_slash(digits_run, cli, tmp_path):
    (tmp_path / "x.npz").mkdir()
    _one_error(*cli("sample", str(digits_run), "-n", "2", "--out", str(tmp_path / "x.npz")), "it is a folder")
    assert list((tmp_path / "x.npz").iterdir()) == []
    code, _, err = cli("sample", str(digits_run), "-n", "2", "--out", f"{tmp_path / 'x.npz'}/")  # said: a folder
    assert code == 0 and len(list((tmp_path / "x.npz").iterdir())) == 2, err


def test_a_csv_sample_never_stays_without_its_provenance(tmp_path, cli):
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,target\n" + "".join(f"{i % 3},{i / 40:.3f},{i % 2}\n" for i in range(40)))
    run = tmp_path / "run"
    code, _, err = cli("train", "table", f"data.path={csv}", "data.target=target", "train.steps=2",
                       "train.pictures=false", "--out", str(run), "--no-progress")
    assert code == 0, err
    (tmp_path / "x.csv.provenance.json").mkdir()  # the label cannot be written
    _one_error(*cli("sample", str(run), "-n", "5", "--out", str(tmp_path / "x.csv")), "it is a folder")
    assert not (tmp_path / "x.csv").exists()


def test_interpolation_records_every_option_that_changes_it(digits_run, cli, tmp_path):
    for psi in ("0.5", "1.0"):
        code, _, err = cli("interpolate", str(digits_run), "--out", str(tmp_path / f"w{psi}.png"), "--steps", "3",
                           "--rows", "1", "--truncation", psi)
        assert code == 0, err
    meta = [gankit.io.read_provenance(tmp_path / f"w{psi}.png") for psi in ("0.5", "1.0")]
    assert meta[0]["gankit:truncation"] == "0.5" and meta[1]["gankit:truncation"] == "1.0"
    assert meta[0]["gankit:rows"] == "1" and meta[0]["gankit:steps"] == "3"


# ----------------------------------------------------------------------------------------------- messy data


def _messy_folder(folder: Path) -> None:
    """40 images of random sizes (10-90 px) and modes, one broken PNG and one text file."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    modes = ["RGB"] * 25 + ["RGBA"] * 5 + ["P"] * 4 + ["L"] * 4 + ["I;16"] * 2
    for i, mode in enumerate(modes):
        w, h = (int(v) for v in rng.integers(10, 91, size=2))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        if mode == "RGBA":
            img.putalpha(Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)))
        elif mode == "I;16":
            img = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
        elif mode != "RGB":
            img = img.convert(mode)
        img.save(folder / f"{i:02d}{'.jpg' if mode in ('RGB', 'L') and i % 4 == 0 else '.png'}")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + rng.bytes(200))
    (folder / "notes.txt").write_text("where these came from")


def test_messy_image_folder_trains_with_a_warning(cli, tmp_path):
    _messy_folder(tmp_path / "imgs")
    run = tmp_path / "run"
    code, out, err = cli("train", "digits-dcgan", "data.name=folder", f"data.path={tmp_path / 'imgs'}",
                         "data.resolution=16", "model.width=8", "train.steps=5", "--out", str(run), "--no-progress")
    assert code == 0 and "Traceback" not in out + err, err
    assert "warning: skipped 1 unreadable image file(s)" in err and "broken.png" in err
    info = json.loads((run / "model" / "config.json").read_text())
    assert info["step"] == 5 and info["spec"]["shape"] == [3, 16, 16]
    code, _, err = cli("sample", str(run), "-n", "4", "--out", str(tmp_path / "grid.png"))
    assert code == 0, err


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (32, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    pixels = load_image(tmp_path / "ramp.png", 16, 1)
    assert pixels.shape == (1, 16, 16) and 100 < pixels.mean() < 155  # PIL's own convert gives almost all 255


# ----------------------------------------------------------------------------------------------- huge learning rates


@pytest.mark.parametrize("preset, extra", [("ring8-gan", []), ("digits-dcgan", DIGITS)])
def test_huge_learning_rates_never_end_in_a_traceback(cli, tmp_path, preset, extra):
    run = tmp_path / "run"
    code, out, err = cli("train", preset, *extra, "optim.lr_d=1e12", "optim.lr_g=1e12", "train.steps=60",
                         "train.sample_every=0", "train.checkpoint_every=20", "--out", str(run), "--no-progress")
    assert code in (0, 3) and "Traceback" not in out + err, err
    if code == 3:
        assert "error: training diverged" in err
    code, _, err = cli("sample", str(run), "-n", "16", "--out", str(tmp_path / "s.npz"))
    assert code == 0, err
    with np.load(tmp_path / "s.npz") as f:
        assert np.isfinite(f["samples"]).all()


# ----------------------------------------------------------------------------------------------- never unpickle


def _calls(text: str, name: str) -> list[str]:
    """The argument text of every `name(...)` call in source text (parentheses balanced)."""
    found = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        found.append(text[m.end(): i - 1])
    return found


def test_the_package_never_unpickles():
    offenders = []
    for path in sorted((ROOT / "gankit").rglob("*.py")):
        text, where = path.read_text(), path.relative_to(ROOT)
        offenders += [f"{where}: torch.load({args})" for args in _calls(text, "torch.load")
                      if "weights_only=True" not in args]
        offenders += [f"{where}: {m.group()}" for m in re.finditer(
            r"\bpickle\.(loads?|Unpickler)\b|allow_pickle\s*=\s*True|\byaml\.(load|unsafe_load)\(|"
            r"\b(cloudpickle|dill|joblib)\b|read_pickle", text)]
    assert not offenders, offenders


@pytest.mark.parametrize("name", ["weights.pt", "G.pth", "network-snapshot.pkl", "last.ckpt"])
def test_a_pickle_only_run_is_refused(cli, tmp_path, name):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / name).write_bytes(b"\x80\x04K\x01.")  # pickle of the integer 1
    with pytest.raises(UserError, match="arbitrary code"):
        gankit.load(tmp_path / "run")
    err = _one_error(*cli("sample", str(tmp_path / "run"), "--out", str(tmp_path / "x.png")), name)
    assert "arbitrary code" in err


def test_sigterm_while_writing_samples_leaves_nothing_behind(digits_run, tmp_path):
    """`kill` / `timeout` during `gankit sample --out DIR/`: no hidden temporaries, no folder, exit 143, one line."""
    import signal
    import time

    out = tmp_path / "many"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "sample", str(digits_run), "-n", "200000", "--out",
                             f"{out}/"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(out.iterdir())) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM and "Traceback" not in err and err.count("error:") == 1, err
    assert not out.exists(), sorted(p.name for p in out.iterdir())[:5]


@pytest.mark.parametrize("command", [["train", "ring8-gan", "train.steps=2", "--no-progress", "--out"],
                                     ["sample", "RUN", "-n", "2", "--out"], ["report", "RUN", "--out"]])
def test_a_name_too_long_for_the_file_system_is_one_error(digits_run, cli, tmp_path, command):
    long = str(tmp_path / ("a" * 300)) + (".html" if command[0] == "report" else ".png")
    args = [str(digits_run) if a == "RUN" else a for a in command]
    err = _one_error(*cli(*args, long if command[0] != "train" else long[:-4]), "File name too long")
    assert "shorter" in err and list(tmp_path.iterdir()) == []


def test_an_output_under_a_file_names_the_file(digits_run, cli, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    err = _one_error(*cli("sample", str(digits_run), "-n", "2", "--out", str(tmp_path / "notes.txt" / "x.png")),
                     f"{tmp_path / 'notes.txt'} is a file, not a folder")
    assert (tmp_path / "notes.txt").read_text() == "mine" and "move that file away" in err


def test_an_empty_out_is_refused_not_taken_for_the_current_folder(digits_run, cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_error(*cli("sample", str(digits_run), "-n", "2", "--out", ""), "--out is empty")
    _one_error(*cli("sample", str(digits_run), "-n", "2", "--out="), "--out is empty")
    assert not any(tmp_path.iterdir())


def test_a_folder_that_is_no_run_is_not_searched_for_pickles_deep_down(tmp_path):
    """Pickles two folders down (a virtual environment, a dataset cache) are not the folder's weights."""
    deep = tmp_path / "project" / "venv" / "lib"
    deep.mkdir(parents=True)
    (deep / "cache.pkl").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UserError, match="is not a gankit run"):
        gankit.load(tmp_path / "project")
    (tmp_path / "project" / "venv" / "G.pth").write_bytes(b"\x80\x04K\x01.")  # one folder down: a model's weights
    with pytest.raises(UserError, match="G.pth"):
        gankit.load(tmp_path / "project")


def test_every_test_named_in_the_reliability_doc_exists():
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", (ROOT / "docs" / "reliability.md").read_text())
    assert len(named) > 20
    missing = [f"{file}::{name}" for file, name in named
               if not (ROOT / file).is_file() or f"def {name}(" not in (ROOT / file).read_text()]
    assert not missing, missing


def test_outputs_that_fail_while_moving_into_place_leave_the_old_files(tmp_path, monkeypatch):
    from gankit import io

    a, b, c = (tmp_path / name for name in "abc")
    a.write_text("old a")
    real_move = io._move_into_place

    def fail_at_c(tmp, path):
        if path.name == "c":
            raise UserError(f"cannot write {path}: Permission denied", "choose a writable location")
        real_move(tmp, path)

    monkeypatch.setattr(io, "_move_into_place", fail_at_c)
    with pytest.raises(UserError, match="Permission denied"):
        with io.outputs_together(tmp_path):
            for path in (a, b, c):
                io.write_bytes(path, b"new")
    assert a.read_text() == "old a" and sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # b and c never appear
    monkeypatch.setattr(io, "_move_into_place", real_move)
    with io.outputs_together(tmp_path):
        for path in (a, b):
            io.write_bytes(path, b"new")
    assert a.read_text() == b.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    with io.outputs_together(tmp_path):  # a target written twice takes its last version, and leaves no backup
        io.write_bytes(a, b"first")
        io.write_bytes(a, b"second")
    assert a.read_text() == "second" and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
