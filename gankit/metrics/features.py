"""Feature extractors for FID, KID, IS and precision/recall, chosen by name: `inception`, `digits`, `shapes` or `raw`.

Every extractor converts what it is given (any channel count, any size) to its own input, so folders and arrays of
any shape compare; `protocol()` records what was done (network, weights hash, input size, resize), because metric
values are only comparable between identical protocols.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from ..errors import UserError
from .digits_classifier import RESOLUTION as DIGITS_RESOLUTION
from .digits_classifier import WEIGHTS as DIGITS_WEIGHTS
from .digits_classifier import load_digits_classifier
from .inception import FEATURE_DIM, INPUT_SIZE, WEIGHTS_ENV, load_inception
from .inception_score import InceptionScoreStream
from .shapes_classifier import RESOLUTION as SHAPES_RESOLUTION
from .shapes_classifier import WEIGHTS as SHAPES_WEIGHTS
from .shapes_classifier import load_shapes_classifier
from .stats import FeatureStats

EXTRACTORS = ("inception", "digits", "shapes", "raw")
SHAPES_LABELS = ("shape", "color", "shape_color")  # what the shapes evaluator can name: either head, or both
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 weights, as PIL's RGB -> "L": folders and tensors turn grey alike
PROGRESS_MIN = 1000  # samples; fewer finish in about a second and get no bar


@dataclass
class Extracted:
    """Result of `Evaluator.extract`: streaming statistics, plus the features / logits themselves when kept and the
    Inception Score when asked for."""

    stats: FeatureStats
    features: Tensor | None = None  # (N, d) float32, or its first max_rows rows
    logits: Tensor | None = None  # (N, classes) float32
    score: tuple[float, float] | None = None  # Inception Score (mean, std) of all N samples' logits
    score_stream: InceptionScoreStream | None = None  # one process's part of the score, before the merge


class Evaluator:
    """A named feature extractor: `features(x)` (N, dim), `logits(x)` (N, classes) or None, and its `protocol()`.

    `net` maps prepared images to (features, logits); None means raw: the flattened pixels or vectors themselves.
    """

    def __init__(self, name: str, net: nn.Module | None = None, *, dim: int | None = None,
                 resolution: int | None = None, channels: int | None = None, antialias: bool = True,
                 weights: Path | None = None, batch_size: int = 256, info: dict[str, Any] | None = None) -> None:
        self.name, self.net, self.dim = name, net, dim
        self.resolution, self.channels, self.antialias = resolution, channels, antialias
        self.weights, self.batch_size, self.info = weights, batch_size, info or {}
        self._sha256: str | None = None
        self.class_names: list[str] | None = None  # what predict() names (None: this extractor names nothing)
        self.attributes: dict[str, list[str]] = {}  # what classify() names, by attribute ({"digit": ["0", ...]})

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device if self.net is not None else torch.device("cpu")

    def to(self, device: str | torch.device) -> Evaluator:
        """Move the network (e.g. to a GPU); inputs follow it and features come back on the CPU."""
        if self.net is not None:
            self.net.to(device)
        return self

    def prepare(self, x: Tensor) -> Tensor:
        """Images (N, 1|3, H, W) in [-1, 1] -> the network's channels and size; raw: (N, ...) -> (N, D) float32."""
        if self.net is None:
            return x.float().flatten(1)
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise UserError(f"the {self.name} extractor needs images shaped (N, 1 or 3, H, W), got {tuple(x.shape)}",
                            hint="use --features raw for vectors")
        x = x.to(self.device, torch.float32)
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] == 3 and self.channels == 1:
            x = (x * x.new_tensor(LUMA)[:, None, None]).sum(dim=1, keepdim=True)
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=self.antialias,
                              align_corners=False)
        return x

    @torch.no_grad()
    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(features (N, dim), logits (N, classes) or None) on the CPU, computed `batch_size` samples at a time."""
        feats, logits = [], []
        for chunk in x.split(self.batch_size):
            chunk = self.prepare(chunk)
            if self.net is None:
                feats.append(chunk)
                continue
            f, lg = self.net(chunk)
            feats.append(f.float().cpu())
            logits.append(lg.float().cpu())
        return torch.cat(feats), (torch.cat(logits) if logits else None)

    def features(self, x: Tensor) -> Tensor:
        """Features (N, dim) of images (any channels and size, in [-1, 1]) or, for raw, of anything."""
        return self.features_and_logits(x)[0]

    def logits(self, x: Tensor) -> Tensor | None:
        """Class logits (N, classes) for the Inception Score; None for raw features."""
        return self.features_and_logits(x)[1] if self.net is not None else None

    def predict(self, x: Tensor, label: str | None = None) -> list[str] | None:
        """The class name the evaluator sees in each image, for labels of kind `label` (None: it cannot tell)."""
        if self.class_names is None:
            return None
        return [self.class_names[i] for i in self.logits(x).argmax(1).tolist()]

    @torch.no_grad()
    def classify(self, x: Tensor, label: str) -> Tensor:
        """(N,) int64 indices into `attributes[label]`: the value of that attribute the evaluator sees."""
        if label not in self.attributes:
            raise UserError(f"the {self.name} evaluator names no attribute '{label}'",
                            f"it names: {', '.join(self.attributes) or 'nothing'}")
        return self.logits(x).argmax(1)

    def extract(self, batches: Iterable[Tensor], total: int | None = None, *, keep: bool = False,
                max_rows: int | None = None, keep_logits: bool = False, score_splits: int | None = None,
                label: str = "features", part: tuple[int, int] | None = None) -> Extracted:
        """Stream batches into FeatureStats (memory O(d²)); keep the features (at most the first `max_rows`) or the
        logits only when asked (KID, precision/recall); `score_splits` computes the Inception Score of all `total`
        samples on the way, without keeping their logits.

        `part=(first, n)`: the batches are rows first, first+1, ... of n rows that several processes share out; the
        features kept are those among the first `max_rows` of all n, and `score` is left to the merge (its per-split
        sums are in `score_stream`)."""
        stats, feats, logits = FeatureStats(), [], []
        first, rows_in_all = part if part is not None else (0, total)
        kept = first
        score = None
        if score_splits is not None and self.net is not None:
            if rows_in_all is None:
                raise ValueError("extract: score_splits needs the total number of samples")
            score = InceptionScoreStream(rows_in_all, score_splits, start=first)
        with progress_bar(label, total) as advance:
            for batch in batches:
                f, lg = self.features_and_logits(batch)
                stats.update(f)
                if keep and (max_rows is None or kept < max_rows):
                    feats.append(f if max_rows is None else f[: max_rows - kept])
                    kept += len(feats[-1])
                if keep_logits and lg is not None:
                    logits.append(lg)
                if score is not None:
                    score.update(lg)
                advance(len(batch))
        if part is not None:
            return Extracted(stats, torch.cat(feats) if feats else None, torch.cat(logits) if logits else None,
                             None, score)
        return Extracted(stats, torch.cat(feats) if feats else None, torch.cat(logits) if logits else None,
                         score.result() if score is not None else None)

    def protocol(self) -> dict[str, Any]:
        """What makes numbers comparable: extractor, weights file and sha256, input size, resize method."""
        if self.weights is not None and self._sha256 is None:
            self._sha256 = hashlib.sha256(self.weights.read_bytes()).hexdigest()
        size = f"{self.resolution}x{self.resolution}x{self.channels}" if self.net is not None else "as given"
        resize = (("bilinear, antialiased" if self.antialias else "bilinear (as pytorch-fid)")
                  if self.net is not None else "none")
        return {"extractor": self.name, "dim": self.dim, "weights": self.weights.name if self.weights else None,
                "weights_sha256": self._sha256, "input": size, "resize": resize, **self.info}


class ShapesEvaluator(Evaluator):
    """The `shapes` extractor, which also names what it sees: `classify(x, label)` with the shape and colour heads.

    `names` holds the card's class lists ({"shape": [...], "color": [...]}) in the order the heads predict.
    """

    def __init__(self, *args: Any, names: dict[str, list[str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.names = names
        self.attributes = {"shape": names["shape"], "color": names["color"]}

    @torch.no_grad()
    def classify(self, x: Tensor, label: str = "shape") -> Tensor:
        """(N,) int64 predictions for images (any size, in [-1, 1]): indices into the card's shape list for
        "shape", its colour list for "color", and shape_index * colours + colour_index for "shape_color"."""
        if label not in SHAPES_LABELS:
            raise UserError(f"unknown shapes label '{label}'", hint=f"choose one of: {', '.join(SHAPES_LABELS)}")
        predictions = []
        colors = len(self.names["color"])
        for chunk in x.split(self.batch_size):
            _, shape_logits, color_logits = self.net.heads(self.prepare(chunk))
            shape, color = shape_logits.argmax(1).cpu(), color_logits.argmax(1).cpu()
            predictions.append({"shape": shape, "color": color, "shape_color": shape * colors + color}[label])
        return torch.cat(predictions)

    def predict(self, x: Tensor, label: str | None = None) -> list[str]:
        """Names: "star" for label "shape", "red" for "color", "red star" for "shape_color"."""
        index = self.classify(x, label or "shape").tolist()
        shapes, colors = self.names["shape"], self.names["color"]
        if label == "color":
            return [colors[i] for i in index]
        if label == "shape_color":
            return [f"{colors[i % len(colors)]} {shapes[i // len(colors)]}" for i in index]
        return [shapes[i] for i in index]


@contextmanager
def progress_bar(label: str, total: int | None, minimum: int = PROGRESS_MIN) -> Iterator[Callable[[int], None]]:
    """A transient rich bar on stderr counting items (none for fewer than `minimum`); callers see `advance(n)`."""
    bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, disable=total is not None and total < minimum)
    task = bar.add_task(label, total=total)
    with bar:
        yield lambda n: bar.advance(task, n)


def load_evaluator(name: str, weights: str | Path | None = None) -> Evaluator:
    """The extractor `name`: inception (weights from `weights` or $GANKIT_INCEPTION_WEIGHTS), digits or shapes
    (shipped; `weights` for a file written by their training script), raw."""
    if name == "inception":
        path = weights or os.environ.get(WEIGHTS_ENV) or None
        net = load_inception(path)  # refuses a missing file or pickles with a hint on how to get the weights
        return Evaluator("inception", net, dim=FEATURE_DIM, resolution=INPUT_SIZE, channels=3, antialias=False,
                         weights=Path(path).expanduser(), batch_size=64,
                         info={"logits": "pool3 @ fc.weight, no bias (original IS code, torch-fidelity)"})
    if name == "digits":
        net, card = load_digits_classifier(weights)
        evaluator = Evaluator("digits", net, dim=net.head.in_features, resolution=DIGITS_RESOLUTION, channels=1,
                              weights=Path(weights) if weights else DIGITS_WEIGHTS,
                              info={"heldout_accuracy": card["accuracy"]["heldout"]})
        evaluator.class_names = [str(i) for i in range(net.head.out_features)]  # the digit each logit stands for
        evaluator.attributes = {"digit": evaluator.class_names}
        return evaluator
    if name == "shapes":
        net, card = load_shapes_classifier(weights)
        return ShapesEvaluator("shapes", net, dim=net.shape_head.in_features, resolution=SHAPES_RESOLUTION,
                               channels=3, weights=Path(weights) if weights else SHAPES_WEIGHTS,
                               info={"heldout_accuracy": card["accuracy"]["heldout"]}, names=card["classes"])
    if name == "raw":
        if weights:
            raise UserError("raw features use no weights",
                            hint="drop --weights, or choose --features digits|shapes|inception")
        return Evaluator("raw", batch_size=4096)
    raise UserError(f"unknown feature extractor '{name}'", hint=f"choose one of: {', '.join(EXTRACTORS)}")
