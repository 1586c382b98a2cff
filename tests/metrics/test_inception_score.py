"""inception_score against closed-form cases and a naive Improved-GAN-style implementation."""

import numpy as np
import pytest
import torch

from gankit.errors import UserError
from gankit.metrics import inception_score
from gankit.metrics.inception_score import InceptionScoreStream


def naive_inception_score(probs, splits):
    """The Improved-GAN recipe written out: per contiguous split, exp(mean_x Σ_y p log(p / p(y)))."""
    n = len(probs)
    scores = []
    for i in range(splits):
        part = probs[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0)
        kls = [sum(p[c] * np.log(p[c] / marginal[c]) for c in range(len(p))) for p in part]
        scores.append(np.exp(np.mean(kls)))
    return np.mean(scores), np.std(scores)


def test_uniform_predictions_score_one():
    assert inception_score(np.full((100, 10), 0.1)) == pytest.approx((1.0, 0.0), abs=1e-12)
    assert inception_score(np.zeros((100, 10)), probs=False) == pytest.approx((1.0, 0.0), abs=1e-12)


def test_one_hot_spread_over_k_classes_scores_k():
    classes = 7
    one_hot = np.eye(classes)[np.arange(700) % classes]  # every split of 70 rows holds each class 10 times
    mean, std = inception_score(one_hot, splits=10)
    assert mean == pytest.approx(classes, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_matches_naive_implementation_for_logits_and_probabilities():
    logits = np.random.default_rng(0).standard_normal((200, 12)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = naive_inception_score(probs, splits=4)
    assert expected[0] > 1.5 and expected[1] > 0.0  # a non-trivial case
    assert inception_score(logits, splits=4) == pytest.approx(expected, rel=1e-10)
    assert inception_score(probs, splits=4) == pytest.approx(expected, rel=1e-10)  # detected as probabilities
    assert inception_score(torch.from_numpy(logits).float(), splits=4) == pytest.approx(expected, rel=1e-5)


def test_explicit_probs_flag():
    probs = np.full((20, 4), 0.25)
    # Read as logits, equal values are again uniform; a non-probability under probs=True is refused.
    assert inception_score(probs, splits=2, probs=False) == pytest.approx((1.0, 0.0))
    with pytest.raises(UserError, match="probs=True"):
        inception_score(probs * 2, splits=2, probs=True)


def test_too_many_splits_is_a_user_error():
    with pytest.raises(UserError, match="splits=10 with 5 samples"):
        inception_score(np.full((5, 3), 1 / 3))


@pytest.mark.parametrize(("n", "splits", "batch"), [(200, 4, 7), (1797, 10, 256), (13, 10, 1), (57, 1, 100)])
def test_stream_equals_the_score_of_all_rows_at_once(n, splits, batch):
    logits = np.random.default_rng(n).standard_normal((n, 12)) * 3
    stream = InceptionScoreStream(n, splits)
    for start in range(0, n, batch):  # batches that straddle split boundaries
        stream.update(torch.from_numpy(logits[start : start + batch]))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert stream.result() == pytest.approx(naive_inception_score(probs, splits), rel=1e-10, abs=1e-12)


def test_stream_wants_exactly_the_announced_rows():
    stream = InceptionScoreStream(10, splits=2)
    stream.update(np.zeros((6, 3)))
    with pytest.raises(UserError, match="6 of the 10"):
        stream.result()
    with pytest.raises(UserError, match="more than the 10"):
        stream.update(np.zeros((5, 3)))
    with pytest.raises(UserError, match="splits=10 with 5 samples"):
        InceptionScoreStream(5, splits=10)


@pytest.mark.parametrize(("n", "splits", "cuts"), [(200, 4, [0, 37, 120, 200]), (13, 10, [0, 6, 13])])
def test_parts_fed_by_several_processes_merge_into_the_score_of_all(n, splits, cuts):
    logits = np.random.default_rng(n).standard_normal((n, 5)) * 3
    whole = InceptionScoreStream(n, splits)
    whole.update(logits)
    merged = InceptionScoreStream(n, splits)
    for lo, hi in zip(cuts, cuts[1:]):  # each part straddles split boundaries and starts mid-split
        part = InceptionScoreStream(n, splits, start=lo)
        part.update(logits[lo:hi])
        merged.merge(part.state())
    assert merged.result() == pytest.approx(whole.result(), rel=1e-12)
    short = InceptionScoreStream(n, splits)
    short.merge(part.state())  # the last part alone: not every row was added
    with pytest.raises(UserError, match=f"{n - cuts[-2]} of the {n}"):
        short.result()
