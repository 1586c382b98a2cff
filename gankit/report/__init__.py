"""Reports: run evaluation (a metric registry by data kind), set comparison (`gankit fid`), run summaries, plots."""

from .compare import compare_sets
from .evaluate import RUN_METRICS, RunEval, evaluate_run, register_run_metric
from .info import run_info
from . import video  # noqa: F401 - registers the clip metrics
from ..train.plots import plot_losses

__all__ = ["RUN_METRICS", "RunEval", "compare_sets", "evaluate_run", "plot_losses", "register_run_metric", "run_info"]
