"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) from a classifier's predictions."""

from __future__ import annotations

import numpy as np
import scipy.special

from gankit.errors import UserError
from gankit.metrics.stats import Features, as_feature_matrix


def inception_score(logits_or_probs: Features, splits: int = 10, probs: bool | None = None) -> tuple[float, float]:
    """(mean, std) of the Inception Score over `splits` contiguous parts, as the Improved-GAN code computes it.

    `probs=None` detects probabilities (rows ≥ 0 summing to 1); anything else is treated as logits.
    """
    preds = as_feature_matrix(logits_or_probs, "inception_score: logits_or_probs")
    if probs is None:
        probs = _are_probabilities(preds)
    elif probs and not _are_probabilities(preds):
        raise UserError(
            "inception_score: probs=True but some rows are negative or do not sum to 1",
            hint="pass probs=False (or leave probs=None) for logits",
        )
    n = len(preds)
    if not 1 <= splits <= n:
        raise UserError(f"inception_score: splits={splits} with {n} samples", hint="use 1 <= splits <= samples")
    p_y_given_x = preds if probs else scipy.special.softmax(preds, axis=1)  # (N, C)
    scores = []
    for i in range(splits):
        part = p_y_given_x[i * n // splits : (i + 1) * n // splits]
        p_y = part.mean(axis=0, keepdims=True)  # marginal label distribution of this split, (1, C)
        # rel_entr(p, q) = p log(p / q) and 0 where p = 0, so one-hot rows give 0 instead of 0 · log 0 = nan.
        mean_kl = scipy.special.rel_entr(part, p_y).sum(axis=1).mean()
        scores.append(np.exp(mean_kl))
    return float(np.mean(scores)), float(np.std(scores))


def _are_probabilities(preds: np.ndarray) -> bool:
    """Rows non-negative and summing to 1 (to float32 softmax round-off)."""
    return bool((preds >= 0).all() and np.allclose(preds.sum(axis=1), 1.0, rtol=0.0, atol=1e-4))
