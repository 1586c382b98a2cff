"""Evaluation metrics: Fréchet distance, KID, IS, precision/recall, density/coverage, 2D mode coverage, and the
feature extractors (inception, digits, shapes, raw) they are computed on."""

from .features import EXTRACTORS, Evaluator, Extracted, load_evaluator, progress_bar
from .frechet import frechet_distance
from .inception_score import inception_score
from .kid import kid
from .modes2d import ModeReport, modes2d
from .prdc import density_coverage, precision_recall
from .registry import PROGRESS_METRICS, register_progress_metric
from . import sequences  # noqa: F401 - registers the sequences progress metric
from .stats import FeatureStats

__all__ = [
    "EXTRACTORS",
    "Evaluator",
    "Extracted",
    "FeatureStats",
    "density_coverage",
    "frechet_distance",
    "inception_score",
    "kid",
    "load_evaluator",
    "ModeReport",
    "modes2d",
    "precision_recall",
    "progress_bar",
    "PROGRESS_METRICS",
    "register_progress_metric",
]
