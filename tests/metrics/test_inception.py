"""FID Inception: architecture pinned to pytorch-fid's, safetensors-only loading, `gankit weights convert|verify`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from gankit.errors import UserError
from gankit.metrics import load_evaluator
from gankit.metrics.inception import NUM_CLASSES, WEIGHTS_ENV, InceptionV3FID, _pool_3x3, load_inception
from gankit.metrics.inception_weights import convert


def random_state() -> dict[str, torch.Tensor]:
    """A full FID Inception state dict with random weights and plausible (positive-variance) BatchNorm statistics."""
    torch.manual_seed(0)
    state = InceptionV3FID().state_dict()
    for key, value in state.items():
        if key.endswith("running_mean"):
            value.normal_(0.0, 0.1)
        elif key.endswith("running_var"):
            value.uniform_(0.5, 1.5)
        elif key.endswith("num_batches_tracked"):
            value.fill_(7)
    return state


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inception") / "inception-fid.safetensors"
    save_file(random_state(), str(path))
    return path


@pytest.fixture(scope="module")
def model(weights_file: Path) -> InceptionV3FID:
    return load_inception(weights_file)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)


def small_file(tmp_path: Path, state: dict[str, torch.Tensor]) -> Path:
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    return path


def tiny_state() -> dict[str, torch.Tensor]:
    """The right keys with 1-element tensors: enough to exercise the key checks without 95 MB of writes."""
    return {key: torch.zeros(1) for key in InceptionV3FID().state_dict()}


# (a) loading and shapes


def test_round_trip_loads_every_tensor_and_is_frozen_in_eval_mode(model: InceptionV3FID, weights_file: Path) -> None:
    expected = load_file(weights_file)
    loaded = model.state_dict()
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())


def test_299_input_gives_features_and_logits(model: InceptionV3FID) -> None:
    x = torch.rand(2, 3, 299, 299) * 2 - 1
    with torch.no_grad():
        features, logits = model(x)
    assert features.shape == (2, 2048) and logits.shape == (2, 1008)
    assert torch.isfinite(features).all() and torch.isfinite(logits).all()
    assert (features >= 0).all()  # average of ReLU outputs
    torch.testing.assert_close(logits, features @ model.fc.weight.T)  # IS logits leave out fc.bias


def test_is_logits_leave_out_the_fc_bias(weights_file: Path) -> None:
    # The original IS code and torch-fidelity's logits_unbiased use pool3 @ W.T: a bias would move p(y|x), so the IS.
    evaluator = load_evaluator("inception", weights_file)
    net = evaluator.net
    net.fc.bias.copy_(torch.linspace(-4.0, 4.0, NUM_CLASSES))  # far larger than the random init's: adding it shows
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    features, logits = evaluator.features_and_logits(x)
    torch.testing.assert_close(logits, features @ net.fc.weight.T)
    net.fc.bias.zero_()
    again_features, again_logits = evaluator.features_and_logits(x)
    assert torch.equal(again_features, features) and torch.equal(again_logits, logits)  # the bias changes nothing
    assert "no bias" in evaluator.protocol()["logits"]


def test_small_grayscale_input_is_resized_and_gives_2048_features(model: InceptionV3FID) -> None:
    gray = torch.rand(2, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        features = model.features(gray)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert model.prepare(gray).shape == (2, 3, 299, 299)
    torch.testing.assert_close(model.prepare(gray), model.prepare(gray.repeat(1, 3, 1, 1)))


def test_prepare_matches_pytorch_fid_resize_then_rescale() -> None:
    # pytorch-fid: [0, 1] image -> bilinear 299 -> 2x - 1; gankit resizes the [-1, 1] image directly
    net = InceptionV3FID()
    x01 = torch.rand(3, 3, 32, 48)
    reference = 2 * F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(net.prepare(2 * x01 - 1), reference)
    x299 = torch.rand(1, 3, 299, 299) * 2 - 1
    torch.testing.assert_close(net.prepare(x299), x299)  # already 299: untouched


def test_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="shape"):
        InceptionV3FID().prepare(torch.zeros(1, 4, 8, 8))


def test_weights_from_environment_variable(weights_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEIGHTS_ENV, str(weights_file))
    assert torch.equal(load_inception().fc.bias, load_file(weights_file)["fc.bias"])


# (b) key and shape checks


def test_missing_key_is_a_user_error_naming_file_and_key(tmp_path: Path) -> None:
    state = tiny_state()
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    path = small_file(tmp_path, state)
    with pytest.raises(UserError, match="missing keys: Mixed_6b.branch7x7_2.conv.weight") as info:
        load_inception(path)
    assert str(path) in info.value.message


def test_unexpected_key_is_a_user_error_naming_file_and_key(tmp_path: Path) -> None:
    state = tiny_state() | {"AuxLogits.fc.weight": torch.zeros(1)}
    path = small_file(tmp_path, state)
    with pytest.raises(UserError, match="unexpected keys: AuxLogits.fc.weight") as info:
        load_inception(path)
    assert str(path) in info.value.message


def test_wrong_shapes_are_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="shapes"):
        load_inception(small_file(tmp_path, tiny_state()))


def test_corrupt_file_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_inception(path)


# (c) no weights, (d) pickle files


def test_no_weights_explains_where_to_get_and_how_to_convert(no_env: None) -> None:
    with pytest.raises(UserError) as info:
        load_inception()
    assert "FID Inception weights are needed" in info.value.message
    hint = info.value.hint
    assert "pt_inception-2015-12-05-6726825d.pth from pytorch-fid's GitHub releases" in hint
    assert "https://github.com/mseitzer/pytorch-fid/releases/" in hint
    assert "`gankit weights convert pt_inception-2015-12-05-6726825d.pth`" in hint
    assert "--weights pt_inception-2015-12-05-6726825d.safetensors" in hint
    assert f"export {WEIGHTS_ENV}=" in hint


def test_fid_without_weights_says_what_to_get_and_run(cli, tmp_path: Path, no_env: None) -> None:
    np.savez(tmp_path / "a.npz", samples=np.zeros((4, 3, 8, 8), np.float32))
    code, out, err = cli("fid", str(tmp_path / "a.npz"), str(tmp_path / "a.npz"))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 2, err
    assert lines[0] == "error: the FID Inception weights are needed: gankit never downloads them"
    assert "gankit weights convert pt_inception-2015-12-05-6726825d.pth" in lines[1] and WEIGHTS_ENV in lines[1]


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".pkl", ".ckpt"])
def test_pickle_files_are_refused_before_reading(tmp_path: Path, suffix: str, no_env: None) -> None:
    path = tmp_path / f"pt_inception{suffix}"
    path.write_bytes(b"never opened")
    with pytest.raises(UserError, match="pickle") as info:
        load_inception(path)
    assert f"gankit weights convert {path}" in info.value.hint


def test_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        load_inception(tmp_path / "absent.safetensors")


# (e) `gankit weights convert` and `gankit weights verify`


def assert_one_error_line(result: tuple[int, str, str], *fragments: str) -> str:
    """Exit code 2, nothing on stdout, one `error:` line holding `fragments` (and at most a hint); returns it."""
    code, out, err = result
    lines = err.strip().splitlines()
    assert code == 2 and out == "", err
    assert lines[0].startswith("error: ") and all(f in lines[0] for f in fragments), err
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), err
    return lines[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("command", [["weights"], ["weights", "convert"], ["weights", "verify"]])
def test_weights_help_has_examples(cli, command: list[str]) -> None:
    code, out, _ = cli(*command, "--help")
    assert code == 0 and "Examples:" in out and "gankit weights " in out


def test_convert_verify_then_measure(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = random_state()
    src, out = tmp_path / "pt_inception.pth", tmp_path / "out" / "inception.safetensors"
    torch.save(state, src)
    code, stdout, stderr = cli("weights", "convert", str(src), "--out", str(out))
    assert code == 0, stderr
    assert stdout.splitlines() == [f"wrote {out}", f"sha256 {sha256(out)}"]
    assert "warning: pt_inception.pth is not pytorch-fid's release file" in stderr  # a random file's hash
    assert f"--weights {out}" in stderr and f"{WEIGHTS_ENV}={out.resolve()}" in stderr
    converted = load_file(out)
    assert set(converted) == set(state)
    assert all(torch.equal(converted[k], state[k]) and converted[k].dtype == state[k].dtype for k in state)
    assert [p.name for p in out.parent.iterdir()] == ["inception.safetensors"]  # no temp file left behind

    # the output depends only on the source's bytes: another name, the default --out, the same file
    renamed = tmp_path / "copy.pth"
    renamed.write_bytes(src.read_bytes())
    assert cli("weights", "convert", str(renamed))[0] == 0
    assert renamed.with_suffix(".safetensors").read_bytes() == out.read_bytes()

    monkeypatch.setenv(WEIGHTS_ENV, str(out))
    code, stdout, stderr = cli("weights", "verify")  # FILE defaults to $GANKIT_INCEPTION_WEIGHTS
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith(f"ok {out}: complete FID Inception weights") and lines[1] == f"sha256 {sha256(out)}"
    assert lines[2] == f"source sha256 {sha256(src)}, NOT pytorch-fid's release file (expected 6726825d...): " \
        "FIDs from it are not comparable to published ones"
    assert "sha256 not known to gankit" in lines[3]  # no invented reference hash

    evaluator = load_evaluator("inception", weights=out)
    features = evaluator.features(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert features.shape == (2, 2048) and torch.isfinite(features).all()
    assert evaluator.protocol()["weights_sha256"] == sha256(out)


def test_verify_reports_the_release_file_by_its_hash_prefix(cli, weights_file: Path, tmp_path: Path) -> None:
    tensors = load_file(weights_file)
    recorded = tmp_path / "release.safetensors"
    save_file(tensors, str(recorded), metadata={"source_sha256": "6726825d" + "0" * 56})
    code, stdout, stderr = cli("weights", "verify", str(recorded))
    assert code == 0, stderr
    assert f"source sha256 {'6726825d' + '0' * 56}, pytorch-fid's release file" in stdout
    code, stdout, stderr = cli("weights", "verify", str(weights_file))  # saved without gankit's metadata
    assert code == 0 and "source sha256 not recorded" in stdout, stderr


def test_convert_fills_batchnorm_counters_missing_from_old_files(tmp_path: Path) -> None:
    # .pth files written by PyTorch < 0.4.1 have no num_batches_tracked; they do not affect inference
    state = {k: v for k, v in random_state().items() if not k.endswith("num_batches_tracked")}
    src = tmp_path / "legacy.pth"
    torch.save(state, src)
    out = convert(src).path
    assert out == tmp_path / "legacy.safetensors"
    converted = load_file(out)
    assert len(converted) == len(state) + 94
    assert converted["Mixed_7c.branch_pool.bn.num_batches_tracked"].item() == 0


def truncated_pth(path: Path) -> None:
    torch.save(tiny_state(), path)
    path.write_bytes(path.read_bytes()[:300])


def wrong_shapes_pth(path: Path) -> None:
    torch.save(tiny_state(), path)


def wrong_keys_pth(path: Path) -> None:
    torch.save({"conv.weight": torch.zeros(1)}, path)


def not_a_dict_pth(path: Path) -> None:
    torch.save([torch.zeros(1)], path)


def nan_pth(path: Path) -> None:
    state = random_state()
    state["Mixed_6c.branch1x1.conv.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, path)


@pytest.mark.parametrize(("write", "fragment"), [
    (lambda path: path.write_bytes(b"hello, not a torch file" * 9), "cannot be read as a PyTorch file"),
    (truncated_pth, "cannot be read as a PyTorch file"),
    (wrong_keys_pth, "missing keys: Conv2d_1a_3x3.bn.bias"),
    (wrong_shapes_pth, "tensor shapes do not match the FID Inception network: Conv2d_1a_3x3.conv.weight (1,) "
                       "instead of (32, 3, 3, 3)"),
    (not_a_dict_pth, "expected a state dict of tensors, found list"),
    (nan_pth, "non-finite values (NaN or inf) in Mixed_6c.branch1x1.conv.weight"),
], ids=["garbage", "truncated", "wrong-keys", "wrong-shapes", "not-a-dict", "nan"])
def test_convert_refuses_bad_files_in_one_line(cli, tmp_path: Path, write, fragment: str) -> None:
    src, out = tmp_path / "bad.pth", tmp_path / "bad.safetensors"
    write(src)
    assert_one_error_line(cli("weights", "convert", str(src)), str(src), fragment)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.pth"]  # nothing written, no temp file left


class Payload:
    """Unpickling this object would call open(marker, "w"): the restricted loader must refuse, not run it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_convert_refuses_pickles_that_are_not_plain_state_dicts(cli, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    src = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(1), "fc.extra": Payload(marker)}, src)
    assert_one_error_line(cli("weights", "convert", str(src)), "refused: it pickles io.open besides tensors")
    assert not marker.exists() and not src.with_suffix(".safetensors").exists()
    module = tmp_path / "module.pth"
    torch.save(torch.nn.Linear(2, 2), module)  # a whole pickled module, not a state dict
    assert_one_error_line(cli("weights", "convert", str(module)), "refused: it pickles torch.nn.modules.linear.Linear")


