"""Anomaly detection AUROC on shapes and digits, both protocols, gankit's GAN scorer beside classical baselines.

Protocols: one-class (one class is normal, the rest anomalous: Deep SVDD's MNIST table) and one-anomalous (one class is
anomalous, the rest normal: GANomaly's). For each set, protocol, class and seed the models see only normal training
images and score a held-out test set of every class:

- digits (scikit-learn's, 16×16): a seeded half of the 1,797 images trains (normal classes only), the other half
  tests;
- shapes (32×32, the class is the shape; colour, size, position and background are nuisance): normal objects drawn
  from the seed train, 1,000 fresh objects from seed + 7,919 test.

Baselines on the pixels (scikit-learn): PCA reconstruction error (components keeping 90 % of the variance), Gaussian
KDE on 20 PCA components (bandwidth by Scott's rule), IsolationForest, one-class SVM (RBF, ν = 0.1), and the mean
distance to the 5 nearest normal training images. gankit: a DCGAN trained on the normal images (`data.name=npz`),
scored by `gankit.anomaly.anomaly_scores` (latent search, pixel + D-feature residual), with the latent found by search
or by f-AnoGAN's izi_f encoder, and by `gankit.anomaly.neighbour_scores` (the same 5 nearest neighbours in D's
features; with `--contrastive W` D also learns a SimCLR term, loss.contrastive=W, and the neighbours are by cosine),
and GANomaly trained on the same images (latent distance); `gankit_auroc_*` is the best of the means of the scorers
run. A control that is not counted: the neighbour score in the features of the same D re-initialised (untrained), by
the same distance (so cosine with `--contrastive`), which says how much of that score the training earns. AUROC per
run; means over classes and seeds.

    python benchmarks/anomaly.py --quick          # class 0 only, one seed, 300 GAN steps: a few minutes
    python benchmarks/anomaly.py                  # every class, 3 seeds, 1,500 GAN steps: hours on 2 cores
    python benchmarks/anomaly.py --sets shapes --first-seed 1 --seeds 2   # seeds 1 and 2 only
    python benchmarks/anomaly.py --sets shapes --steps 1000 --diffaug color,translation   # D trained with DiffAugment
    python benchmarks/anomaly.py --sets shapes --contrastive 1 --scorers gankit_knn   # D with a SimCLR term, kNN only
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KernelDensity
from sklearn.svm import OneClassSVM

import gankit
from gankit.anomaly import NEIGHBOURS, anomaly_scores, discriminator, neighbour_scores, run_encoder, trained_distance
from gankit.config import DataConfig
from gankit.data import load_dataset
from gankit.train import Trainer
from gankit.variants.registry import build_variant

PRESETS = {"digits": "digits-dcgan", "shapes": "shapes-dcgan"}
BASELINES = ("pca", "kde", "iforest", "ocsvm", "pixel_knn")
SCORERS = ("gankit_search", "gankit_encoder", "gankit_knn", "gankit_ganomaly")
CONTROLS = ("untrained_d_knn",)
SHAPES_TRAIN, SHAPES_TEST = 6000, 1000


def split(name: str, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train x, train y, test x, test y), images as float32 in [-1, 1]."""
    if name == "digits":
        data = load_dataset(DataConfig(name="digits", resolution=16))
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
        half = len(data) // 2
        (xa, ya), (xb, yb) = data.take(order[:half]), data.take(order[half:])
    else:
        train = load_dataset(DataConfig(name="shapes", n=SHAPES_TRAIN), seed)
        test = load_dataset(DataConfig(name="shapes", n=SHAPES_TEST), seed + 7919)
        (xa, ya), (xb, yb) = train.take(torch.arange(len(train))), test.take(torch.arange(len(test)))
    return xa.numpy(), ya.numpy(), xb.numpy(), yb.numpy()


def data_names(name: str) -> list[str]:
    return load_dataset(DataConfig(name=name, n=10, resolution=16 if name == "digits" else None)).class_names


