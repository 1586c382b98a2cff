"""The truncation trick's fidelity/diversity trade-off (Brock et al. 2019) for a trained class-conditional run.

For each τ in 0.1, 0.25, 0.5, 0.75, 1.0, n samples (classes balanced) are drawn with z components beyond ±2τ redrawn,
and compared with n real training images in the evaluator's feature space: precision (fidelity: share of samples
inside the real manifold), recall (diversity: share of real images inside the samples' manifold), Fréchet distance,
and the share of samples the evaluator recognises as the class asked for.

    python benchmarks/truncation.py --run runs/shapes-biggan      # a trained run (about 2 minutes)
    python benchmarks/truncation.py                               # train shapes-biggan first (its preset length)
    python benchmarks/truncation.py --quick                       # 40 training steps, 500 samples: a smoke test

Prints a table, writes docs/img/truncation.png (precision and recall against τ) and, as the last line, one JSON
object with every row.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import gankit
from gankit.data import load_dataset
from gankit.io import provenance, write_png
from gankit.metrics import FeatureStats, precision_recall
from gankit.report.compare import PR_K
from gankit.report.evaluate import RunEval

TAUS = (0.1, 0.25, 0.5, 0.75, 1.0)
PRESET = "shapes-biggan"
QUICK_STEPS = 40
PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "truncation.png"


def train_run(run_dir: Path, steps: int | None) -> None:
    """Train the shapes-biggan preset into `run_dir` (`steps` overrides its length)."""
    overrides = [f"train.steps={steps}", f"train.checkpoint_every={steps}", f"train.sample_every={steps}"] \
        if steps else []
    gankit.train(gankit.load_config(PRESET, overrides), run_dir, progress=True)


def sweep(run_dir: Path, n: int, seed: int, features: str | None) -> list[dict]:
    """One row of metrics per τ: samples with balanced classes against n real images of the training data."""
    gen = gankit.load(run_dir)
    if not gen.class_names:
        raise SystemExit(f"{run_dir} is not a class-conditional run: the sweep needs labels to balance classes")
    run = RunEval(gen, run_dir, seed=seed, features=features)
    evaluator = run.evaluator
    data = load_dataset(run.config.data, run.config.seed)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    real = evaluator.features(data.take(index)[0])
    real_stats = FeatureStats()
    real_stats.update(real)
    labels = torch.arange(n) % len(gen.class_names)
    rows = []
    for tau in TAUS:
        x = gen.sample(n, seed=seed, truncation=tau, labels=labels)
        fake = evaluator.features(x)
        fake_stats = FeatureStats()
        fake_stats.update(fake)
        precision, recall = precision_recall(real, fake, k=PR_K)
        row = {"truncation": tau, "precision": round(precision, 4), "recall": round(recall, 4),
               "fd": round(real_stats.frechet_to(fake_stats), 3)}
        if run.knows_the_data:
            named = run.predict(x)
            row["class_accuracy"] = round(sum(p == gen.class_names[i] for p, i in zip(named, labels.tolist())) / n, 4)
        rows.append(row)
        print(f"{tau:>6.2f} {row['precision']:>10.3f} {row['recall']:>8.3f} {row['fd']:>9.2f} "
              f"{row.get('class_accuracy', float('nan')):>10.3f}", flush=True)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Precision and recall (left axis) and class accuracy against τ: fidelity rises as diversity falls."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    taus = [r["truncation"] for r in rows]
    fig, ax = plt.subplots(figsize=(5.2, 3.4), dpi=100)
    ax.plot(taus, [r["precision"] for r in rows], "o-", label="precision (fidelity)")
    ax.plot(taus, [r["recall"] for r in rows], "s-", label="recall (diversity)")
    if "class_accuracy" in rows[0]:
        ax.plot(taus, [r["class_accuracy"] for r in rows], "^--", label="class accuracy", alpha=0.7)
    ax.set_xlabel("truncation τ (z components beyond ±2τ redrawn)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(taus)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    write_png(path, Image.open(buf), provenance(plot="truncation", run=title))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a trained class-conditional run (default: train shapes-biggan)")
    parser.add_argument("--steps", type=int, help="training steps when no --run is given (default: the preset's)")
    parser.add_argument("-n", type=int, default=5000, help="generated and real samples per τ (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, labels and the real subset")
    parser.add_argument("--features", help="feature extractor (default: shapes, digits or raw by the run's data)")
    parser.add_argument("--plot", type=Path, help="where the figure goes (default docs/img/truncation.png; with "
                        "--quick a file in the temporary folder, so a smoke test leaves the docs alone)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} training steps and 500 samples")
    args = parser.parse_args()
    n, steps = (500, args.steps or QUICK_STEPS) if args.quick else (args.n, args.steps)
    plot_path = args.plot or (Path(tempfile.gettempdir()) / "truncation-quick.png" if args.quick else PLOT)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tmp) / PRESET
            train_run(run_dir, steps)
        print(f"{'τ':>6} {'precision':>10} {'recall':>8} {'FD':>9} {'class acc':>10}")
        rows = sweep(run_dir, n, args.seed, args.features)
        title = f"{run_dir.name}: precision/recall vs truncation (n={n})"
        plot(rows, plot_path, title)
    print(f"wrote {plot_path}")
    print(json.dumps({"run": str(args.run) if args.run else f"{PRESET} (trained here, steps={steps or 'preset'})",
                      "samples": n, "seed": args.seed, "precision_recall_k": PR_K, "rows": rows,
                      "seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads(),
                      "machine": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
