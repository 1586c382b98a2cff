"""Datasets, all offline and seeded: toy 2D mixtures, scikit-learn digits, procedural shapes, image folders, .npz
arrays."""

from __future__ import annotations

import torch
from torch import Tensor

from ..config import DataConfig
from ..errors import UserError
from .captions import CaptionBatch, CaptionDataset, CaptionSampler, caption_dataset
from .base import ONE_PROCESS, Batch, BatchSampler, Dataset, Shard, as_float
from .clips import DEFAULT_CLIPS, ClipKind, moving_digits, moving_shapes
from .digits import digits
from .folder import image_folder
from .kinds import KINDS, DataKind, ImageKind, VectorKind, kind_of, output_format, register_kind
from .npz import npz_dataset, read_npz
from .pairs import HELDOUT_SEED_OFFSET, PairBatch, PairDataset, PairSampler, image_pairs, truth_pairs
from .shapes import Difficulty, shapes
from .tabular import TableBatch, TableOptions, TableSampler, decode, read_public, table_dataset, table_from_frame
from .text import Oracle, TextOptions, TokenKind, build_oracle, nci_dataset, oracle_dataset, text_dataset
from .toy2d import DEFAULT_STD, grid_centers, mixture, ring_centers, spiral_centers


def load_dataset(cfg: DataConfig, seed: int = 0) -> Dataset:
    """The dataset a config names (two domains when `data.pair` is set; only the `data.normal` classes when set;
    without the `data.holdout` share kept out of training); toy sets are drawn once from `seed`."""
    if cfg.pair is not None:
        if cfg.normal or cfg.holdout:
            raise UserError(f"data.{'normal' if cfg.normal else 'holdout'} does not apply to two domains "
                            "(data.pair); translators are scored on their own held-out pairs", "drop one of them")
        return image_pairs(cfg, seed, lambda: _plain(cfg, seed), _difficulty(cfg))
    data = _split(cfg, seed)[0]
    return only_classes(data, cfg.normal) if cfg.normal else data


def load_holdout(cfg: DataConfig, seed: int = 0) -> Dataset | None:
    """The samples `data.holdout` keeps out of training (every class, whatever `data.normal` says), or None when it
    keeps none."""
    return _split(cfg, seed)[1] if cfg.holdout and cfg.pair is None else None


def _split(cfg: DataConfig, seed: int) -> tuple[Dataset, Dataset | None]:
    """(training samples, held-out samples or None) of image or vector data: `data.holdout` of the rows, chosen by
    `data.split_seed` (tables and sequences split themselves)."""
    data = _plain(cfg, seed)
    if not cfg.holdout or cfg.name in ("table", "text", "nci"):
        return data, None
    if type(data) is not Dataset:
        raise UserError(f"data.holdout keeps samples of image or vector data out of training, not of {data.kind} data "
                        f"({data.name})", "drop data.holdout")
    k = round(cfg.holdout * len(data))
    if not 1 <= k < len(data):
        raise UserError(f"data.holdout={cfg.holdout} of {len(data)} samples keeps {k} out of training",
                        "keep at least one sample out and one in")
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.split_seed))
    kept, held = order[k:].sort().values, order[:k].sort().values
    note = {"fraction": cfg.holdout, "samples": k, "split_seed": cfg.split_seed}
    return data.subset(kept, holdout_split=note), data.subset(held, holdout_split=note)


def only_classes(data: Dataset, classes: list[str]) -> Dataset:
    """The samples of `data` whose class is one of `classes` (names, or indices as strings), with the class list
    kept whole and `info["normal"]` naming the chosen ones: a model of normal data for anomaly detection."""
    if data.y is None or not data.class_names:
        raise UserError(f"data.normal needs labelled data, and {data.name} has no labels",
                        "use digits, shapes, a folder with one sub-folder per class, or an npz with labels_key")
    names = data.class_names
    picked = []
    for item in classes:
        index = names.index(item) if item in names else int(item) if item.isdigit() else -1
        if not 0 <= index < len(names):
            raise UserError(f"data.normal: unknown class '{item}'", f"the classes are: {', '.join(names)}")
        picked.append(index)
    keep = torch.isin(data.y, torch.tensor(picked))
    if not keep.any():
        raise UserError(f"data.normal={','.join(classes)} selects no sample", "pick classes the data has")
    rows = keep.nonzero().flatten()
    return data.subset(rows, normal=[names[i] for i in sorted(set(picked))])


