"""Editing: inversion, InterFaceGAN / SeFa / GANSpace directions, edits, edit success, and the invert / edit / directions CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import KnownLatents, varied
from gankit import edit as editing
from gankit.errors import UserError
from gankit.metrics import Evaluator
from gankit.train import load
from gankit.train.checkpoint import save_tensors

TINY = ("data.n=64", "data.resolution=16", "model.width=8", "model.z_dim=8", "train.steps=2", "train.sample_every=0",
        "train.checkpoint_every=0")


@pytest.fixture(scope="module")
def tiny_run(train_tiny):
    return train_tiny("shapes-dcgan", *TINY)


@pytest.fixture(scope="module")
def tiny_cgan(train_tiny):
    return train_tiny("digits-cgan", "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0")


class HalvesEvaluator(Evaluator):
    """A stand-in evaluator whose attributes are linear-ish in the image: is the left (top) half brighter than
    the median of G's samples? It makes the right answer for each direction known."""

    def __init__(self, reference: torch.Tensor) -> None:
        super().__init__("halves")
        self.attributes = {"left": ["dark left", "bright left"], "top": ["dark top", "bright top"]}
        self.median = {a: self._score(reference, a).median() for a in self.attributes}

    @staticmethod
    def _score(x: torch.Tensor, attribute: str) -> torch.Tensor:
        half = x.shape[-1] // 2
        return (x[..., :half] if attribute == "left" else x[..., :half, :]).mean(dim=(1, 2, 3))

    def classify(self, x: torch.Tensor, label: str) -> torch.Tensor:
        return (self._score(x, label) > self.median[label]).long()


@pytest.fixture(scope="module")
def halves(tiny_run):
    gen = varied(tiny_run)
    evaluator = HalvesEvaluator(gen.sample(2000, seed=11))
    return gen, evaluator, editing.directions(gen, evaluator, n=2000, sefa=3)


def test_first_layer_is_the_transposed_conv_weight_and_sefa_its_top_eigenvectors(tiny_run):
    gen = load(tiny_run)
    weight = gen.variant.G.net[0].weight.detach()  # (z_dim, C, 4, 4): z enters the first transposed conv
    a = weight.flatten(1).T
    assert torch.allclose(editing.first_layer(gen), a, atol=1e-5)
    found = editing.directions(gen, None, sefa=3, ganspace=0)
    values, vectors = torch.linalg.eigh(a.T @ a)
    for i in range(3):
        top = vectors[:, -1 - i]
        assert abs(float(found[f"sefa{i}"].vector @ top)) == pytest.approx(1, abs=1e-4)
    assert list(found.items) == ["sefa0", "sefa1", "sefa2"]  # no evaluator: no attribute directions


def test_attribute_directions_point_toward_their_value_and_move_samples_there(halves):
    gen, evaluator, found = halves
    bright = found["bright left"]
    assert bright.method == "interfacegan" and bright.attribute == "left" and bright.accuracy > 0.6
    assert float(found["dark left"].vector @ bright.vector) < -0.9  # the two sides of one boundary
    z = gen.latents(200, seed=5)
    before = evaluator.classify(gen.generate(z), "left").float().mean()
    up = evaluator.classify(gen.generate(editing.edit(z, found, {"bright left": 3.0})), "left").float().mean()
    down = evaluator.classify(gen.generate(editing.edit(z, found, {"bright left": -3.0})), "left").float().mean()
    assert up > before + 0.15 and down < before - 0.3


def test_held_directions_are_orthogonal_to_the_other_attributes_boundaries(halves):
    _, _, found = halves
    held = found.held("bright left")
    for other in ("bright top", "dark top"):
        assert abs(float(held @ found[other].vector)) < 1e-5
    assert float(held @ found["bright left"].vector) > 0.5 and float(held.norm()) == pytest.approx(1, abs=1e-5)
    assert torch.equal(found.held("sefa0"), found["sefa0"].vector)  # SeFa directions hold nothing


def test_edit_success_beats_random_moves_and_counts_both_conditions(halves):
    gen, evaluator, found = halves
    result = editing.edit_success(gen, evaluator, found, gen.latents(200, seed=7), seed=0)
    assert result["edits"] == 200
    assert result["edit_success"] <= min(result["edit_changed"], result["edit_held"])
    assert result["edit_changed"] > 0.4 and result["edit_success"] > result["edit_success_random"] + 0.1


