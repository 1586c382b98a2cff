"""Run metrics of clip models (`gankit eval` on clip data; the clip kind lists them): content consistency, ACD,
motion smoothness and frame FD, each next to the same number for real clips of the training data as a reference.

Protocol: CLIP_SAMPLES generated clips from the eval seed and as many real clips (a fixed subset of the training set,
REFERENCE_SEED); every frame goes through the evaluator the data names (shapes: 32×32 frames as they are; digits: a
crop of `spec["clip"]["crop"]` pixels centred on the object's centroid, since the digits classifier reads a digit
filling its 16×16 input), or raw pixels when none does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..data import load_dataset
from ..metrics import FeatureStats
from ..metrics.video import FOREGROUND_THRESHOLD, centroids, consistency, content_distance, crop_around, \
    majority_shares, mean_speed, object_colors, second_difference, total_variation
from .evaluate import CLASS_SAMPLES, REFERENCE_SEED, RunEval, register_run_metric

CLIP_SAMPLES = 500


def _is_clip(run: RunEval) -> bool:
    return run.gen.kind == "clip"


def clip_sets(run: RunEval) -> dict[str, Tensor]:
    """{"generated": clips, "real": clips}, (n, T, C, H, W) each, drawn once per evaluation; generated clips are
    rounded to 8 bits as saved GIFs are."""
    if "clips" not in run.cache:
        n = run.n or CLIP_SAMPLES
        fake = run.gen.sample(n, seed=run.seed)
        data = load_dataset(run.config.data, run.config.seed)
        rows = torch.randperm(len(data), generator=torch.Generator().manual_seed(REFERENCE_SEED))[:n]
        run.cache["clips"] = {"generated": run.as_saved(fake.flatten(0, 1)).view(fake.shape),
                              "real": data.take(rows)[0]}
    return run.cache["clips"]


def evaluator_frames(run: RunEval, clips: Tensor) -> Tensor:
    """Frames (n·T, C, h, w) as the evaluator reads them: crops around the object when the data says so."""
    side = run.gen.spec.get("clip", {}).get("crop")
    if side and run.knows_the_data:
        clips = crop_around(clips, centroids(clips), side)
    return clips.flatten(0, 1)


def frame_features(run: RunEval, which: str) -> Tensor:
    """Evaluator features (n, T, d) of every frame of the generated or real clips."""
    key = f"features-{which}"
    if key not in run.cache:
        clips = clip_sets(run)[which]
        run.cache[key] = run.evaluator.features(evaluator_frames(run, clips)).view(*clips.shape[:2], -1)
    return run.cache[key]


def _sets(run: RunEval) -> dict[str, Any]:
    clips = clip_sets(run)
    return {"clips": len(clips["generated"]), "frames": clips["generated"].shape[1], "seed": run.seed,
            "real": f"{len(clips['real'])} training clips (subset seed {REFERENCE_SEED})",
            "weights": run.gen.info.get("weights"), "step": run.gen.info.get("step")}


@register_run_metric("consistency", applies=lambda run: _is_clip(run) and run.knows_the_data)
def _consistency(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """The share of a clip's frames in which the evaluator sees the clip's most common class, for each attribute it
    names (shapes: shape, then colour; digits: the digit); `consistency` is the data's label's. `class_mix_tv` says
    whether that consistency was bought by drawing fewer kinds of content: the total variation distance between
    the generated and the real clips' shares of majority classes (a model that draws only circles, on data of
    circles and squares, is perfectly consistent and 0.5 away)."""
    label = run.gen.spec["evaluator"]["label"]
    values: dict[str, Any] = {}
    attributes = [label] + [a for a in run.evaluator.attributes if a != label]
    names = run.evaluator.attributes[label]
    shares = {}
    for which, suffix in (("generated", ""), ("real", "_real")):
        clips = clip_sets(run)[which]
        frames = evaluator_frames(run, clips)
        for attribute in attributes:
            classes = run.evaluator.classify(frames, attribute).view(*clips.shape[:2])
            name = "consistency" if attribute == label else f"consistency_{attribute}"
            values[name + suffix] = consistency(classes).item()
            if attribute == label:
                shares[which] = majority_shares(classes, len(names))
    values["class_mix_tv"] = total_variation(shares["generated"], shares["real"]).item()
    mix = {which: {name: round(share, 4) for name, share in zip(names, p.tolist()) if share}
           for which, p in shares.items()}
    return values, {"consistency": {**_sets(run), "classifier": run.evaluator.name, "attributes": attributes,
                                    "rule": "per clip, the share of frames whose arg-max class equals the clip's "
                                            "most common one; mean over clips",
                                    "class_mix": mix,
                                    "class_mix_tv": "total variation distance between the shares of clips whose "
                                                    f"most common {label} is each class, generated against real "
                                                    "(0: the same mix)"}}


@register_run_metric("clip_class_accuracy",
                     applies=lambda run: _is_clip(run) and bool(run.gen.class_names) and run.knows_the_data)
def _clip_class_accuracy(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """Class-conditional clip models: the share of frames in which the evaluator sees the class their clip was asked
    for (CLASS_SAMPLES clips per class)."""
    value = clip_class_accuracy(run)
    return {"class_accuracy": value}, {"class_accuracy": {
        "per_class": CLASS_SAMPLES, "classifier": run.evaluator.name, "seed": run.seed,
        "rule": "every frame of every clip, judged alone, against the class its clip was asked for"}}


@torch.no_grad()
def clip_class_accuracy(run: RunEval) -> float:
    """Share of the frames of class-conditional clips that the evaluator reads as their clip's class."""
    names, label = run.gen.class_names, run.gen.spec["evaluator"]["label"]
    known = run.evaluator.attributes[label]
    right = total = 0
    for k, name in enumerate(names):
        clips = run.gen.sample(CLASS_SAMPLES, seed=run.seed + k, labels=torch.full((CLASS_SAMPLES,), k))
        classes = run.evaluator.classify(evaluator_frames(run, run.as_saved(clips.flatten(0, 1)).view(clips.shape)),
                                         label)
        right += int((classes == known.index(name)).sum()) if name in known else 0
        total += len(classes)
    return right / total


