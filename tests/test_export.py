"""`gankit export` (TorchScript, ONNX) gives the eager generator's samples for the same inputs, and TensorBoard logging
(`train.tensorboard=true`) writes the run's scalars and progress pictures."""

from __future__ import annotations

import pytest
import torch

import gankit
from gankit.train.export import example_inputs
from gankit.variants import Request

SMALL = ["train.steps=2", "model.width=8", "train.batch_size=8", "train.sample_every=0", "train.checkpoint_every=0"]
FAMILIES = {"t2i": "shapes32-text2img", "biggan": "shapes32-biggan", "pggan": "shapes32-pggan",
            "style": "digits-stylegan", "video": "moving-shapes-video", "video-frames": "moving-shapes-video",
            "t2i-gru": "shapes32-text2img"}  # nets whose batch size an export must not fix
EXTRA = {"t2i-gru": ["text2img.layered=false", "text2img.object_area=0"],  # the one-piece G, captions read by a GRU
         "video-frames": ["mocogan.sprite=false"]}  # the video G that draws every frame (the preset moves a sprite)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A class-conditional image run (input: z and labels), an unconditional 2D run (input: z), and runs of the other
    families whose samples are one forward pass (text-to-image: z and word ids)."""
    root = tmp_path_factory.mktemp("export")
    gankit.train(gankit.load_config("digits-cgan", SMALL), root / "cgan", progress=False)
    gankit.train(gankit.load_config("ring8-gan", SMALL), root / "ring", progress=False)
    for name, preset in FAMILIES.items():
        gankit.train(gankit.load_config(preset, [*SMALL, "data.n=64", *EXTRA.get(name, [])]), root / name,
                     progress=False)
    return root


def _eager(g, inputs):
    cond = inputs[1] if len(inputs) > 1 else None
    return g.variant.run_generator(Request(len(inputs[0]), z=inputs[0], cond=cond, prepared=True))


@pytest.mark.parametrize("name", ["cgan", "ring", *FAMILIES])
def test_torchscript_export_matches_eager_samples(runs, tmp_path, cli, name):
    code, _, err = cli("export", str(runs / name), "--format", "torchscript", "--out", str(tmp_path / "g.pt"))
    assert code == 0, err
    g = gankit.load(runs / name)
    inputs = example_inputs(g, 7, seed=5)  # another batch size than the one traced
    assert torch.equal(torch.jit.load(str(tmp_path / "g.pt"))(*inputs), _eager(g, inputs))
    assert not g.variant.training  # exporting leaves the model in eval mode (batch norm running statistics)


@pytest.mark.parametrize("name", ["cgan", "ring", *(f for f in FAMILIES if f != "t2i-gru")])
def test_onnx_export_matches_eager_samples(runs, tmp_path, cli, name):
    ort = pytest.importorskip("onnxruntime")  # the `onnx` extra, installed by `make test`
    code, _, err = cli("export", str(runs / name), "--format", "onnx", "--out", str(tmp_path / "g.onnx"))
    assert code == 0, err
    g = gankit.load(runs / name)
    inputs = example_inputs(g, 7, seed=5)
    session = ort.InferenceSession(str(tmp_path / "g.onnx"))
    out = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})[0]
    assert torch.allclose(torch.from_numpy(out), _eager(g, inputs), atol=1e-5)


def test_export_mistakes_are_one_line(runs, tmp_path, cli):
    code, _, err = cli("export", str(runs / "ring"), "--format", "tflite", "--out", str(tmp_path / "g.x"))
    assert code == 2 and err.count("error:") == 1 and "unknown export format" in err
    assert not (tmp_path / "g.x").exists()
    code, _, err = cli("export", str(runs / "ring"), "--format", "torchscript", "--out", str(tmp_path / "g.onnx"))
    assert code == 2 and "a torchscript file is named FILE.pt" in err and "--format onnx" in err
    code, _, err = cli("export", str(runs / "ring"), "--out", str(tmp_path))
    assert code == 2 and err.count("error:") == 1 and sorted(tmp_path.iterdir()) == []
    pytest.importorskip("onnx")
    # the text encoder's packed GRU leaves shapes ONNX's batch norm cannot read: one line pointing to TorchScript
    code, _, err = cli("export", str(runs / "t2i-gru"), "--format", "onnx", "--out", str(tmp_path / "t.onnx"))
    assert code == 2 and err.count("error:") == 1 and "--format torchscript" in err and "Traceback" not in err
    assert not (tmp_path / "t.onnx").exists()


def test_tensorboard_gets_scalars_and_pictures(tmp_path):
    pytest.importorskip("tensorboard")  # the `tensorboard` extra, installed by `make test`
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = gankit.load_config("ring8-gan", ["train.steps=20", "train.log_every=5", "train.sample_every=10",
                                           "train.checkpoint_every=0", "train.tensorboard=true"])
    gankit.train(cfg, tmp_path / "r", progress=False)
    events = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"d_loss", "g_loss", "d_real", "d_fake", "grad_norm_D", "grad_norm_G"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("d_loss")] == [5, 10, 15, 20]
    assert "samples" in tags["images"] and [e.step for e in events.Images("samples")] == [10, 20]