def load_truth_pairs(cfg: DataConfig, seed: int = 0) -> PairDataset:
    """(A, true B) pairs for scoring a translator trained on `cfg`'s pairs (gankit.data.pairs.truth_pairs)."""
    return truth_pairs(cfg, seed, lambda: _plain(cfg, seed), _difficulty(cfg))


def load_heldout(cfg: DataConfig, seed: int, n: int) -> tuple[Tensor, str]:
    """n samples (float, images in [-1, 1]) for scoring what a model does with data it was not trained on
    (inversion), and a note that says whether it was: shapes draws fresh objects from seed + HELDOUT_SEED_OFFSET;
    fixed sets give n of the samples `data.holdout` kept from training, else n of their own training samples."""
    x, _, _, note = load_heldout_labelled(cfg, seed, n)
    return x, note


def load_heldout_labelled(cfg: DataConfig, seed: int, n: int) -> tuple[Tensor, Tensor | None, list[str] | None, str]:
    """As load_heldout, of every class whatever `data.normal` says, with labels and class names (None when the data
    has none): what a model of normal data is scored on."""
    if cfg.name == "shapes":
        other = seed + HELDOUT_SEED_OFFSET
        data = shapes(n, cfg.resolution or 32, cfg.shapes, cfg.colors, cfg.label, other, _difficulty(cfg))
        return as_float(data.x), data.y, data.class_names, f"{n} objects drawn from seed {other}, not trained on"
    held = load_holdout(cfg, seed)
    data = held if held is not None else _plain(cfg, seed)
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    x, y = data.take(pick)
    if held is not None:
        return x, y, data.class_names, f"{len(pick)} of the {len(held)} samples data.holdout kept from training"
    return x, y, data.class_names, f"no: {len(pick)} of the training samples (the data has no held-out split; " \
        "data.holdout keeps one)"


def load_caption_test(cfg: DataConfig, seed: int, n: int, unseen: bool) -> tuple[CaptionDataset, str]:
    """n captioned objects never trained on (drawn from seed + HELDOUT_SEED_OFFSET): of the seen (colour, shape)
    pairs, or, with `unseen`, of the pairs held out of training; and a note saying which."""
    other = seed + HELDOUT_SEED_OFFSET + (1 if unseen else 0)
    data = caption_dataset(n, cfg.resolution or 32, other, _difficulty(cfg), cfg.unseen, cfg.shapes, cfg.colors,
                           only_unseen=unseen)
    pairs = f"of the unseen pairs {', '.join(cfg.unseen)}" if unseen else "of the pairs seen in training"
    return data, f"{n} objects {pairs}, drawn from seed {other}"


def _difficulty(cfg: DataConfig) -> Difficulty:
    return Difficulty(tuple(cfg.size_range), cfg.jitter, cfg.rotation, cfg.noise, cfg.gradient, tuple(cfg.backgrounds))


