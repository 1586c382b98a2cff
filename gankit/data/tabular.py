"""Tables: CSV or pandas input, column types, the reversible column encoding and the conditional row sampler.

Continuous columns are encoded mode-specifically (Xu et al. 2019): a Gaussian mixture per column (fitted by EM with
small components pruned, standing in for the paper's Dirichlet-process mixture) finds its modes; a value becomes a scalar α = (x − μₖ) / 4σₖ and a one-hot of the mode k drawn from its posterior. Categories
(and booleans, and integers with few values) are one-hot; a column with missing values gets a present/missing
indicator. Everything needed to invert the encoding is plain JSON in the model's spec, so decoding gives back the
original columns, dtypes, categories, integer rounding, decimals and value ranges.

Training by sampling: each batch picks a categorical column uniformly, a category of it with probability ∝ log of its
frequency, and real rows showing that category; G is told the same (column, category) as a one-hot condition.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import UserError
from ..io import atomic_path, provenance, provenance_path, save_figure, write_json
from .base import Batch, BatchSampler, Dataset
from .kinds import DataKind, register_kind

FEW_VALUES = 10  # an integer column with at most this many distinct values is read as categories
MAX_DECIMALS = 8  # decimals kept for float columns (the fewest that reproduce every value)
MIN_WEIGHT = 0.005  # mixture components below this weight are dropped (as in the paper)
FIT_ROWS = 20_000  # a column's modes are fitted on at most this many of its values
VAR_FLOOR = 0.01  # a mode's std is at least this share of its column's std
MISSING = None  # how a missing category is stored in the spec (JSON null)


def _read_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise UserError(f"data.path={path}: no such file", "give the path of a CSV file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # rows longer than the header: not dropped
            frame = pd.read_csv(path, skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise UserError(f"{path}: its rows have more fields than its header line names",
                        "add the missing names to the header line, or remove the extra fields (a trailing comma?)"
                        ) from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path} is empty", "give a CSV file with a header line and at least two rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{path}: not a readable CSV ({first})", "save it as comma-separated text, UTF-8") from None
    if frame.empty or len(frame) < 2:
        raise UserError(f"{path} has {len(frame)} data rows", "a table needs at least two rows")
    return frame


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _decimals(values: np.ndarray) -> int | None:
    """The fewest decimals (≤ MAX_DECIMALS) that reproduce every value, or None when no such number exists."""
    scale = np.maximum(1.0, np.abs(values))
    for d in range(MAX_DECIMALS + 1):
        if np.all(np.abs(np.round(values, d) - values) <= 1e-9 * scale):
            return d
    return None


def _is_number_text(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _as_datetime(series, name: str, source: str):
    """The dates of a text column whose every value is a date or time, else None."""
    sample = series.dropna().astype(str)
    if not sample.str.contains(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).all():
        return None
    parsed = _parse_dates(series)
    if parsed[series.notna()].isna().any():
        bad = series[series.notna() & parsed.isna()].iloc[0]
        raise UserError(f"{source}: column '{name}' holds dates and a value that is not one ('{bad}')",
                        "fix the value, or list the column in data.categorical to keep it as text")
    return parsed


def _column_meta(series, name: str, source: str, categorical: bool, discrete: bool, max_modes: int) -> dict[str, Any]:
    """The type and encoding statistics of one column of the training rows."""
    present = series.dropna()
    if present.empty:
        raise UserError(f"{source}: column '{name}' is empty (every value is missing)", "drop the column")
    if present.nunique() < 2:
        raise UserError(f"{source}: column '{name}' holds one value only ('{present.iloc[0]}'), so there is nothing "
                        "to learn", "drop the column (add it back to the synthetic rows if you need it)")
    missing = bool(series.isna().any())
    meta: dict[str, Any] = {"name": name, "missing": missing}
    kind = series.dtype.kind
    if kind == "O":
        numeric = present.astype(str).map(_is_number_text)
        if numeric.any() and not numeric.all() and not categorical:
            text = present[~numeric].iloc[0] if numeric.mean() >= 0.5 else present[numeric].iloc[0]
            raise UserError(f"{source}: column '{name}' mixes numbers and text (e.g. '{text}')",
                            "fix the odd values, or list the column in data.categorical to treat all as text")
        dates = None if categorical else _as_datetime(series, name, source)
        if dates is not None:
            seconds = _seconds(dates)
            midnight = bool((dates.dropna().dt.normalize() == dates.dropna()).all())
            meta.update(dtype="datetime", format="%Y-%m-%d" if midnight else "%Y-%m-%d %H:%M:%S",
                        step=86400 if midnight else 1)
            return _continuous(meta, seconds.to_numpy(dtype=float), max_modes, integer=True)
        meta["dtype"] = "str"
        return _categorical(meta, _category_values(series, "str"))
    if kind == "b":
        meta["dtype"] = "bool"
        return _categorical(meta, _category_values(series, "bool"))
    values = series.to_numpy(dtype=float)
    integer = kind in "iu" or bool(np.all(np.mod(present.to_numpy(dtype=float), 1) == 0))
    # written back as integers when read as integers, or as whole numbers with gaps (pandas reads "3" and "" as
    # floats); whole numbers written with a decimal point ("127.0", no gaps) stay floats
    meta["dtype"] = "int" if kind in "iu" or (integer and missing) else "float"
    if categorical or (integer and present.nunique() <= FEW_VALUES and not discrete):
        return _categorical(meta, _category_values(series, meta["dtype"]))
    return _continuous(meta, values, max_modes, integer=integer or discrete)


def _categorical(meta: dict[str, Any], values) -> dict[str, Any]:
    counts: dict[Any, int] = {}
    for v in values:
        key = None if _key(v) is None else (v.item() if hasattr(v, "item") else v)
        counts[key] = counts.get(key, 0) + 1
    cats = sorted(counts, key=lambda v: (v is None, 0 if v is None else v))
    meta.update(type="categorical", categories=cats, counts=[counts[c] for c in cats])
    meta["missing"] = False  # a missing value is a category of its own (None)
    return meta


def _continuous(meta: dict[str, Any], values: np.ndarray, max_modes: int, integer: bool) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    weights, means, stds = fit_modes(present, max_modes)
    meta.update(type="continuous", means=means.tolist(), stds=stds.tolist(), weights=weights.tolist(),
                min=float(present.min()), max=float(present.max()), fill=float(present.mean()),
                decimals=0 if integer else _decimals(present))
    return meta


def fit_modes(x: np.ndarray, max_modes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The modes of a column: (weights, means, stds) of a 1-D Gaussian mixture, deterministic.

    EM starts from `max_modes` components at evenly spaced quantiles; then the two neighbouring components that
    overlap most are merged and EM re-run, while that lowers the Bayesian information criterion, so a column gets as
    many modes as it shows (what the paper's Dirichlet-process prior does). Columns longer than FIT_ROWS are fitted
    on evenly spaced order statistics."""
    if len(x) > FIT_ROWS:
        x = np.sort(x)[np.linspace(0, len(x) - 1, FIT_ROWS).round().astype(int)]
    spread = float(x.std()) or 1.0
    floor = (VAR_FLOOR * spread) ** 2  # keeps a component from collapsing onto one repeated value
    k = min(max_modes, len(np.unique(x)))
    means = np.quantile(x, (np.arange(k) + 0.5) / k)
    fit = _em(x, np.full(k, 1 / k), means, np.full(k, (spread / k) ** 2 + floor), floor, 100)
    while len(fit[0]) > 1:
        smaller = _em(x, *_merge_closest(*fit[:3]), floor, 30)
        if _bic(smaller, len(x)) >= _bic(fit, len(x)):
            break
        fit = smaller
    weights, means, var, _ = fit
    order = np.argsort(means)
    return weights[order], means[order], np.sqrt(var[order])


