"""`gankit eval`: the metrics of a run, each with its protocol, from a registry the data kind and the model select.

A run metric says when it applies (e.g. "the data has known modes", "the model is class-conditional and the
evaluator knows these classes") and computes values plus protocol entries. The data kind lists the metrics to try
(`DataKind.metrics`); new metrics register here and are listed by the kinds they serve.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from ..config import Config
from ..data import ONE_PROCESS, Dataset, Shard, decode, load_caption_test, load_dataset, load_heldout, \
    load_heldout_labelled, load_truth_pairs, read_npz, table_options
from ..data.base import as_float
from ..data.captions import ATTRIBUTES, Layout, color_shape_pairs, other_captions
from ..data.tabular import table_rows
from ..data.text import decode as decode_tokens
from ..data.pairs import resize
from ..errors import UserError
from ..io import atomic_path
from ..metrics import Evaluator, Extracted, FeatureStats, load_evaluator
from ..metrics.inception_score import InceptionScoreStream
from ..metrics.attributes import attribute_accuracy
from ..metrics.matching import CANDIDATES, load_matching_model, r_precision
from ..metrics.modes2d import modes2d
from ..metrics.shapes_classifier import load_shapes_classifier
from ..metrics.ppl import EPSILON, perceptual_path_length
from ..metrics.sequences import DIVERSITY_PAIRS, molecules, nll_oracle, uniqueness_novelty
from ..metrics.tabular import FOREST_TREES, PRIVACY_MEANING, column_similarity, correlation_difference, privacy, tstr
from ..metrics.translation import histogram_match, l1, psnr, psnr_y, sharpness, ssim_y
from ..train import Generator, distributed, list_checkpoints, load
from ..train.pretrained import checkpoint_variant
from ..variants import Variant, resolve
from ..variants.private import PrivateSGD
from .compare import MAX_SAMPLES, distribution_metrics, generated_batches, rebatch, round_to_8bit

REFERENCE_SEED = 0  # picks the real subset when the data holds more than N samples; fixed, so the cache stays valid
IS_SPLITS = 10
# Generated samples whose features KID, precision/recall and density/coverage use: the first FEATURE_ROWS (as many as
# the reference holds at most). FID and IS see every sample through running statistics, so `eval -n 50000` holds
# FEATURE_ROWS × d floats (82 MB for Inception's 2048) and one batch of images, whatever n.
FEATURE_ROWS = MAX_SAMPLES
MODES_SAMPLES = 2500  # PacGAN's protocol
CLASS_SAMPLES = 100  # generated samples per class for class_accuracy
CODE_SAMPLES = 100  # generated samples per value of a categorical latent code for code_accuracy
CODE_BATCH = 500  # real images per forward pass of the model's code reader in code_accuracy_real
INVERT_IMAGES = 64  # held-out images inverted for the editing metrics
ANOMALY_IMAGES = 1000  # images of every class scored for anomaly_auroc
RECONSTRUCT_IMAGES = 1000  # held-out images redrawn through an encoder for the reconstruction metrics
EDITS = 200  # edits of random latents scored for edit success
EDIT_RULE = ("each latent is moved toward one attribute value it does not show (attributes in turn, the value at "
             "random) along that value's direction, held orthogonal to the other attributes' boundaries, to {margin} "
             "past the boundary (at most {most}); success: the evaluator sees the new value and every other attribute "
             "unchanged; *_random: the same moves along random directions")
OPTIONS = ("features", "weights", "target")  # eval's options that only some metrics read
PPL_PATHS = 2000  # latent paths sampled for perceptual path length (the paper used 100,000 on GPUs)
CAPTION_SAMPLES = 600  # held-out captions (and images) per split for attribute_accuracy
HISTOGRAM_REFERENCE = 1000  # training images of domain B whose pixels the histogram baseline matches


@dataclass
class RunEval:
    """What a run metric may use: the generator, its run's config (for the training data), the options of `eval`."""

    gen: Generator
    run_dir: Path
    seed: int = 0
    n: int | None = None
    features: str | None = None
    weights: str | Path | None = None
    round_8bit: bool = True  # generated images rounded to 8 bits before features, as saved PNGs are
    refine: str | None = None  # discriminator-guided sampling (drs, mh) for the distribution metrics' samples
    refine_steps: int = 0  # D's further training against G before refinement calibrates it
    target: str | None = None  # tables: the column utility tests predict (default: the run's data.target)
    cache: dict[str, Any] = field(default_factory=dict)
    shard: Shard = ONE_PROCESS  # this process's place in a distributed evaluation (torchrun / --nproc)
    used: set[str] = field(default_factory=set)  # the options some metric read (see `option`)

    def option(self, name: str) -> Any:
        """An `eval` option a metric reads (features, weights, target): reading marks it used, and an option that no
        metric of the run read is refused after the metrics, rather than ignored in silence."""
        self.used.add(name)
        return getattr(self, name)

    def as_saved(self, images: Tensor) -> Tensor:
        """Generated images as a saved PNG would hold them: rounded to 8 bits unless `round_8bit` is off."""
        return round_to_8bit(images) if self.round_8bit else images

    def samples(self, n: int) -> Tensor:
        """n generated samples for the distribution metrics: plain, or refined by the run's calibrated D (whose
        cost and calibration go into the protocol under `refine`)."""
        if self.refine is None:
            return self.gen.sample(n, seed=self.seed)
        x, stats = self.gen.refined(self.refine, n, self.seed, steps=self.refine_steps)
        self.cache["refine"] = stats.as_dict()
        return x

    def sample_batches(self, n: int, batch_size: int, part: tuple[int, int] | None = None) -> Iterator[Tensor]:
        """`samples(n)` in batches of `batch_size`, plain samples generated as they are consumed (never n images at
        once); refined samples are drawn all at once first, as the refiner needs. `part=(lo, hi)`: rows lo..hi-1
        of the plain samples only."""
        if self.refine is not None:
            return iter(self.samples(n).split(batch_size))
        return rebatch(generated_batches(self.gen, n, self.seed, part=part), batch_size)

    @cached_property
    def config(self) -> Config:
        """The run's full config (RUN/config.yaml): what the training data was."""
        path = self.run_dir / "config.yaml"
        if not path.is_file():
            raise UserError(f"{self.run_dir} has no config.yaml, so its training data is unknown",
                            "compare the model with a reference set by `gankit fid REFERENCE RUN`")
        return resolve(str(path))[0]

    @cached_property
    def evaluator(self) -> Evaluator:
        return load_evaluator(self.option("features") or default_features(self.gen.spec), self.option("weights"))

    @property
    def knows_the_data(self) -> bool:
        """The evaluator is the one trained on this data, so it can name the data's classes."""
        return self.gen.spec.get("evaluator", {}).get("name") == self.evaluator.name

    def predict(self, x: Tensor) -> list[str]:
        """The evaluator's class name for each sample, in the terms of the data's labels."""
        return self.evaluator.predict(x, self.gen.spec.get("evaluator", {}).get("label"))


