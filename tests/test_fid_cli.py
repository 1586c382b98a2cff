"""`gankit fid` and `gankit eval` on images: real halves are close and noise is far, the protocol is complete,
statistics files and runs work as operands, and bad input gives one error line with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import gankit
from gankit.data import digits
from gankit.data.folder import list_images, load_image
from gankit.io import save_images
from gankit.metrics import FeatureStats, load_evaluator
from gankit.metrics.inception import WEIGHTS_ENV
from gankit.report.compare import round_to_8bit


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """Two disjoint random halves of the real digits (one as .npz, one as a PNG folder) and uniform noise."""
    root = tmp_path_factory.mktemp("fid")
    x = digits().x
    order = np.random.default_rng(0).permutation(len(x))
    half_a, half_b = x[order[: len(x) // 2]], x[order[len(x) // 2 :]]
    np.savez(root / "half_a.npz", samples=half_a.numpy())
    save_images(root / "half_b", half_b)
    noise = np.random.default_rng(1).uniform(-1, 1, (len(half_b), 1, 16, 16)).astype(np.float32)
    np.savez(root / "noise.npz", samples=noise)
    stats = FeatureStats()
    stats.update(load_evaluator("digits").features(half_a))
    stats.save(root / "half_a_stats.npz")
    return root


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A barely trained, very small digits GAN: enough to exercise `eval` and run operands."""
    run = tmp_path_factory.mktemp("runs") / "d"
    cfg = gankit.load_config("digits-dcgan", ["train.steps=2", "model.width=8", "train.log_every=1",
                                              "train.sample_every=0", "train.checkpoint_every=0"])
    gankit.train(cfg, run, progress=False)
    return run


def fid_json(cli, *args: str) -> dict:
    code, out, err = cli("fid", *args, "--features", "digits", "--json")
    assert code == 0, err
    return json.loads(out)


def assert_user_error(result, *fragments: str) -> None:
    code, out, err = result
    lines = err.strip().splitlines()
    assert code == 2 and out == "", err
    assert lines[0].startswith("error: ") and all(f in lines[0] for f in fragments), err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("hint: ")), err


def test_real_halves_are_ten_times_closer_than_noise(cli, sets):
    halves = fid_json(cli, str(sets / "half_a.npz"), str(sets / "half_b"))
    noise = fid_json(cli, str(sets / "half_a.npz"), str(sets / "noise.npz"))
    assert noise["fid"] >= 10 * halves["fid"] > 0
    protocol = halves["protocol"]
    assert protocol["extractor"]["extractor"] == "digits" and len(protocol["extractor"]["weights_sha256"]) == 64
    assert protocol["a"] == {"path": str(sets / "half_a.npz"), "kind": "samples", "samples": 898, "key": "samples"}
    assert protocol["b"]["kind"] == "folder" and protocol["b"]["samples"] == 899


def test_kid_and_prdc_on_request(cli, sets, tmp_path):
    with np.load(sets / "half_a.npz") as f:
        np.savez(tmp_path / "part_a.npz", samples=f["samples"][:300])  # 300 samples keep KID's 100 subsets quick
    result = fid_json(cli, str(tmp_path / "part_a.npz"), str(sets / "half_b"), "--kid", "--prdc")
    assert {"fid", "kid", "kid_std", "precision", "recall", "density", "coverage"} <= result.keys()
    assert result["precision"] > 0.8 and result["recall"] > 0.8  # two samples of one set cover each other
    assert result["protocol"]["kid"]["subset_size"] == 300


def test_statistics_file_equals_its_samples(cli, sets):
    from_samples = fid_json(cli, str(sets / "half_a.npz"), str(sets / "noise.npz"))
    from_stats = fid_json(cli, str(sets / "half_a_stats.npz"), str(sets / "noise.npz"))
    assert from_stats["fid"] == pytest.approx(from_samples["fid"], rel=1e-6)
    assert from_stats["protocol"]["a"]["kind"] == "stats"


def test_table_output(cli, sets):
    code, out, _ = cli("fid", str(sets / "half_a.npz"), str(sets / "half_b"), "--features", "raw")
    assert code == 0 and "fid" in out and '"extractor": "raw"' in out