def test_inversion_refines_the_pool_start_and_steps_zero_keeps_it(tiny_run):
    gen = varied(tiny_run)
    x = gen.sample(4, seed=123)
    start = editing.invert(gen, x, steps=0, pool=32)
    assert torch.allclose(start.psnr, start.psnr_start, atol=1e-3)
    refined = editing.invert(gen, x, steps=60, pool=32)
    assert torch.equal(refined.psnr_start, start.psnr_start)  # the same pool for the same seed
    assert (refined.psnr > refined.psnr_start + 3).all()
    assert torch.allclose(gen.generate(refined.z), refined.images, atol=1e-5)
    assert all(p.requires_grad for p in gen.variant.parameters())  # inversion gives the weights back untouched


def test_inversion_of_a_conditional_model_finds_the_class(tiny_cgan):
    gen = load(tiny_cgan)
    labels = torch.tensor([3, 7, 1, 9])
    x = gen.sample(4, seed=0, labels=labels)  # the pool for seed 0 starts with these latents
    inv = editing.invert(gen, x, steps=0, seed=0, pool=8)
    assert torch.equal(inv.labels, labels) and (inv.psnr > 60).all()
    fixed = editing.invert(gen, x, labels=torch.tensor([0, 0, 0, 0]), steps=0, seed=0, pool=8)
    assert torch.equal(fixed.labels, torch.zeros(4, dtype=torch.long)) and (fixed.psnr < inv.psnr).all()


def test_directions_are_cached_per_weights(tiny_run, tmp_path):
    gen = load(tiny_run)
    first = editing.run_directions(gen, tmp_path, None)
    files = tmp_path / "edit" / "directions.json"
    stamp = files.stat().st_mtime_ns
    again = editing.run_directions(gen, tmp_path, None)
    assert files.stat().st_mtime_ns == stamp and torch.equal(again["sefa0"].vector, first["sefa0"].vector)
    with torch.no_grad():
        gen.variant.G.net[0].weight.mul_(-1)  # other weights: the cache no longer applies
    editing.run_directions(gen, tmp_path, None)
    assert json.loads(files.read_text())["fingerprint"] == gen.weights_sha256() != ""
    assert files.stat().st_mtime_ns != stamp


@pytest.mark.parametrize("damage", ["json_list", "json_directions_list", "truncated_tensors", "other_tensors"])
def test_damaged_cached_directions_are_found_again_with_a_warning(tiny_run, tmp_path, damage, caplog):
    gen = load(tiny_run)
    first = editing.run_directions(gen, tmp_path, None)
    meta, tensors = tmp_path / "edit" / "directions.json", tmp_path / "edit" / "directions.safetensors"
    if damage == "json_list":
        meta.write_text("[]")
    elif damage == "json_directions_list":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "directions": []}))
    elif damage == "truncated_tensors":
        tensors.write_bytes(tensors.read_bytes()[:40])
    else:
        save_tensors(tensors, {"unrelated": torch.zeros(3)})
    with caplog.at_level("WARNING"):
        again = editing.run_directions(gen, tmp_path, None)
    assert "finding them again" in caplog.text and torch.equal(again["sefa0"].vector, first["sefa0"].vector)
    assert editing.load_directions(tmp_path / "edit", gen.weights_sha256()) is not None  # saved anew


def test_parse_edits_adds_amounts_and_refuses_bad_ones():
    assert editing.parse_edits(["red=3", "sefa0=-2", "red=0.5"]) == {"red": 3.5, "sefa0": -2.0}
    for bad in ("red", "=3", "red=x", "red=nan"):
        with pytest.raises(UserError, match="NAME=AMOUNT"):
            editing.parse_edits([bad])