@dataclass(frozen=True)
class RunMetric:
    name: str
    applies: Callable[[RunEval], bool]
    compute: Callable[[RunEval], tuple[dict[str, Any], dict[str, Any]]]  # (values, protocol entries)
    shared: bool = False  # computed by every process of a distributed evaluation together (else by process 0)


RUN_METRICS: dict[str, RunMetric] = {}


def register_run_metric(name: str, applies: Callable[[RunEval], bool], shared: bool = False):
    """Decorator: `compute(run) -> (values, protocol entries)` becomes the run metric `name`; `shared`: every
    process of a distributed evaluation runs it (sharing the work out through `run.shard`), else process 0 alone."""

    def add(compute: Callable[[RunEval], tuple[dict[str, Any], dict[str, Any]]]):
        RUN_METRICS[name] = RunMetric(name, applies, compute, shared)
        return compute

    return add


def evaluate_run(run_dir: str | Path, seed: int = 0, features: str | None = None, weights: str | Path | None = None,
                 n: int | None = None, round_8bit: bool = True, refine: str | None = None,
                 target: str | None = None, refine_steps: int = 0) -> dict[str, Any] | None:
    """Every metric the run's data kind lists that applies to this run, with one protocol; generated images are
    rounded to 8 bits before features (as saved PNGs are) unless `round_8bit` is False; `refine` (drs, mh) measures
    discriminator-guided samples instead of plain ones (D trained `refine_steps` further first); `target` names the
    column table utility tests predict.

    Under torchrun the processes share out the samples of the shared metrics (FID, KID, IS, PRDC) and merge their
    statistics; process 0 computes the rest and returns the result, the others return None."""
    joined_here = not distributed.in_group()  # a caller already in a group (a training script) stays in it
    shard, _ = distributed.setup(torch.device("cpu"))
    if shard.world > 1 and refine is not None:
        raise UserError("--refine draws its samples in one process", "run it without --nproc / torchrun")
    if refine_steps and refine is None:
        raise UserError("refine steps train D for refinement", "add --refine drs or --refine mh")
    run = RunEval(load(run_dir), Path(run_dir), seed, n, features, weights, round_8bit, refine, refine_steps, target,
                  shard=shard)
    if target is not None and not _is_table(run):  # said before the metrics, which may take long on images
        raise UserError(f"--target does not apply to {run_dir}: it names a table's column, and this run draws "
                        f"{run.gen.kind} samples", "drop --target")
    values: dict[str, Any] = {}
    protocol: dict[str, Any] = {}
    for name in run.gen.data_kind.metrics:
        metric = RUN_METRICS[name]
        if (shard.rank == 0 or metric.shared) and metric.applies(run):
            more, settings = metric.compute(run)
            values.update(more)
            protocol.update(settings)
    if joined_here:
        distributed.leave(shard)
    if shard.rank > 0:
        return None
    unused = [f"--{name}" for name in OPTIONS if getattr(run, name) is not None and name not in run.used]
    if unused:
        raise UserError(f"{' and '.join(unused)} does not apply to {run_dir}: none of its metrics reads it",
                        f"drop {' and '.join(unused)}; `gankit eval --help` says which runs each option is for")
    if "refine" in run.cache:
        protocol["refine"] = run.cache["refine"]
    if shard.world > 1:
        protocol["processes"] = shard.world
    return {**values, "protocol": protocol}


def default_features(spec: dict) -> str:
    """The shipped evaluator trained on this data (named by its spec), else raw pixels / vectors."""
    return spec.get("evaluator", {}).get("name", "raw")


# ----------------------------------------------------------------------------------------------- run metrics


