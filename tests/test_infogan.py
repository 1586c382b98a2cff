"""InfoGAN: codes in G's input, the Q head's mutual-information term, fixed codes, traversals, code_accuracy and
code_accuracy_real."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import gankit
from gankit.data import digits
from gankit.losses import cluster_entropy
from gankit.metrics import load_evaluator
from gankit.report.evaluate import RUN_METRICS, RunEval, code_accuracy, code_accuracy_real, matched_accuracy, \
    trained_variant
from gankit.train import latest_checkpoint
from gankit.variants import Request
from gankit.variants import InfoGAN

FAST = ["train.steps=3", "train.restarts=1", "model.width=8", "train.sample_every=0", "train.checkpoint_every=0",
        "train.log_every=1"]


@pytest.fixture(scope="module")
def info_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("infogan") / "run"
    gankit.train(gankit.load_config("digits-infogan", FAST), run, progress=False)
    return run


def test_infogan_trains_and_logs_the_information_term(info_run):
    g = gankit.load(info_run)
    assert isinstance(g.variant, InfoGAN) and g.class_names is None
    assert g.variant.G.z_dim == g.config.model.z_dim + 10 + 2  # z ⊕ onehot(c0) ⊕ c1, c2
    logs = [json.loads(line) for line in (info_run / "logs.jsonl").read_text().splitlines()]
    assert {"info_loss", "q_accuracy", "q_continuous_mse", "g_info_loss"} <= set(logs[-1])
    # the preset's clustering term on real data: between -μ log 10 (confident, balanced) and 0 (E[H(p)] <= H(E[p]))
    mu = g.variant.info_real_balance
    assert mu > 1 and all(-mu * math.log(10) <= r["q_real_cluster"] <= 0 for r in logs if "d_loss" in r)
    assert g.sample(5, seed=0, codes={"c0": 3, "c2": -0.5}).shape == (5, 1, 16, 16)


def test_infogan_needs_no_labels(tmp_path):
    np.savez(tmp_path / "x.npz", data=np.random.rand(40, 1, 16, 16).astype(np.float32))
    cfg = gankit.load_config("digits-infogan", ["data.name=npz", f"data.path={tmp_path}/x.npz", "infogan.categorical=3",
                                                "infogan.continuous=0", "train.batch_size=8", *FAST])
    gankit.train(cfg, tmp_path / "r", progress=False)
    assert gankit.load(tmp_path / "r").variant.code_values("c0") == [0.0, 1.0, 2.0]
    # no labels to match c0 to: no code_accuracy_real
    assert not RUN_METRICS["code_accuracy_real"].applies(RunEval(gankit.load(tmp_path / "r"), tmp_path / "r"))


def test_infogan_without_codes_is_a_user_error(tmp_path):
    cfg = gankit.load_config("digits-infogan", ["infogan.categorical=0", "infogan.continuous=0", *FAST])
    with pytest.raises(gankit.UserError, match="needs a latent code"):
        gankit.train(cfg, tmp_path / "r", progress=False)


def test_clustering_term_without_a_categorical_code_is_a_user_error(tmp_path):
    cfg = gankit.load_config("digits-infogan", ["infogan.categorical=0", "infogan.real_weight=1", *FAST])
    with pytest.raises(gankit.UserError, match="real_weight"):
        gankit.train(cfg, tmp_path / "r", progress=False)


def test_condition_fixes_named_codes_and_draws_the_rest_per_seed(info_run):
    variant = gankit.load(info_run).variant

    def cond(seed, **codes):
        return variant.condition(Request(64, codes=codes, generator=torch.Generator().manual_seed(seed)))

    c = cond(0, c0=3, c1=0.5)  # (64, onehot(10) ⊕ c1 ⊕ c2)
    assert c.shape == (64, 12) and (c[:, :10].argmax(1) == 3).all() and (c[:, :10].sum(1) == 1).all()
    assert (c[:, 10] == 0.5).all() and c[:, 11].std() > 0.3 and c[:, 11].abs().max() <= 1
    assert torch.equal(cond(0, c0=3, c1=0.5), c) and not torch.equal(cond(1, c0=3, c1=0.5), c)
    free = cond(0)
    assert torch.equal(free[:, 11], c[:, 11])  # fixing codes leaves the other codes' draws as they were
    assert len(free[:, :10].argmax(1).unique()) > 5  # c0 is random (uniform) when not given
    assert variant.code_values("c0") == [float(i) for i in range(10)]
    values = variant.code_values("c1")
    assert len(values) == 8 and values[0] == -2 and values[-1] == 2


@pytest.mark.parametrize("codes, fragment", [({"c3": 1.0}, "unknown code 'c3'"), ({"c0": 10.0}, "index 0-9"),
                                             ({"c0": 1.5}, "index 0-9")])
def test_bad_codes_are_value_errors(info_run, codes, fragment):
    with pytest.raises(ValueError, match=fragment):
        gankit.load(info_run).variant.condition(Request(2, codes=codes))
    with pytest.raises(gankit.UserError, match=fragment):
        gankit.load(info_run).sample(2, seed=0, codes=codes)


def test_cli_code_reaches_the_generator_input(info_run, cli, tmp_path, monkeypatch):
    seen = []
    g_forward = InfoGAN.g_forward
    monkeypatch.setattr(InfoGAN, "g_forward", lambda self, z, cond: seen.append(cond) or g_forward(self, z, cond))
    code, _, err = cli("sample", str(info_run), "-n", "6", "--code", "c0=7", "--code", "c2=-1.5",
                       "--out", str(tmp_path / "s.npz"))
    assert code == 0, err
    cond = torch.cat(seen)
    assert len(cond) == 6 and (cond[:, :10].argmax(1) == 7).all() and (cond[:, 11] == -1.5).all()
    assert cond[:, 10].std() > 0  # c1 was not fixed


def test_cli_traversal_grid_rows_of_noise_columns_of_values(info_run, cli, tmp_path):
    code, _, err = cli("sample", str(info_run), "-n", "24", "--code", "c0=3", "--vary", "c1",
                       "--out", str(tmp_path / "t.png"))
    assert code == 0, err
    # 3 rows (noise) × 8 values of c1; 16-pixel digits with 1 pixel of padding, enlarged ×4
    assert Image.open(tmp_path / "t.png").size == ((8 * 17 + 1) * 4, (3 * 17 + 1) * 4)
    assert cli("sample", str(info_run), "-n", "20", "--vary", "c0", "--out", str(tmp_path / "c.npz"))[0] == 0
    with np.load(tmp_path / "c.npz") as f:
        samples = torch.from_numpy(f["samples"]).view(2, 10, 1, 16, 16)  # (rows, values of c0, C, H, W)
    g = gankit.load(info_run)
    z = g.latents(2, seed=0)  # one noise per row, the same across its columns
    for value in (0, 9):
        assert torch.allclose(samples[:, value], g.generate(z, codes={"c0": value}, seed=0))
    assert not torch.equal(samples[0, 0], samples[0, 9]) and not torch.equal(samples[0, 0], samples[1, 0])


@pytest.mark.parametrize("args, fragment", [
    (["--code", "c9=1"], "unknown code 'c9'"),
    (["--code", "c0=12"], "index 0-9"),
    (["--code", "c0=2.5"], "index 0-9"),
    (["--vary", "c7"], "no latent code 'c7'"),
    (["--class", "3"], "not class-conditional"),
])
def test_cli_bad_codes_exit_2_with_one_error_line(info_run, cli, tmp_path, args, fragment):
    code, out, err = cli("sample", str(info_run), "--out", str(tmp_path / "x.png"), *args)
    lines = err.strip().splitlines()
    assert code == 2 and lines[0].startswith("error:") and fragment in lines[0] and "Traceback" not in out + err
    assert len(lines) <= 2  # the error, and at most a hint


def test_cluster_loss_is_minus_the_information_between_images_and_c0():
    k, big = 10, 30.0
    onehot = F.one_hot(torch.arange(40) % k, k).float()
    assert cluster_entropy(torch.zeros(40, k)).item() == pytest.approx(0.0, abs=1e-6)  # undecided: no information
    assert cluster_entropy(big * onehot).item() == pytest.approx(-math.log(k), abs=1e-4)  # confident, balanced
    one_cluster = big * F.one_hot(torch.zeros(40, dtype=torch.long), k).float()
    assert cluster_entropy(one_cluster).item() == pytest.approx(0.0, abs=1e-4)  # confident but all in one value
    half = big * F.one_hot(torch.arange(40) % 5, k).float()  # 5 of the 10 values used
    assert cluster_entropy(half).item() == pytest.approx(-math.log(5), abs=1e-4)
    # μ weighs the use of every value against confident answers
    assert cluster_entropy(half, balance=4.0).item() == pytest.approx(-4 * math.log(5), abs=1e-3)
    soft = torch.zeros(40, k)  # undecided: H(E[p]) = H(p) = log k, so the loss is (1 - μ) log k
    assert cluster_entropy(soft, balance=4.0).item() == pytest.approx(-3 * math.log(k), abs=1e-4)


@pytest.mark.parametrize("kind, function", [("shift", "translation"), ("affine", "affine")])
def test_shift_consistency_term_is_the_cross_entropy_of_q_on_shifted_against_plain_reals(monkeypatch, kind, function):
    """Catches the self-augmentation term dropped, unweighted, of the wrong sign, comparing the wrong images, or
    using another perturbation than infogan.augment names."""
    from gankit.variants import infogan as module

    from conftest import variant_and_batch

    other = {"translation": "affine", "affine": "translation"}[function]
    monkeypatch.setattr(module, function, lambda x, *args, **kw: x.flip(-1, -2))  # a known, visible change
    monkeypatch.setattr(module, other, lambda x, *args, **kw: x)  # the other one would change nothing
    plain, batch = variant_and_batch("digits-infogan", "model.width=8", "infogan.augment_weight=0")
    shifted, _ = variant_and_batch("digits-infogan", "model.width=8", "infogan.augment_weight=2",
                                   f"infogan.augment={kind}")
    losses = []
    for variant in (plain, shifted):
        with torch.no_grad():
            variant.D.head[-1].weight.mul_(100)  # a confident Q, so plain and shifted images get different readings
        variant.eval()  # batch norm on running statistics: both see the same D
        torch.manual_seed(1)
        losses.append(variant.loss("D", batch, module.Context()))
    (d_plain, _), (d_shifted, scalars) = losses
    p = F.softmax(shifted.D(batch.x)[1][:, :10], dim=1)
    log_q = F.log_softmax(shifted.D(batch.x.flip(-1, -2))[1][:, :10], dim=1)
    expected = -(p * log_q).sum(1).mean()
    assert scalars["q_real_shift"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert d_shifted.item() == pytest.approx((d_plain + 2 * expected).item(), rel=1e-5)
    assert expected.item() != pytest.approx(-(p * F.log_softmax(shifted.D(batch.x)[1][:, :10], 1)).sum(1).mean().item(),
                                            rel=1e-3)  # the shifted images, not the plain ones again


def test_affine_consistency_term_uses_the_configured_rotation_and_scaling(monkeypatch):
    """Catches infogan.augment_degrees / augment_scale not reaching the perturbation (the defaults used instead)."""
    from gankit.variants import infogan as module

    from conftest import variant_and_batch

    seen = []
    monkeypatch.setattr(module, "affine", lambda x, *args, **kw: seen.append((args, kw)) or x)
    variant, batch = variant_and_batch("digits-infogan", "model.width=8", "infogan.augment=affine",
                                       "infogan.augment_degrees=25", "infogan.augment_scale=0.2")
    variant.loss("D", batch, module.Context())
    assert seen == [((25.0, 0.2), {"shift": 2 / batch.x.shape[-1]})]


def test_real_data_clustering_term_can_be_turned_off(tmp_path):
    cfg = gankit.load_config("digits-infogan", ["infogan.real_weight=0", *FAST])
    gankit.train(cfg, tmp_path / "r", progress=False)
    logs = [json.loads(line) for line in (tmp_path / "r" / "logs.jsonl").read_text().splitlines()]
    assert "info_loss" in logs[-1] and "q_real_cluster" not in logs[-1]


def test_matched_accuracy_finds_a_permuted_perfect_mapping():
    permutation = [3, 0, 7, 1, 9, 2, 8, 5, 4, 6]  # c0 value i draws digit permutation[i]
    confusion = np.zeros((10, 10), dtype=np.int64)
    confusion[np.arange(10), permutation] = 100
    assert matched_accuracy(confusion) == (1.0, permutation)
    # two values on one class: only one can match it, the other takes its best free class
    assert matched_accuracy(np.array([[8, 2], [7, 3]])) == (11 / 20, [0, 1])
    # more values than classes: the extra value matches nothing
    assert matched_accuracy(np.array([[5, 0], [0, 5], [4, 1]])) == (10 / 15, [0, 1, -1])


def test_code_accuracy_protocol(info_run):
    accuracy, protocol = code_accuracy(RunEval(gankit.load(info_run), info_run, seed=0, features="digits"))
    assert 0 <= accuracy <= 1 and protocol["per_value"] == 100 and len(protocol["mapping"]) == 10
    assert np.array(protocol["confusion"]).sum() == 1000 and "Hungarian" in protocol["matching"]
    assert len(set(protocol["mapping"].values())) == 10  # one-to-one


# ---------------------------------------------------------------------------- code_accuracy_real (Q on real digits)

TINY = ["train.steps=2", "train.restarts=1", "model.width=8", "train.batch_size=16", "train.sample_every=0",
        "train.checkpoint_every=0"]


def test_code_accuracy_real_in_eval_with_its_protocol(tmp_path):
    gankit.train(gankit.load_config("digits-infogan", TINY), tmp_path / "r", progress=False)
    result = gankit.evaluate(tmp_path / "r", n=50)
    assert 0 <= result["code_accuracy_real"] <= 1 and "code_accuracy" in result
    protocol = result["protocol"]["code_accuracy_real"]
    assert protocol["code"] == "c0" and protocol["step"] == 2 and protocol["checkpoint"] == "step-2"
    assert protocol["samples"] == 1797 and protocol["images"].startswith("training data")  # no held-out digits
    assert protocol["subset_seed"] is None and protocol["weights"] == "live (not EMA)"  # every digit; Q's own D
    confusion = np.array(protocol["confusion"])  # (value of c0, digit label)
    assert confusion.shape == (10, 10) and confusion.sum() == 1797
    assert confusion.sum(0).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # the digits' labels
    assert "Hungarian" in protocol["matching"] and len(set(protocol["mapping"].values())) == 10
    assert result["code_accuracy_real"] == pytest.approx(matched_accuracy(confusion)[0])


def test_q_comes_from_the_checkpoint_and_predicts_in_eval_mode(info_run):
    run = RunEval(gankit.load(info_run), info_run)
    variant, source = trained_variant(run)
    _, state, files = latest_checkpoint(info_run)
    assert source["step"] == state["step"] == 3 and not variant.training
    live = files["model.safetensors"]
    assert all(torch.equal(v, live[k]) for k, v in variant.state_dict().items())  # trained D/Q, not a fresh one
    x = digits(16).x[:40]
    modes = []
    variant.D.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    variant.D.train()
    predicted = variant.predict_code(x, "c0")
    assert modes == [False] and variant.D.training  # batch norm on its running statistics; the mode is given back
    variant.D.eval()
    assert predicted.shape == (40,) and torch.equal(predicted, variant.D(x)[1][:, :10].argmax(1))  # Q's c0 logits
    with pytest.raises(ValueError, match="categorical"):
        variant.predict_code(x, "c1")


def test_code_accuracy_real_matches_q_values_to_labels(info_run, monkeypatch):
    """A Q that puts every digit d in value inverse[d] scores 1.0 with c0=i -> permutation[i]; it reads each image
    itself, so labels out of step with their images score ~0.1, and without the matching it would score 0."""
    data = digits(16)
    label_of = {x.numpy().tobytes(): int(y) for x, y in zip(data.x, data.y)}
    permutation = [3, 0, 7, 1, 9, 2, 8, 5, 4, 6]  # no fixed point, not its own inverse
    inverse = np.argsort(permutation)
    seen = []

    def predict_code(self, x, name):
        seen.append(len(x))
        return torch.tensor([inverse[label_of[image.numpy().tobytes()]] for image in x])

    monkeypatch.setattr(InfoGAN, "predict_code", predict_code)
    accuracy, protocol = code_accuracy_real(RunEval(gankit.load(info_run), info_run))
    assert sum(seen) == 1797 and accuracy == 1.0
    assert protocol["mapping"] == {f"c0={i}": str(d) for i, d in enumerate(permutation)}
    confusion = np.array(protocol["confusion"])
    assert (confusion[np.arange(10), permutation] == np.bincount(data.y.numpy())[permutation]).all()
    assert confusion.sum() == confusion[np.arange(10), permutation].sum()


def test_code_accuracy_real_needs_a_categorical_code(tmp_path):
    gankit.train(gankit.load_config("digits-dcgan", TINY), tmp_path / "r", progress=False)
    result = gankit.evaluate(tmp_path / "r", n=50)
    assert "fid" in result and "code_accuracy_real" not in result and "code_accuracy_real" not in result["protocol"]


def test_code_accuracy_real_needs_the_run_not_only_its_exported_generator(info_run, tmp_path):
    applies = RUN_METRICS["code_accuracy_real"].applies
    assert applies(RunEval(gankit.load(info_run), info_run))
    model = info_run / "model"  # G only: no checkpoint, no config.yaml, so no Q
    assert not applies(RunEval(gankit.load(model), model))
    shutil.copytree(info_run, tmp_path / "r", ignore=shutil.ignore_patterns("checkpoints"))  # config, model/, no Q
    assert (tmp_path / "r" / "config.yaml").is_file()
    assert not applies(RunEval(gankit.load(tmp_path / "r"), tmp_path / "r"))


@pytest.mark.slow
def test_q_learns_to_read_the_categorical_code(tmp_path):
    cfg = gankit.load_config("digits-infogan", ["train.steps=150", "train.restarts=1", "model.width=16",
                                                "train.sample_every=0", "train.checkpoint_every=0",
                                                "train.log_every=10"])
    gankit.train(cfg, tmp_path / "r", progress=False)
    logs = [json.loads(line) for line in (tmp_path / "r" / "logs.jsonl").read_text().splitlines()]
    q_accuracy = [r["q_accuracy"] for r in logs if "q_accuracy" in r]
    assert q_accuracy[0] < 0.5 and np.mean(q_accuracy[-3:]) > 0.9, q_accuracy
