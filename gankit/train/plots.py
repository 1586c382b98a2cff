"""Matplotlib plots of a run's logs: losses, D outputs and gradient norms against steps (refreshed by the trainer
at every checkpoint)."""

from __future__ import annotations

import io as _io
from pathlib import Path

from PIL import Image

from ..io import plot_label, write_png
from ..variants import LogKeys
from .logging import read_logs, run_log_keys


GRADIENT_PANEL = "gradient norm"  # drawn on a log scale


def panels(keys: LogKeys) -> list[tuple[str, list[str]]]:
    """(title, log keys) of each panel, from the variant's declared log keys."""
    return [("losses", [keys.d_loss, keys.g_loss]), ("mean D output", [keys.d_real, keys.d_fake]),
            (GRADIENT_PANEL, [keys.grad_norm_d, keys.grad_norm_g])]


def plot_losses(run_dir: str | Path) -> Path | None:
    """Write RUN/losses.png from logs.jsonl (None when there is nothing logged yet)."""
    run_dir = Path(run_dir)
    records = read_logs(run_dir / "logs.jsonl")
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(title, [k for k in keys if any(k in r for r in records)]) for title, keys in panels(run_log_keys(run_dir))]
    shown = [(t, ks) for t, ks in shown if ks]
    if not shown:  # nothing plottable logged yet (e.g. the run diverged before its first log line)
        return None
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.2), dpi=100, squeeze=False)
    for ax, (title, keys) in zip(axes[0], shown):
        for key in keys:
            pts = [(r["step"], r[key]) for r in records if key in r]
            ax.plot(*zip(*pts), label=key, linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        if title == GRADIENT_PANEL:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(run_dir.name, fontsize=10)
    fig.tight_layout()
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    path = run_dir / "losses.png"
    write_png(path, Image.open(buf), plot_label("losses", run=run_dir.name))
    return path