@register_run_metric("acd", applies=_is_clip)
def _acd(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """Average content distance of generated and real clips, in evaluator features and (RGB data) object colour."""
    values = {"acd": content_distance(frame_features(run, "generated")).item(),
              "acd_real": content_distance(frame_features(run, "real")).item()}
    protocol = {**_sets(run), "features": run.evaluator.protocol(),
                "rule": "mean over clips and consecutive frame pairs of the L2 distance between the frames' "
                        "evaluator features (lower: content holds)"}
    clips = clip_sets(run)
    if clips["generated"].shape[2] == 3:
        values["acd_color"] = content_distance(object_colors(clips["generated"])).item()
        values["acd_color_real"] = content_distance(object_colors(clips["real"])).item()
        protocol["color"] = ("acd_color: the same on the object's mean RGB colour (in [0, 1] units; foreground = "
                             f"pixels farther than {FOREGROUND_THRESHOLD} from the frame's median colour), "
                             "MoCoGAN's feature for its shape-motion set")
    return values, {"acd": protocol}


@register_run_metric("motion_smoothness", applies=_is_clip)
def _motion(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """How the object's centroid moves: mean |second difference| (0 for constant velocity) and mean speed, both in
    fractions of the side per frame, beside the same for real clips."""
    clips = clip_sets(run)
    fake, real = centroids(clips["generated"]), centroids(clips["real"])
    values = {"motion_smoothness": second_difference(fake).item(),
              "motion_smoothness_real": second_difference(real).item(),
              "motion_speed": mean_speed(fake).item(), "motion_speed_real": mean_speed(real).item()}
    return values, {"motion_smoothness": {**_sets(run), "track": "foreground-weighted centroid per frame (weights: "
                                          f"colour distance beyond {FOREGROUND_THRESHOLD} from the median colour)",
                                          "units": "fractions of the side per frame (per frame² for smoothness)"}}


@register_run_metric("frame_fd", applies=_is_clip)
def _frame_fd(run: RunEval) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fréchet distance between the evaluator features of generated frames and of real frames."""
    stats = []
    for which in ("generated", "real"):
        s = FeatureStats()
        s.update(frame_features(run, which).flatten(0, 1))
        stats.append(s)
    return {"frame_fd": stats[0].frechet_to(stats[1])}, {"frame_fd": {**_sets(run),
                                                                       "features": run.evaluator.protocol(),
                                                                       "frames_used": "every frame of every clip"}}