def baselines(train: np.ndarray, test: np.ndarray, anomalous: np.ndarray, seed: int) -> dict[str, float]:
    a, b = train.reshape(len(train), -1), test.reshape(len(test), -1)
    pca = PCA(n_components=0.9, random_state=seed).fit(a)
    rec = ((b - pca.inverse_transform(pca.transform(b))) ** 2).mean(1)
    small = PCA(n_components=min(20, a.shape[1], len(a) - 1), random_state=seed).fit(a)
    za, zb = small.transform(a), small.transform(b)
    kde = KernelDensity(bandwidth=float(za.std() * len(za) ** (-1 / (za.shape[1] + 4)))).fit(za)
    forest = IsolationForest(random_state=seed).fit(a)
    svm = OneClassSVM(nu=0.1, gamma="scale").fit(a)
    near = torch.cdist(torch.from_numpy(b).double(), torch.from_numpy(a).double())
    scores = {"pca": rec, "kde": -kde.score_samples(zb), "iforest": -forest.score_samples(b),
              "ocsvm": -svm.score_samples(b),
              "pixel_knn": near.topk(NEIGHBOURS, dim=1, largest=False).values.mean(1).numpy()}
    return {k: float(roc_auc_score(anomalous, v)) for k, v in scores.items()}


def gan_auroc(name: str, train: np.ndarray, test: np.ndarray, anomalous: np.ndarray, seed: int, steps: int,
              root: Path, diffaug: str = "", contrastive: float = 0.0, scorers: tuple[str, ...] = SCORERS,
              overrides: tuple[str, ...] = ()) -> dict[str, float]:
    """AUROC of the latent-search, izi_f-encoder and D-feature neighbour scores of one DCGAN trained on `train` (with
    DiffAugment policy `diffaug` and contrastive weight `contrastive`: then the neighbour score is cosine), of the
    neighbour score with that D untrained, and of GANomaly trained on `train`; only the `scorers` named run; the DCGAN's
    config takes `overrides` last."""
    tag = f"{name}-{seed}-{len(list(root.glob('run-*')))}"  # one run per (class, protocol)
    path = root / f"{tag}.npz"
    np.savez(path, samples=train)
    cfg = gankit.load_config(PRESETS[name], [f"seed={seed}", "data.name=npz", f"data.path={path}",
                                             f"train.steps={steps}", "train.sample_every=0", "model.width=32",
                                             f"train.checkpoint_every={steps}", f"train.diffaug={diffaug}",
                                             f"loss.contrastive={contrastive}", *overrides])  # "", 0: off
    run = root / f"run-{tag}"
    start = time.perf_counter()
    Trainer(cfg, run, progress=False).fit()
    trained = time.perf_counter()
    gen, critic, x = gankit.load(run), discriminator(run), torch.from_numpy(test)
    out = {}
    if "gankit_search" in scorers:
        out["gankit_search"] = float(roc_auc_score(anomalous, anomaly_scores(gen, x, critic).score.numpy()))
    searched = time.perf_counter()
    if "gankit_encoder" in scorers:
        encoded = anomaly_scores(gen, x, critic, encoder=run_encoder(gen, run, critic)).score.numpy()
        out["gankit_encoder"] = float(roc_auc_score(anomalous, encoded))
    encoder_done = time.perf_counter()
    normal, distance = torch.from_numpy(train), trained_distance(run)  # cosine after a contrastive term
    if "gankit_knn" in scorers:
        near = neighbour_scores(critic, normal, x, distance=distance).score.numpy()
        out["gankit_knn"] = float(roc_auc_score(anomalous, near))
    torch.manual_seed(seed)
    untrained = neighbour_scores(build_variant(cfg, gen.spec).eval(), normal, x, distance=distance).score.numpy()
    near_done = time.perf_counter()
    if "gankit_ganomaly" in scorers:
        gano_cfg = gankit.load_config("digits-ganomaly", [f"seed={seed}", "data.name=npz", f"data.path={path}",
                                                          "data.normal=null", f"data.resolution={train.shape[-1]}",
                                                          f"train.steps={steps}",
                                                          "train.sample_every=0", "train.checkpoint_every=0"])
        Trainer(gano_cfg, root / f"gano-{tag}", progress=False).fit()
        gano = anomaly_scores(gankit.load(root / f"gano-{tag}"), x).score.numpy()
        out["gankit_ganomaly"] = float(roc_auc_score(anomalous, gano))
    return {**out, "untrained_d_knn": float(roc_auc_score(anomalous, untrained)), "train_seconds": trained - start,
            "search_seconds": searched - trained, "encoder_seconds": encoder_done - searched,
            "knn_seconds": near_done - encoder_done, "ganomaly_seconds": time.perf_counter() - near_done}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="shapes,digits")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds run are first-seed .. first-seed + seeds - 1 (to split a long run)")
    parser.add_argument("--classes", default="all", help="'all' or comma-separated class indices")
    parser.add_argument("--steps", type=int, default=1500, help="GAN training steps per model")
    parser.add_argument("--diffaug", default="", help="DiffAugment policy for the DCGAN the search, encoder and "
                        "neighbour scores use (train.diffaug, e.g. color,translation; default off)")
    parser.add_argument("--contrastive", type=float, default=0.0, help="weight of the SimCLR term on that DCGAN's D "
                        "(loss.contrastive; the neighbour score is then cosine; default off)")
    parser.add_argument("--scorers", default=",".join(SCORERS), help=f"which of {', '.join(SCORERS)} to run "
                        "(the neighbour score alone is the fastest)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="another override of the DCGAN's config (repeatable), e.g. optim.lr_d=0.001")
    parser.add_argument("--quick", action="store_true", help="class 0, one seed, 300 GAN steps")
    args = parser.parse_args()
    scorers = tuple(args.scorers.split(","))
    if not scorers or not set(scorers) <= set(SCORERS):
        parser.error(f"--scorers {args.scorers}: give some of {', '.join(SCORERS)}")
    if args.quick:
        args.seeds, args.classes, args.steps = 1, "0", 300
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            names = data_names(name)
            classes = range(len(names)) if args.classes == "all" else [int(c) for c in args.classes.split(",")]
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                xa, ya, xb, yb = split(name, seed)
                for c in classes:
                    for protocol in ("one_class", "one_anomalous"):
                        normal = (ya == c) if protocol == "one_class" else (ya != c)
                        anomalous = (yb != c) if protocol == "one_class" else (yb == c)
                        row = {"set": name, "protocol": protocol, "class": names[c], "seed": seed,
                               **baselines(xa[normal], xb, anomalous, seed)}
                        row.update(gan_auroc(name, xa[normal], xb, anomalous, seed, args.steps, Path(tmp),
                                             args.diffaug, args.contrastive, scorers, tuple(args.set)))
                        rows.append(row)
                        print(f"{name:6} {protocol:13} {names[c]:8} seed {seed}: " + ", ".join(
                            f"{k} {row[k]:.3f}" for k in (*scorers, *BASELINES, *CONTROLS)), flush=True)
    methods = BASELINES
    summary = {}
    print(f"\n{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, GAN steps "
          f"{args.steps}, DiffAugment {args.diffaug or 'off'}, contrastive {args.contrastive}"
          f"{', quick' if args.quick else ''}")
    columns = (*scorers, *methods, *CONTROLS)
    print(f"{'set':7} {'protocol':14} " + " ".join(f"{m:>15}" for m in columns))
    for name in args.sets.split(","):
        for protocol in ("one_class", "one_anomalous"):
            mine = [r for r in rows if r["set"] == name and r["protocol"] == protocol]
            means = {m: float(np.mean([r[m] for r in mine])) for m in columns}
            summary[f"gankit_auroc_{name}_{protocol}"] = round(max(means[m] for m in scorers), 4)
            summary[f"best_baseline_auroc_{name}_{protocol}"] = round(max(means[m] for m in methods), 4)
            summary[f"untrained_d_knn_auroc_{name}_{protocol}"] = round(means["untrained_d_knn"], 4)
            print(f"{name:7} {protocol:14} " + " ".join(f"{means[m]:>15.3f}" for m in columns))
    print(json.dumps({"quick": args.quick, "steps": args.steps, "seeds": args.seeds, "first_seed": args.first_seed,
                      "diffaug": args.diffaug or None,
                      "contrastive": args.contrastive, "scorers": list(scorers), "set": args.set,
                      **summary, "rows": rows}))


if __name__ == "__main__":
    main()