@register_run_metric("modes2d", applies=lambda run: run.gen.spec.get("centers") is not None)
def _modes(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """The PacGAN mode protocol for data with known modes (always 2,500 samples)."""
    samples = run.samples(MODES_SAMPLES)
    report = modes2d(samples, torch.tensor(run.gen.spec["centers"]), run.gen.spec["std"])
    values = {"modes": report.modes, "hq_fraction": report.hq_fraction, "reverse_kl": report.reverse_kl,
              "total_modes": report.total_modes}
    return values, {"metric": "modes2d (PacGAN)", "samples": MODES_SAMPLES, "threshold_std": 3.0, "seed": run.seed,
                    "weights": run.gen.info.get("weights"), "step": run.gen.info.get("step")}


@register_run_metric("features", applies=lambda run: run.gen.spec.get("centers") is None, shared=True)
def _features(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """FID, KID, IS, precision/recall and density/coverage of generated samples against the training data (in a
    distributed evaluation each process generates and extracts its share of the samples)."""
    gen, evaluator, shard = run.gen, run.evaluator, run.shard
    real_data = load_dataset(run.config.data, run.config.seed)
    n_real = min(len(real_data), MAX_SAMPLES)
    n_fake = run.n or n_real
    if n_fake < shard.world:
        raise UserError(f"{n_fake} samples cannot be shared out between {shard.world} processes",
                        "ask for more samples (-n) or fewer processes")
    index = torch.randperm(len(real_data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n_real].sort()[0]
    reference = {"data": run.config.data.name, "path": run.config.data.path, "shape": list(real_data.shape),
                 "samples": n_real, "subset_seed": REFERENCE_SEED, "cache": f"reference-{evaluator.name}.npz"}
    if shard.rank > 0:
        distributed.barrier(shard)  # process 0 writes the reference cache first; the others read it
    real = _reference_features(run.run_dir / reference["cache"], evaluator, real_data, index, reference)
    if shard.rank == 0:
        distributed.barrier(shard)
    rounded = run.round_8bit and gen.data_kind.images
    part = (n_fake * shard.rank // shard.world, n_fake * (shard.rank + 1) // shard.world)
    batches = run.sample_batches(n_fake, evaluator.batch_size, part if shard.world > 1 else None)
    fake = evaluator.extract(map(round_to_8bit, batches) if rounded else batches, part[1] - part[0], keep=True,
                             max_rows=FEATURE_ROWS, score_splits=min(IS_SPLITS, n_fake), label="generated",
                             part=(part[0], n_fake) if shard.world > 1 else None)
    if shard.world > 1:
        fake = _merge_parts(fake, evaluator.dim, shard)
    values, settings = distribution_metrics(real, fake, with_kid=True, with_prdc=True, seed=run.seed)
    if fake.score is not None:
        values["is"], values["is_std"] = fake.score
        settings["is"] = {"splits": min(IS_SPLITS, n_fake), "classifier": evaluator.name}
    generated = {"samples": n_fake, "seed": run.seed, "weights": gen.info.get("weights"), "step": gen.info.get("step"),
                 "rounded_to_8bit": rounded}
    if len(fake.features) < n_fake:
        generated["rows_for_kid_prdc"] = len(fake.features)  # the first ones; FID and IS use all
    return values, {"extractor": evaluator.protocol(), "generated": generated, "reference": reference, **settings}


@register_run_metric("class_accuracy", applies=lambda run: bool(run.gen.class_names) and run.knows_the_data)
def _class_accuracy(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    value = class_accuracy(run)
    return {"class_accuracy": value}, {"class_accuracy": {"per_class": CLASS_SAMPLES,
                                                          "classifier": run.evaluator.name, "seed": run.seed}}


@register_run_metric("code_accuracy",
                     applies=lambda run: run.gen.variant.categorical_code() is not None and run.knows_the_data)
def _code_accuracy(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    value, protocol = code_accuracy(run)
    return {"code_accuracy": value}, {"code_accuracy": protocol}


def _reads_codes_of_labelled_data(run: RunEval) -> bool:
    """A categorical code, labelled training data, and a checkpoint (the exported generator lacks the code reader)
    with the run's config beside it."""
    return (run.gen.variant.categorical_code() is not None and bool(run.gen.spec.get("class_names"))
            and (run.run_dir / "config.yaml").is_file() and bool(list_checkpoints(run.run_dir)))


@register_run_metric("code_accuracy_real", applies=_reads_codes_of_labelled_data)
def _code_accuracy_real(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    value, protocol = code_accuracy_real(run)
    return {"code_accuracy_real": value}, {"code_accuracy_real": protocol}


def _draws_captions(run: RunEval) -> bool:
    """A model that draws what a prompt says, with its run's config (which says how the captions were made)."""
    return "prompt" in run.gen.sampling and "text" in run.gen.spec and (run.run_dir / "config.yaml").is_file()


@register_run_metric("attribute_accuracy", applies=_draws_captions)
def _attribute_accuracy(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """How often a generated image shows what its caption says, per attribute: on captions of held-out objects of
    the (colour, shape) pairs seen in training, and of the unseen pairs; the real images of those captions, read
    the same way, give the ceiling."""
    classifier, card = load_shapes_classifier(run.option("weights") if run.option("features") in (None, "shapes")
                                              else None)
    matcher, matcher_card = load_matching_model()
    judged = _matcher_knows(matcher_card, run.config.data)
    layout = Layout(**run.gen.spec["text"]["layout"])
    vocab = run.gen.spec["text"]["vocab"]
    values, splits = {}, {}
    for key, unseen in (("attribute_accuracy", False), ("attribute_accuracy_unseen", True)):
        data, note = load_caption_test(run.config.data, run.seed, CAPTION_SAMPLES, unseen)
        rows = torch.arange(len(data))
        prompts = data.captions(rows, torch.zeros_like(rows))  # template 0 names every attribute
        tokens = run.gen.data_kind.read_prompt(prompts, run.gen.spec)
        fake = run.as_saved(run.gen.sample(seed=run.seed, inputs=tokens))
        real = as_float(data.x)
        truth = {name: data.attributes[name] for name in ATTRIBUTES}
        # the unseen split per (colour, shape) pair: composition often fails on one pair only
        by = color_shape_pairs(data.attributes) if unseen else None
        values[key] = attribute_accuracy(fake, truth, classifier, layout, by=by)
        if unseen:
            values[f"{key}_by_pair"] = values[key].pop("by_group")
        values[f"{key}_real"] = attribute_accuracy(real, truth, classifier, layout)
        if judged and matcher_card["vocab"] == vocab:
            others = [run.gen.data_kind.read_prompt(o, run.gen.spec)
                      for o in other_captions(data, CANDIDATES - 1, torch.Generator().manual_seed(run.seed))]
            suffix = key.removeprefix("attribute_accuracy")
            values[f"r_precision{suffix}"] = r_precision(matcher, fake, tokens, others)
            values[f"r_precision{suffix}_real"] = r_precision(matcher, real, tokens, others)
        splits[key] = note
    protocol = {"samples": CAPTION_SAMPLES, "seed": run.seed, "rounded_to_8bit": run.round_8bit,
                "template": "a {colour} {shape} {place} on a {tone} background",
                "shape_color": f"shapes evaluator ({card.get('accuracy', {})})",
                "position_background": "pixel rules of gankit.metrics.attributes (border median, centroid cell)",
                "splits": splits, "real": "*_real: the real images of the same captions, read the same way",
                "weights": run.gen.info.get("weights"), "step": run.gen.info.get("step")}
    protocol["r_precision"] = ({"candidates": CANDIDATES, "distractors": "canonical captions of other objects (any "
                                "pair), seed = eval seed", "matcher": "gankit/metrics/weights/matching.safetensors",
                                "matcher_r_precision_real": matcher_card.get("r_precision_real")} if judged else
                               "not measured: the matching model was trained on captioned shapes rendered otherwise "
                               "(size, cells, rotation, noise, gradient or resolution differ from this run's data)")
    return values, {"attribute_accuracy": protocol}


def _matcher_knows(card: dict, data) -> bool:
    """The matching model was trained on images rendered as this run's (the same size, cells and background)."""
    d = card["data"]["difficulty"]
    return (tuple(d["size_range"]) == tuple(data.size_range) and d["jitter"] == data.jitter
            and d["rotation"] == data.rotation and d["noise"] == data.noise and d["gradient"] == data.gradient
            and (data.resolution or 32) == card["data"]["resolution"])


def _pair_transform(run: RunEval) -> str | None:
    """The data.pair transform of a model that takes inputs and learnt from pairs, else None."""
    return run.gen.spec.get("pair", {}).get("transform") if "inputs" in run.gen.sampling else None


def _translates_with_truth(run: RunEval) -> bool:
    """A translator (not an upscaler) whose data has a true B for each A (all but unpaired folders)."""
    transform = _pair_transform(run)
    unpaired_folders = transform == "folders" and not run.gen.spec["pair"].get("paired")
    return transform not in (None, "downscale") and not unpaired_folders


@register_run_metric("translation", applies=_translates_with_truth)
def _translation(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    values, protocol = translation(run)
    return values, {"translation": protocol}


@torch.no_grad()
def translation(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """A translator's outputs G(A) against the true B of (A, B) pairs it was not trained on where the data allows:
    PSNR and L1, Fréchet distance in evaluator features, label preservation, and two baselines that learn nothing
    (B := A, and A's colours histogram-matched to the training B's)."""
    gen, cfg = run.gen, run.config
    truth = load_truth_pairs(cfg.data, cfg.seed)
    a, b = truth.take(torch.arange(len(truth)))[0], truth.take_b(torch.arange(len(truth)))
    out = run.as_saved(gen.sample(inputs=a))
    train = load_dataset(cfg.data, cfg.seed)
    reference = train.take_b(torch.arange(min(len(train.b), HISTOGRAM_REFERENCE)))
    values = {"psnr_to_truth": psnr(out, b), "l1_to_truth": l1(out, b), "baseline_identity_psnr": psnr(a, b),
              "baseline_histogram_psnr": psnr(histogram_match(a, reference), b)}
    evaluator = run.evaluator
    feats = [evaluator.extract(x.split(evaluator.batch_size), len(x), label=name).stats
             for x, name in ((out, "translated"), (b, "truth"))]
    values["fd_to_truth"] = feats[0].frechet_to(feats[1])
    protocol = {"pairs": len(truth), "heldout": truth.info["heldout"], "transform": truth.transform,
                "units": "PSNR (dB, peak 1) of the mean squared error over all pairs, L1 mean; [0, 1] pixel units",
                "rounded_to_8bit": run.round_8bit, "extractor": evaluator.protocol(),
                "histogram_baseline": f"per-channel quantile matching to {len(reference)} training B images",
                "weights": gen.info.get("weights"), "step": gen.info.get("step")}
    back = None
    if "direction" in gen.sampling:  # a two-way translator: B -> A against the true A, and both round trips
        back = run.as_saved(gen.sample(inputs=b, direction="b2a"))
        values["psnr_to_truth_b2a"] = psnr(back, a)
        values["cycle_l1_a"] = l1(run.as_saved(gen.sample(inputs=out, direction="b2a")), a)
        values["cycle_l1_b"] = l1(run.as_saved(gen.sample(inputs=back, direction="a2b")), b)
        protocol["two_way"] = "b2a: G_ba(true B) against A; cycle_l1_a: G_ba(G_ab(A)) against A, cycle_l1_b: " \
            "G_ab(G_ba(B)) against B"
    if truth.y is not None and truth.class_names and run.knows_the_data:
        names = [truth.class_names[i] for i in truth.y.tolist()]
        match = lambda x: float(np.mean([p == t for p, t in zip(run.predict(x), names)]))  # noqa: E731
        values["label_preservation"], values["label_preservation_truth"] = match(out), match(b)
        if back is not None:
            values["label_preservation_b2a"] = match(back)
        protocol["label_preservation"] = {"label": gen.spec["evaluator"].get("label"), "classifier": evaluator.name,
                                          "truth": "the same share on the true B: the evaluator's ceiling here"}
    return values, protocol


@register_run_metric("super_resolution", applies=lambda run: _pair_transform(run) == "downscale")
@torch.no_grad()
def _super_resolution(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """PSNR and SSIM on the luminance against the true high-resolution images, beside bicubic upsampling, and the
    sharpness (gradient energy) of each, as the SRGAN paper's tables set them side by side."""
    gen, cfg = run.gen, run.config
    truth = load_truth_pairs(cfg.data, cfg.seed)
    rows = torch.arange(len(truth))
    low, high = truth.take(rows)[0], truth.take_b(rows)
    out, bicubic = run.as_saved(gen.sample(inputs=low)), run.as_saved(resize(low, high.shape[-1]))
    border = high.shape[-1] // low.shape[-1]
    values = {"psnr_y": float(psnr_y(out, high, border).mean()), "ssim_y": float(ssim_y(out, high, border).mean()),
              "bicubic_psnr_y": float(psnr_y(bicubic, high, border).mean()),
              "bicubic_ssim_y": float(ssim_y(bicubic, high, border).mean()),
              "sharpness": float(sharpness(out, border).mean()), "sharpness_truth": float(sharpness(high, border).mean()),
              "sharpness_bicubic": float(sharpness(bicubic, border).mean())}
    return values, {"super_resolution": {
        "pairs": len(truth), "heldout": truth.info["heldout"], "scale": border,
        "low_resolution": "the truth downscaled by bicubic interpolation with antialiasing",
        "psnr_ssim": f"luminance Y of ITU-R BT.601 on 0-255 (peak 255), {border} px cropped from each border, per "
                     "image then averaged (the SRGAN paper's protocol); SSIM: Gaussian window 11, sigma 1.5",
        "sharpness": "mean squared difference of neighbouring Y values, across plus down",
        "rounded_to_8bit": run.round_8bit, "weights": gen.info.get("weights"), "step": gen.info.get("step")}}


@register_run_metric("reconstruction", applies=lambda run: run.gen.encodes and (run.run_dir / "config.yaml").is_file())
@torch.no_grad()
def _reconstruction(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """How well G(E(x)) redraws images the model was not trained on where the data allows: mean squared error in
    [0, 1] units and the PSNR of it (models with an encoder)."""
    cfg = run.config
    real, heldout = load_heldout(cfg.data, cfg.seed, RECONSTRUCT_IMAGES)
    out = run.as_saved(run.gen.reconstruct(real))
    error = float(((out - real) / 2).pow(2).mean())
    return {"reconstruction_error": error, "reconstruction_psnr": psnr(out, real)}, {"reconstruction": {
        "images": len(real), "heldout": heldout, "latent": "the posterior mean μ(x)",
        "units": "mean squared error over all pixels in [0, 1] units; PSNR (dB, peak 1) of it",
        "rounded_to_8bit": run.round_8bit, "weights": run.gen.info.get("weights"), "step": run.gen.info.get("step")}}


def _models_normal_data(run: RunEval) -> bool:
    """A model trained on some classes only (data.normal) that anomaly scores can use."""
    gen = run.gen
    scorable = gen.variant.scores_anomalies or (gen.kind == "image" and not gen.class_names
                                                and not {"inputs", "codes"} & gen.sampling)
    return bool(gen.spec.get("normal")) and scorable and (run.run_dir / "config.yaml").is_file()


@register_run_metric("anomaly", applies=_models_normal_data)
def _anomaly(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """AUROC of the model's anomaly scores (gankit.anomaly) for telling the classes outside data.normal from those in
    it, on images of every class."""
    from .. import anomaly

    cfg, normal = run.config, run.gen.spec["normal"]
    x, y, names, heldout = load_heldout_labelled(cfg.data, cfg.seed, ANOMALY_IMAGES)
    flags = torch.tensor([names[i] not in normal for i in y.tolist()])
    scores = anomaly.anomaly_scores(run.gen, x, anomaly.discriminator(run.run_dir), seed=run.seed)
    value = anomaly.auroc(scores.score, flags) if 0 < int(flags.sum()) < len(flags) else None
    return {"anomaly_auroc": value}, {"anomaly": {
        **scores.protocol, "images": len(x), "anomalous": int(flags.sum()), "heldout": heldout,
        "note": "for fixed sets the normal images scored are training images, which flatters the AUROC"
        if heldout.startswith("no") else "none of the scored images was trained on"}}


def _edits_with_evaluator(run: RunEval) -> bool:
    """A noise-to-image model (no inputs, no codes) whose evaluator names attributes of its data."""
    return (run.gen.kind == "image" and not {"inputs", "codes"} & run.gen.sampling and run.knows_the_data
            and bool(run.evaluator.attributes) and (run.run_dir / "config.yaml").is_file())


@register_run_metric("editing", applies=_edits_with_evaluator)
def _editing(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """Inversion of images the model was not trained on (PSNR, and whether the evaluator still sees the same
    attributes), then edits toward attribute values: random latents and the inverted ones."""
    from .. import edit as editing

    gen, cfg, evaluator = run.gen, run.config, run.evaluator
    real, heldout = load_heldout(cfg.data, cfg.seed, INVERT_IMAGES)
    inv = editing.invert(gen, real, seed=run.seed)
    kept = torch.stack([evaluator.classify(inv.images, a) == evaluator.classify(real, a)
                        for a in evaluator.attributes]).all(0)
    found = editing.run_directions(gen, run.run_dir, evaluator)
    values = {"inversion_psnr": float(inv.psnr.mean()), "inversion_psnr_start": float(inv.psnr_start.mean()),
              "inversion_attributes_kept": float(kept.float().mean())}
    edits = "none: no attribute value is common enough in the model's samples to fit a direction toward it"
    if editing.editable(found, evaluator):
        sampled = editing.edit_success(gen, evaluator, found, gen.latents(EDITS, run.seed), seed=run.seed)
        inverted = editing.edit_success(gen, evaluator, found, inv.z, inv.labels, seed=run.seed)
        values.update({k: v for k, v in sampled.items() if k != "edits"}, edit_success_inverted=inverted[
            "edit_success"], edit_success_inverted_random=inverted["edit_success_random"])
        edits = {"sampled": EDITS, "inverted": len(real), "rule": EDIT_RULE.format(
            margin=editing.EDIT_MARGIN, most=editing.MAX_AMOUNT)}
    boundaries = {name: round(d.accuracy, 4) for name, d in found.items.items() if d.accuracy is not None}
    return values, {"editing": {
        "inversion": {"images": len(real), "heldout": heldout, "start": f"best of {editing.POOL} random latents (per "
                      "class for class-conditional models)", "steps": editing.STEPS, "lr": editing.LR,
                      "psnr": "dB, peak-to-peak 2 in [-1, 1] units, per image then averaged",
                      "attributes_kept": f"the evaluator sees the same {', '.join(evaluator.attributes)} in the "
                      "reconstruction as in the image"},
        "directions": {**found.protocol, "boundary_accuracy": boundaries},
        "edits": edits,
        "classifier": evaluator.name, "weights": gen.info.get("weights"), "step": gen.info.get("step")}}


def _noise_to_images(run: RunEval) -> bool:
    """A model that draws images from noise alone (labels and codes may be random), not one that transforms inputs."""
    return run.gen.data_kind.images and "inputs" not in run.gen.sampling


@register_run_metric("ppl", applies=_noise_to_images)
def _ppl(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """Perceptual path length in z (slerp) for every noise-to-image model, and in w (lerp) for models with one."""
    gen, evaluator = run.gen, run.evaluator
    n = run.n or PPL_PATHS
    draw = torch.Generator().manual_seed(run.seed)
    z_a, z_b = gen.latents(n, run.seed), gen.latents(n, run.seed + 1)
    t = torch.rand(n, generator=draw)
    paths = {"ppl": (lambda z: gen.generate(z, seed=run.seed), z_a, z_b, "z")}
    if gen.variant.w_space:
        with torch.no_grad():
            w_a, w_b = gen.variant.to_w(z_a.to(gen.device)).cpu(), gen.variant.to_w(z_b.to(gen.device)).cpu()
        paths["ppl_w"] = (lambda w: torch.cat([gen.variant.from_w(part.to(gen.device)).clamp(-1, 1).cpu()
                                                 for part in w.split(1024)]), w_a, w_b, "w")
    values, protocol = {}, {}
    for key, (generate, a, b, space) in paths.items():
        values[key], _ = perceptual_path_length(generate, evaluator.features, a, b, t, space)
        protocol[key] = {"space": space, "interpolation": "slerp" if space == "z" else "lerp", "epsilon": EPSILON,
                         "paths": n, "t": "uniform in [0, 1)", "seed": run.seed,
                         "distance": f"squared L2 of {evaluator.name} features, in place of LPIPS/VGG16",
                         "mean_of": "values between the 1st and 99th percentile", "rounded_to_8bit": False,
                         "weights": gen.info.get("weights"), "step": gen.info.get("step")}
    return values, protocol


def _is_table(run: RunEval) -> bool:
    return run.gen.kind == "table"


def table_sets(run: RunEval) -> tuple[Any, Any, Any]:
    """(training rows, held-out rows, synthetic rows) of a table run: the real ones re-read from its CSV (checked
    unchanged), as many synthetic rows as training rows (or -n)."""
    if "table" not in run.cache:
        meta = run.gen.spec["table"]
        train, holdout = table_rows(run.config.data.path, table_options(run.config.data), meta)
        synthetic = decode(run.gen.sample(run.n or len(train), seed=run.seed), meta)
        run.cache["table"] = (train, holdout, synthetic)
    return run.cache["table"]


@register_run_metric("table_utility", applies=_is_table)
def _table_utility(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    meta = run.gen.spec["table"]
    train, holdout, synthetic = table_sets(run)
    similarity = column_similarity(train, synthetic, meta)
    values: dict[str, Any] = {"column_similarity": float(np.mean(list(similarity.values()))),
                              "column_similarity_per_column": similarity,
                              "correlation_difference": correlation_difference(train, synthetic, meta)}
    target = run.option("target") or meta.get("target")
    if target is not None:
        if target not in [c["name"] for c in meta["columns"]]:
            raise UserError(f"--target {target}: the table has no such column",
                            f"its columns: {', '.join(c['name'] for c in meta['columns'])}")
        if len(holdout) == 0:
            raise UserError("utility tests need rows held out of training, and this run held none (data.holdout=0)",
                            "train with data.holdout=0.3, or evaluate without --target")
        values["tstr"] = tstr(train, synthetic, holdout, meta, target, run.seed)
    protocol = {"table": {"training_rows": len(train), "held_out_rows": len(holdout), "synthetic_rows": len(synthetic),
                          "seed": run.seed, "similarity": "1 - KS statistic (numbers), 1 - total variation "
                          "(categories), synthetic vs training rows",
                          "correlation": "mean |Pearson corr difference| over pairs of continuous columns",
                          "tstr": f"random forest ({FOREST_TREES} trees) and a linear model (logistic regression or "
                                  "ridge, standardised), trained on the training rows or on the synthetic rows, "
                                  "tested on the held-out rows; macro F1 / accuracy, or R²"}}
    return values, protocol


@register_run_metric("table_privacy", applies=lambda run: _is_table(run) and run.gen.spec["table"].get("holdout", 0) > 0)
def _table_privacy(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    train, holdout, synthetic = table_sets(run)
    meta = run.gen.spec["table"]
    figures = privacy(train, holdout, synthetic, meta, run.seed)
    rows = figures.pop("rows")
    cfg = run.config
    if cfg.privacy.epsilon is not None:  # the guarantee the run was trained under, and what it spent
        plan = PrivateSGD.plan(cfg, meta["rows"])
        steps = int(run.gen.info.get("step", 0)) * cfg.train.n_critic
        figures["dp"] = {"epsilon_spent": plan.epsilon(steps), "epsilon_target": plan.target_epsilon,
                         "delta": plan.delta, "noise_multiplier": plan.sigma, "sample_rate": plan.rate,
                         "d_steps": steps, "max_grad_norm": plan.max_grad_norm,
                         "statistics": "encoding from declared public facts (data.public), no budget spent on them"}
    return {"privacy": figures}, {"privacy": {"rows": rows, "meaning": PRIVACY_MEANING}}


SEQUENCE_SAMPLES = 10_000  # generated sequences for the sequence metrics (SeqGAN's and the molecule protocol)


def _tokens(run: RunEval) -> dict:
    return run.gen.spec.get("tokens", {}) if run.gen.kind == "tokens" else {}


def sequence_sets(run: RunEval) -> tuple[Tensor, list[str], set[str]]:
    """(generated ids, their text, the training texts): the training data rebuilt from the run's config, checked to
    be the data the model was trained on."""
    if "sequences" not in run.cache:
        data = load_dataset(run.config.data, run.config.seed)
        meta = run.gen.spec["tokens"]
        if data.info["tokens"].get("sha256") != meta.get("sha256") or data.info["tokens"]["vocab"] != meta["vocab"]:
            raise UserError(f"{meta.get('path')} changed since the model was trained on it",
                            "restore the original file: novelty compares with the training sequences")
        x = run.gen.sample(run.n or SEQUENCE_SAMPLES, seed=run.seed)
        run.cache["sequences"] = (x, decode_tokens(x, run.gen.spec), set(data.info["texts"]))
    return run.cache["sequences"]


@register_run_metric("nll_oracle", applies=lambda run: "oracle" in _tokens(run))
def _nll_oracle(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    n = run.n or SEQUENCE_SAMPLES
    value = nll_oracle(run.gen.sample(n, seed=run.seed), run.gen.spec)
    return {"nll_oracle": value}, {"nll_oracle": {"samples": n, "seed": run.seed, "oracle": _tokens(run)["oracle"],
                                                  "unit": "nats per token, mean over sequences and positions"}}


@register_run_metric("sequences", applies=lambda run: bool(_tokens(run).get("vocab")) and
                     _tokens(run).get("tokenizer") != "smiles")
def _sequences(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    _, texts, training = sequence_sets(run)
    return uniqueness_novelty(texts, training), {"sequences": {
        "samples": len(texts), "seed": run.seed, "uniqueness": "distinct / all generated",
        "novelty": "distinct generated not among the training sequences / distinct generated"}}


@register_run_metric("molecules", applies=lambda run: _tokens(run).get("tokenizer") == "smiles")
def _molecules(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    _, texts, training = sequence_sets(run)
    return molecules(texts, training), {"molecules": {
        "samples": len(texts), "seed": run.seed, "validity": "RDKit parses / all generated",
        "uniqueness": "distinct canonical SMILES / valid", "novelty": "distinct valid not among the training "
        "molecules (canonical) / distinct valid", "qed_mean": "mean QED of the valid molecules",
        "internal_diversity": f"1 - mean pairwise Tanimoto (Morgan radius 2, 2048 bits) over up to "
                              f"{DIVERSITY_PAIRS} distinct valid molecules"}}


@torch.no_grad()
def class_accuracy(run: RunEval) -> float:
    """Share of class-conditional samples that the evaluator recognises as the class asked for."""
    gen = run.gen
    labels = torch.arange(len(gen.class_names)).repeat_interleave(CLASS_SAMPLES)
    predicted: list[str] = []
    for part in labels.split(1000):
        predicted += run.predict(gen.sample(len(part), seed=run.seed + len(predicted), labels=part))
    return sum(p == gen.class_names[i] for p, i in zip(predicted, labels.tolist())) / len(labels)


def matched_accuracy(confusion: np.ndarray) -> tuple[float, list[int]]:
    """Accuracy under the best one-to-one matching of rows (code values) to columns (classes) of a count matrix,
    and each row's matched column (-1 when there are more rows than columns): the Hungarian method."""
    rows, cols = linear_sum_assignment(confusion, maximize=True)
    mapping = [-1] * confusion.shape[0]
    for row, col in zip(rows.tolist(), cols.tolist()):
        mapping[row] = col
    return float(confusion[rows, cols].sum() / confusion.sum()), mapping


@torch.no_grad()
def code_accuracy(run: RunEval) -> tuple[float, dict[str, Any]]:
    """How well a categorical latent code found the classes without labels: (accuracy, protocol).

    CODE_SAMPLES samples per value of the code (z and the other codes random) are classified by the evaluator; the
    accuracy is that of the best one-to-one matching of code values to classes, as for unsupervised clustering.
    """
    gen, seed = run.gen, run.seed
    code = gen.variant.categorical_code()
    values = gen.variant.code_values(code)
    z = gen.latents(len(values) * CODE_SAMPLES, seed).split(CODE_SAMPLES)
    predicted = [run.predict(gen.generate(part, codes={code: v}, seed=seed + 1 + i))
                 for i, (part, v) in enumerate(zip(z, values))]
    classes = list(gen.spec.get("class_names") or [])
    classes += sorted({p for row in predicted for p in row} - set(classes))
    confusion = np.zeros((len(values), len(classes)), dtype=np.int64)  # (code value, predicted class) counts
    for i, row in enumerate(predicted):
        for p in row:
            confusion[i, classes.index(p)] += 1
    accuracy, mapping = matched_accuracy(confusion)
    return accuracy, {"code": code, "per_value": CODE_SAMPLES, "classifier": run.evaluator.name, "seed": seed,
                      "other_codes_and_z": "random", "matching": "one-to-one, maximising matched samples (Hungarian "
                      "method, scipy.optimize.linear_sum_assignment)",
                      "mapping": {f"{code}={v:g}": classes[c] if c >= 0 else None for v, c in zip(values, mapping)},
                      "classes": classes, "confusion": confusion.tolist()}


def trained_variant(run: RunEval) -> tuple[Variant, dict[str, Any]]:
    """The whole variant (discriminator side included) of the run's newest verified checkpoint, live weights (not
    the EMA copies), in eval mode; and where it came from."""
    variant, path, state = checkpoint_variant(run.config, run.gen.spec, run.run_dir)
    return variant, {"checkpoint": path.name, "step": state["step"], "weights": "live (not EMA)"}


@torch.no_grad()
def code_accuracy_real(run: RunEval) -> tuple[float, dict[str, Any]]:
    """How well the model's own reader of its categorical code (a Q head on D) sorts real labelled images into the
    classes: (accuracy, protocol), the protocol of the paper that introduced such codes (Chen et al. 2016).

    Each real image gets the code value the reader finds most likely; the accuracy is that of the best one-to-one
    matching of code values to the labels. gankit trains on the whole data set, so these are training images.
    """
    variant, source = trained_variant(run)
    code = variant.categorical_code()
    values = variant.code_values(code)
    data = load_dataset(run.config.data, run.config.seed)
    if data.y is None or not data.class_names:
        raise UserError(f"{run.config.data.name}: the data has no labels to match the code's values to")
    n = min(len(data), MAX_SAMPLES)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n].sort()[0]
    confusion = np.zeros((len(values), len(data.class_names)), dtype=np.int64)  # (code value, label) counts
    for rows in index.split(CODE_BATCH):
        x, y = data.take(rows)
        np.add.at(confusion, (variant.predict_code(x, code).numpy(), y.numpy()), 1)
    accuracy, mapping = matched_accuracy(confusion)
    images = "training data (no held-out split exists for this data)"
    return accuracy, {"code": code, "images": images, "samples": n, "data": run.config.data.name,
                      "subset_seed": REFERENCE_SEED if n < len(data) else None, "labels": "the data's own labels",
                      "reader": "the model's code reader (arg-max), eval mode", **source,
                      "matching": "one-to-one, maximising matched images (Hungarian method, "
                      "scipy.optimize.linear_sum_assignment)",
                      "mapping": {f"{code}={v:g}": data.class_names[c] if c >= 0 else None
                                  for v, c in zip(values, mapping)},
                      "classes": list(data.class_names), "confusion": confusion.tolist()}


def _merge_parts(part: Extracted, dim: int, shard: Shard) -> Extracted:
    """The Extracted of all samples from every process's part (rows in rank order): merged feature statistics,
    the kept rows concatenated, the Inception Score's per-split sums added."""
    states = {key: distributed.gather(torch.from_numpy(value), shard) for key, value in part.stats.state().items()}
    stats = FeatureStats()
    for rank in range(shard.world):
        stats.merge(FeatureStats.from_state({key: states[key][rank].numpy() for key in states}))
    kept = distributed.gather(part.features if part.features is not None else torch.zeros(0, dim), shard)
    score = None
    if part.score_stream is not None:
        stream = part.score_stream
        sums = {key: distributed.gather(torch.from_numpy(value), shard)
                for key, value in stream.state().items()}
        merged = InceptionScoreStream(stream.n, stream.splits)
        for rank in range(shard.world):
            merged.merge({key: sums[key][rank].numpy() for key in sums})
        score = merged.result()
    return Extracted(stats, torch.cat(kept), None, score)


def _reference_features(cache: Path, evaluator: Evaluator, data: Dataset, index: Tensor,
                        reference: dict[str, Any]) -> Extracted:
    """Features of the real subset, read from `cache` when it was written under the same protocol, else computed.

    The cache also holds mu, sigma and n, so it doubles as a statistics file for `gankit fid`.
    """
    key = json.dumps({"extractor": evaluator.protocol(), "reference": reference}, sort_keys=True)
    try:
        arrays = read_npz(cache) if cache.is_file() else {}
    except UserError:
        arrays = {}  # unreadable cache: recompute and replace it
    hit = "features" in arrays and "key" in arrays and str(arrays["key"]) == key
    if hit:
        feats = torch.from_numpy(arrays["features"])
    else:
        batches = (data.take(rows)[0] for rows in index.split(evaluator.batch_size))
        feats = evaluator.extract(batches, len(index), keep=True, label="reference").features
    stats = FeatureStats()
    stats.update(feats)  # one update from the float32 features either way, so a cache hit gives identical numbers
    if not hit:
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:
            np.savez(f, features=feats.numpy(), mu=stats.mu, sigma=stats.sigma, n=np.int64(stats.n), key=np.array(key))
    return Extracted(stats, feats)


