"""gankit explain: D's saliency maps (checked on a linear critic, where both have a closed form), direction
effects read by the evaluator, and the command's outputs."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from gankit import edit as editing
from gankit import explain


class LinearCritic(torch.nn.Module):
    """score(x) = Σ w·x: gradient × input is w·x, integrated gradients from a black image (x − (−1))·w."""

    class_names = None

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    @property
    def device(self) -> torch.device:
        return self.w.device

    def score(self, x: torch.Tensor, cond=None) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_saliency_maps_match_their_closed_form_on_a_linear_critic():
    torch.manual_seed(0)
    w, x = torch.randn(3, 5, 5), torch.rand(2, 3, 5, 5) * 2 - 1
    grad_input, integrated = explain.saliency(LinearCritic(w), x, steps=4)
    assert torch.allclose(grad_input, (w * x).abs().sum(1), atol=1e-6)
    assert torch.allclose(integrated, ((x + 1) * w).abs().sum(1), atol=1e-5)  # exact for a linear logit


def test_heat_maps_run_from_black_to_white():
    maps = torch.tensor([[[0.0, 0.5], [1.0, 2.0]]])
    rgb = explain.heat(maps)
    assert torch.equal(rgb[0, :, 0, 0], torch.tensor([-1.0, -1.0, -1.0]))
    assert torch.equal(rgb[0, :, 1, 1], torch.tensor([1.0, 1.0, 1.0]))


@pytest.fixture(scope="module")
def tiny_run(train_tiny):
    return train_tiny("shapes-dcgan", "data.n=64", "data.resolution=16", "model.width=8", "model.z_dim=8",
                      "train.steps=2", "train.sample_every=0", "train.checkpoint_every=2")


def test_a_direction_that_moves_nothing_changes_nothing_and_describe_names_the_largest_share(tiny_run):
    from gankit.metrics import load_evaluator
    from gankit.train import load

    gen = load(tiny_run)
    found = editing.Directions({"still": editing.Direction("still", torch.zeros(8), "sefa")})
    effects = explain.direction_effects(gen, load_evaluator("shapes"), found, n=20)
    assert effects == {"still": {"shape": 0.0, "color": 0.0}}
    lines = explain.describe({"d": {"shape": 0.1, "color": 0.92}})
    assert lines["d"] == "changes color for 92% of samples (shape 10%)"


def test_explain_writes_saliency_directions_and_the_reading(tiny_run, tmp_path, cli):
    code, out, err = cli("explain", str(tiny_run), "--out", str(tmp_path / "ex"), "-n", "2")
    assert code == 0, err
    report = json.loads((tmp_path / "ex" / "explain.json").read_text())
    assert report["saliency"]["file"] == "saliency.png" and (tmp_path / "ex" / "saliency.png").is_file()
    assert "sefa0" in report["directions"] and set(report["directions"]["sefa0"]["effects"]) == {"shape", "color"}
    assert (tmp_path / "ex" / "directions.png").is_file() and "sefa0" in out


def test_explain_refuses_a_translator(train_tiny, tmp_path, cli):
    pix = train_tiny("shapes-pix2pix", "data.n=16", "data.resolution=16", "pix2pix.width=8", "train.batch_size=8",
                     "train.steps=1", "train.sample_every=0", "train.checkpoint_every=0")
    code, _, err = cli("explain", str(pix), "--out", str(tmp_path / "ex"))
    assert code == 2 and "no latent" in err and not (tmp_path / "ex").exists()


def test_explain_on_greyscale_digits_writes_into_the_run_by_default(train_tiny, cli):
    run = train_tiny("digits-dcgan", "model.width=8", "train.steps=2", "train.sample_every=0", "train.checkpoint_every=1")
    code, _, err = cli("explain", str(run), "-n", "2")
    assert code == 0, err
    with Image.open(run / "explain" / "saliency.png") as grid:  # one-channel digits beside RGB heat maps
        assert grid.mode == "RGB"
    assert json.loads((run / "explain" / "explain.json").read_text())["saliency"]["generated"] == 2
