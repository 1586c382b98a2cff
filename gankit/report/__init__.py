"""Reports: loss plots, run evaluation and run summaries."""

from .evaluate import evaluate_run, run_info
from .plots import plot_losses

__all__ = ["evaluate_run", "plot_losses", "run_info"]
