"""Shapes with captions: "a red star in the top left on a dark background", for text-to-image models.

Each image is one object from the shapes renderer placed in one of nine cells of a 3×3 grid; its caption names the
shape, colour, cell and background tone through one of several paraphrase templates (some leave the position or the
background out, so short prompts such as "a blue circle" are in distribution). Some (colour, shape) pairs are
`unseen`: never drawn for training, so a model can be tested on combining words it only saw apart.

Captions are built from attributes when a batch is drawn, together with a mismatched caption per image (one attribute
the template names changed), which a matching-aware discriminator is taught to call fake. Word ids: 0 is padding.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ..errors import UserError
from .base import Batch, BatchSampler, Dataset
from .shapes import BACKGROUNDS, COLORS, DARK_GREY, DARK_ONLY, LIGHT_GREY, SHAPES, Difficulty, dataset_of, random_specs, select

POSITIONS: tuple[str, ...] = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom",
                              "bottom right")  # row-major cells of a 3×3 grid
PLACES = {"top left": "in the top left", "top": "at the top", "top right": "in the top right", "left": "on the left",
          "centre": "in the centre", "right": "on the right", "bottom left": "in the bottom left",
          "bottom": "at the bottom", "bottom right": "in the bottom right"}
# Paraphrases: {c} colour, {s} shape, {p} place phrase, {b} background tone. Template 0 names everything: evaluation
# and the progress pictures use it.
TEMPLATES: tuple[str, ...] = ("a {c} {s} {p} on a {b} background", "{p} there is a {c} {s} on a {b} background",
                              "a {b} background with a {c} {s} {p}", "a {c} {s} {p}", "a {c} {s} on a {b} background",
                              "a {c} {s}")
ATTRIBUTES = ("shape", "color", "position", "background")
_FIELD = {"shape": "{s}", "color": "{c}", "position": "{p}", "background": "{b}"}
DEFAULT_UNSEEN = ("green triangle", "white cross")
PAD = "<pad>"


def vocabulary() -> list[str]:
    """Every word a caption can hold, padding first: the same list for every caption set."""
    words = {w for t in TEMPLATES for w in re.sub(r"\{.\}", " ", t).split()}
    for names in (SHAPES, COLORS, BACKGROUNDS, PLACES.values()):
        words |= {w for name in names for w in name.split()}
    return [PAD, *sorted(words)]


MAX_LEN = max(len(t.format(c="x", s="x", p=max(PLACES.values(), key=len), b="x").split()) for t in TEMPLATES)


def caption(shape: int, color: int, position: int, background: int, template: int = 0,
            with_color: bool = True) -> str:
    """The caption of one object (canonical indices) in paraphrase `template`; without its colour word when not
    `with_color` ("a star in the top left ..."), a caption still true of the image."""
    text = TEMPLATES[template] if with_color else TEMPLATES[template].replace("{c} ", "")
    return text.format(c=COLORS[color], s=SHAPES[shape], p=PLACES[POSITIONS[position]], b=BACKGROUNDS[background])


def color_shape_pairs(attributes: dict[str, Tensor]) -> tuple[Tensor, list[str]]:
    """Each object's (colour, shape) pair as one index, and the names of all pairs ("green triangle")."""
    return (attributes["color"] * len(SHAPES) + attributes["shape"],
            [f"{c} {s}" for c in COLORS for s in SHAPES])


def named(template: int) -> tuple[str, ...]:
    """The attributes paraphrase `template` names (every one names shape and colour)."""
    return tuple(a for a in ATTRIBUTES if _FIELD[a] in TEMPLATES[template])