def _plain(cfg: DataConfig, seed: int) -> Dataset:
    if cfg.name in DEFAULT_STD:
        std = cfg.std if cfg.std is not None else DEFAULT_STD[cfg.name]
        centers = {
            "ring": lambda: ring_centers(cfg.modes, cfg.radius),
            "grid": lambda: grid_centers(cfg.size, cfg.spacing),
            "spiral": lambda: spiral_centers(cfg.modes, cfg.radius),
        }[cfg.name]()
        return mixture(cfg.name, centers, std, cfg.n or 100_000, seed)
    if cfg.name == "digits":
        return digits(cfg.resolution or 16)
    if cfg.name == "captions":
        return caption_dataset(cfg.n or 20_000, cfg.resolution or 32, seed, _difficulty(cfg), cfg.unseen, cfg.shapes,
                               cfg.colors, drop_color=cfg.drop_color)
    if cfg.name == "shapes":
        return shapes(cfg.n or 20_000, cfg.resolution or 32, cfg.shapes, cfg.colors, cfg.label, seed, _difficulty(cfg))
    if cfg.name == "folder":
        return image_folder(cfg.path, cfg.resolution or 32, cfg.channels or 3)
    if cfg.name == "table":
        return table_dataset(cfg.path, table_options(cfg))
    if cfg.name == "text":
        return text_dataset(cfg.path, text_options(cfg))
    if cfg.name == "nci":
        return nci_dataset(text_options(cfg))
    if cfg.name == "oracle":
        return oracle_dataset(cfg.n or 10_000, cfg.vocab, cfg.length, seed)
    if cfg.name == "moving-shapes":
        return moving_shapes(cfg.n or DEFAULT_CLIPS, cfg.frames, cfg.resolution or 32, cfg.shapes, cfg.colors, seed,
                             _difficulty(cfg), tuple(cfg.speed))
    if cfg.name == "moving-digits":
        return moving_digits(cfg.n or DEFAULT_CLIPS, cfg.frames, cfg.resolution or 32, seed, tuple(cfg.speed))
    return npz_dataset(cfg.path, cfg.key, cfg.labels_key, cfg.resolution)


def table_options(cfg: DataConfig) -> TableOptions:
    """What the `data.*` keys of a table say."""
    return TableOptions(tuple(cfg.categorical), tuple(cfg.discrete),
                        None if cfg.conditional is None else tuple(cfg.conditional), cfg.target,
                        0.3 if cfg.holdout is None else cfg.holdout,
                        cfg.split_seed, cfg.max_modes, read_public(cfg.public) if cfg.public else None)


def text_options(cfg: DataConfig) -> TextOptions:
    """What the `data.*` keys of token sequences say."""
    return TextOptions(cfg.tokenizer, cfg.max_len, 0.1 if cfg.holdout is None else cfg.holdout, cfg.split_seed,
                       cfg.skip_invalid, cfg.augment)


def upgrade_spec(spec: dict, data_cfg: dict | None = None) -> dict:
    """A data spec saved by an older gankit, completed to today's (it lacked `evaluator`); a copy."""
    spec = dict(spec)
    if "evaluator" not in spec and spec.get("name") == "digits":
        spec["evaluator"] = {"name": "digits", "label": "digit"}
    elif "evaluator" not in spec and spec.get("name") == "shapes":
        spec["evaluator"] = {"name": "shapes", "label": (data_cfg or {}).get("label", "shape")}
    return spec


__all__ = ["CaptionBatch", "CaptionDataset", "CaptionSampler", "caption_dataset", "load_caption_test", "ClipKind", "moving_shapes", "moving_digits", "KINDS", "DataKind", "ImageKind", "VectorKind", "kind_of", "output_format", "register_kind",
           "upgrade_spec", "load_heldout", "load_heldout_labelled", "load_holdout", "only_classes", "load_truth_pairs", "PairBatch",
           "PairDataset", "PairSampler", "Batch", "BatchSampler", "Shard", "ONE_PROCESS",
           "Dataset", "load_dataset", "digits", "image_folder", "npz_dataset", "read_npz",
           "shapes", "TableBatch", "TableOptions", "TableSampler", "decode", "table_dataset",
           "table_from_frame", "table_options", "Oracle", "TextOptions", "TokenKind", "build_oracle", "nci_dataset",
           "oracle_dataset", "text_dataset", "text_options", "ring_centers", "grid_centers", "spiral_centers", "mixture"]
