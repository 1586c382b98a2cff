"""The procedural shapes set: layout and range, seeding, subsets and label kinds, captions, errors, speed, and
rendering from explicit specs (paired domains and moving objects change only what was changed)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import pytest
import torch

from gankit.config import DataConfig
from gankit.data import BatchSampler, load_dataset, load_heldout_labelled
from gankit.data.shapes import (BACKGROUNDS, COLOR_RGB, COLORS, SHAPES, Difficulty, ShapeSpecs, captions, random_specs,
                                render, shapes)
from gankit.errors import UserError


@pytest.fixture(scope="module")
def data():
    return shapes(n=2000, seed=0)


def specs(n: int = 64, seed: int = 0) -> ShapeSpecs:
    return random_specs(n, torch.Generator().manual_seed(seed))


def test_images_are_uint8_rgb_and_batches_in_range(data):
    assert data.x.shape == (2000, 3, 32, 32) and data.x.dtype == torch.uint8 and data.kind == "image"
    assert data.class_names == list(SHAPES) and data.y.unique().tolist() == list(range(len(SHAPES)))
    assert data.attributes["color"].unique().tolist() == list(range(len(COLORS)))
    assert data.attributes["background"].unique().tolist() == [0, 1]
    batch = BatchSampler(data, 32, seed=0).next()
    assert batch.x.shape == (32, 3, 32, 32) and batch.x.min() >= -1 and batch.x.max() <= 1
    assert batch.x.std() > 0.3  # real contrast, not a flat image
    spec = data.spec()
    assert json.loads(json.dumps(spec)) == spec and spec["attributes"]["color"] == list(COLORS)


def test_seed_fixes_every_image(data):
    again = shapes(n=2000, seed=0)
    assert torch.equal(data.x, again.x) and torch.equal(data.y, again.y)
    assert all(torch.equal(data.attributes[k], again.attributes[k]) for k in data.attributes)
    assert not torch.equal(data.x, shapes(n=2000, seed=1).x)
    s = specs(300)
    assert torch.equal(render(s)[100:200], render(s[100:200]))  # an image depends on its own row only


def test_load_dataset_reads_the_config():
    cfg = DataConfig(name="shapes", n=300, resolution=16, label="color", colors=["blue", "red"])
    data = load_dataset(cfg, seed=3)
    assert data.x.shape == (300, 3, 16, 16) and data.class_names == ["red", "blue"]  # canonical order
    assert torch.equal(data.x, load_dataset(cfg, seed=3).x) and not torch.equal(data.x, load_dataset(cfg, seed=4).x)


@pytest.mark.parametrize("label", ["shape", "color", "shape_color"])
def test_subsets_and_label_kinds(label):
    data = shapes(n=1200, shapes=["star", "circle", "ring"], colors=["white", "red"], label=label, seed=0)
    names = {"shape": ["circle", "star", "ring"], "color": ["red", "white"],
             "shape_color": ["red circle", "white circle", "red star", "white star", "red ring", "white ring"]}[label]
    assert data.class_names == names
    counts = torch.bincount(data.y, minlength=len(names))
    assert len(counts) == len(names) and counts.min() > 0.7 * 1200 / len(names)  # every class, roughly uniform
    assert set(data.attributes["shape"].tolist()) == {SHAPES.index(s) for s in ("star", "circle", "ring")}
    assert set(data.attributes["color"].tolist()) == {COLORS.index(c) for c in ("white", "red")}
    for i in range(0, 1200, 97):  # the class name says what the attributes say
        shape, color = SHAPES[data.attributes["shape"][i]], COLORS[data.attributes["color"][i]]
        assert data.class_names[data.y[i]] == {"shape": shape, "color": color, "shape_color": f"{color} {shape}"}[label]


def test_captions_match_attributes(data):
    drawn = random_specs(500, torch.Generator().manual_seed(0))
    texts = captions(drawn)
    assert len(texts) == len(drawn)
    for caption, s, c, b in zip(texts, drawn.shape.tolist(), drawn.color.tolist(), drawn.tone.tolist()):
        assert caption == f"a {COLORS[c]} {SHAPES[s]} on a {BACKGROUNDS[b]} background"
    light = data.attributes["background"] == 1
    assert not (light & (data.attributes["color"] == COLORS.index("white"))).any()  # never white on light grey
    # the tone is what the pixels show: light backgrounds are bright in the corners
    corners = data.x[:, :, [0, 0, -1, -1], [0, -1, 0, -1]].float().mean(dim=(1, 2))
    assert corners[light].min() > corners[~light].max() - 40


def test_unknown_names_are_user_errors():
    with pytest.raises(UserError, match="unknown shape 'hexagon'") as info:
        load_dataset(DataConfig(name="shapes", shapes=["circle", "hexagon"]))
    assert all(name in info.value.hint for name in SHAPES)
    with pytest.raises(UserError, match="unknown colour 'teal'") as info:
        shapes(n=10, colors=["teal"])
    assert all(name in info.value.hint for name in COLORS)
    with pytest.raises(UserError, match="no shapes chosen"):
        shapes(n=10, shapes=[])
    with pytest.raises(UserError, match="unknown shapes label"):
        shapes(n=10, label="size")


def test_generation_is_fast():
    start = time.perf_counter()
    shapes(n=5000, seed=0)
    assert time.perf_counter() - start < 5.0


def outside_circles(s: ShapeSpecs, resolution: int, *others: ShapeSpecs) -> torch.Tensor:
    """(N, R, R) mask of pixels farther than one pixel from every shape's circumcircle."""
    coord = (torch.arange(resolution) + 0.5) / resolution
    mask = torch.ones(len(s), resolution, resolution, dtype=torch.bool)
    for spec in (s, *others):
        dist = torch.hypot(coord.view(1, 1, -1) - spec.center[:, 0, None, None],
                           coord.view(1, -1, 1) - spec.center[:, 1, None, None])
        mask &= dist > spec.size[:, None, None] + 1.5 / resolution
    return mask