def test_convert_refuses_wrong_arguments(cli, tmp_path: Path) -> None:
    src = tmp_path / "pt_inception.pth"
    assert_one_error_line(cli("weights", "convert", str(src)), "no such file")
    src.write_bytes(b"")
    assert_one_error_line(cli("weights", "convert", str(src), "--out", str(tmp_path / "x.pth")), "must end in")
    assert_one_error_line(cli("weights", "convert", str(tmp_path / "w.safetensors")), "already safetensors")


@pytest.mark.parametrize(("damage", "fragment"), [
    (lambda data: data[: len(data) // 2], "not a readable safetensors file"),  # an interrupted copy
    (lambda data: b"\xff" * 16 + data[16:], "not a readable safetensors file"),  # garbled header
], ids=["truncated", "garbled"])
def test_verify_refuses_damaged_files_in_one_line(cli, weights_file: Path, tmp_path: Path, damage,
                                                  fragment: str) -> None:
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(damage(weights_file.read_bytes()))
    assert_one_error_line(cli("weights", "verify", str(path)), str(path), fragment)


def test_verify_refuses_incomplete_wrong_or_absent_files_in_one_line(cli, tmp_path: Path, no_env: None) -> None:
    state = tiny_state()
    assert_one_error_line(cli("weights", "verify", str(small_file(tmp_path, state))), "tensor shapes do not match")
    del state["fc.weight"]
    assert_one_error_line(cli("weights", "verify", str(small_file(tmp_path, state))), "missing keys: fc.weight")
    assert_one_error_line(cli("weights", "verify", str(tmp_path / "absent.safetensors")), "no such file")
    assert_one_error_line(cli("weights", "verify", str(tmp_path / "w.pth")), "never loads pickle-based files")
    assert_one_error_line(cli("weights", "verify"), "FID Inception weights are needed")


# (f) structure pinned to pytorch-fid's FIDInceptionV3


def test_parameter_count_matches_fid_inception() -> None:
    # torchvision's inception_v3 (1000 classes + aux head) has 27,161,264 parameters; FIDInceptionV3 drops the
    # aux head (conv0 98,560 + conv1 2,459,136 + fc 769,000 = 3,326,696) and widens fc to 1008 classes
    # (+8 x 2049): 27,161,264 - 3,326,696 + 16,392 = 23,850,960. Per block: stem 172,672; Mixed_5b-d 818,528;
    # Mixed_6a 1,153,280; Mixed_6b-e 6,821,376; Mixed_7a 1,698,304; Mixed_7b-c 11,121,408; fc 2,065,392.
    net = InceptionV3FID()
    assert sum(p.numel() for p in net.parameters()) == 23_850_960
    assert sum(p.numel() for p in net.fc.parameters()) == 2048 * 1008 + 1008
    # 94 conv+BN units x (conv.weight + 5 BatchNorm entries) + fc.weight + fc.bias
    assert len(net.state_dict()) == 94 * 6 + 2


def test_state_dict_uses_pytorch_fid_names_and_shapes() -> None:
    state = InceptionV3FID().state_dict()
    pinned = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_1a_3x3.bn.running_mean": (32,),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch1x1.conv.weight": (64, 192, 1, 1),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.bn.weight": (192,),
        "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
        "fc.weight": (1008, 2048),
        "fc.bias": (1008,),
    }
    assert {k: tuple(state[k].shape) for k in pinned} == pinned
    assert not any(k.startswith("AuxLogits") for k in state)


def test_tensorflow_quirks_are_kept() -> None:
    net = InceptionV3FID()
    assert all(bn.eps == 0.001 for bn in net.modules() if isinstance(bn, torch.nn.BatchNorm2d))
    assert (net.Mixed_7b.pool, net.Mixed_7c.pool) == ("avg", "max")  # FIDInceptionE_1 / FIDInceptionE_2
    # TF average pooling ignores the zero padding: a constant map stays constant, even at the borders
    ones = torch.ones(1, 1, 5, 5)
    torch.testing.assert_close(_pool_3x3(ones, "avg"), ones)
