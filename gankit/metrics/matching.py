"""An image–text matching model for captioned shapes, trained by gankit apart from any GAN: R-precision's judge.

Two encoders map an image and a caption into one 64-d space (a CNN whose features keep the layout, so "top left"
can be checked, and a GRU over the words); a matching caption lies closer to its image than other captions do. It
is trained contrastively (as CLIP; AttnGAN's DAMSM plays this role for R-precision) on real captioned shapes of
every (colour, shape) pair, so it also judges pairs a text-to-image GAN never saw. Weights and a card ship in
`gankit/metrics/weights/matching.*`; `scripts/train_matching_model.py` rebuilds both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.text import TextEncoder
from . import cards

WEIGHTS = Path(__file__).parent / "weights" / "matching.safetensors"
CARD = WEIGHTS.with_suffix(".json")
WHAT, SCRIPT = "the image-text matching model", "scripts/train_matching_model.py"
CANDIDATES = 100  # AttnGAN's R-precision: the true caption among 99 others


class MatchingModel(nn.Module):
    """embed_images (N, 3, 32, 32) in [-1, 1] and embed_texts (N, L) word ids -> unit vectors (N, dim); their dot
    product is the match score."""

    def __init__(self, vocab_size: int, width: int = 32, dim: int = 64, embed_dim: int = 32, text_dim: int = 64) -> None:
        super().__init__()
        self.image = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16×16
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8×8
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4×4: where is kept
            nn.Flatten(), nn.Linear(2 * width * 16, 128), nn.ReLU(), nn.Linear(128, dim))
        self.text = TextEncoder(vocab_size, embed_dim, text_dim)
        self.text_out = nn.Linear(self.text.out_dim, dim)
        self.log_scale = nn.Parameter(torch.tensor(2.66))  # learnt inverse temperature, e^2.66 ≈ 1/0.07 (CLIP's start)

    def embed_images(self, x: Tensor) -> Tensor:
        return F.normalize(self.image(x), dim=1)

    def embed_texts(self, tokens: Tensor) -> Tensor:
        return F.normalize(self.text_out(self.text(tokens)), dim=1)


def contrastive_loss(model: MatchingModel, x: Tensor, tokens: Tensor) -> Tensor:
    """Symmetric InfoNCE over a batch; rows with the same caption are all positives for each other."""
    logits = model.log_scale.exp() * model.embed_images(x) @ model.embed_texts(tokens).T  # (N, N) image × text
    same = (tokens[:, None, :] == tokens[None, :, :]).all(-1).float()
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def read_card(path: Path = CARD) -> dict[str, Any]:
    """The card: vocabulary, architecture, training recipe and held-out R-precision."""
    return cards.read_card(path, WHAT, SCRIPT)


def load_matching_model(weights: str | Path | None = None) -> tuple[MatchingModel, dict[str, Any]]:
    """(model, card): the shipped weights, or `weights` written by the script (its card beside it), frozen."""
    return cards.load_frozen(weights, WEIGHTS, WHAT, SCRIPT,
                             lambda card: MatchingModel(len(card["vocab"]), **card["architecture"]))


@torch.no_grad()
def r_precision(model: MatchingModel, x: Tensor, true_tokens: Tensor, others: list[Tensor]) -> float:
    """Share of images (N, ...) whose own caption `true_tokens[i]` scores above every caption in `others[i]`
    ((CANDIDATES - 1, L) word ids each): AttnGAN's R-precision with R = 1."""
    images = model.embed_images(x)
    hits = 0
    for image, true, rest in zip(images, true_tokens, others):
        scores = model.embed_texts(torch.cat([true[None], rest])) @ image
        hits += int(scores[0] > scores[1:].max())
    return hits / len(x)
