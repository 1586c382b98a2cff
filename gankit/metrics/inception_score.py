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
    stream = InceptionScoreStream(len(preds), splits, probs)  # one pass: the same arithmetic eval streams
    stream.update(preds)
    return stream.result()


def _are_probabilities(preds: np.ndarray) -> bool:
    """Rows non-negative and summing to 1 (to float32 softmax round-off)."""
    return bool((preds >= 0).all() and np.allclose(preds.sum(axis=1), 1.0, rtol=0.0, atol=1e-4))


class InceptionScoreStream:
    """`inception_score(all n logits, splits)` from logits fed in order, batch by batch, in memory O(splits × classes)
    instead of O(n × classes): what lets `gankit eval` score 50,000 samples without keeping their logits.

    Per split it keeps the row count, Σ p (classes,) and Σ_rows Σ_y p log p, since the mean KL(p(y|x) || p(y)) of a
    split is mean_x Σ_y p log p − Σ_y p̄ log p̄ with p̄ = p(y) the split's mean prediction. Same value as
    inception_score up to float64 round-off (about 1e-15 relative).
    """

    def __init__(self, n: int, splits: int = 10, probs: bool = False, start: int = 0) -> None:
        """`start`: the index among all n rows of the first row this stream is fed (one process's part of the n;
        the parts' streams merge into the score of all n)."""
        if not 1 <= splits <= n:
            raise UserError(f"inception_score: splits={splits} with {n} samples", hint="use 1 <= splits <= samples")
        self.n, self.splits, self.probs = n, splits, probs
        self._seen = start
        self._rows = np.zeros(splits, dtype=np.int64)
        self._p_sum: np.ndarray | None = None  # (splits, classes)
        self._plogp_sum = np.zeros(splits)

    def update(self, logits_or_probs: Features) -> None:
        """Add the next rows (N, classes), in the order inception_score would see them."""
        preds = as_feature_matrix(logits_or_probs, "inception_score: logits_or_probs")
        if self.probs and not _are_probabilities(preds):
            raise UserError("inception_score: probs=True but some rows are negative or do not sum to 1",
                            hint="pass probs=False (or leave probs=None) for logits")
        if self._seen + len(preds) > self.n:
            raise UserError(f"inception_score: more than the {self.n} samples announced",
                            hint="create the stream with the total number of samples")
        if self._p_sum is None:
            self._p_sum = np.zeros((self.splits, preds.shape[1]))
        p = preds if self.probs else scipy.special.softmax(preds, axis=1)
        start = 0
        while start < len(p):
            row = self._seen + start
            split = row * self.splits // self.n  # the split holding global row `row` (they start at i·n // splits)
            while (split + 1) * self.n // self.splits <= row:  # integer rounding: step to the split that holds it
                split += 1
            stop = min(len(p), (split + 1) * self.n // self.splits - self._seen)
            part = p[start:stop]
            self._rows[split] += len(part)
            self._p_sum[split] += part.sum(axis=0)
            self._plogp_sum[split] += scipy.special.xlogy(part, part).sum()
            start = stop
        self._seen += len(preds)

    def state(self) -> dict[str, np.ndarray]:
        """The per-split sums as float64 arrays, what processes exchange to merge their parts (after the first
        update)."""
        if self._p_sum is None:
            raise ValueError("InceptionScoreStream.state: nothing was added yet")
        return {"rows": self._rows.astype(np.float64), "p_sum": self._p_sum.copy(), "plogp_sum": self._plogp_sum.copy()}

    def merge(self, state: dict[str, np.ndarray]) -> None:
        """Add another part's sums (its state()): the rows it saw count as seen here."""
        rows = np.asarray(state["rows"]).round().astype(np.int64)
        self._p_sum = (self._p_sum if self._p_sum is not None else 0) + np.asarray(state["p_sum"])
        self._rows += rows
        self._plogp_sum += np.asarray(state["plogp_sum"])

    def result(self) -> tuple[float, float]:
        """(mean, std) over the splits, as inception_score; every announced sample must have been added."""
        if int(self._rows.sum()) != self.n:
            raise UserError(f"inception_score: {int(self._rows.sum())} of the {self.n} samples announced were added",
                            hint="feed every sample before asking for the score")
        marginal = self._p_sum / self._rows[:, None]
        mean_kl = self._plogp_sum / self._rows - scipy.special.xlogy(marginal, marginal).sum(axis=1)
        scores = np.exp(mean_kl)
        return float(np.mean(scores)), float(np.std(scores))
