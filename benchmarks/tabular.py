"""Synthetic tables: gankit's conditional tabular GAN beside ctgan (when installed) and a per-class Gaussian.

Four tables, each split once 70/30 (stratified by `target`, split seed 0, the same split for every method and seed):
wine and breast_cancer from scikit-learn (breast_cancer is the medical case), scikit-learn's digits as a table
(pixel columns with one value in 98 % of the images are dropped, as gankit refuses columns constant in training),
and a generated mixed-type table (integers, floats, text, booleans, dates, missing values). Every method fits the 70 % part; as many synthetic
rows as training rows are drawn; a 200-tree random forest trained on them is tested on the 30 % part (TSTR, macro F1)
beside the same forest trained on the real 70 % (TRTR). Each fit runs in its own process, so its peak memory
(maximum resident set) and seconds are its own; one torch thread each. gankit's seconds are reading, splitting and
encoding the CSV plus the training loop (its end-of-run checkpoint, which ctgan does not make, is left out); gankit
runs with `train.pictures=false`, as ctgan draws no pictures (with them, matplotlib adds about 30 MB to the peak);
ctgan's seconds are its `fit`. Privacy: the membership-inference AUC of gankit.metrics.tabular for every method.

    python benchmarks/tabular.py            # 4 tables x 3 seeds x (gankit, ctgan, gaussian)
    python benchmarks/tabular.py --quick    # wine and breast_cancer, one seed
    python benchmarks/tabular.py --methods gankit --tables wine --set train.steps=500   # gankit, a preset override
    python benchmarks/tabular.py --methods gankit-dp1 gankit-dp3 gankit-dp10 gaussian --tables mixed digits
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TABLES = ("wine", "breast_cancer", "digits", "mixed")
METHODS = ("gankit", "ctgan", "gaussian")
CTGAN_EPOCHS = 300  # ctgan's default


def write_table(name: str, folder: Path) -> Path:
    """The table as a CSV with a `target` column."""
    from sklearn import datasets

    path = folder / f"{name}.csv"
    if name in ("wine", "breast_cancer", "digits"):
        frame = getattr(datasets, f"load_{name}")(as_frame=True).frame
        top = frame.apply(lambda col: col.value_counts(normalize=True).iloc[0])
        frame = frame.loc[:, (top < 0.98) | (frame.columns == "target")]  # (nearly) constant pixels would be
        # constant in the training part, which gankit refuses
    else:
        frame = mixed_table()
    frame.to_csv(path, index=False)
    return path


def mixed_table(n: int = 2000, seed: int = 0):
    """Integers, floats, text, booleans, dates and missing values; `target` (three classes) depends on several."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    target = rng.choice(["low", "mid", "high"], n, p=[0.5, 0.3, 0.2])
    level = np.select([target == "low", target == "mid"], [0, 1], 2)
    frame = pd.DataFrame({
        "age": np.clip(rng.normal(35 + 10 * level, 8, n), 18, 90).round().astype(int),
        "income": np.round(rng.lognormal(10 + 0.4 * level, 0.3, n), 2),
        "region": np.where(rng.random(n) < 0.3 + 0.2 * level, "north", rng.choice(["south", "east", "west"], n)),
        "member": rng.random(n) < 0.2 + 0.3 * level,
        "visits": rng.poisson(2 + 2 * level, n),
        "joined": (pd.Timestamp("2018-01-01") + pd.to_timedelta(rng.integers(0, 2000, n) - 300 * level, unit="D"))
        .strftime("%Y-%m-%d"),
        "score": np.round(rng.normal(level, 0.7, n), 3),
        "target": target,
    })
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    frame.loc[rng.random(n) < 0.05, "region"] = None
    return frame


def public_facts(csv: Path) -> Path:
    """Column facts for a DP run, declared as if public: the table's own bounds widened by 10 % and its category
    lists. (A real release takes them from domain knowledge, not from the private rows; here they stand in.)"""
    import pandas as pd

    frame = pd.read_csv(csv)
    facts = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype.kind in "Ob" or name == "target":
            facts[name] = {"categories": sorted(col.dropna().unique().tolist()), "missing": bool(col.isna().any())}
        elif col.dtype.kind in "iuf":
            lo, hi = float(col.min()), float(col.max())
            facts[name] = {"min": lo - 0.1 * (hi - lo), "max": hi + 0.1 * (hi - lo), "missing": bool(col.isna().any()),
                           "decimals": 0 if col.dtype.kind in "iu" else 3}
    if "joined" in frame.columns:
        facts["joined"] = {"min": "2016-01-01", "max": "2024-12-31"}
    path = csv.with_suffix(".public.json")
    path.write_text(json.dumps({"columns": facts}))
    return path


