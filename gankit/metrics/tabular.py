"""Utility and privacy of synthetic tables, measured against the training rows and rows held out of training.

Utility: per-column similarity (1 − Kolmogorov–Smirnov statistic for numbers, 1 − total variation for categories),
the mean absolute difference of the numeric correlation matrices, and train-on-synthetic-test-on-real (TSTR) beside
train-on-real-test-on-real on the same held-out rows. Privacy: distances to the closest training record (DCR) against
the held-out rows' own, exact copies, the share of synthetic rows nearer to training than to held-out rows, and a
distance-based membership-inference attack. Every function takes pandas DataFrames and the table's column spec.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.tabular import category_codes, numbers

FOREST_TREES = 200
CHUNK = 2048  # rows per block of a distance computation


def _columns(meta: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [c for c in meta["columns"] if kind is None or c["type"] == kind]


def column_similarity(real, fake, meta: dict[str, Any]) -> dict[str, float]:
    """Per column: 1 − KS statistic (numbers, missing values left out) or 1 − total variation (categories)."""
    from scipy.stats import ks_2samp

    out = {}
    for col in meta["columns"]:
        if col["type"] == "continuous":
            a, b = numbers(real[col["name"]], col), numbers(fake[col["name"]], col)
            a, b = a[~np.isnan(a)], b[~np.isnan(b)]
            out[col["name"]] = 1 - float(ks_2samp(a, b).statistic) if len(a) and len(b) else 0.0
        else:
            k = len(col["categories"])
            p = np.bincount(category_codes(real[col["name"]], col).clip(0), minlength=k) / len(real)
            q = np.bincount(category_codes(fake[col["name"]], col).clip(0), minlength=k) / len(fake)
            out[col["name"]] = 1 - 0.5 * float(np.abs(p - q).sum())
    return out


def correlation_difference(real, fake, meta: dict[str, Any]) -> float | None:
    """Mean |corr_real − corr_fake| over pairs of continuous columns (Pearson); None with fewer than two."""
    cols = _columns(meta, "continuous")
    if len(cols) < 2:
        return None

    def corr(frame) -> np.ndarray:
        x = np.stack([numbers(frame[c["name"]], c) for c in cols], 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            import pandas as pd

            return np.nan_to_num(pd.DataFrame(x).corr().to_numpy())

    upper = np.triu_indices(len(cols), 1)
    return float(np.abs(corr(real) - corr(fake))[upper].mean())


def _one_hot(series, col: dict[str, Any], value: float = 1.0) -> np.ndarray:
    """A categorical column as one-hot rows (all zero for a value never seen in training), ones set to `value`."""
    codes = category_codes(series, col)
    out = np.zeros((len(series), len(col["categories"])))
    out[np.arange(len(series))[codes >= 0], codes[codes >= 0]] = value
    return out


def design(frame, meta: dict[str, Any], exclude: str | None = None) -> np.ndarray:
    """Features for scikit-learn models: numbers (missing → the column's training mean, plus a missing flag) and
    one-hot categories, in the table's column order."""
    parts = []
    for col in meta["columns"]:
        if col["name"] == exclude:
            continue
        if col["type"] == "continuous":
            x = numbers(frame[col["name"]], col)
            parts.append(np.where(np.isnan(x), col["fill"], x)[:, None])
            if col["missing"]:
                parts.append(np.isnan(x)[:, None].astype(float))
        else:
            parts.append(_one_hot(frame[col["name"]], col))
    return np.concatenate(parts, axis=1)


def tstr(train, synthetic, test, meta: dict[str, Any], target: str, seed: int = 0) -> dict[str, Any]:
    """Train on real / train on synthetic, test on the same held-out real rows: a random forest and a linear model.

    Classification (a categorical target): accuracy and macro F1; regression: R². `ratio` is synthetic ÷ real of
    the headline score (macro F1 or R²)."""
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    col = next(c for c in meta["columns"] if c["name"] == target)
    classify = col["type"] == "categorical"

    def labels(frame) -> np.ndarray:
        return category_codes(frame[target], col) if classify else numbers(frame[target], col)

    x_test, y_test = design(test, meta, target), labels(test)
    keep = ~np.isnan(y_test) if not classify else np.ones(len(y_test), bool)
    models = {
        "random_forest": lambda: (RandomForestClassifier if classify else RandomForestRegressor)(
            n_estimators=FOREST_TREES, random_state=seed, n_jobs=1),
        "linear": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000) if classify
                                        else Ridge(alpha=1.0)),
    }
    out: dict[str, Any] = {"task": "classification" if classify else "regression", "target": target,
                           "test_rows": int(keep.sum())}
    for name, make in models.items():
        scores = {}
        for source, frame in (("real", train), ("synthetic", synthetic)):
            x, y = design(frame, meta, target), labels(frame)
            rows = ~np.isnan(y) if not classify else np.ones(len(y), bool)
            if classify and len(np.unique(y)) < 2:  # a model cannot learn from one class: it predicts that class
                predicted = np.full(keep.sum(), y[0])
            else:
                predicted = make().fit(x[rows], y[rows]).predict(x_test[keep])
            if classify:
                scores[f"accuracy_{source}"] = float(accuracy_score(y_test, predicted))
                scores[f"f1_{source}"] = float(f1_score(y_test, predicted, average="macro"))
            else:
                scores[f"r2_{source}"] = float(r2_score(y_test[keep], predicted))
        head = "f1" if classify else "r2"
        real = scores[f"{head}_real"]
        scores["ratio"] = scores[f"{head}_synthetic"] / real if real > 0 else None
        out[name] = scores
    return out