def test_bad_inputs_are_one_line_errors(cli, sets, tmp_path, monkeypatch):
    half_a = str(sets / "half_a.npz")
    assert_user_error(cli("fid", half_a, str(tmp_path / "missing"), "--features", "digits"), "does not exist")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert_user_error(cli("fid", half_a, str(tmp_path / "empty"), "--features", "digits"), "holds no image files")
    assert_user_error(cli("fid", str(sets / "half_a_stats.npz"), half_a, "--features", "digits", "--kid"),
                      "statistics only")
    np.savez(tmp_path / "v2.npz", samples=np.zeros((10, 2), np.float32))
    np.savez(tmp_path / "v3.npz", samples=np.ones((10, 3), np.float32))
    assert_user_error(cli("fid", str(tmp_path / "v2.npz"), str(tmp_path / "v3.npz"), "--features", "raw"),
                      "d=2", "d=3")
    assert_user_error(cli("fid", str(sets / "half_a_stats.npz"), half_a, "--features", "raw"), "d=")
    assert_user_error(cli("fid", str(tmp_path / "v2.npz"), half_a, "--features", "digits"), "needs images")
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert_user_error(cli("fid", half_a, str(sets / "half_b")), "Inception weights")


def test_eval_writes_image_metrics_with_protocol(cli, digits_run):
    code, out, err = cli("eval", str(digits_run), "-n", "100", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert {"fid", "kid", "is", "precision", "recall", "density", "coverage"} <= result.keys()
    assert 1.0 <= result["is"] <= 10.0
    protocol = result["protocol"]
    assert protocol["extractor"]["extractor"] == "digits"
    assert protocol["generated"] == {"samples": 100, "seed": 0, "weights": "ema", "step": 2, "rounded_to_8bit": True}
    assert protocol["reference"]["samples"] == 1797 and protocol["reference"]["data"] == "digits"
    assert json.loads((digits_run / "metrics.json").read_text()) == result
    cache = digits_run / protocol["reference"]["cache"]
    assert cache.is_file()
    assert json.loads(cli("eval", str(digits_run), "-n", "100", "--json")[1]) == result  # from the cache, same numbers


def test_run_operand_and_raw_eval(cli, digits_run, sets):
    result = fid_json(cli, str(sets / "half_a.npz"), str(digits_run), "-n", "100", "--seed", "3")
    assert result["protocol"]["b"] == {"path": str(digits_run), "kind": "run", "samples": 100, "seed": 3,
                                       "step": 2, "weights": "ema", "rounded_to_8bit": True}
    code, out, err = cli("eval", str(digits_run), "-n", "50", "--features", "raw", "--json")
    assert code == 0, err
    raw = json.loads(out)
    assert "is" not in raw and raw["protocol"]["extractor"]["extractor"] == "raw"


def test_round_to_8bit_is_a_png_round_trip(tmp_path):
    x = torch.rand(5, 3, 8, 8) * 2.2 - 1.1  # some values outside [-1, 1]: clamped, as when saved
    save_images(tmp_path, x)
    read = torch.stack([torch.tensor(load_image(path, 8, 3)) for path in list_images(tmp_path)]).float() / 127.5 - 1
    assert torch.equal(round_to_8bit(x), read)


def test_run_operand_is_measured_as_its_saved_pngs(cli, digits_run, sets, tmp_path):
    code, _, err = cli("sample", str(digits_run), "-n", "100", "--seed", "3", "--out", f"{tmp_path / 'png'}/")
    assert code == 0, err
    half_a = str(sets / "half_a.npz")
    from_pngs = fid_json(cli, half_a, str(tmp_path / "png"))
    from_run = fid_json(cli, half_a, str(digits_run), "-n", "100", "--seed", "3")
    floats = fid_json(cli, half_a, str(digits_run), "-n", "100", "--seed", "3", "--no-round")
    assert from_run["fid"] == pytest.approx(from_pngs["fid"], rel=1e-9)
    assert floats["fid"] != pytest.approx(from_run["fid"], rel=1e-6)
    assert from_run["protocol"]["b"]["rounded_to_8bit"] and not floats["protocol"]["b"]["rounded_to_8bit"]


def test_eval_rounds_generated_images_unless_told_not_to(cli, digits_run):
    code, out, err = cli("eval", str(digits_run), "-n", "100", "--json")
    assert code == 0, err
    rounded = json.loads(out)
    floats = gankit.evaluate(digits_run, n=100, round_8bit=False)  # the Python API's switch
    assert rounded["protocol"]["generated"]["rounded_to_8bit"] is True
    assert floats["protocol"]["generated"]["rounded_to_8bit"] is False
    assert floats["fid"] != pytest.approx(rounded["fid"], rel=1e-6)


def test_eval_generates_as_it_extracts_and_keeps_bounded_feature_rows(digits_run, monkeypatch):
    # What keeps `gankit eval -n 50000` flat in memory: images are generated a chunk at a time as extraction asks for
    # them (never all n first), and KID/precision/recall keep FEATURE_ROWS feature rows while FID and IS see all n.
    from gankit.metrics import Evaluator, precision_recall
    from gankit.report import compare, evaluate

    monkeypatch.setattr(compare, "SAMPLE_CHUNK", 32)
    monkeypatch.setattr(evaluate, "FEATURE_ROWS", 100)
    run = evaluate.RunEval(gankit.load(digits_run), digits_run, n=600)
    events = []  # ("generated" | "extracted", rows), in order
    variant_cls, generate = type(run.gen.variant), type(run.gen.variant).generate
    monkeypatch.setattr(variant_cls, "generate",
                        lambda self, request: events.append(("generated", request.n)) or generate(self, request))
    extract = Evaluator.features_and_logits
    monkeypatch.setattr(Evaluator, "features_and_logits",
                        lambda self, x: events.append(("extracted", len(x))) or extract(self, x))
    fake_rows = []
    monkeypatch.setattr(compare, "precision_recall",
                        lambda real, fake, k: fake_rows.append(len(fake)) or precision_recall(real, fake, k))
    _, protocol = evaluate._features(run)

    events = events[next(i for i, (what, _) in enumerate(events) if what == "generated"):]  # after the reference
    ahead, most_ahead = 0, 0  # generated rows not yet extracted
    for what, rows in events:
        ahead += rows if what == "generated" else -rows
        most_ahead = max(most_ahead, ahead)
    batch = run.evaluator.batch_size
    assert sum(rows for what, rows in events if what == "generated") == 600
    assert most_ahead <= batch + 32 < 600  # one evaluator batch plus one generated chunk, not all 600 images
    assert fake_rows == [100] and protocol["kid"]["subset_size"] == 100
    assert protocol["generated"]["samples"] == 600 and protocol["generated"]["rows_for_kid_prdc"] == 100


def test_streamed_eval_gives_the_numbers_of_all_samples_at_once(train_tiny):
    # A class-conditional model draws random labels from one stream across chunks: streaming must not change them.
    from gankit.metrics import inception_score
    from gankit.report import compare, evaluate

    run_dir = train_tiny("digits-cgan", "model.width=8", "train.steps=2", "train.sample_every=0",
                         "train.checkpoint_every=0")
    gen = gankit.load(run_dir)
    whole = gen.sample(2100, seed=5)
    assert torch.equal(torch.cat(list(compare.generated_batches(gen, 2100, seed=5))), whole)
    for lo, hi in [(1000, 1700), (0, 3), (2099, 2100)]:  # one process's share: the same rows, labels in step
        assert torch.equal(torch.cat(list(compare.generated_batches(gen, 2100, seed=5, part=(lo, hi)))), whole[lo:hi])
    chunks = [torch.full((rows, 1), float(i)) for i, rows in enumerate([5, 300, 1, 700, 30])]
    assert all(torch.equal(a, b) for a, b in zip(compare.rebatch(iter(chunks), 256), torch.cat(chunks).split(256),
                                                  strict=True))

    run = evaluate.RunEval(gen, run_dir, seed=5, n=300)
    values, protocol = evaluate._features(run)
    evaluator = run.evaluator  # the old way below: all 300 images, features and logits at once
    fake = evaluator.extract(round_to_8bit(gen.sample(300, seed=5)).split(evaluator.batch_size), 300, keep=True,
                             keep_logits=True)
    real = FeatureStats.load(run_dir / protocol["reference"]["cache"])
    assert values["fid"] == pytest.approx(real.frechet_to(fake.stats), rel=1e-9)
    assert (values["is"], values["is_std"]) == pytest.approx(inception_score(fake.logits, splits=10), rel=1e-9)
    assert "rows_for_kid_prdc" not in protocol["generated"]


def test_the_reference_subset_and_its_cache_do_not_follow_the_eval_seed(digits_run, tmp_path, monkeypatch):
    """Catches the real subset drawn from the eval seed (the cache, keyed on subset seed 0, would then hold another
    subset), the seed misreported, and a cache reused after the reference it was written for changed."""
    import shutil

    from gankit.data import load_dataset
    from gankit.report import evaluate

    run_dir = tmp_path / "d"
    shutil.copytree(digits_run, run_dir)
    for cache in run_dir.glob("reference-*.npz"):
        cache.unlink()
    monkeypatch.setattr(evaluate, "MAX_SAMPLES", 300)  # fewer than the 1,797 digits: a subset is drawn
    run = evaluate.RunEval(gankit.load(run_dir), run_dir, seed=3, n=50)
    _, protocol = evaluate._features(run)
    assert protocol["generated"]["seed"] == 3
    assert protocol["reference"]["samples"] == 300 and protocol["reference"]["subset_seed"] == 0
    data = load_dataset(run.config.data, run.config.seed)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:300].sort()[0]
    cache = run_dir / protocol["reference"]["cache"]
    with np.load(cache) as f:
        assert torch.allclose(torch.from_numpy(f["features"]), run.evaluator.features(data.take(index)[0]), atol=1e-5)
    monkeypatch.setattr(evaluate, "MAX_SAMPLES", 10_000)  # the whole set now: the 300-row cache no longer holds
    _, protocol = evaluate._features(evaluate.RunEval(gankit.load(run_dir), run_dir, n=50))
    with np.load(cache) as f:
        assert protocol["reference"]["samples"] == len(f["features"]) == 1797