def test_invert_then_edit_from_the_cli_writes_latents_grids_and_one_png_per_input(tiny_run, tmp_path, cli):
    images = tmp_path / "in"
    assert cli("sample", str(tiny_run), "-n", "3", "--out", f"{images}/", "--seed", "4")[0] == 0
    code, _, err = cli("invert", str(tiny_run), str(images), "--out", str(tmp_path / "z.npz"), "--steps", "5",
                       "--grid")
    assert code == 0 and "PSNR" in err
    with np.load(tmp_path / "z.npz", allow_pickle=False) as f:
        assert f["z"].shape == (3, 8) and len(f["psnr"]) == 3 and list(f["names"]) == sorted(
            p.name for p in images.iterdir())
    assert (tmp_path / "z.png").is_file()
    code, _, err = cli("edit", str(tiny_run), str(tmp_path / "z.npz"), "-d", "sefa0=2", "--out", f"{tmp_path}/ed/")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ed").iterdir()) == sorted(p.name for p in images.iterdir())
    code, _, err = cli("edit", str(tiny_run), str(images), "-d", "sefa1=-1", "--steps", "3", "--grid",
                       "--out", str(tmp_path / "grid.png"))
    assert code == 0, err
    from PIL import Image

    with Image.open(tmp_path / "grid.png") as im:
        assert im.info.get("gankit:task") == "edit" and "sefa1=-1" in im.info.get("gankit:edit", "")
    code, out, _ = cli("directions", str(tiny_run), "--json")
    listed = json.loads(out)["directions"]
    assert "sefa0" in listed and "interfacegan" in json.loads(out)["protocol"]  # two steps: every value too rare


def test_latents_name_the_model_that_found_them_and_another_model_refuses_them(tiny_run, train_tiny, tmp_path, cli):
    latents = tmp_path / "z.npz"
    assert cli("invert", str(tiny_run), str(_one_image(tmp_path)), "--out", str(latents), "--steps", "0")[0] == 0
    code, out, _ = cli("provenance", str(latents), "--json")
    fields = json.loads(out)
    assert code == 0 and fields["gankit:latents"] == "true" and "gankit:generated" not in fields
    assert fields["gankit:model_sha256"] == load(tiny_run).weights_sha256() and fields["gankit:task"] == "invert"
    other = train_tiny("shapes-dcgan", *TINY, "seed=1")  # the same z size: only the provenance tells them apart
    code, _, err = cli("edit", str(other), str(latents), "-d", "sefa0=1", "--out", str(tmp_path / "e.png"))
    assert code == 2 and "latents another model found" in err and not (tmp_path / "e.png").exists()


def test_latents_with_nan_are_refused(tiny_run, tmp_path, cli):
    z = np.zeros((2, load(tiny_run).variant.z_dim), np.float32)
    z[1, 3] = np.nan
    np.savez(tmp_path / "z.npz", z=z)
    code, _, err = cli("edit", str(tiny_run), str(tmp_path / "z.npz"), "-d", "sefa0=1", "--out",
                       str(tmp_path / "e.png"))
    assert code == 2 and "z.npz['z'] contains NaN" in err and not (tmp_path / "e.png").exists()


def test_edited_latents_differ_from_the_originals_by_the_amount(tiny_run, tmp_path, cli):
    gen = load(tiny_run)
    found = editing.run_directions(gen, tiny_run, editing.evaluator_for(gen))
    z = gen.latents(2, seed=1)
    moved = editing.edit(z, found, {"sefa0": 2.0, "sefa1": -1.0})
    assert torch.allclose(moved - z, 2 * found["sefa0"].vector - found["sefa1"].vector, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["invert", "{pix}", "{img}", "--out", "{tmp}/z.npz"], "no latent to invert"),
    (["invert", "{run}", "{img}", "--out", "{tmp}/z.png"], "written as .npz"),
    (["invert", "{run}", "{tmp}/missing", "--out", "{tmp}/z.npz"], "does not exist"),
    (["edit", "{run}", "{img}", "-d", "nosuch=1", "--out", "{tmp}/e.png"], "unknown direction 'nosuch'"),
    (["edit", "{run}", "{badz}", "-d", "sefa0=1", "--out", "{tmp}/e.png"], "this model takes float (N, 8)"),
    (["edit", "{run}", "{badprov}", "-d", "sefa0=1", "--out", "{tmp}/e.png"], "not a gankit record"),
    (["edit", "{run}", "{img}", "-d", "sefa0=1", "--out", "{tmp}/e.npz", "--grid"], "--grid writes a PNG"),
])
def test_bad_editing_inputs_exit_2_with_one_line_and_write_nothing(args, message, tiny_run, train_tiny, tmp_path,
                                                                  cli):
    pix = train_tiny("shapes-pix2pix", "data.n=16", "data.resolution=16", "pix2pix.width=8", "train.batch_size=8",
                     "train.steps=1",
                     "train.sample_every=0", "train.checkpoint_every=0")
    img = tmp_path / "img"
    cli("sample", str(tiny_run), "-n", "1", "--out", f"{img}/")
    np.savez(tmp_path / "badz.npz", z=np.zeros((2, 5), np.float32))
    np.savez(tmp_path / "badprov.npz", z=np.zeros((2, 8), np.float32), provenance=np.array("[not json"))
    names = {"run": tiny_run, "pix": pix, "img": img, "tmp": tmp_path, "badz": tmp_path / "badz.npz",
             "badprov": tmp_path / "badprov.npz"}
    before = set(tmp_path.rglob("*"))
    code, _, err = cli(*[a.format(**names) for a in args])
    assert code == 2 and message in err and "Traceback" not in err
    assert set(tmp_path.rglob("*")) == before


