"""The shipped frozen models (digits and shapes evaluators, the image-text matcher) load one way, and a bad weights
file or card is refused with a message naming the file and the script that rebuilds it."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from gankit.errors import UserError
from gankit.metrics import digits_classifier, matching, shapes_classifier

LOADERS = [(digits_classifier, digits_classifier.load_digits_classifier),
           (shapes_classifier, shapes_classifier.load_shapes_classifier),
           (matching, matching.load_matching_model)]


@pytest.mark.parametrize("module,load", LOADERS, ids=["digits", "shapes", "matching"])
def test_shipped_weights_load_frozen(module, load):
    model, card = load()
    assert card == module.read_card()
    assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("module,load", LOADERS, ids=["digits", "shapes", "matching"])
def test_bad_weights_and_cards_name_the_file_and_the_script(module, load, tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong))  # a real safetensors file with the wrong tensors
    with pytest.raises(UserError, match=f"{wrong}: not {module.WHAT}'s weights") as info:
        load(wrong)
    assert module.SCRIPT in info.value.hint
    with pytest.raises(UserError, match="not .*'s weights"):
        load(tmp_path / "missing.safetensors")
    copy = tmp_path / "copy.safetensors"
    shutil.copy(module.WEIGHTS, copy)
    copy.with_suffix(".json").write_text("{ not json")  # the card beside the weights wins over the shipped one
    with pytest.raises(UserError, match=f"{copy.with_suffix('.json')}: cannot read {module.WHAT}'s card") as info:
        load(copy)
    assert module.SCRIPT in info.value.hint


def test_a_shapes_card_without_its_classes_is_refused(tmp_path):
    copy = tmp_path / "shapes.safetensors"
    shutil.copy(shapes_classifier.WEIGHTS, copy)
    card = shapes_classifier.read_card()
    del card["classes"]
    copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(UserError, match="names no shape and colour classes"):
        shapes_classifier.load_shapes_classifier(copy)
