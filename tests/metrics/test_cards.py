"""The shipped frozen models (digits and shapes evaluators, the image-text matcher) load one way, and a bad weights
file or card is refused with a message naming the file and the script that rebuilds it."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from safetensors.torch import save_file

from gankit.errors import UserError
from gankit.metrics import digits_classifier, matching, shapes_classifier

LOADERS = [(digits_classifier, digits_classifier.load_digits_classifier),
           (shapes_classifier, shapes_classifier.load_shapes_classifier),
           (matching, matching.load_matching_model)]
IDS = ["digits", "shapes", "matching"]


@pytest.mark.parametrize("module,load", LOADERS, ids=IDS)
def test_shipped_weights_load_frozen(module, load):
    model, card = load()
    assert card == json.loads(module.CARD.read_text())
    assert not model.training and not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("module,load", LOADERS, ids=IDS)
def test_bad_weights_name_the_file_and_the_script(module, load, tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_file({"x": torch.zeros(2)}, str(wrong))  # a real safetensors file with the wrong tensors
    shutil.copy(module.CARD, wrong.with_suffix(".json"))
    with pytest.raises(UserError, match=re.escape(f"{wrong}: not {module.WHAT}'s weights")) as info:
        load(wrong)
    assert module.SCRIPT in info.value.hint
    copy = tmp_path / "copy.safetensors"  # good weights, but not the card that describes them
    shutil.copy(module.WEIGHTS, copy)
    with pytest.raises(UserError, match=re.escape(f"{copy}: no card beside these weights (copy.json)")) as info:
        load(copy)
    assert module.SCRIPT in info.value.hint
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(UserError, match=re.escape(f"{missing}: no such file")) as info:
        load(missing)
    assert module.SCRIPT in info.value.hint


@pytest.mark.parametrize("module,load", LOADERS, ids=IDS)
def test_bad_cards_name_the_card_and_the_script(module, load, tmp_path):
    copy = tmp_path / "copy.safetensors"
    shutil.copy(module.WEIGHTS, copy)
    card = copy.with_suffix(".json")
    for text, expected in [("{ not json", "cannot read"), ("[1, 2]", "is a JSON object, not list"),
                           (json.dumps({"accuracy": 1}), re.escape(f"not {module.WHAT}'s card ("))]:
        card.write_text(text)
        with pytest.raises(UserError, match=re.escape(f"{card}: ") + ".*" + expected) as info:
            load(copy)
        assert module.SCRIPT in info.value.hint


def test_a_shapes_card_without_its_classes_is_refused(tmp_path):
    copy = tmp_path / "shapes.safetensors"
    shutil.copy(shapes_classifier.WEIGHTS, copy)
    card = shapes_classifier.read_card()
    del card["classes"]
    copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(UserError, match=re.escape(f"{copy.with_suffix('.json')}: not the shapes evaluator's card")
                       + ".*names no shape and colour classes"):
        shapes_classifier.load_shapes_classifier(copy)
