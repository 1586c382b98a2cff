"""`gankit report`: one self-contained HTML page per run (images inline, no external URL): what was trained, the
samples over training, the curves, the metrics with their protocol, the doctor's verdict, and a model card."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

from ..doctor import diagnose
from ..io import GENERATED_NOTE, write_bytes
from ..train.plots import plot_losses
from .info import metric_rows, run_info, summary_lines

MAX_GRIDS = 6  # sample grids shown, spread over training

STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
.note{background:#fff6d5;border:1px solid #e6c200;padding:.6rem;border-radius:4px}
.ok{color:#176e2f} .problem{color:#a31515} table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:.25rem .5rem}
figure{display:inline-block;margin:.5rem;text-align:center} img{image-rendering:pixelated;max-width:100%}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;font-size:.85rem}
"""


def _img(path: Path, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    size = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{size}>'


def _step_of(path: Path) -> int:
    match = re.search(r"(\d+)", path.stem)
    return int(match.group(1)) if match else -1


def _grids(run_dir: Path) -> list[Path]:
    """Up to MAX_GRIDS progress grids, evenly spread over training, the last one always included."""
    grids = sorted((run_dir / "samples").glob("step-*.png"), key=_step_of)
    if len(grids) <= MAX_GRIDS:
        return grids
    picks = {round(i * (len(grids) - 1) / (MAX_GRIDS - 1)) for i in range(MAX_GRIDS)}
    return [grids[i] for i in sorted(picks)]


def _table(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _metrics(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "<p>No metrics yet: run <code>gankit eval RUN</code>, then <code>gankit report RUN</code> again.</p>"
    rows = [(k, f"{v:.4g}" if isinstance(v, float) else str(v)) for k, v in metric_rows(metrics)]
    protocol = json.dumps(metrics.get("protocol", {}), indent=2)
    return (_table(rows) + "<details><summary>Protocol (how each figure was measured)</summary>"
            f"<pre>{html.escape(protocol)}</pre></details>")


def _doctor(run_dir: Path) -> str:
    if not (run_dir / "logs.jsonl").is_file():
        return "<p>No training logs (an exported model folder): nothing to diagnose.</p>"
    d = diagnose(run_dir)
    if not d.problems:
        verdict = '<p class="ok">✓ No problems found in the logs'
        return verdict + ("" if d.judged else " (the run is too short for the trend checks)") + ".</p>"
    items = "".join(f'<li><b class="problem">{html.escape(p.kind)}</b>: {html.escape(p.evidence)}<br>'
                    f"<i>What to do:</i> {html.escape(p.advice)}</li>" for p in d.problems)
    return f"<ul>{items}</ul>"


def _model_card(info: dict[str, Any], spec_note: str) -> str:
    rows = [("Model", f"{info['variant']} ({info['nets']}), {info['loss']} loss, trained {info['step']} steps"),
            ("Data", spec_note),
            ("Intended use", "Research, teaching and prototyping with generative models; synthetic samples for "
                             "experiments where their provenance is kept."),
            ("Limitations", "Samples reproduce the training data's biases and gaps and can miss whole modes; the "
                            "metrics above are measured against the training data (or a held-out split where the "
                            "protocol says so), with the evaluator named there, and do not transfer to other data."),
            ("Generated content", GENERATED_NOTE + " Every image gankit writes is labelled so "
                                                   "(`gankit provenance FILE`).")]
    if info.get("watermark"):
        rows.append(("Watermark", f"Every image the generator draws carries an invisible mark (key fingerprint "
                                  f"{info['watermark']}); `gankit watermark FILES --run RUN` finds it."))
    return _table(rows)


def render_report(run_dir: str | Path) -> str:
    """The report of a run (or exported model folder) as one HTML string."""
    run_dir = Path(run_dir)
    info = run_info(run_dir)
    spec_note = f"{info['data']} ({info['kind']}, {info['sample']})"
    parts = [f"<h1>gankit run report: {html.escape(run_dir.name)}</h1>",
             f'<p class="note">{html.escape(GENERATED_NOTE)} Samples below are model outputs.</p>',
             "<h2>Summary</h2>", "<pre>" + html.escape("\n".join(summary_lines(info))) + "</pre>"]
    grids = _grids(run_dir)
    parts.append("<h2>Samples over training</h2>")
    parts.append("".join(f"<figure>{_img(g, g.stem, 256)}<figcaption>{html.escape(g.stem)}</figcaption></figure>"
                         for g in grids) or "<p>No sample grids in this folder.</p>")
    parts.append("<h2>Training curves</h2>")
    plot = run_dir / "losses.png"
    if not plot.is_file():  # a run trained with train.pictures=false: drawn now from its logs, if it has any
        plot_losses(run_dir)
    parts.append(_img(plot, "losses, D(x), D(G(z)) and gradient norms over training") if plot.is_file()
                 else "<p>No curves (no training logs in this folder).</p>")
    parts += ["<h2>Metrics</h2>", _metrics(info["metrics"]), "<h2>Doctor</h2>", _doctor(run_dir),
              "<h2>Model card</h2>", _model_card(info, spec_note),
              "<h2>Config</h2>", f"<pre>{html.escape(json.dumps(info['config'], indent=2, default=str))}</pre>"]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>gankit report: '
            f"{html.escape(run_dir.name)}</title><style>{STYLE}</style></head><body>{body}</body></html>\n")


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default RUN/report.html) atomically; returns its path."""
    path = Path(out) if out is not None else Path(run_dir) / "report.html"
    write_bytes(path, render_report(run_dir).encode())
    return path
