"""The README's command-line and Python examples run as written (training shortened), so commands, flags, presets and
JSON keys it shows keep working."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
# three steps leave no room for a preset's restart candidates (train.restart_steps must be below train.steps)
SHORT = ["train.steps=3", "train.restarts=1", "train.log_every=1", "train.sample_every=0", "train.checkpoint_every=0",
         "--no-progress"]


def _block(after: str, language: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(after)
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    return match.group(1)


def test_readme_command_lines_run(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real_images").mkdir()
    for i in range(12):  # a folder of the user's own images for `gankit fid`
        pixels = (np.random.default_rng(i).random((16, 16)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "real_images" / f"{i}.png")
    lines = [line.split(" #")[0].strip() for line in _block("## Command line", "bash").splitlines()]
    commands = [shlex.split(line)[1:] for line in lines if line.startswith("gankit ")]
    assert len(commands) >= 15
    for args in commands:
        if args[0] == "train" and "--resume" in args:
            args = [a if not a.startswith("train.steps=") else "train.steps=5" for a in args] + ["--no-progress"]
        elif args[0] == "train":
            args = [*args, *SHORT]
        code, out, err = cli(*args)
        assert code == 0, (args, err)
        if args[:2] == ["eval", "runs/ring"]:
            assert {"modes", "hq_fraction", "reverse_kl"} <= json.loads(out).keys()
    assert np.load(tmp_path / "ring.npz")["samples"].shape == (1000, 2)
    assert Image.open(tmp_path / "grid.png").size[0] > 0 and (tmp_path / "walk.gif").is_file()
    assert (tmp_path / "runs" / "grid25-best" / "model" / "config.json").is_file()


def test_readme_python_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = _block("## Python", "python").replace('"train.steps=2000"', '"train.steps=20"')
    assert '"train.steps=20"' in code
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the project's own README
    assert namespace["x"].shape == (1000, 2)