def test_paired_rendering_changes_only_the_changed_attribute():
    s = specs(64)
    base = render(s)
    recoloured = replace(s, color=(s.color + 1) % len(COLORS))
    other = render(recoloured)
    changed = (base != other).any(dim=1)  # (N, R, R)
    assert changed.flatten(1).any(dim=1).all()  # every object changed colour ...
    assert not (changed & outside_circles(s, 32)).any()  # ... and nothing outside it
    assert [c.split(" on ")[1] for c in captions(recoloured)] == [c.split(" on ")[1] for c in captions(s)]
    reshaped = render(replace(s, shape=(s.shape + 1) % len(SHAPES)))
    assert not ((base != reshaped).any(dim=1) & outside_circles(s, 32)).any()
    # a moving object (video frames): the background, noise included, stays where it was
    moved = replace(s, center=(s.center + 0.05).clamp(max=1 - s.size[:, None]))
    assert not ((base != render(moved)).any(dim=1) & outside_circles(s, 32, moved)).any()
    # and the object itself is drawn in its colour: the centre pixel of a circle is exactly the colour
    circle = replace(s[:1], shape=torch.tensor([0]), color=torch.tensor([0]), center=torch.tensor([[0.5, 0.5]]),
                     size=torch.tensor([0.4]), noise=torch.tensor([0.05]))
    centre = render(circle, 33)[0, :, 16, 16].float()
    assert torch.allclose(centre, 255 * torch.tensor(COLOR_RGB["red"]), atol=0.51)


def test_difficulty_knobs_narrow_the_draws_and_keep_everything_else():
    full = random_specs(400, torch.Generator().manual_seed(3))
    easy = random_specs(400, torch.Generator().manual_seed(3), difficulty=Difficulty(
        size_range=(0.3, 0.3), jitter=0.0, rotation=0.0, noise=0.0, gradient=0.0, backgrounds=("dark",)))
    assert torch.equal(full.shape, easy.shape) and torch.equal(full.color, easy.color)  # same draws, narrowed
    assert torch.equal(full.noise_seed, easy.noise_seed)
    assert torch.allclose(easy.size, torch.full((400,), 0.3)) and torch.allclose(easy.center, torch.full((400, 2), 0.5))
    assert not easy.rotation.any() and not easy.noise.any() and not easy.gradient.any() and not easy.tone.any()
    half = random_specs(400, torch.Generator().manual_seed(3), difficulty=Difficulty(jitter=0.5, rotation=90.0))
    offset = (half.center - 0.5).abs()
    assert torch.allclose(offset, 0.5 * (full.center - 0.5).abs(), atol=1e-6)  # half the spread, same direction
    assert half.rotation.max() < math.pi / 2 and torch.allclose(half.rotation, full.rotation / 4)
    light = random_specs(400, torch.Generator().manual_seed(3), difficulty=Difficulty(backgrounds=("light",)))
    white = light.color == COLORS.index("white")
    assert light.tone[~white].all() and not light.tone[white].any()  # white stays readable on dark
    assert Difficulty().is_default and not Difficulty(jitter=0.5).is_default


def test_difficulty_reaches_the_dataset_from_the_config():
    default = load_dataset(DataConfig(name="shapes", n=300))
    assert torch.equal(default.x, shapes(n=300).x) and "difficulty" not in default.info  # defaults: today's set
    easy = load_dataset(DataConfig(name="shapes", n=300, jitter=0, rotation=0, noise=0, gradient=0))
    assert easy.info["difficulty"]["jitter"] == 0 and not torch.equal(easy.x, default.x)
    assert torch.equal(easy.y, default.y)  # the same objects, drawn more simply
    flat = easy.x.float()
    assert (flat[:, :, 0, :] - flat[:, :, 0, :1]).abs().max() <= 1  # no noise, no gradient: a flat top row


@pytest.mark.parametrize("knobs, field", [(dict(size_range=(0.3, 0.6)), "size_range"), (dict(jitter=1.5), "jitter"),
                                          (dict(rotation=-1.0), "rotation"),
                                          (dict(backgrounds=("grey",)), "background")])
def test_out_of_range_difficulty_is_a_user_error(knobs, field):
    with pytest.raises(UserError, match=field):
        Difficulty(**knobs)


def test_held_out_shapes_are_fresh_objects_drawn_with_the_configs_difficulty():
    cfg = DataConfig(name="shapes", n=200, resolution=16, jitter=0, rotation=0, noise=0, gradient=0)
    train = load_dataset(cfg, seed=0)
    x, y, names, note = load_heldout_labelled(cfg, 0, 200)  # as many as trained on: the counts give nothing away
    assert names == train.class_names and "not trained on" in note
    assert not torch.equal(y, train.y) and not (x == train.take(torch.arange(200))[0]).flatten(1).all(1).any()
    assert (x[:, :, 0, :] - x[:, :, 0, :1]).abs().max() <= 1 / 127.5 + 1e-6  # no noise, no gradient: a flat top row
