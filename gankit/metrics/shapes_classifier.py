"""A small two-head CNN trained by gankit on its procedural shapes: its penultimate layer is the `shapes` extractor.

One body, two heads: the shape (index into gankit.data.shapes.SHAPES) and the colour (index into COLORS). The
weights and a card (data, split, recipe, held-out accuracy of each head) ship in `gankit/metrics/weights/`;
`scripts/train_shapes_evaluator.py` rebuilds both. The held-out split is a pure function of the card's data seed,
split seed and fraction, so anyone can re-check the accuracy on exactly the images the classifier never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from . import cards

WEIGHTS = Path(__file__).parent / "weights" / "shapes.safetensors"
CARD = WEIGHTS.with_suffix(".json")
WHAT, SCRIPT = "the shapes evaluator", "scripts/train_shapes_evaluator.py"
RESOLUTION = 32  # gankit.data.shapes() default: (N, 3, 32, 32)


SHAPE_CLASSES = COLOR_CLASSES = 6  # the renderer's shapes and colours (a test holds the card to gankit.data.shapes)

class ShapesClassifier(nn.Module):
    """(N, 3, 32, 32) in [-1, 1] -> (features (N, feature_dim) after the last ReLU, shape logits (N, len(SHAPES))).

    `heads(x)` also gives the colour logits (N, len(COLORS)); `forward` returns what the Evaluator needs.
    """

    def __init__(self, width: int = 32, feature_dim: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, w, 16, 16)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2w, 8, 8)
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),  # (N, 2w, 4, 4)
            nn.Flatten(),
            nn.Linear(2 * width * 16, feature_dim), nn.ReLU(),  # (N, feature_dim): the evaluator's features
        )
        self.dropout = nn.Dropout(dropout)  # training only: features stay deterministic in eval mode
        self.shape_head = nn.Linear(feature_dim, SHAPE_CLASSES)
        self.color_head = nn.Linear(feature_dim, COLOR_CLASSES)

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(features, shape logits, colour logits)."""
        features = self.body(x)
        hidden = self.dropout(features)
        return features, self.shape_head(hidden), self.color_head(hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features, shape_logits, _ = self.heads(x)
        return features, shape_logits


def read_card(path: Path = CARD) -> dict[str, Any]:
    """The card: data, architecture, training recipe, split and held-out accuracy of each head."""
    return cards.read_card(path, WHAT, SCRIPT)


def load_shapes_classifier(weights: str | Path | None = None) -> tuple[ShapesClassifier, dict[str, Any]]:
    """(classifier, card): the shipped weights, or `weights` written by the script (its card beside it), frozen."""
    def build(card: dict[str, Any]) -> ShapesClassifier:
        if set(card.get("classes", {})) != {"shape", "color"}:
            raise ValueError("it names no shape and colour classes")
        return ShapesClassifier(**card["architecture"]["args"])

    return cards.load_frozen(weights, WEIGHTS, WHAT, SCRIPT, build)


@torch.no_grad()
def accuracies(model: ShapesClassifier, x: Tensor, shape: Tensor, color: Tensor,
               batch_size: int = 1000) -> dict[str, float]:
    """Share of images (N, 3, 32, 32) in [-1, 1] whose arg-max shape / colour logit is right."""
    right = torch.zeros(2, dtype=torch.float64)
    for xb, sb, cb in zip(x.split(batch_size), shape.split(batch_size), color.split(batch_size)):
        _, shape_logits, color_logits = model.heads(xb)
        right += torch.stack([(shape_logits.argmax(1) == sb).sum(), (color_logits.argmax(1) == cb).sum()])
    return {"shape": right[0].item() / len(x), "color": right[1].item() / len(x)}
