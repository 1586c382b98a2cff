"""The truncation trick's fidelity/diversity trade-off (Brock et al. 2019) for a trained run, beside
discriminator-guided sampling (DRS, MH) of the same generator.

For each τ in 0.1, 0.25, 0.5, 0.75, 1.0, n samples (classes balanced, for a class-conditional run) are drawn with z
components beyond ±2τ redrawn, and compared with n real training images in the evaluator's feature space: precision
(fidelity: share of samples inside the real manifold), recall (diversity: share of real images inside the samples'
manifold), Fréchet distance, and the share of samples the evaluator recognises as the class asked for. With
`--refine drs,mh` (unconditional runs: refinement takes one class at a time), n samples of each method at τ = 1 are
scored the same way, so refinement and truncation sit on the same precision/recall axes.

    python benchmarks/truncation.py --run runs/shapes32-biggan    # a trained run (about 2 minutes)
    python benchmarks/truncation.py --run runs/demo --refine drs,mh --plot docs/img/refine-digits.png
    python benchmarks/truncation.py --run runs/demo --refine drs@0.1,drs,mh    # DRS at two quantiles of γ
    python benchmarks/truncation.py --run runs/demo --refine drs,drs+1000      # D trained 1,000 steps further first
    python benchmarks/truncation.py                               # train shapes32-biggan first (its preset length)
    python benchmarks/truncation.py --quick                       # 40 training steps, 500 samples: a smoke test

Prints a table, writes docs/img/truncation.png (precision and recall against τ; with --refine a second panel:
precision against recall, truncation's curve and refinement's points) and, as the last line, one JSON object with
every row.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

import gankit
from gankit.data import load_dataset
from gankit.io import plot_label, write_png
from gankit.metrics import FeatureStats, precision_recall
from gankit.report.compare import PR_K
from gankit.report.evaluate import RunEval

TAUS = (0.1, 0.25, 0.5, 0.75, 1.0)
PRESET = "shapes32-biggan"
QUICK_STEPS = 40
PLOT = Path(__file__).resolve().parents[1] / "docs" / "img" / "truncation.png"


def train_run(run_dir: Path, steps: int | None) -> None:
    """Train the PRESET into `run_dir` (`steps` overrides its length)."""
    overrides = [f"train.steps={steps}", f"train.checkpoint_every={steps}", f"train.sample_every={steps}"] \
        if steps else []
    gankit.train(gankit.load_config(PRESET, overrides), run_dir, progress=True)


def sweep(run_dir: Path, n: int, seed: int, features: str | None, refine: list[str]) -> list[dict]:
    """One row of metrics per τ (then per refinement method): samples, classes balanced when the run has classes,
    against n real images of the training data."""
    gen = gankit.load(run_dir)
    if refine and gen.class_names:
        raise SystemExit("--refine takes unconditional runs: refined sampling draws one class at a time")
    run = RunEval(gen, run_dir, seed=seed, features=features)
    evaluator = run.evaluator
    data = load_dataset(run.config.data, run.config.seed)
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    real = evaluator.features(data.take(index)[0])
    real_stats = FeatureStats()
    real_stats.update(real)
    labels = torch.arange(n) % len(gen.class_names) if gen.class_names else None
    rows = []
    draws = [("truncation", tau) for tau in TAUS] + [(method, 1.0) for method in refine]
    for method, tau in draws:
        if method == "truncation":
            x, extra = gen.sample(n, seed=seed, truncation=tau, labels=labels), {}
        else:
            name, quantile, steps = _parse_refine(method)
            x, stats = gen.refined(name, n, seed=seed, quantile=quantile, steps=steps)
            cost = stats.as_dict()
            extra = {"acceptance": round(cost["acceptance"], 4),
                     "g_evals_per_sample": round(cost["g_evals_per_sample"], 2)}
        fake = evaluator.features(x)
        fake_stats = FeatureStats()
        fake_stats.update(fake)
        precision, recall = precision_recall(real, fake, k=PR_K)
        row = {"method": method, "truncation": tau, "precision": round(precision, 4), "recall": round(recall, 4),
               "fd": round(real_stats.frechet_to(fake_stats), 3), **extra}
        if run.knows_the_data and labels is not None:
            named = run.predict(x)
            row["class_accuracy"] = round(sum(p == gen.class_names[i] for p, i in zip(named, labels.tolist())) / n, 4)
        rows.append(row)
        print(f"{method:>10} {tau:>6.2f} {row['precision']:>10.3f} {row['recall']:>8.3f} {row['fd']:>9.2f} "
              f"{row.get('class_accuracy', float('nan')):>10.3f}", flush=True)
    return rows


def plot(rows: list[dict], path: Path, title: str) -> None:
    """Precision and recall (and class accuracy) against τ: fidelity rises as diversity falls; with refinement rows a
    second panel puts truncation's curve and refinement's points on the precision/recall plane."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    curve = [r for r in rows if r["method"] == "truncation"]
    refined = [r for r in rows if r["method"] != "truncation"]
    taus = [r["truncation"] for r in curve]
    fig, axes = plt.subplots(1, 2 if refined else 1, figsize=(10.4 if refined else 5.2, 3.4), dpi=100, squeeze=False)
    ax = axes[0][0]
    ax.plot(taus, [r["precision"] for r in curve], "o-", label="precision (fidelity)")
    ax.plot(taus, [r["recall"] for r in curve], "s-", label="recall (diversity)")
    if "class_accuracy" in curve[0]:
        ax.plot(taus, [r["class_accuracy"] for r in curve], "^--", label="class accuracy", alpha=0.7)
    ax.set_xlabel("truncation τ (z components beyond ±2τ redrawn)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(taus)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower center")
    ax.set_title(title, fontsize=10)
    if refined:
        pr = axes[0][1]
        pr.plot([r["recall"] for r in curve], [r["precision"] for r in curve], "o-", color="grey", label="truncation")
        for r in curve:
            pr.annotate(f"τ {r['truncation']:g}", (r["recall"], r["precision"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        for r, marker in zip(refined, itertools.cycle("D*^vPX")):
            pr.plot(r["recall"], r["precision"], marker, markersize=9,
                    label=f"{r['method'].upper()} (accepts {r['acceptance']:.0%})")
        pr.set_xlabel("recall (diversity)")
        pr.set_ylabel("precision (fidelity)")
        pr.set_xlim(0, 1.02)
        pr.set_ylim(0, 1.02)
        pr.grid(alpha=0.3)
        pr.legend(fontsize=8, loc="lower left")
        pr.set_title("refinement and truncation on one plane", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    write_png(path, Image.open(buf), plot_label("truncation", run=title))


def _parse_refine(method: str) -> tuple[str, float, int]:
    """drs@0.1+1000 -> ("drs", 0.1, 1000): DRS with γ at the 0.1 quantile (default 0.5), D trained 1,000 steps
    further against G first (default 0); ValueError when malformed."""
    head, plus, steps = method.partition("+")
    name, at, quantile = head.partition("@")
    if name not in ("drs", "mh") or (at and name != "drs") or (plus and not steps.isdigit()):
        raise ValueError(method)
    q = float(quantile) if at else 0.5
    if not 0 <= q < 1:
        raise ValueError(method)
    return name, q, int(steps or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help=f"a trained run (default: train {PRESET})")
    parser.add_argument("--refine", default="", help="comma-separated refinement methods to add at τ = 1 (drs, mh; "
                        "drs@Q sets DRS's γ quantile Q, default 0.5: lower keeps more; a suffix +S trains D S steps "
                        "further against G first, e.g. drs+1000); unconditional runs only")
    parser.add_argument("--steps", type=int, help="training steps when no --run is given (default: the preset's)")
    parser.add_argument("-n", type=int, default=5000, help="generated and real samples per τ (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise, labels and the real subset")
    parser.add_argument("--features", help="feature extractor (default: shapes, digits or raw by the run's data)")
    parser.add_argument("--plot", type=Path, help="where the figure goes (default docs/img/truncation.png; with "
                        "--quick a file in the temporary folder, so a smoke test leaves the docs alone)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} training steps and 500 samples")
    args = parser.parse_args()
    refine = [m for m in args.refine.split(",") if m]
    for method in refine:
        try:
            _parse_refine(method)
        except ValueError:
            parser.error(f"--refine {method}: a method is drs or mh, only drs takes @Q (a quantile in [0, 1), e.g. "
                         "drs@0.1), and +S takes a whole number of steps (e.g. drs+1000)")
    n, steps = (500, args.steps or QUICK_STEPS) if args.quick else (args.n, args.steps)
    plot_path = args.plot or (Path(tempfile.gettempdir()) / "truncation-quick.png" if args.quick else PLOT)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tmp) / PRESET
            train_run(run_dir, steps)
        print(f"{'method':>10} {'τ':>6} {'precision':>10} {'recall':>8} {'FD':>9} {'class acc':>10}")
        rows = sweep(run_dir, n, args.seed, args.features, refine)
        title = f"{Path(run_dir).resolve().name}: precision/recall vs truncation (n={n})"
        plot(rows, plot_path, title)
    print(f"wrote {plot_path}")
    print(json.dumps({"run": str(args.run) if args.run else f"{PRESET} (trained here, steps={steps or 'preset'})",
                      "samples": n, "seed": args.seed, "precision_recall_k": PR_K, "rows": rows,
                      "seconds": round(time.perf_counter() - start, 1), "torch_threads": torch.get_num_threads(),
                      "machine": platform.processor() or platform.machine()}))


if __name__ == "__main__":
    main()
