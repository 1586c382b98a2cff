"""The table metrics against values worked out by hand: total variation, correlation difference, TSTR's test rows and
ratio, and the held-out yardstick of the privacy distances."""

import numpy as np
import pandas as pd
import pytest

from gankit.data import TableOptions, table_from_frame
from gankit.metrics.tabular import column_similarity, correlation_difference, privacy, tstr


def _meta(frame: pd.DataFrame) -> dict:
    return table_from_frame(frame, TableOptions(holdout=0, conditional=())).spec()["table"]


def test_category_similarity_is_one_minus_the_total_variation():
    real = pd.DataFrame({"a": np.arange(8.0), "c": ["x"] * 4 + ["y"] * 4})
    fake = pd.DataFrame({"a": np.arange(8.0), "c": ["x"] * 6 + ["y"] * 2})
    # p = (1/2, 1/2), q = (3/4, 1/4): TV = ½ (1/4 + 1/4) = 1/4
    assert column_similarity(real, fake, _meta(real))["c"] == pytest.approx(0.75)


def test_correlation_difference_averages_the_pairs_of_distinct_columns():
    x = np.linspace(0, 1, 50)
    real = pd.DataFrame({"a": x, "b": x, "c": x ** 3})
    fake = pd.DataFrame({"a": x, "b": -x, "c": x ** 3})
    corr = lambda f: f.corr().to_numpy()  # noqa: E731
    expected = np.abs(corr(real) - corr(fake))[np.triu_indices(3, 1)].mean()  # the diagonal (always 0) left out
    assert correlation_difference(real, fake, _meta(real)) == pytest.approx(expected)
    assert expected > 0.5


def test_tstr_scores_both_models_on_the_held_out_rows_and_the_ratio_is_synthetic_over_real():
    rng = np.random.default_rng(0)
    x = rng.normal(size=300)
    frame = pd.DataFrame({"x": x, "label": np.where(x > 0, "pos", "neg")})
    train, test = frame[:200], frame[200:]
    noise = pd.DataFrame({"x": rng.normal(size=200), "label": rng.choice(["pos", "neg"], 200)})  # no relation
    result = tstr(train, noise, test, _meta(train), "label")["linear"]
    assert result["f1_real"] > 0.95 and result["f1_synthetic"] < 0.75  # held-out rows: noise cannot score there
    assert result["ratio"] == pytest.approx(result["f1_synthetic"] / result["f1_real"])
    flipped = test.assign(label=np.where(test.x > 0, "neg", "pos"))  # held-out rows the training rows contradict
    assert tstr(train, noise, flipped, _meta(train), "label")["linear"]["f1_real"] < 0.1


def test_the_privacy_yardstick_measures_held_out_rows_against_the_training_rows():
    a = np.round(np.arange(40) * 0.1 + 0.01, 2)  # 40 distinct values: a continuous column, span 3.9
    train = pd.DataFrame({"a": a, "c": ["x", "y"] * 20})
    holdout = pd.DataFrame({"a": a + 0.05, "c": ["x", "y"] * 20})  # half a step from the training row of its kind
    synthetic = train.iloc[[0] * 40].reset_index(drop=True)  # one training row copied: far from most held-out rows
    figures = privacy(train, holdout, synthetic, _meta(train))
    assert figures["dcr_median"] == 0 and figures["exact_copies"] == 1.0
    # per held-out row: |0.05| / 3.9 in a, nothing in c, averaged over the two columns
    assert figures["dcr_holdout_median"] == pytest.approx(0.05 / 3.9 / 2)
