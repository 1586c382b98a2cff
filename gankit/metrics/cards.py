"""The frozen models gankit ships for its metrics (digits and shapes evaluators, the image-text matcher): weights in
safetensors with a JSON card beside them (architecture, training recipe, split, held-out accuracy), loaded one way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import UserError


def read_card(path: Path, what: str, script: str) -> dict[str, Any]:
    """The JSON card at `path` of `what` (e.g. "the digits evaluator"), rebuilt by `script` when unreadable."""
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot read {what}'s card ({err})",
                        hint=f"reinstall gankit or rebuild it with {script}") from None
    if not isinstance(card, dict):
        raise UserError(f"{path}: {what}'s card is a JSON object, not {type(card).__name__}",
                        hint=f"reinstall gankit or rebuild it with {script}")
    return card


def load_frozen(weights: str | Path | None, shipped: Path, what: str, script: str,
                build: Callable[[dict[str, Any]], nn.Module]) -> tuple[nn.Module, dict[str, Any]]:
    """(model, card): the shipped weights, or `weights` written by `script` with the card it writes beside them (the
    card's held-out accuracy goes into every protocol, so weights without their own card are refused), in eval mode
    with gradients off. `build` makes the model from the card; a KeyError, TypeError or ValueError it raises means
    the card does not describe such a model."""
    path = Path(weights) if weights is not None else shipped
    if not path.is_file():
        raise UserError(f"{path}: no such file", hint=f"pass weights written by {script}")
    card_path = path.with_suffix(".json")
    if not card_path.is_file():
        raise UserError(f"{path}: no card beside these weights ({card_path.name})",
                        hint=f"{script} writes one with the weights; keep them together")
    card = read_card(card_path, what, script)
    try:
        model = build(card)
    except (KeyError, TypeError, ValueError) as err:
        raise UserError(f"{card_path}: not {what}'s card ({type(err).__name__}: {err})",
                        hint=f"rebuild it with {script}") from None
    try:
        model.load_state_dict(load_file(path))
    except (SafetensorError, OSError, RuntimeError) as err:
        raise UserError(f"{path}: not {what}'s weights ({err})", hint=f"pass a file written by {script}") from None
    return model.eval().requires_grad_(False), card