def tokenize(texts: Sequence[str], vocab: Sequence[str], max_len: int = MAX_LEN) -> Tensor:
    """Word ids (N, max_len), 0-padded; lower-case, punctuation ignored. Unknown words and over-long texts are a
    UserError that lists the vocabulary."""
    index = {w: i for i, w in enumerate(vocab)}
    out = torch.zeros(len(texts), max_len, dtype=torch.long)
    for row, text in enumerate(texts):
        words = re.sub(r"[^\w\s]", " ", text.lower()).split()
        unknown = sorted({w for w in words if w not in index or w == PAD})
        if unknown:
            raise UserError(f"prompt {text!r}: unknown word{'s' * (len(unknown) > 1)} {', '.join(unknown)}",
                            f"the model knows: {' '.join(vocab[1:])}")
        if not words or len(words) > max_len:
            raise UserError(f"prompt {text!r} has {len(words)} words", f"give 1 to {max_len} words")
        out[row, :len(words)] = torch.tensor([index[w] for w in words])
    return out


def detokenize(tokens: Tensor, vocab: Sequence[str]) -> list[str]:
    """The texts of word ids (N, L), padding dropped."""
    return [" ".join(vocab[i] for i in row if i) for row in tokens.tolist()]


@dataclass(frozen=True)
class Layout:
    """Where the nine cells lie for objects of circumradius at most `size` (fractions of the side): cell centres
    along each axis at `size`, 1/2 and 1 - `size`; `jitter` 0 puts every object at its cell centre, 1 spreads it
    uniformly over the whole cell (cells then touch)."""

    size: float
    jitter: float

    @property
    def spacing(self) -> float:
        return (1 - 2 * self.size) / 2

    def centres(self, position: Tensor, generator: torch.Generator) -> Tensor:
        """(N, 2) object centres (x, y) for cell indices (N,), drawn within their cells."""
        cell = torch.stack([position % 3, position // 3], dim=1).float()
        offset = self.jitter * self.spacing * (torch.rand(len(position), 2, generator=generator) - 0.5)
        return self.size + self.spacing * cell + offset

    def cell(self, centre: Tensor) -> Tensor:
        """The cell index (N,) of centres (N, 2): the nearest cell centre along each axis."""
        col_row = ((centre - self.size) / self.spacing).round().clamp(0, 2).long()
        return col_row[:, 1] * 3 + col_row[:, 0]


def unseen_pairs(names: Sequence[str]) -> list[tuple[int, int]]:
    """(shape, colour) indices of "colour shape" names; unknown names are a UserError."""
    pairs = []
    for name in names:
        words = name.split()
        if len(words) != 2 or words[0] not in COLORS or words[1] not in SHAPES:
            raise UserError(f"data.unseen: {name!r} is not 'colour shape'",
                            f"colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)}")
        pairs.append((SHAPES.index(words[1]), COLORS.index(words[0])))
    return pairs


def caption_specs(n: int, seed: int, difficulty: Difficulty, unseen: Sequence[str] = DEFAULT_UNSEEN,
                  shapes: Sequence[str] | None = None, colors: Sequence[str] | None = None,
                  only_unseen: bool = False):
    """(specs, positions): n objects from `seed`, each at a random cell; `unseen` pairs are replaced by the next
    allowed shape (or, with `only_unseen`, every object is drawn from the unseen pairs: the composition test)."""
    g = torch.Generator().manual_seed(seed)
    specs = random_specs(n, g, shapes, colors, difficulty)
    pairs = unseen_pairs(unseen)
    position = torch.randint(len(POSITIONS), (n,), generator=g)
    layout = Layout(difficulty.size_range[1], difficulty.jitter)
    specs = replace(specs, center=layout.centres(position, g))
    if only_unseen:
        if not pairs:
            raise UserError("no unseen (colour, shape) pairs to test composition on", "set data.unseen")
        pick = torch.tensor(pairs)[torch.randint(len(pairs), (n,), generator=g)]
        shape, color = pick[:, 0], pick[:, 1]
        # white objects keep dark backgrounds, as in training: a light base moved to the dark range, same level and tint
        fix = (specs.tone == 1) & torch.isin(color, torch.tensor([COLORS.index(c) for c in DARK_ONLY]))
        background = specs.background.clone()
        background[fix] = (background[fix] - (LIGHT_GREY[0] - DARK_GREY[0])).clamp(0, 1)
        return replace(specs, shape=shape, color=color, background=background), position
    allowed = select(shapes, SHAPES, "shape")
    shape = specs.shape.clone()
    for _ in range(len(allowed)):  # move each held-out pair to the next allowed shape, until none is left
        hit = torch.zeros(n, dtype=torch.bool)
        for s, c in pairs:
            hit |= (shape == s) & (specs.color == c)
        if not hit.any():
            break
        nxt = torch.tensor([allowed[(allowed.index(s) + 1) % len(allowed)] if s in allowed else s
                            for s in shape[hit].tolist()], dtype=torch.long)
        shape[hit] = nxt
    return replace(specs, shape=shape), position


@dataclass
class CaptionDataset(Dataset):
    """Shapes images with the attributes their captions are built from (`attributes`: shape, color, position,
    background); `info["text"]` holds the vocabulary and the caption length."""

    @property
    def vocab(self) -> list[str]:
        return self.info["text"]["vocab"]

    def captions(self, rows: Tensor, templates: Tensor) -> list[str]:
        a = self.attributes
        return [caption(*(int(a[k][r]) for k in ATTRIBUTES), template=int(t)) for r, t in zip(rows, templates)]


def caption_dataset(n: int, resolution: int, seed: int, difficulty: Difficulty, unseen: Sequence[str],
                    shapes: Sequence[str] | None = None, colors: Sequence[str] | None = None,
                    only_unseen: bool = False, drop_color: float = 0.0) -> CaptionDataset:
    """n captioned shapes images from `seed` (see caption_specs); kind "captions". A share `drop_color` of the
    captions its sampler draws leave the colour word out."""
    specs, position = caption_specs(n, seed, difficulty, unseen, shapes, colors, only_unseen)
    base = dataset_of(specs, resolution, shapes, colors, "shape", seed, difficulty)
    layout = Layout(difficulty.size_range[1], difficulty.jitter)
    info = {**base.info, "text": {"vocab": vocabulary(), "max_len": MAX_LEN, "unseen": list(unseen),
                                  "drop_color": drop_color, "layout": {"size": layout.size, "jitter": layout.jitter}}}
    info["attribute_names"] = {**info["attribute_names"], "position": list(POSITIONS)}
    return CaptionDataset(name="captions", kind="captions", x=base.x, y=base.y, class_names=base.class_names,
                          info=info, attributes={**base.attributes, "position": position})


MISMATCHES = 2  # mismatched captions per image: one with another shape, one with another value of a further attribute


@dataclass
class CaptionBatch(Batch):
    """Images `x`, their captions `text` (N, L) word ids, and `wrong` (N, MISMATCHES, L): each caption with one
    attribute it names changed, first the shape (the attribute a discriminator is slowest to check), then one of
    the others the caption names; what a matching-aware D must call fake."""

    text: Tensor | None = None
    wrong: Tensor | None = None


def _other(value: int, count: int, u: float, banned: Collection[int] = ()) -> int:
    """A value of `count` other than `value`, picked by u in [0, 1) among those after it (cyclically) that are not
    `banned` (all of them when every one is)."""
    options = [(value + 1 + k) % count for k in range(count - 1)]
    options = [v for v in options if v not in banned] or options
    return options[min(int(u * len(options)), len(options) - 1)]


def _mismatch(values: dict[str, int], attr: str, u: float, sizes: dict[str, int], unseen: list[tuple[int, int]],
              template: int, with_color: bool) -> str:
    """The caption of `values` with another `attr`, picked by u, that names no held-out (shape, colour) pair: one
    that reached D even as a negative would teach it that the pair's caption is always fake."""
    banned: set[int] = set()
    if attr == "shape" and with_color:
        banned = {s for s, col in unseen if col == values["color"]}
    elif attr == "color":
        banned = {col for s, col in unseen if s == values["shape"]}
    other = _other(values[attr], sizes[attr], u, banned)
    return caption(**{**values, attr: other}, template=template, with_color=with_color)


class CaptionSampler(BatchSampler):
    """Shuffled batches as BatchSampler, each image with a caption in a random paraphrase and its mismatches; the
    draws are a pure function of (seed, cursor), so resuming gives the same captions."""

    def next(self) -> CaptionBatch:
        start = self.cursor
        rows = self.indices()
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7919 * start + 1)
        n = len(rows)
        templates = torch.randint(len(TEMPLATES), (n,), generator=g)
        u = torch.rand(n, 3, generator=g)  # the other shape, which further attribute, its other value
        colored = torch.rand(n, generator=g) >= self.dataset.info["text"].get("drop_color", 0.0)
        data: CaptionDataset = self.dataset
        a = {k: data.attributes[k][rows] for k in ATTRIBUTES}
        sizes = {"shape": len(SHAPES), "color": len(COLORS), "position": len(POSITIONS),
                 "background": len(BACKGROUNDS)}
        unseen = unseen_pairs(data.info["text"].get("unseen", ()))
        right, wrong = [], []
        for i in range(n):
            values = {k: int(a[k][i]) for k in ATTRIBUTES}
            t, c = int(templates[i]), bool(colored[i])
            right.append(caption(*values.values(), template=t, with_color=c))
            wrong.append(_mismatch(values, "shape", float(u[i, 0]), sizes, unseen, t, c))
            # "a star" names nothing else: its second mismatch is another shape too
            others = [k for k in named(t) if k != "shape" and (c or k != "color")] or ["shape"]
            attr = others[min(int(u[i, 1] * len(others)), len(others) - 1)]
            wrong.append(_mismatch(values, attr, float(u[i, 2]), sizes, unseen, t, c))
        vocab = data.vocab
        mine = self.shard.part(torch.arange(n))
        x, y = data.take(rows[mine])
        text = tokenize([right[i] for i in mine], vocab)
        bad = tokenize([wrong[MISMATCHES * i + j] for i in mine.tolist() for j in range(MISMATCHES)], vocab)
        dev = self.device
        return CaptionBatch(x=x.to(dev), y=None if y is None else y.to(dev), text=text.to(dev),
                            wrong=bad.view(len(mine), MISMATCHES, -1).to(dev))


def combinations(spec: dict, include_unseen: bool = False) -> list[tuple[int, int, int, int]]:
    """Every (shape, colour, position, background) the data of `spec` can show: its shapes and colours, without
    white shapes on light backgrounds, and without the unseen pairs unless `include_unseen`."""
    names = spec.get("attributes", {})
    shapes = [SHAPES.index(s) for s in names.get("shape") or SHAPES]
    colors = [COLORS.index(c) for c in names.get("color") or COLORS]
    pairs = set() if include_unseen else set(unseen_pairs(spec.get("text", {}).get("unseen", [])))
    return [(s, c, p, b) for s in shapes for c in colors for p in range(len(POSITIONS)) for b in range(2)
            if (s, c) not in pairs and not (COLORS[c] in DARK_ONLY and b == 1)]


def random_captions(n: int, generator: torch.Generator | None, spec: dict) -> list[str]:
    """n canonical captions of random objects as the training data draws them (unseen pairs and white shapes on
    light backgrounds left out)."""
    combos = combinations(spec)
    pick = torch.randint(len(combos), (n,), generator=generator)
    return [caption(*combos[i]) for i in pick.tolist()]


def other_captions(data: CaptionDataset, k: int, generator: torch.Generator) -> list[list[str]]:
    """For each row of `data`, k canonical captions of other objects (any pair, seen or not), all different from the
    row's own: the distractors of R-precision."""
    combos = combinations(data.spec(), include_unseen=True)
    out = []
    for row in range(len(data)):
        own = tuple(int(data.attributes[a][row]) for a in ATTRIBUTES)
        pool = torch.randperm(len(combos), generator=generator)[:k + 1].tolist()
        out.append([caption(*combos[i]) for i in pool if combos[i] != own][:k])
    return out


PROGRESS_CAPTIONS = ("a red circle in the top left on a dark background",
                     "a yellow square at the top on a light background",
                     "a blue triangle in the centre on a dark background",
                     "a purple star on the right on a light background",
                     "a white ring in the bottom left on a dark background",
                     "a green cross at the bottom on a light background",
                     "a green triangle in the top right on a dark background",  # an unseen pair by default
                     "a white cross on the left on a dark background")  # the other one
