"""The in-memory dataset every loader returns, and the seeded batch sampler the trainer draws from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import torch
from torch import Tensor


def as_float(images: Tensor) -> Tensor:
    """uint8 images as float32 in [-1, 1] (a new tensor); float images as they are."""
    return images.float().div_(127.5).sub_(1.0) if images.dtype == torch.uint8 else images


def as_dtype_of(images: Tensor, like: Tensor) -> Tensor:
    """Float images in [-1, 1] back in the dtype of `like`: rounded to uint8 when `like` is uint8."""
    return ((images + 1) * 127.5).round().to(torch.uint8) if like.dtype == torch.uint8 else images


@dataclass
class Dataset:
    """Samples `x` (float32 vectors, or images in [-1, 1] stored as float32 or uint8) with optional labels.

    `kind` is "vector" or "image"; `centers`/`std` describe the modes of toy 2D sets (used by the mode metric).
    `attributes` maps a name to (N,) int64 values per sample (shapes: "shape", "color", "background", indices into
    the lists `info["attribute_names"]` holds). `info["generated"]` is True for sets drawn from a seed (toy 2D,
    shapes), whose fresh draws serve as held-out data. `info["evaluator"]` names the shipped evaluator that knows this data
    (and, for labelled sets, which of its predictions the labels are), so eval needs no dataset names.
    """

    name: str
    kind: str
    x: Tensor
    y: Tensor | None = None
    class_names: list[str] | None = None
    centers: Tensor | None = None
    std: float | None = None
    info: dict = field(default_factory=dict)
    attributes: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one sample: (2,) for toy sets, (C, H, W) for images."""
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.class_names else 0

    def spec(self) -> dict:
        """What a model needs to know about the data, stored with every saved model (JSON-safe)."""
        spec = {"name": self.name, "kind": self.kind, "shape": list(self.shape), "class_names": self.class_names}
        if self.centers is not None:
            spec["centers"] = self.centers.tolist()
            spec["std"] = self.std
        if self.attributes:
            names = self.info.get("attribute_names", {})
            spec["attributes"] = {key: names.get(key) for key in self.attributes}
        if "evaluator" in self.info:
            spec["evaluator"] = self.info["evaluator"]
        if "normal" in self.info:
            spec["normal"] = self.info["normal"]
        for key in ("table", "tokens", "text", "clip"):  # what a model of a table, token sequences, captions or clips
            # needs to read or decode its inputs and outputs
            if key in self.info:
                spec[key] = self.info[key]
        return spec

    def subset(self, rows: Tensor, **info) -> Dataset:
        """The samples `rows` (with their labels and attributes; class names kept whole), `info` added to its info."""
        return replace(self, x=self.x[rows], y=None if self.y is None else self.y[rows],
                       attributes={k: v[rows] for k, v in self.attributes.items()}, info={**self.info, **info})

    def take(self, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """Rows `index` as float32 (uint8 images are mapped to [-1, 1] here, per batch, to save memory)."""
        return as_float(self.x[index]), (self.y[index] if self.y is not None else None)


class Shard(NamedTuple):
    """This process's place in data-parallel training: `rank` of `world` processes (one process: 0 of 1).

    Every process draws the whole global batch in lockstep and keeps rows [rank·b, (rank+1)·b) of it, so N
    processes see exactly the rows (and the noise, see Variant.local_rows) one process would.
    """

    rank: int = 0
    world: int = 1

    def part(self, rows: Tensor) -> Tensor:
        """This process's slice of a global batch (its first dimension must divide by `world`)."""
        if self.world == 1:
            return rows
        n = len(rows) // self.world
        return rows[self.rank * n:(self.rank + 1) * n]


ONE_PROCESS = Shard()


@dataclass
class Batch:
    """What a variant gets for one step: samples `x` and optional labels `y` (other kinds add their own fields)."""

    x: Tensor
    y: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]


class BatchSampler:
    """Epoch-wise shuffled batches whose order is a pure function of (seed, position).

    The only state is `cursor` (items served so far), so a checkpoint restores the data order exactly.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device | str = "cpu",
                 size: int | None = None) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.size = len(dataset) if size is None else size  # rows to shuffle: the dataset's, or another array's
        self.cursor = 0  # items served so far (of the global batch): the whole resume state
        self.shard = ONE_PROCESS  # set by the trainer for data-parallel runs: which part of each batch is ours
        self._epoch = -1
        self._perm: Tensor | None = None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.size, generator=g), epoch
        return self._perm

    def state_dict(self) -> dict[str, int]:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.cursor = int(state["cursor"])

    def next(self) -> Batch:
        """This process's part of the next batch (it wraps into the next epoch's permutation when one runs out)."""
        x, y = self.dataset.take(self.shard.part(self.indices()))
        return Batch(x=x.to(self.device, non_blocking=True), y=None if y is None else y.to(self.device))

    def indices(self) -> Tensor:
        """The rows of the next global batch; advances the cursor."""
        n = self.size
        parts, need = [], self.batch_size
        while need:
            epoch, pos = divmod(self.cursor, n)
            take = min(need, n - pos)
            parts.append(self._permutation(epoch)[pos : pos + take])
            self.cursor += take
            need -= take
        return parts[0] if len(parts) == 1 else torch.cat(parts)
