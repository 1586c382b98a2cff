"""Datasets: toy mixtures, digits, folders, npz, and the resumable batch sampler."""

import numpy as np
import pytest
import torch
from PIL import Image

from gankit.config import DataConfig
from gankit.data import (BatchSampler, digits, grid_centers, image_folder, kind_of, load_dataset,
                         load_heldout_labelled, load_holdout, npz_dataset, ring_centers)
from gankit.data.base import as_dtype_of, as_float
from gankit.errors import UserError


def test_ring_and_grid_centres():
    ring = ring_centers(8, 1.0)
    assert torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.allclose(ring[2], torch.tensor([0.0, 1.0]), atol=1e-6)
    grid = grid_centers(5, 2.0)
    assert grid.shape == (25, 2)
    assert set(grid[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}


def test_toy_sets_use_their_default_std_and_are_seeded():
    ring = load_dataset(DataConfig(name="ring"), seed=0)
    assert ring.std == 0.01 and ring.kind == "vector" and ring.shape == (2,)
    assert (ring.x - ring.centers[ring.y]).std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.equal(ring.x, load_dataset(DataConfig(name="ring"), seed=0).x)
    assert not torch.equal(ring.x, load_dataset(DataConfig(name="ring"), seed=1).x)
    grid = load_dataset(DataConfig(name="grid", n=1000), seed=0)
    assert grid.std == 0.05 and len(grid.centers) == 25 and len(grid) == 1000
    assert len(load_dataset(DataConfig(name="spiral", modes=5), seed=0).centers) == 5


def test_digits_at_16x16_in_range():
    d = digits(16)
    assert d.x.shape == (1797, 1, 16, 16) and d.x.min() >= -1 and d.x.max() <= 1
    assert d.y.unique().tolist() == list(range(10)) and d.kind == "image"
    # corners of the digit images are background (-1) after resizing
    assert d.x[:, :, 0, 0].max() < -0.9


def test_sampler_epochs_wrap_and_resume_exactly():
    d = load_dataset(DataConfig(name="ring", n=10), seed=0)
    a = BatchSampler(d, 4, seed=5)
    seen = torch.cat([a.next().x for _ in range(5)])  # 20 items = two epochs
    assert torch.equal(seen[:10].sort(0).values, d.x.sort(0).values)  # first epoch is a permutation
    b = BatchSampler(d, 4, seed=5)
    b.cursor = 8
    assert torch.equal(b.next().x, seen[8:12])


def test_uint8_images_map_to_minus_one_to_one_and_back():
    pixels = torch.tensor([0, 51, 128, 255], dtype=torch.uint8)
    x = as_float(pixels)
    assert x.dtype == torch.float32 and torch.allclose(x, torch.tensor([-1.0, -0.6, 128 / 127.5 - 1, 1.0]), atol=1e-6)
    assert torch.equal(as_dtype_of(x, pixels), pixels)  # and back, exactly


def test_sampler_seed_decides_the_order_and_labels_stay_with_their_samples():
    d = load_dataset(DataConfig(name="ring", n=64), seed=0)
    first, other = BatchSampler(d, 48, seed=1), BatchSampler(d, 48, seed=2)
    batches = [first.next(), first.next(), other.next()]  # the second one wraps into the next epoch
    assert not torch.equal(batches[0].x, batches[2].x)  # another seed, another order
    assert torch.equal(BatchSampler(d, 48, seed=1).next().x, batches[0].x)
    for batch in batches:  # each point lies at the centre its label names (std 0.01, centres 0.77 apart)
        assert (batch.x - d.centers[batch.y]).norm(dim=1).max() < 0.1


def test_toy_sets_take_the_std_the_config_gives():
    ring = load_dataset(DataConfig(name="ring", std=0.1), seed=0)
    assert ring.std == 0.1 and (ring.x - ring.centers[ring.y]).std().item() == pytest.approx(0.1, rel=0.05)


def _png(path, size, mode="RGB", colour=(200, 30, 30)):
    Image.new(mode, size, colour if mode != "L" else 128).save(path)


def test_folder_with_labels_mixed_modes_and_broken_files(tmp_path, caplog):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        _png(tmp_path / cls / "a.png", (40, 30))
        _png(tmp_path / cls / "b.png", (20, 50), mode="L")
    Image.new("RGBA", (33, 33), (0, 0, 255, 128)).save(tmp_path / "cats" / "c.png")
    Image.new("P", (24, 24)).save(tmp_path / "dogs" / "d.gif")
    (tmp_path / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "dogs" / "notes.txt").write_text("hello")
    ds = image_folder(str(tmp_path), resolution=16, channels=3)
    assert ds.x.shape == (6, 3, 16, 16) and ds.x.dtype == torch.uint8
    assert ds.class_names == ["cats", "dogs"] and ds.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert "skipped 1 unreadable" in caplog.text
    x, _ = ds.take(torch.arange(2))
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1


def test_folder_skips_hidden_files_and_reads_upper_case_suffixes(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        _png(tmp_path / cls / "a.png", (20, 20))
    _png(tmp_path / "dogs" / "B.PNG", (20, 20))
    (tmp_path / ".ipynb_checkpoints").mkdir()
    _png(tmp_path / ".ipynb_checkpoints" / "a.png", (20, 20))  # a hidden folder is no class
    _png(tmp_path / "cats" / ".hidden.png", (20, 20))
    ds = image_folder(str(tmp_path), resolution=8)
    assert ds.class_names == ["cats", "dogs"] and ds.y.tolist() == [0, 1, 1] and ds.info["skipped"] == 0


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        image_folder(str(tmp_path / "missing"))
    with pytest.raises(UserError, match="holds no image files"):
        image_folder(str(tmp_path))
    (tmp_path / "x.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="none of the 1 image files could be read"):
        image_folder(str(tmp_path))


def test_npz_vectors_images_and_errors(tmp_path):
    np.savez(tmp_path / "v.npz", data=np.random.randn(50, 3).astype(np.float32))
    v = npz_dataset(str(tmp_path / "v.npz"))
    assert v.kind == "vector" and v.shape == (3,)
    np.savez(tmp_path / "i.npz", imgs=np.random.randint(0, 256, (10, 8, 8, 3), dtype=np.uint8),
             labels=np.arange(10) % 2)
    i = npz_dataset(str(tmp_path / "i.npz"), key="imgs", labels_key="labels")
    assert i.shape == (3, 8, 8) and i.x.min() >= -1 and i.num_classes == 2
    np.savez(tmp_path / "nan.npz", data=np.array([[1.0, np.nan]]))
    with pytest.raises(UserError, match="nan.npz\\['data'\\] contains NaN"):
        npz_dataset(str(tmp_path / "nan.npz"))
    with pytest.raises(UserError, match="has no array 'zzz'"):
        npz_dataset(str(tmp_path / "v.npz"), key="zzz")
    np.savez(tmp_path / "w.npz", data=np.zeros((4, 5, 6, 7)))
    with pytest.raises(UserError, match="1 or 3 channels"):
        npz_dataset(str(tmp_path / "w.npz"))
    np.savez(tmp_path / "obj.npz", data=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="object \\(pickled\\) arrays"):
        npz_dataset(str(tmp_path / "obj.npz"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable .npz"):
        npz_dataset(str(tmp_path / "bad.npz"))


def test_npz_images_map_to_minus_one_to_one_in_every_layout(tmp_path):
    hwc = np.zeros((2, 4, 6, 3), dtype=np.uint8)  # (N, H, W, C), not square
    hwc[:, 0, :, 0] = 255  # the top row of the red channel
    np.savez(tmp_path / "u.npz", x=hwc)
    u = npz_dataset(str(tmp_path / "u.npz"))
    assert u.shape == (3, 4, 6) and u.x.dtype == torch.float32
    assert (u.x[:, 0, 0] == 1).all() and (u.x[:, 0, 1:] == -1).all() and (u.x[:, 1:] == -1).all()
    np.savez(tmp_path / "f.npz", x=np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 1, 4, 4))
    assert npz_dataset(str(tmp_path / "f.npz")).x.aminmax() == (-1, 1)  # floats in [0, 1] are mapped too
    signed = np.linspace(-1, 1, 32, dtype=np.float32).reshape(2, 1, 4, 4)
    np.savez(tmp_path / "s.npz", x=signed)
    assert torch.equal(npz_dataset(str(tmp_path / "s.npz")).x, torch.from_numpy(signed))  # kept as they are
    np.savez(tmp_path / "wide.npz", x=np.linspace(0, 255, 32, dtype=np.float32).reshape(2, 1, 4, 4))
    with pytest.raises(UserError, match="values span \\[0, 255\\]"):
        npz_dataset(str(tmp_path / "wide.npz"))


def test_npz_labels_must_be_non_negative_and_name_every_class(tmp_path):
    x = np.zeros((4, 3), dtype=np.float32)
    np.savez(tmp_path / "gap.npz", x=x, y=np.array([0, 2, 2, 0]))
    assert npz_dataset(str(tmp_path / "gap.npz"), labels_key="y").class_names == ["0", "1", "2"]  # y indexes them
    np.savez(tmp_path / "neg.npz", x=x, y=np.array([0, -1, 1, 0]))
    with pytest.raises(UserError, match="must be 4 integers"):
        npz_dataset(str(tmp_path / "neg.npz"), labels_key="y")


def test_npz_inputs_with_nan_are_refused_naming_nan(tmp_path):
    np.savez(tmp_path / "in.npz", samples=np.array([[0.5, np.nan]], dtype=np.float32))
    with pytest.raises(UserError, match="contains NaN"):
        kind_of("vector").read_inputs(tmp_path / "in.npz", {})


def test_holdout_keeps_a_seeded_share_of_image_data_out_of_training():
    cfg = DataConfig(name="digits", holdout=0.1)
    train, held = load_dataset(cfg), load_holdout(cfg)
    assert (len(train), len(held)) == (1617, 180)  # 10 % of the 1,797 digits
    index_of = {tuple(r): i for i, r in enumerate(digits(16).x.flatten(1).tolist())}  # the 1,797 digits are distinct
    rows = lambda x: {index_of[tuple(r)] for r in x.flatten(1).tolist()}  # noqa: E731
    assert not rows(train.x) & rows(held.x) and len(rows(train.x) | rows(held.x)) == 1797  # disjoint, the whole set
    assert torch.equal(load_holdout(cfg).x, held.x)  # the same split every time
    assert not torch.equal(load_holdout(DataConfig(name="digits", holdout=0.1, split_seed=1)).x, held.x)
    assert load_holdout(DataConfig(name="digits")) is None and len(load_dataset(DataConfig(name="digits"))) == 1797
    x, _, _, note = load_heldout_labelled(cfg, 0, 50)  # inversion and anomaly scores read the held-out samples
    assert len(x) == 50 and "data.holdout" in note and rows(x) <= rows(held.x)


def test_holdout_refuses_data_it_cannot_split():
    with pytest.raises(UserError, match="data.holdout"):
        load_dataset(DataConfig(name="digits", holdout=0.1, pair="invert"))
    with pytest.raises(UserError, match="not of captions data"):
        load_dataset(DataConfig(name="captions", holdout=0.1, n=50))
