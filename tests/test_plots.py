"""RUN/losses.png: what each panel of the training plot draws."""

from __future__ import annotations

import json

import pytest

from gankit.train.plots import plot_losses


def test_each_panel_draws_its_keys_against_the_step_and_gradients_on_a_log_scale(tmp_path, monkeypatch):
    """Catches a panel fed another key's values, steps off the x axis, or gradient norms on a linear scale (they
    span orders of magnitude when a run diverges)."""
    import matplotlib.pyplot as plt

    records = [{"step": s, "d_loss": 1.0 + s, "g_loss": 2.0 + s, "d_real": 0.6, "d_fake": 0.4, "grad_norm_D": 10.0 ** s,
                "grad_norm_G": 0.1} for s in (1, 2, 3)]
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to read it back
    assert plot_losses(tmp_path) == tmp_path / "losses.png" and (tmp_path / "losses.png").is_file()
    axes = figures[0].axes
    assert [ax.get_title() for ax in axes] == ["losses", "mean D output", "gradient norm"]
    assert [ax.get_yscale() for ax in axes] == ["linear", "linear", "log"]
    for ax in axes:
        assert ax.get_xlabel() == "step"
        for line in ax.get_lines():
            key = line.get_label()
            assert list(line.get_xdata()) == [1, 2, 3]
            assert list(line.get_ydata()) == pytest.approx([r[key] for r in records]), key
    assert [[line.get_label() for line in ax.get_lines()] for ax in axes] == [
        ["d_loss", "g_loss"], ["d_real", "d_fake"], ["grad_norm_D", "grad_norm_G"]]


def test_nothing_is_written_before_the_first_log_line(tmp_path):
    assert plot_losses(tmp_path) is None and not (tmp_path / "losses.png").exists()