def _em(x: np.ndarray, weights: np.ndarray, means: np.ndarray, var: np.ndarray, floor: float,
        iterations: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """EM steps of a 1-D Gaussian mixture from the given parameters: (weights, means, variances, mean log-likelihood
    of the final parameters); components that lose all weight are dropped."""
    previous = -np.inf
    for _ in range(iterations + 1):
        logp = _log_joint(x, weights, means, var)
        top = logp.max(1, keepdims=True)
        resp = np.exp(logp - top)
        total = resp.sum(1, keepdims=True)
        likelihood = float((np.log(total) + top).mean())
        if likelihood - previous < 1e-6 * max(1.0, abs(likelihood)):
            break
        previous = likelihood
        resp /= total
        count = resp.sum(0)
        live = count > 1e-3
        resp, count = resp[:, live], count[live]
        weights, means = count / count.sum(), (resp * x[:, None]).sum(0) / count
        var = (resp * (x[:, None] - means) ** 2).sum(0) / count + floor
    return weights, means, var, likelihood


def _log_joint(x: np.ndarray, weights: np.ndarray, means: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log(weight_k · N(x | mean_k, var_k)) for every value and mode, (n, k)."""
    return -0.5 * (x[:, None] - means) ** 2 / var - 0.5 * np.log(2 * np.pi * var) + np.log(weights)


def _merge_closest(weights: np.ndarray, means: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, ...]:
    """The mixture with its most overlapping neighbours (by mean gap over summed stds) merged, moments kept."""
    order = np.argsort(means)
    weights, means, var = weights[order], means[order], var[order]
    i = int(np.argmin(np.diff(means) / (np.sqrt(var[:-1]) + np.sqrt(var[1:]))))
    w = weights[i] + weights[i + 1]
    m = (weights[i] * means[i] + weights[i + 1] * means[i + 1]) / w
    v = (weights[i] * (var[i] + means[i] ** 2) + weights[i + 1] * (var[i + 1] + means[i + 1] ** 2)) / w - m ** 2
    keep = np.arange(len(weights)) != i + 1
    weights, means, var = weights[keep], means[keep], var[keep]
    weights[i], means[i], var[i] = w, m, v
    return weights, means, var


def _bic(fit: tuple[np.ndarray, np.ndarray, np.ndarray, float], n: int) -> float:
    return -2 * n * fit[3] + (3 * len(fit[0]) - 1) * np.log(n)


def _column_spans(col: dict[str, Any]) -> list[list]:
    """One column's blocks: a number is α (tanh), its mode (one-hot) and, with gaps, a present/missing flag."""
    if col["type"] == "categorical":
        return [[len(col["categories"]), "softmax"]]
    return [[1, "tanh"], [len(col["means"]), "softmax"]] + ([[2, "softmax"]] if col["missing"] else [])


def spans(meta: dict[str, Any]) -> list[list]:
    """The encoded layout of the table: [size, "tanh" | "softmax"] per block, column by column."""
    return [span for col in meta["columns"] for span in _column_spans(col)]


def column_blocks(meta: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Where each column's encoding lies in a row: name -> (start, width)."""
    blocks, at = {}, 0
    for col in meta["columns"]:
        width = sum(size for size, _ in _column_spans(col))
        blocks[col["name"]] = (at, width)
        at += width
    return blocks


def condition_layout(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Per conditional column: its name, where its block starts in the encoded row, its size, where its part of the
    condition vector starts, and its category frequencies."""
    layout, cond_at = [], 0
    blocks = column_blocks(meta)
    for col in meta["columns"]:
        if col["type"] == "categorical" and col["name"] in meta["conditional"]:
            start, k = blocks[col["name"]]
            layout.append({"name": col["name"], "start": start, "size": k, "cond_start": cond_at,
                           "counts": col["counts"]})
            cond_at += k
    return layout


def condition_dim(meta: dict[str, Any]) -> int:
    return sum(part["size"] for part in condition_layout(meta))


def _category_values(series, dtype: str):
    """A categorical column's values as Python objects of its dtype (numbers as int or float), None where missing."""
    values = series.astype(object).where(series.notna(), None)
    if dtype in ("int", "float"):
        values = values.map(lambda v: v if v is None else (int(v) if dtype == "int" else float(v)))
    return values


def category_codes(series, col: dict[str, Any]) -> np.ndarray:
    """The index of each value of a categorical column among its training categories (-1: never seen)."""
    lookup = {_key(c): i for i, c in enumerate(col["categories"])}
    return np.array([lookup.get(_key(v), -1) for v in _category_values(series, col["dtype"])], dtype=np.int64)


def numbers(series, col: dict[str, Any]) -> np.ndarray:
    """A continuous column as float64 (datetimes as seconds since 1970), NaN where missing."""
    if col["dtype"] == "datetime":
        return _seconds(_parse_dates(series)).to_numpy(dtype=float)
    return series.to_numpy(dtype=float)


def _key(value: Any) -> Any:
    """A hashable, type-tolerant key for a category (1 and 1.0 and "1" differ; NaN is None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "item"):
        value = value.item()
    return (type(value).__name__ if not isinstance(value, bool) else "bool", value)


def encode(frame, meta: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Rows of `frame` in the model's encoding (float32, one block per span); modes drawn from their posterior with
    a generator seeded by `seed`."""
    rng = np.random.default_rng(seed)
    blocks = []
    for col in meta["columns"]:
        series = frame[col["name"]]
        if col["type"] == "categorical":
            index = category_codes(series, col)
            if (index < 0).any():
                bad = series[index < 0].iloc[0]
                raise UserError(f"column '{col['name']}': value '{bad}' was not in the training data",
                                f"known values: {', '.join(map(str, col['categories'][:20]))}")
            blocks.append(np.eye(len(col["categories"]), dtype=np.float32)[index])
            continue
        values = numbers(series, col)
        absent = np.isnan(values)
        x = np.where(absent, col["fill"], values)
        means, stds = np.array(col["means"]), np.array(col["stds"])
        logp = _log_joint(x, np.array(col["weights"]), means, stds ** 2)
        prob = np.exp(logp - logp.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        mode = (prob.cumsum(1) < rng.random((len(x), 1))).sum(1).clip(0, len(means) - 1)
        alpha = (x - means[mode]) / (4 * stds[mode])
        if col.get("public"):  # declared bounds: values outside them are clipped to them
            alpha = alpha.clip(-1, 1)
        blocks += [alpha[:, None].astype(np.float32), np.eye(len(means), dtype=np.float32)[mode]]
        if col["missing"]:
            blocks.append(np.eye(2, dtype=np.float32)[absent.astype(np.int64)])
    return np.concatenate(blocks, axis=1)


def _parse_dates(series):
    """Dates and times of a text column (NaT where a value is missing or is not one)."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": mixed formats are parsed one by one
        return pd.to_datetime(series, errors="coerce", format="mixed")


def _seconds(dates):
    """Seconds since 1970 of a datetime Series (NaN where missing), whatever its resolution."""
    import pandas as pd

    return (dates - pd.Timestamp(0)).dt.total_seconds()


def decode(x: Tensor | np.ndarray, meta: dict[str, Any]):
    """Encoded rows back to a pandas DataFrame with the original columns and dtypes: the arg-max of each one-hot
    block, values clipped to the training range, rounded to the column's decimals (integers to whole numbers)."""
    import pandas as pd

    x = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
    x = x.astype(np.float64)
    out, at = {}, 0
    for col in meta["columns"]:
        if col["type"] == "categorical":
            k = len(col["categories"])
            values = [col["categories"][i] for i in x[:, at:at + k].argmax(1)]
            at += k
            out[col["name"]] = _categorical_series(values, col)
            continue
        k = len(col["means"])
        alpha, mode = x[:, at], x[:, at + 1:at + 1 + k].argmax(1)
        at += 1 + k
        value = alpha * 4 * np.array(col["stds"])[mode] + np.array(col["means"])[mode]
        value = np.clip(value, col["min"], col["max"])
        if "step" in col:  # dates: whole days (or seconds), whatever float32 did to 1.6e9 seconds
            value = np.round(value / col["step"]) * col["step"]
        if col["decimals"] is not None:
            value = np.round(value, col["decimals"])
        if col["missing"]:
            value = np.where(x[:, at:at + 2].argmax(1) == 1, np.nan, value)
            at += 2
        out[col["name"]] = _numeric_series(value, col)
    return pd.DataFrame(out)


def _categorical_series(values: list, col: dict[str, Any]):
    import pandas as pd

    has_missing = any(v is None for v in values)
    if col["dtype"] == "int":
        return pd.Series(values, dtype="Int64" if has_missing else "int64")
    if col["dtype"] == "float":
        return pd.Series([np.nan if v is None else v for v in values], dtype="float64")
    if col["dtype"] == "bool":
        return pd.Series(values, dtype="boolean" if has_missing else "bool")
    return pd.Series(values, dtype=object).infer_objects()  # text as pandas reads it (str in pandas 3, else object)


def _numeric_series(value: np.ndarray, col: dict[str, Any]):
    import pandas as pd

    if col["dtype"] == "datetime":  # NaN rows stay out of the conversion (pandas may overflow on them)
        text = pd.Series([None] * len(value), dtype=object)
        present = ~np.isnan(value)
        text[present] = pd.Series(pd.to_datetime(value[present], unit="s")).dt.strftime(col["format"]).to_numpy()
        return text.infer_objects()
    if col["dtype"] == "int":
        return pd.Series(value, dtype="float64").round().astype("Int64" if np.isnan(value).any() else "int64")
    return pd.Series(value, dtype="float64")


def write_csv(path: Path | str, frame) -> None:
    """The frame as CSV (no index), written atomically; floats in their shortest exact form."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


# ----------------------------------------------------------------------------------------------- the dataset


@dataclass
class TableOptions:
    """What `data.*` says about a table (see DataConfig)."""

    categorical: tuple[str, ...] = ()
    discrete: tuple[str, ...] = ()
    conditional: tuple[str, ...] | None = None
    target: str | None = None
    holdout: float = 0.3
    split_seed: int = 0
    max_modes: int = 10
    public: dict[str, dict[str, Any]] | None = None  # declared column facts (read_public), instead of the data's


def table_from_frame(frame, options: TableOptions, source: str = "table", sha256: str | None = None) -> Dataset:
    """A table dataset of the training rows of `frame` (a pandas DataFrame); the held-out rows stay in `info`."""
    train, holdout = split(frame, options, source)
    for name in (*options.categorical, *options.discrete, *(options.conditional or ()),
                 *([options.target] if options.target else [])):
        if name not in frame.columns:
            raise UserError(f"{source}: no column '{name}'", f"the columns are: {', '.join(map(str, frame.columns))}")
    if options.public is not None:
        columns = public_columns(train, options.public)
        conditional: list[str] = []  # category frequencies would come from the data: unconditional under DP
    else:
        columns = [_column_meta(train[c], str(c), source, str(c) in options.categorical, str(c) in options.discrete,
                                options.max_modes) for c in train.columns]
        categorical = [c["name"] for c in columns if c["type"] == "categorical"]
        conditional = list(options.conditional) if options.conditional is not None else categorical
    for name in conditional:
        col = next(c for c in columns if c["name"] == name)
        if col["type"] != "categorical":
            raise UserError(f"data.conditional: column '{name}' is not categorical", "list categorical columns only")
        single = [c for c, n in zip(col["categories"], col["counts"]) if n == 1]
        if single:
            what = "a missing value" if single[0] is MISSING else f"category '{single[0]}'"
            raise UserError(f"{source}: column '{name}': {what} appears in one training row only, "
                            "so conditioning on it would replay that row",
                            "fill in or drop that row" if single[0] is MISSING else
                            "merge rare categories, or leave the column out of data.conditional")
    meta = {"columns": columns, "conditional": conditional, "rows": len(train), "source": Path(source).name,
            "sha256": sha256, "target": options.target, "holdout": options.holdout, "split_seed": options.split_seed,
            "sampling": "poisson" if options.public is not None else "by_condition"}
    x = torch.from_numpy(encode(train, meta, options.split_seed))
    return Dataset(name="table", kind="table", x=x, info={"table": meta, "frame": train, "holdout": holdout})


def read_public(path: str) -> dict[str, dict[str, Any]]:
    """The public column facts of a JSON file: {"columns": {name: {"min": .., "max": ..} or {"categories": [..]}}}."""
    file = Path(path)
    try:
        facts = json.loads(file.read_text(encoding="utf-8"))["columns"]
    except FileNotFoundError:
        raise UserError(f"data.public={path}: no such file", "write the public column facts as JSON "
                        "(docs/tabular.md#differential-privacy)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"data.public={path}: not a JSON object with 'columns' ({exc})",
                        'expected {"columns": {"age": {"min": 0, "max": 120}, "city": {"categories": [...]}}}') from None
    return facts


def public_columns(train, facts: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Column specs from declared public facts, not from the rows: numbers get one mode spanning their bounds (so
    α stays in [-1, 1]), categories their declared list; missing-value flags on every number column. Only the
    column names and pandas dtypes (the schema) are read from the data."""
    missing = [c for c in train.columns if c not in facts]
    if missing:
        raise UserError(f"data.public: no facts for column(s) {', '.join(missing)}",
                        'give each column {"min": .., "max": ..} (numbers, dates) or {"categories": [...]}')
    columns = []
    for name in train.columns:
        fact, series = facts[name], train[name]
        col: dict[str, Any] = {"name": name, "public": True}
        if "categories" in fact:
            kind = series.dtype.kind
            dtype = "bool" if kind == "b" else "int" if kind in "iu" else "float" if kind == "f" else "str"
            col.update(type="categorical", dtype=dtype, missing=False, counts=None,
                       categories=list(fact["categories"]) + ([None] if fact.get("missing") else []))
        elif "min" in fact and "max" in fact:
            lo, hi = fact["min"], fact["max"]
            if isinstance(lo, str):  # dates
                import pandas as pd

                lo, hi = (_seconds(pd.Series(pd.to_datetime([v]))).iloc[0] for v in (lo, hi))
                col.update(dtype="datetime", format=fact.get("format", "%Y-%m-%d"), step=fact.get("step", 86400))
            else:
                col["dtype"] = "int" if series.dtype.kind in "iu" or fact.get("integer") else "float"
            if not hi > lo:
                raise UserError(f"data.public: column '{name}' has max {fact['max']} not above min {fact['min']}")
            col.update(type="continuous", means=[(lo + hi) / 2], stds=[(hi - lo) / 8], weights=[1.0], min=float(lo),
                       max=float(hi), fill=(lo + hi) / 2, missing=bool(fact.get("missing", True)),
                       decimals=0 if col["dtype"] in ("int", "datetime") else fact.get("decimals"))
        else:
            raise UserError(f"data.public: column '{name}' needs min and max, or categories")
        columns.append(col)
    return columns


def split(frame, options: TableOptions, source: str):
    """(training rows, held-out rows): a seeded split, stratified by the target column when it names categories."""
    from sklearn.model_selection import train_test_split

    frame = frame.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    if options.holdout == 0:
        return frame, frame.iloc[:0]
    strata = None
    if options.target is not None:
        if options.target not in frame.columns:
            raise UserError(f"data.target: {source} has no column '{options.target}'",
                            f"the columns are: {', '.join(frame.columns)}")
        y = frame[options.target]
        if y.dtype.kind in "Ob" or y.nunique() <= FEW_VALUES:
            # a missing target is a class of its own, labelled "nan" as pandas < 3 wrote it (the same split then)
            strata = y.astype(object).where(y.notna(), "nan").astype(str)
            rare = strata.value_counts()
            if y.isna().sum() == 1:
                row = int(np.flatnonzero(y.isna())[0]) + 1
                raise UserError(f"data.target: data row {row} of {source} has no value in column "
                                f"'{options.target}'", "fill it in or drop that row")
            if rare.min() < 2:
                raise UserError(f"data.target: class '{rare.idxmin()}' of column '{options.target}' has one row, too "
                                "few to hold one out", "drop that row or merge the class")
    train, holdout = train_test_split(frame, test_size=options.holdout, random_state=options.split_seed,
                                      stratify=strata)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def table_dataset(path: str | None, options: TableOptions) -> Dataset:
    """The table in the CSV file `path` (see table_from_frame)."""
    if not path:
        raise UserError("data.name=table needs data.path", "give data.path=FILE.csv")
    file = Path(path)
    return table_from_frame(_read_csv(file), options, str(file), _file_sha256(file))


def table_rows(path: str, options: TableOptions, meta: dict[str, Any]):
    """(training rows, held-out rows) of the CSV a model was trained on, after checking the file is unchanged."""
    check_source(meta, path)
    return split(_read_csv(Path(path)), options, path)


def check_source(meta: dict[str, Any], path: str | None) -> None:
    """Raise when the CSV a model was trained on changed since (its rows are what utility and privacy compare to)."""
    if path is None or meta.get("sha256") is None:
        return
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: the table this model was trained on is gone", "put it back to measure the model")
    if _file_sha256(file) != meta["sha256"]:
        raise UserError(f"{file} changed since the model was trained on it",
                        "restore the original file: utility and privacy compare with the training rows")


# ----------------------------------------------------------------------------------------------- sampling


@dataclass
class TableBatch(Batch):
    """Rows `x` (encoded) with the condition vector `cond` they were drawn for (None when no column conditions)."""

    cond: Tensor | None = None


class TableSampler(BatchSampler):
    """Training by sampling: per row a conditional column uniformly, one of its categories ∝ log(1 + count), and a
    real row with that category. Each batch is a pure function of (seed, batches served), so resuming is exact."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device | str = "cpu") -> None:
        super().__init__(dataset, batch_size, seed, device)
        meta = dataset.info["table"]
        self.layout = condition_layout(meta)
        if not self.layout:
            return
        x = dataset.x
        self.cond_dim = condition_dim(meta)
        width = max(p["size"] for p in self.layout)
        logf = torch.zeros(len(self.layout), width)
        groups, starts, counts = [], [], []
        offset = 0
        for j, part in enumerate(self.layout):
            code = x[:, part["start"]:part["start"] + part["size"]].argmax(1)
            c = torch.bincount(code, minlength=part["size"])
            logf[j, :part["size"]] = torch.log1p(c.double()).float() * (c > 0)
            order = torch.argsort(code, stable=True)
            groups.append(order)
            starts.append(offset + torch.cumsum(c, 0) - c)
            counts.append(c)
            offset += len(x)
        self.prob = logf
        self.rows = torch.cat(groups)
        self.group_start = torch.nn.utils.rnn.pad_sequence(starts, batch_first=True)
        self.group_count = torch.nn.utils.rnn.pad_sequence(counts, batch_first=True)
        self.cond_start = torch.tensor([p["cond_start"] for p in self.layout])

    def next(self) -> TableBatch:
        if self.dataset.info["table"].get("sampling") == "poisson":
            return TableBatch(x=self.dataset.x[self.poisson()].to(self.device))
        if not self.layout:
            return TableBatch(x=self.dataset.x[self.shard.part(self.indices())].to(self.device))
        g = self._batch_generator()
        n = self.batch_size
        column = torch.randint(len(self.layout), (n,), generator=g)
        category = torch.multinomial(self.prob[column], 1, generator=g).squeeze(1)
        pick = (torch.rand(n, generator=g) * self.group_count[column, category]).long()
        rows = self.rows[self.group_start[column, category] + pick]
        cond = torch.zeros(n, self.cond_dim)
        cond[torch.arange(n), self.cond_start[column] + category] = 1
        rows, cond = self.shard.part(rows), self.shard.part(cond)
        return TableBatch(x=self.dataset.x[rows].to(self.device), cond=cond.to(self.device))

    def poisson(self) -> Tensor:
        """Rows each drawn independently with probability batch_size / rows (Poisson sampling, which the privacy
        accountant assumes): a batch of varying size."""
        g = self._batch_generator()
        n = len(self.dataset)
        return (torch.rand(n, generator=g) < self.batch_size / n).nonzero().flatten()

    def _batch_generator(self) -> torch.Generator:
        """The random stream of the next batch, a function of (seed, rows served); advances the cursor."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.cursor)
        self.cursor += self.batch_size
        return g


# ----------------------------------------------------------------------------------------------- the kind

MARGINAL_PLOTS = 16  # columns shown in a progress picture


@register_kind("table")
class TableKind(DataKind):
    """Rows of a table: progress pictures compare each column's distribution with the training rows'; samples are
    written as CSV in the original columns and dtypes, with a provenance sidecar (FILE.csv.provenance.json)."""

    fixed_count = 1000
    outputs = (".csv",)
    usage = "gankit sample {run} -n 1000 --out synthetic.csv"
    metrics = ("table_utility", "table_privacy")

    def sampler(self, dataset: Dataset, batch_size: int, seed: int, device: torch.device) -> BatchSampler:
        return TableSampler(dataset, batch_size, seed, device)

    def describe(self, x: Tensor, spec: dict) -> str:
        return f"{len(x)} rows of {len(spec['table']['columns'])} columns"

    def sample_shape(self, spec: dict) -> str:
        return f"{len(spec['table']['columns'])} columns"

    def save_progress(self, path: Path, fake: Tensor, dataset: Dataset, title: str, meta: dict[str, Any]) -> None:
        plot_marginals(path, decode(fake, dataset.info["table"]), dataset.info["frame"], title, meta)

    def write_other(self, fmt: str, path: Path, x: Tensor, spec: dict, *, nrow: int | None,
                    cells: list[int] | None = None, meta: dict[str, Any],
                    items: list[dict[str, Any]] | None = None) -> None:
        write_csv(path, decode(x, spec["table"]))
        write_json(provenance_path(path), provenance(**meta))

    def read_condition(self, items: list[str], spec: dict) -> Tensor:
        """`column=value` (one) as the condition vector (cond_dim,) of a conditional table model."""
        meta = spec["table"]
        layout = {part["name"]: part for part in condition_layout(meta)}
        if len(items) != 1 or "=" not in items[0]:
            raise UserError("--condition takes one COLUMN=VALUE", f"conditional columns: {', '.join(layout) or 'none'}")
        name, _, text = items[0].partition("=")
        if name not in layout:
            raise UserError(f"--condition {items[0]}: '{name}' is not a column the model is conditioned on",
                            f"conditional columns: {', '.join(layout) or 'none'}")
        col = next(c for c in meta["columns"] if c["name"] == name)
        names = ["" if c is None else str(c) for c in col["categories"]]
        if text not in names:
            raise UserError(f"--condition {items[0]}: column '{name}' has no value '{text}'",
                            f"its values: {', '.join(names[:30])}")
        cond = torch.zeros(condition_dim(meta))
        cond[layout[name]["cond_start"] + names.index(text)] = 1
        return cond


def plot_marginals(path: Path, fake, real, title: str, meta: dict[str, Any]) -> None:
    """Histograms (numbers) and bar pairs (categories) of generated vs real rows, one panel per column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numeric = {name: real[name].dtype.kind in "fiu" and real[name].nunique() > FEW_VALUES for name in real.columns}
    columns = sorted(real.columns, key=lambda name: numeric[name])[:MARGINAL_PLOTS]  # categories (a target) first
    cols = min(4, len(columns))
    rows = math.ceil(len(columns) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2 * rows + 0.4), dpi=80, squeeze=False)
    for ax, name in zip(axes.flat, columns):
        r, f = real[name], fake[name]
        if numeric[name]:
            edges = np.histogram_bin_edges(r.dropna().to_numpy(dtype=float), bins=20)
            ax.stairs(np.histogram(r.dropna().to_numpy(dtype=float), edges, density=True)[0], edges, fill=True,
                      color="#9aa5b1", label="real")
            drawn = f.dropna().to_numpy(dtype=float)
            if len(drawn):
                ax.stairs(np.histogram(drawn, edges)[0] / len(drawn) / np.diff(edges), edges, color="#d9480f", lw=1.5,
                          label="generated")
        else:
            rs, fs = r.astype(str).value_counts(normalize=True), f.astype(str).value_counts(normalize=True)
            cats = list(rs.index[:10])
            at = np.arange(len(cats))
            ax.bar(at - 0.2, [rs.get(c, 0) for c in cats], 0.4, color="#9aa5b1", label="real")
            ax.bar(at + 0.2, [fs.get(c, 0) for c in cats], 0.4, color="#d9480f", label="generated")
            ax.set_xticks(at, [c[:8] for c in cats], fontsize=6)
        ax.set_title(name[:30], fontsize=8)
        ax.tick_params(labelsize=6)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.98, bottom=0.08, top=1 - 0.5 / (2 * rows + 0.4), hspace=0.6, wspace=0.15)
    save_figure(path, fig, tight=False, **meta)