def test_directions_found_by_a_command_that_then_fails_stay_cached(tiny_run, tmp_path, cli):
    """The command's outputs appear together or not at all; RUN/edit/ is a cache beside them, kept either way."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    shutil.rmtree(run / "edit", ignore_errors=True)
    latents = tmp_path / "z.npz"
    assert cli("invert", str(run), str(_one_image(tmp_path)), "--out", str(latents), "--steps", "0")[0] == 0
    code, _, err = cli("edit", str(run), str(latents), "-d", "nosuch=1", "--out", str(tmp_path / "e.png"))
    assert code == 2 and "unknown direction 'nosuch'" in err and not (tmp_path / "e.png").exists()
    assert {p.name for p in (run / "edit").iterdir()} >= {"directions.safetensors", "directions.json"}


def _one_image(folder):
    from PIL import Image

    path = folder / "one.png"
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(path)
    return path


def test_an_encoders_guess_replaces_the_pool_start_where_it_redraws_better(tiny_run):
    gen = varied(tiny_run)
    z = gen.latents(4, seed=99)
    x = gen.generate(z)
    pool = editing.invert(gen, x, steps=0, pool=16)
    guessed = editing.invert(gen, x, steps=0, pool=16, encoder=KnownLatents(z))
    assert (pool.psnr_start < 40).all() and (guessed.psnr_start > 60).all()
    assert torch.allclose(guessed.z, z)
    wrong = editing.invert(gen, x, steps=0, pool=16, encoder=KnownLatents(-3 * z))
    assert torch.equal(wrong.z, pool.z)  # a worse guess is ignored


def test_the_encoder_learns_to_read_z_back_from_samples(tiny_run):
    gen = varied(tiny_run)
    _, untrained = editing.train_encoder(gen, steps=1)
    _, trained = editing.train_encoder(gen, steps=150)
    assert trained["final_latent_mse"] < 0.7 * untrained["final_latent_mse"]


def test_invert_with_encoder_trains_it_once_and_keeps_it_in_the_run(tiny_run, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(editing, "ENCODER_STEPS", 5)
    run = tmp_path / "run"
    import shutil

    shutil.copytree(tiny_run, run)
    cli("sample", str(run), "-n", "2", "--out", f"{tmp_path}/in/")
    assert cli("invert", str(run), f"{tmp_path}/in", "--out", str(tmp_path / "z.npz"), "--encoder",
               "--steps", "1")[0] == 0
    meta = json.loads((run / "edit" / "encoder.json").read_text())
    assert meta["steps"] == 5 and meta["fingerprint"] == load(run).weights_sha256()
    stamp = (run / "edit" / "encoder.safetensors").stat().st_mtime_ns
    assert cli("edit", str(run), f"{tmp_path}/in", "-d", "sefa0=1", "--encoder", "--steps", "1",
               "--out", f"{tmp_path}/out/")[0] == 0
    assert (run / "edit" / "encoder.safetensors").stat().st_mtime_ns == stamp


def test_edit_success_keeps_each_latents_class_for_conditional_models(tiny_cgan):
    """Catches fresh random classes drawn for the edited samples (the class would change with every edit)."""
    gen = load(tiny_cgan)
    drawn: list = []  # the classes of the last batch G drew (None: left to G, i.e. random)
    generate = gen.generate
    gen.generate = lambda z, labels=None, **kw: drawn.insert(0, labels) or generate(z, labels=labels, **kw)

    class ClassAndHalves(HalvesEvaluator):
        def classify(self, x, label):
            if label != "digit":
                return super().classify(x, label)
            return drawn[0] if drawn[0] is not None else torch.randint(10, (len(x),))

    ev = ClassAndHalves(gen.sample(500, seed=11))
    ev.attributes = {"left": ev.attributes["left"], "digit": gen.class_names}
    found = editing.Directions({name: editing.Direction(name, torch.randn(gen.variant.z_dim) / 3, "interfacegan",
                                                        "left", name) for name in ev.attributes["left"]})
    result = editing.edit_success(gen, ev, found, gen.latents(50, seed=3), seed=0)
    assert result["edit_held"] == 1.0  # the only other attribute is the class, which must not move


def test_ganspace_directions_move_their_own_principal_component_most(tiny_run):
    """Catches components carried back to z wrongly (transposed basis, wrong layer): pca0 must move the first
    principal coordinate of the first activations more than any other coordinate."""
    gen = varied(tiny_run)
    found = editing.directions(gen, None, sefa=0, ganspace=3)
    assert list(found.items) == ["pca0", "pca1", "pca2"] and found["pca0"].method == "ganspace"
    relu = next(m for m in gen.variant.G.modules() if isinstance(m, nn.ReLU))
    acts: list = []
    handle = relu.register_forward_hook(lambda m, a, out: acts.append(out.flatten(1)))
    z = gen.latents(1000, seed=0)  # the samples the PCA was fitted on (seed 0)
    gen.generate(z)
    mean = acts[-1].mean(0)
    _, _, v = torch.linalg.svd((acts[-1] - mean).double(), full_matrices=False)
    for i in range(3):
        moved = editing.edit(z[:100], found, {f"pca{i}": 1.0})
        gen.generate(moved)
        gen.generate(z[:100])
        shift = ((acts[-2] - acts[-1]).double() @ v[:3].T).abs().mean(0)
        assert int(shift.argmax()) == i
    handle.remove()


def test_eval_reports_the_inversion_of_held_out_images_start_refined_and_attributes_kept(tiny_run, monkeypatch):
    """Catches the start and refined PSNR swapped or taken from other images, and attributes counted kept when only
    some of them are (the protocol says all): inversion is replaced by a known result, half of whose reconstructions
    are other held-out images."""
    from gankit.data import load_heldout
    from gankit.report.evaluate import INVERT_IMAGES, RUN_METRICS, RunEval

    run = RunEval(load(tiny_run), tiny_run)
    real, _ = load_heldout(run.config.data, run.config.seed, INVERT_IMAGES)
    n = len(real)
    redrawn = torch.cat([real[: n // 2], real[n // 2:].roll(1, 0)])
    known = editing.Inversion(z=torch.zeros(n, 8), labels=None, images=redrawn, psnr=torch.linspace(20, 30, n),
                              psnr_start=torch.linspace(5, 7, n))
    seen: list[torch.Tensor] = []
    monkeypatch.setattr(editing, "invert", lambda gen, images, **kw: seen.append(images) or known)
    monkeypatch.setattr(editing, "run_directions", lambda *a, **kw: editing.Directions({}, {}))
    values, protocol = RUN_METRICS["editing"].compute(run)
    assert torch.equal(seen[0], real)
    assert values["inversion_psnr"] == pytest.approx(25.0) and values["inversion_psnr_start"] == pytest.approx(6.0)
    evaluator = run.evaluator
    same = torch.stack([evaluator.classify(redrawn, a) == evaluator.classify(real, a) for a in evaluator.attributes])
    assert same.all(0).float().mean() < same.any(0).float().mean()  # the test tells "all" from "any"
    assert values["inversion_attributes_kept"] == pytest.approx(same.all(0).float().mean().item())
    assert protocol["editing"]["inversion"]["images"] == n
