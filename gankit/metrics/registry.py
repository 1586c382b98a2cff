"""Metrics the trainer logs beside its progress pictures, by name; a data kind names the one it wants.

A progress metric maps (fixed samples, data spec) to a log record (with an "event" key) and a short summary for the
picture's title, or None when the data does not allow it (e.g. no known modes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

ProgressMetric = Callable[[Tensor, dict], "tuple[dict[str, Any], str] | None"]
PROGRESS_METRICS: dict[str, ProgressMetric] = {}


def register_progress_metric(name: str) -> Callable[[ProgressMetric], ProgressMetric]:
    def add(fn: ProgressMetric) -> ProgressMetric:
        PROGRESS_METRICS[name] = fn
        return fn

    return add