def test_precision_is_of_the_second_operand_against_the_first_and_density_too(cli, sets, tmp_path):
    """A "model" that repeats five real digits: every sample is realistic (precision and density high), and it
    covers almost none of the real set (recall and coverage near 0). Swapping the sets swaps these figures."""
    with np.load(sets / "half_a.npz") as f:
        np.savez(tmp_path / "copies.npz", samples=np.repeat(f["samples"][:5], 6, axis=0))
    result = fid_json(cli, str(sets / "half_a.npz"), str(tmp_path / "copies.npz"), "--prdc")
    assert result["precision"] == 1.0 and result["recall"] < 0.05
    assert result["density"] > 0.5 and result["coverage"] < 0.05
    assert result["protocol"]["b"]["samples"] == 30


def test_a_run_operand_draws_as_many_samples_as_the_other_operand_holds(cli, digits_run, sets):
    result = fid_json(cli, str(sets / "half_a.npz"), str(digits_run))
    assert result["protocol"]["a"]["samples"] == result["protocol"]["b"]["samples"] == 898


def test_a_2d_run_operand_is_not_rounded_to_8_bits_and_grey_folders_read_as_one_channel(cli, train_tiny, sets,
                                                                                         tmp_path):
    ring = train_tiny("ring8-gan", "train.steps=2", "train.sample_every=0", "train.checkpoint_every=0")
    np.savez(tmp_path / "points.npz", samples=np.random.default_rng(0).normal(size=(100, 2)).astype(np.float32))
    code, out, err = cli("fid", str(tmp_path / "points.npz"), str(ring), "--features", "raw", "--json")
    assert code == 0, err
    assert json.loads(out)["protocol"]["b"]["rounded_to_8bit"] is False
    code, out, err = cli("fid", str(sets / "half_b"), str(sets / "half_b"), "--features", "raw", "--json")
    assert code == 0, err
    assert json.loads(out)["protocol"]["a"]["read"].startswith("1 channel(s)")


def test_class_accuracy_needs_the_datas_evaluator_and_is_a_share_of_all_samples(train_tiny, monkeypatch):
    from gankit.report import evaluate

    run_dir = train_tiny("digits-cgan", "model.width=8", "train.steps=2", "train.sample_every=0",
                         "train.checkpoint_every=0")
    gen = gankit.load(run_dir)
    applies = evaluate.RUN_METRICS["class_accuracy"].applies
    assert applies(evaluate.RunEval(gen, run_dir)) and not applies(evaluate.RunEval(gen, run_dir, features="raw"))
    monkeypatch.setattr(evaluate.RunEval, "predict", lambda self, x: [self.gen.class_names[0]] * len(x))
    assert evaluate.class_accuracy(evaluate.RunEval(gen, run_dir)) == pytest.approx(1 / len(gen.class_names))