def fit_one(method: str, csv: Path, seed: int, overrides: list[str]) -> dict:
    """One fit in this process: seconds, the synthetic rows' TSTR F1 and the membership AUC. Method `gankit-dpE`
    trains gankit under (E, 1/(10 n))-differential privacy with declared public column facts."""
    import torch

    torch.set_num_threads(1)
    from gankit.data import TableOptions, decode, table_dataset
    from gankit.metrics.tabular import privacy, tstr

    data = table_dataset(str(csv), TableOptions(target="target", conditional=("target",)))
    train, holdout, meta = data.info["frame"], data.info["holdout"], data.info["table"]
    start = time.perf_counter()
    if method.startswith("gankit-dp"):
        overrides = [f"data.public={public_facts(csv)}", f"privacy.epsilon={method.removeprefix('gankit-dp')}",
                     "loss.name=non_saturating", "loss.gp_weight=0", *overrides]
    if method.startswith("gankit"):
        from gankit.train import Trainer, load
        from gankit.variants import resolve

        overrides = [f"data.path={csv}", "data.target=target", "data.conditional=[target]", f"seed={seed}",
                     "train.sample_every=0", "train.checkpoint_every=0", "train.pictures=false", *overrides]
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            trainer = Trainer(resolve("table", overrides)[0], run, progress=False)  # reads, splits, encodes the CSV
            setup = time.perf_counter() - start
            result = trainer.fit()
            fit = setup + result["step"] / result["steps_per_s"]  # the end-of-run pictures and checkpoint left out
            gen = load(run)
            synthetic = decode(gen.sample(len(train), seed=seed), gen.spec["table"])
    elif method == "ctgan":
        from ctgan import CTGAN

        torch.manual_seed(seed)
        np.random.seed(seed)
        discrete = [c["name"] for c in meta["columns"] if c["type"] == "categorical"]
        model = CTGAN(epochs=CTGAN_EPOCHS, verbose=False)
        model.set_random_state(seed)
        model.fit(train, discrete_columns=discrete)
        fit = time.perf_counter() - start
        synthetic = model.sample(len(train))
    else:
        synthetic = gaussian_per_class(train, meta, seed)
        fit = time.perf_counter() - start
    scores = tstr(train, synthetic, holdout, meta, "target", seed)["random_forest"]
    out = {"fit_s": fit, "f1_synthetic": scores["f1_synthetic"], "f1_real": scores["f1_real"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    out["membership_auc"] = privacy(train, holdout, synthetic, meta, seed)["membership_auc"]
    return out


def gaussian_per_class(train, meta: dict, seed: int):
    """FINDINGS' baseline: per class, one multivariate Gaussian over the numeric design of the other columns, rows
    drawn in the class proportions and decoded back (categories by arg-max of their one-hot part, clipped)."""
    import pandas as pd

    from gankit.metrics.tabular import design

    rng = np.random.default_rng(seed)
    x = design(train, meta, "target")
    y = train["target"].to_numpy()
    rows, labels = [], []
    for value in pd.unique(y):
        part = x[y == value]
        cov = np.cov(part, rowvar=False) + 1e-6 * np.eye(part.shape[1])
        rows.append(rng.multivariate_normal(part.mean(0), cov, len(part)))
        labels += [value] * len(part)
    drawn = np.concatenate(rows)
    frame, at = {}, 0
    for col in meta["columns"]:
        if col["name"] == "target":
            continue
        if col["type"] == "continuous":
            value = np.clip(drawn[:, at], col["min"], col["max"])
            frame[col["name"]] = value.round() if col["dtype"] in ("int", "datetime") else value
            at += 2 if col["missing"] else 1
            if col["dtype"] == "datetime":
                frame[col["name"]] = pd.to_datetime(frame[col["name"]], unit="s").strftime(col["format"])
        else:
            k = len(col["categories"])
            frame[col["name"]] = [col["categories"][i] for i in drawn[:, at:at + k].argmax(1)]
            at += k
    frame["target"] = labels
    return pd.DataFrame(frame)[[c["name"] for c in meta["columns"]]]


def child(method: str, table: str, seed: int, overrides: list[str], folder: Path) -> dict:
    cmd = [sys.executable, __file__, "--one", method, table, str(seed), str(folder),
           *(f"--set={item}" for item in overrides)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:  # a method that refuses a table (ctgan and missing numbers) is a result too
        lines = done.stderr.strip().splitlines()
        print(f"{method} on {table} (seed {seed}) failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {"error": lines[-1][:300] if lines else f"exit code {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="wine and breast_cancer, one seed")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tables", nargs="*", default=None, choices=TABLES)
    parser.add_argument("--methods", nargs="*", default=None, help=f"some of {', '.join(METHODS)}, or gankit-dpE "
                        "(differential privacy at ε = E, e.g. gankit-dp3)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="an override of gankit's preset `table` (repeatable)")
    parser.add_argument("--one", nargs=4, metavar=("METHOD", "TABLE", "SEED", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, table, seed, folder = args.one
        print(json.dumps(fit_one(method, Path(folder) / f"{table}.csv", int(seed), args.overrides)))
        return
    tables = args.tables or (["wine", "breast_cancer"] if args.quick else list(TABLES))
    seeds = range(1 if args.quick else args.seeds)
    methods = tuple(args.methods or METHODS)
    try:
        import ctgan  # noqa: F401 - only whether it is installed
    except ImportError:
        methods = tuple(m for m in methods if m != "ctgan")
        print("ctgan is not installed: its rows are left out (pip install ctgan)", file=sys.stderr)
    folder = Path(tempfile.mkdtemp(prefix="tabular-"))  # the tables' CSVs, kept for a look afterwards
    print(f"tables written to {folder}", file=sys.stderr)
    results: dict[str, dict[str, list[dict]]] = {}
    for table in tables:
        write_table(table, folder)
        for method in methods:
            for seed in seeds:
                r = child(method, table, seed, args.overrides, folder)
                results.setdefault(table, {}).setdefault(method, []).append(r)
                if "error" in r:
                    break  # the other seeds would fail the same way
                print(f"{table:14s} {method:9s} seed {seed}: F1 {r['f1_synthetic']:.3f} (real {r['f1_real']:.3f}) "
                      f"fit {r['fit_s']:.1f} s, peak {r['peak_rss_mb']:.0f} MB, MIA {r['membership_auc']:.3f}",
                      file=sys.stderr, flush=True)
    summary = {}
    print(f"\n{'table':14s} {'method':9s} {'TSTR F1':>15s} {'of real':>8s} {'fit s':>12s} {'peak MB':>8s} {'MIA AUC':>8s}")
    for table, by_method in results.items():
        for method, runs in by_method.items():
            if "error" in runs[0]:
                summary.setdefault(table, {})[method] = {"error": runs[0]["error"]}
                print(f"{table:14s} {method:9s} failed: {runs[0]['error']}")
                continue

            def stat(key: str) -> tuple[float, float]:
                v = np.array([r[key] for r in runs])
                return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
            f1, f1_se = stat("f1_synthetic")
            real = stat("f1_real")[0]
            fit, fit_se = stat("fit_s")
            peak, mia = stat("peak_rss_mb")[0], stat("membership_auc")[0]
            summary.setdefault(table, {})[method] = {"f1": f1, "f1_se": f1_se, "f1_real": real, "ratio": f1 / real,
                                                     "fit_s": fit, "fit_s_se": fit_se, "peak_rss_mb": peak,
                                                     "membership_auc": mia, "seeds": len(runs)}
            print(f"{table:14s} {method:9s} {f1:7.3f} ± {f1_se:.3f} {f1 / real:8.2f} {fit:6.1f} ± {fit_se:3.1f} "
                  f"{peak:8.0f} {mia:8.3f}")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, one torch thread per fit"
    print(json.dumps({"machine": machine, "tables": summary}))


if __name__ == "__main__":
    main()