def distance_inputs(frame, meta: dict[str, Any]) -> torch.Tensor:
    """Rows as vectors whose L1 distance ÷ the number of columns is a Gower-style distance: numbers scaled to [0, 1]
    by the training range (a missing value sits at −1), categories as one-hot halves (a mismatch costs 1)."""
    parts = []
    for col in meta["columns"]:
        if col["type"] == "continuous":
            x = numbers(frame[col["name"]], col)
            span = (col["max"] - col["min"]) or 1.0
            parts.append(np.where(np.isnan(x), -1.0, (x - col["min"]) / span)[:, None])
        else:
            parts.append(_one_hot(frame[col["name"]], col, 0.5))
    return torch.from_numpy(np.concatenate(parts, axis=1)).double()


def closest(a: torch.Tensor, b: torch.Tensor, columns: int) -> torch.Tensor:
    """For each row of a, the distance to its nearest row of b (mean per-column distance)."""
    return torch.cat([torch.cdist(part, b, p=1).min(1).values for part in a.split(CHUNK)]) / columns


def privacy(train, holdout, synthetic, meta: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Distance-based privacy figures of `synthetic` rows with respect to the `train` rows, with the held-out rows
    (never trained on) as the yardstick of what an unrelated sample of the same population looks like."""
    from sklearn.metrics import roc_auc_score

    columns = len(meta["columns"])
    tr, ho, sy = (distance_inputs(f, meta) for f in (train, holdout, synthetic))
    dcr_synthetic, dcr_holdout = closest(sy, tr, columns), closest(ho, tr, columns)
    g = torch.Generator().manual_seed(seed)
    members = tr[torch.randperm(len(tr), generator=g)[:len(ho)]]  # as many members as non-members
    to_members, to_holdout = closest(sy, members, columns), closest(sy, ho, columns)
    nearer = (to_members < to_holdout).double().mean() + 0.5 * (to_members == to_holdout).double().mean()
    score_members, score_holdout = -closest(members, sy, columns), -closest(ho, sy, columns)
    labels = np.r_[np.ones(len(members)), np.zeros(len(ho))]
    auc = roc_auc_score(labels, np.r_[score_members.numpy(), score_holdout.numpy()])

    def q(x: torch.Tensor, p: float) -> float:
        return float(torch.quantile(x, p))

    return {"dcr_median": q(dcr_synthetic, 0.5), "dcr_p05": q(dcr_synthetic, 0.05),
            "dcr_holdout_median": q(dcr_holdout, 0.5), "dcr_holdout_p05": q(dcr_holdout, 0.05),
            "exact_copies": float((dcr_synthetic == 0).double().mean()),
            "holdout_exact_copies": float((dcr_holdout == 0).double().mean()),
            "nearer_to_training": float(nearer), "membership_auc": float(auc),
            "rows": {"train": len(tr), "holdout": len(ho), "synthetic": len(sy), "members_attacked": len(members)}}


PRIVACY_MEANING = {
    "dcr_median": "typical distance from a synthetic row to its closest training row (mean per-column distance: "
                  "numbers on the training range, a category mismatch 1); compare with dcr_holdout_median",
    "dcr_holdout_median": "the same for real rows never trained on: what an unrelated record of the population "
                          "scores; a synthetic median well below it means rows sit close to training records",
    "dcr_p05": "5th percentile of those distances: the closest synthetic rows; compare with dcr_holdout_p05",
    "exact_copies": "share of synthetic rows identical to a training row; compare with holdout_exact_copies, the "
                    "data's own duplicate rate",
    "nearer_to_training": "share of synthetic rows nearer to a training row than to a held-out row (equal-sized "
                          "sets): 0.5 means the model generalises, toward 1 means it reproduces its training rows",
    "membership_auc": "how well an attacker who holds the synthetic data tells training rows from held-out rows "
                      "by their distance to it (AUC): 0.5 no better than chance, 1 every member found",
}
