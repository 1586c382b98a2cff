"""Fuzzing the inputs a user controls: overrides, config files, image folders, .npz files and safetensors files.

Any input either works or raises UserError (one line, exit 2 on the CLI) — never another exception.
"""

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from pydantic import BaseModel

from gankit.config import Config, apply_overrides, load_source, parse_override, to_yaml
from gankit.variants import resolve, validate_config as validate
from gankit.data import image_folder, npz_dataset
from gankit.errors import UserError
from gankit.train.checkpoint import load_tensors

# derandomize: the same examples on every run, so CI is reproducible (a failure found once is found again)
FUZZ = settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _keys(field.annotation, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


KEYS = _keys(Config)
RING8 = load_source("ring8-gan")[0]
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # encodable: surrogates cannot be written
YAML_BITS = ["[", "]", "{", "}", ":", "- ", "&a ", "*a", "!!python/object/apply:os.system ['true']", "!!binary x",
             "'", '"', "#", "\n", "  ", "\t", "? ", "---", "...", "%YAML 1.1", "1e400", "-1", "0x1F", ".inf", ".nan",
             "~", "null", "yes", "2024-01-01", "<<: *a", "|", ">"]
value_text = st.one_of(text, st.integers().map(str), st.floats().map(repr),
                       st.lists(st.sampled_from(YAML_BITS), max_size=6).map("".join))
override = st.one_of(text, st.builds("{}={}".format, st.sampled_from(KEYS) | text, value_text))


def _works_or_user_error(fn, *args, **kwargs):
    """Call fn; a UserError is a fine answer (returns None), anything else propagates and fails the test."""
    try:
        return fn(*args, **kwargs)
    except UserError as exc:
        assert exc.message
        return None


# ----------------------------------------------------------------------------------------------- config


@FUZZ
@given(st.lists(override, max_size=4))
@example(["train.steps=" + "[" * 5000])
@example(["optim.lr_d=.inf"])
@example(["data.path=a:b", "seed=1e400", "model.g_hidden=[1, -2]"])
def test_overrides_validate_or_raise_user_error(items):
    cfg = _works_or_user_error(lambda: validate(apply_overrides(RING8, items), "ring8-gan"))
    if cfg is not None:  # a valid config survives its own YAML round trip (config.yaml re-runs as is)
        assert validate(yaml.safe_load(to_yaml(cfg))) == cfg
    for item in items:
        _works_or_user_error(parse_override, item)


scalars = st.none() | st.booleans() | st.integers() | st.floats() | text
names = st.sampled_from(KEYS + [k.split(".")[-1] for k in KEYS] + ["data", "model", "loss", "optim", "train"]) | text
documents = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=4),
                         max_leaves=12)


@FUZZ
@given(st.one_of(documents.map(lambda d: yaml.safe_dump(d).encode()),
                 documents.map(lambda d: yaml.safe_dump({"train": d, "seed": 0}).encode()),
                 st.lists(st.sampled_from(YAML_BITS) | text, max_size=10).map(lambda p: "".join(p).encode()),
                 st.binary(max_size=200)))
@example(b"a: " + b"[" * 5000 + b"]" * 5000)
@example(b"train: {steps: 10}\n---\ntrain: {steps: 20}\n")
@example(b"\xff\xfe not utf-8")
def test_config_files_resolve_or_raise_user_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_bytes(content)
        _works_or_user_error(resolve, str(path), [])


@FUZZ
@given(text)
@example("a" * 300)
@example("ring8-gan\x00")
@example("../../etc/passwd")
def test_unknown_config_names_raise_user_error(name):
    _works_or_user_error(resolve, name, [])


# ----------------------------------------------------------------------------------------------- image folders


def _encoded(fmt: str, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", (13, 9), (200, 30, 30))
    img.convert(mode).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [_encoded("PNG"), _encoded("PNG", "P"), _encoded("PNG", "RGBA"), _encoded("JPEG"), _encoded("GIF"),
         _encoded("BMP"), _encoded("TIFF"), _encoded("WEBP")]


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int) -> bytes:
    """A real image file with some bytes overwritten and maybe cut short: what a flaky disk or download gives."""
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data[: max(1, len(data) - cut)])


damaged = st.builds(_mutate, st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                              max_size=6), st.integers(0, 100) | st.just(0))
image_bytes = st.one_of(st.binary(max_size=300), damaged)


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about some truncated files it still decodes
@FUZZ
@given(st.lists(st.tuples(image_bytes, st.sampled_from([".png", ".jpg", ".gif", ".webp", ".tif", ".bmp"])),
                min_size=1, max_size=4), st.sampled_from([1, 3]))
def test_image_folders_of_arbitrary_bytes_load_or_raise_user_error(files, channels):
    with tempfile.TemporaryDirectory() as tmp:
        for i, (data, suffix) in enumerate(files):
            (Path(tmp) / f"{i}{suffix}").write_bytes(data)
        ds = _works_or_user_error(image_folder, tmp, resolution=8, channels=channels)
    if ds is not None:
        assert ds.x.shape[1:] == (channels, 8, 8) and ds.x.dtype == torch.uint8
        assert len(ds) + ds.info["skipped"] == len(files)


# ----------------------------------------------------------------------------------------------- .npz


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD_NPZ = _npz_bytes({"x": np.zeros((4, 2), np.float32), "y": np.arange(4)})
npz_bytes = st.one_of(st.binary(max_size=300), st.builds(_mutate, st.just(GOOD_NPZ), st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4), st.integers(0, 50) | st.just(0)))
DTYPES = [np.uint8, np.int8, np.int64, np.uint64, np.float16, np.float32, np.float64, np.bool_, np.complex64]
small_arrays = hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=4))


@FUZZ
@given(npz_bytes)
@example(b"PK\x05\x06" + bytes(18))  # an empty zip archive
def test_npz_files_of_arbitrary_bytes_load_or_raise_user_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(content)
        _works_or_user_error(npz_dataset, str(path))
        _works_or_user_error(npz_dataset, str(path), labels_key="y")


@FUZZ
@given(st.dictionaries(st.sampled_from(["x", "y", "data"]), small_arrays, min_size=1, max_size=2),
       st.sampled_from([None, "y"]), st.sampled_from([None, 4, 8]))
def test_npz_of_arbitrary_small_arrays_load_or_raise_user_error(arrays, labels_key, resolution):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(_npz_bytes(arrays))
        ds = _works_or_user_error(npz_dataset, str(path), labels_key=labels_key, resolution=resolution)
    if ds is not None:
        x, _ = ds.take(torch.arange(len(ds)))
        assert torch.isfinite(x).all() and len(ds) >= 1 and all(ds.shape)
        if ds.kind == "image":
            assert x.min() >= -1 and x.max() <= 1 and ds.shape[0] in (1, 3)


# ----------------------------------------------------------------------------------------------- safetensors


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.builds(
    lambda n, body: n.to_bytes(8, "little") + body, st.integers(0, 2**64 - 1), st.binary(max_size=200))))
@example(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
def test_safetensors_files_of_arbitrary_bytes_load_or_raise_user_error(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(content)
        _works_or_user_error(load_tensors, path)
