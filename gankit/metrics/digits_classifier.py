"""A small CNN trained by gankit on its 16×16 digits: its penultimate layer is the `digits` feature extractor.

The weights and a card (held-out accuracy, seed, split, architecture) ship in `gankit/metrics/weights/`;
`scripts/train_digits_evaluator.py` rebuilds both. The held-out split is a pure function of the card's seed and
fraction, so anyone can re-check the accuracy on exactly the images the classifier never saw.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from . import cards

WEIGHTS = Path(__file__).parent / "weights" / "digits.safetensors"
CARD = WEIGHTS.with_suffix(".json")
WHAT, SCRIPT = "the digits evaluator", "scripts/train_digits_evaluator.py"
RESOLUTION = 16  # gankit.data.digits() default: (N, 1, 16, 16) in [-1, 1]
NUM_CLASSES = 10


class DigitsClassifier(nn.Module):
    """(N, 1, 16, 16) in [-1, 1] -> (features (N, feature_dim) after the last ReLU, logits (N, 10))."""

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, w, 8, 8)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2w, 4, 4)
            nn.Flatten(),
            nn.Linear(2 * width * 16, feature_dim), nn.ReLU(),  # (N, feature_dim): the evaluator's features
        )
        self.dropout = nn.Dropout(dropout)  # training only: features stay deterministic in eval mode
        self.head = nn.Linear(feature_dim, NUM_CLASSES)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)
        return features, self.head(self.dropout(features))


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sorted indices: a `holdout` fraction of every class, drawn with numpy's PCG64 from `seed`."""
    rng = np.random.default_rng(seed)
    held = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        held.append(members[: round(holdout * len(members))])
    heldout = np.sort(np.concatenate(held))
    return np.setdiff1d(np.arange(len(labels)), heldout), heldout


def fit_classifier(model: nn.Module, batch_loss: Callable[[Tensor], Tensor], n_train: int, recipe: dict[str, Any],
                   epochs: int, generator: torch.Generator) -> None:
    """The shipped evaluators' recipe: AdamW with a one-cycle schedule over shuffled minibatches of the n_train
    training examples; `batch_loss(positions)` gives the loss of the examples at those positions of the training part.
    """
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps = epochs * math.ceil(n_train / recipe["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["lr"], total_steps=steps)
    for _ in range(epochs):
        model.train()
        for positions in torch.randperm(n_train, generator=generator).split(recipe["batch_size"]):
            loss = batch_loss(positions)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def index_digest(indices: np.ndarray) -> str:
    """sha256 of int64 indices: the card pins the held-out set with it, so a changed split is caught."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def read_card(path: Path = CARD) -> dict[str, Any]:
    """The shipped card: architecture, training recipe, split and held-out accuracy."""
    return cards.read_card(path, WHAT, SCRIPT)


def load_digits_classifier(weights: str | Path | None = None) -> tuple[DigitsClassifier, dict[str, Any]]:
    """(classifier, card): the shipped weights, or `weights` written by the script (its card beside it), frozen."""
    return cards.load_frozen(weights, WEIGHTS, WHAT, SCRIPT,
                             lambda card: DigitsClassifier(**card["architecture"]["args"]))


@torch.no_grad()
def accuracy(model: DigitsClassifier, x: Tensor, y: Tensor) -> float:
    """Share of images whose arg-max logit is the label."""
    return (model(x)[1].argmax(dim=1) == y).double().mean().item()
