"""`gankit provenance`: every image, GIF and .npz gankit writes says it was generated, and by what."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gankit import io


@pytest.mark.parametrize("suffix", [".png", ".gif", ".npz"])
def test_what_gankit_writes_reads_back_as_generated_with_its_fields(suffix, tmp_path, train_tiny, cli):
    run = train_tiny("digits-dcgan", "model.width=8", "train.steps=1", "train.sample_every=0",
                     "train.checkpoint_every=0")
    out = tmp_path / f"out{suffix}"
    command = ["interpolate", str(run), "--out", str(out)] if suffix == ".gif" else \
        ["sample", str(run), "-n", "4", "--seed", "7", "--out", str(out)]
    assert cli(*command)[0] == 0
    code, text, _ = cli("provenance", str(out), "--json")
    fields = json.loads(text)
    assert code == 0 and fields["gankit:generated"] == "true" and fields["gankit:run"] == run.name
    from gankit.train import load

    assert fields["gankit:model_sha256"] == load(run).weights_sha256()  # which weights made it
    assert "not a photograph" in fields["Comment"]  # the whole note, not cut at its punctuation
    if suffix != ".gif":
        assert fields["gankit:seed"] == "7"


def test_a_file_without_provenance_exits_1_and_an_unreadable_one_2(tmp_path, cli):
    Image.new("RGB", (4, 4)).save(tmp_path / "camera.png")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    for name in ("camera.png", "plain.npz"):
        code, _, err = cli("provenance", str(tmp_path / name))
        assert code == 1 and "no gankit provenance" in err
    (tmp_path / "text.png").write_text("not an image")
    code, _, err = cli("provenance", str(tmp_path / "text.png"))
    assert code == 2 and "cannot read it" in err
    code, _, err = cli("provenance", str(tmp_path))
    assert code == 2 and "is a folder" in err


def test_plots_say_gankit_made_them_but_are_not_labelled_as_generated_images(train_tiny, cli):
    run = train_tiny("digits-dcgan", "model.width=8", "train.steps=1", "train.sample_every=0",
                     "train.checkpoint_every=0")
    assert io.read_provenance(run / "losses.png") is None
    code, _, err = cli("provenance", str(run / "losses.png"))
    assert code == 1 and "a gankit plot of measurements, not a generated image" in err
    with Image.open(run / "losses.png") as image:
        assert image.info["gankit:plot"] == "losses" and image.info["gankit:run"] == run.name


def test_stripping_the_text_chunks_removes_the_label(tmp_path):
    io.save_grid(tmp_path / "g.png", torch.zeros(1, 3, 4, 4), run="r")
    assert io.read_provenance(tmp_path / "g.png")["gankit:run"] == "r"
    with Image.open(tmp_path / "g.png") as image:
        image.save(tmp_path / "copy.png")  # PIL drops text chunks unless asked to keep them
    assert io.read_provenance(tmp_path / "copy.png") is None
