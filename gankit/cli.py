"""The `gankit` command line: train, sample, interpolate, eval, fid, info, doctor, presets, variants.

User mistakes print one `error: ...` line (plus a hint) and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import config as config_mod
from .errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, sample, evaluate and inspect GANs. `gankit COMMAND --help` for each command.")
out = Console()
err = Console(stderr=True, soft_wrap=True)


class _WarningHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        err.print(f"{prefix}{record.getMessage()}", markup=False, highlight=False)


def _setup_logging() -> None:
    logger = logging.getLogger("gankit")
    if not any(isinstance(h, _WarningHandler) for h in logger.handlers):
        logger.addHandler(_WarningHandler())
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / "model" / "config.json").is_file()


def _new_run_dir(out_dir: Optional[Path], name: str, force: bool) -> tuple[Path, Path | None]:
    """--out as given (refusing to mix two runs), or runs/NAME, runs/NAME-2, ...

    With --force an existing run is only moved aside (the second value); it is deleted once the new run has started,
    and put back if the new one cannot start, so a typo never costs the old run.
    """
    if out_dir is None:
        base = Path("runs") / name
        candidate, i = base, 1
        while candidate.exists():
            i += 1
            candidate = base.with_name(f"{name}-{i}")
        return candidate, None
    if out_dir.exists() and any(out_dir.iterdir()):
        if not _is_run(out_dir):
            raise UserError(f"{out_dir} exists and is not a gankit run", "choose another --out directory")
        if not force:
            raise UserError(f"{out_dir} already holds a run",
                            f"continue it with `gankit train --resume {out_dir}` or replace it with --force")
        aside = out_dir.with_name(f".{out_dir.name}.replaced-{os.getpid()}")
        os.replace(out_dir, aside)
        return out_dir, aside
    return out_dir, None


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".gankit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {path}: {exc.strerror or exc}", "choose a writable --out directory") from None


@app.command()
def train(
    target: Optional[str] = typer.Argument(None, help="Preset name (see `gankit presets`) or a YAML config file."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.steps=2000."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default: runs/NAME)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
) -> None:
    """Train a GAN from a preset or YAML file; `--resume RUN [key=value...]` continues (steps may be raised)."""
    from .train import Trainer
    from .variants import resolve

    if resume is not None:
        items = ([target] if target else []) + list(overrides or [])
        cfg_path = resume / "config.yaml"
        if not cfg_path.is_file():
            raise UserError(f"{resume} is not a run directory (no config.yaml)", "give the --out of an earlier run")
        cfg = resolve(str(cfg_path), items)[0]
        run_dir = resume
    else:
        if not target:
            raise UserError("give a preset or YAML file to train", "e.g. `gankit train ring8-gan`; list: gankit presets")
        cfg, name = resolve(target, list(overrides or []))
    replaced = None
    if resume is None:
        run_dir, replaced = _new_run_dir(out_dir, name, force)
    created = not run_dir.exists()
    try:
        _check_writable(run_dir)
        trainer = Trainer(cfg, run_dir, resume=resume is not None, progress=progress)
    except UserError:
        if created:  # bad data or model: leave no empty run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if replaced is not None:
            os.replace(replaced, run_dir)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    err.print(f"training {cfg.variant} on {cfg.data.name} for {cfg.train.steps} steps → {run_dir}", highlight=False)
    try:
        result = trainer.fit()
    except (MemoryError, RuntimeError) as exc:  # CPU and CUDA allocators report running out as RuntimeError
        if not isinstance(exc, MemoryError) and "memory" not in str(exc).lower():
            raise
        raise UserError(f"out of memory at step {trainer.step}: {str(exc).splitlines()[0][:200]}",
                        "lower train.batch_size or the model size; the last checkpoint is kept") from None
    _report_run(run_dir, result["step"])
    if result["interrupted_by"] is not None:
        err.print(f"stopped at step {result['step']}; resume with `gankit train --resume {run_dir}`")
        raise typer.Exit(128 + result["interrupted_by"])


def _report_run(run_dir: Path, step: int) -> None:
    from .report import plot_losses

    plot = plot_losses(run_dir)
    err.print(f"step {step} saved in {run_dir}:", highlight=False)
    err.print(f"  samples     {run_dir / 'samples' / f'step-{step}.png'}", highlight=False)
    if plot:
        err.print(f"  loss plot   {plot}", highlight=False)
    err.print(f"  checkpoint  {run_dir / 'checkpoints' / f'step-{step}'}", highlight=False)
    err.print(f"  model       {run_dir / 'model'}  (gankit sample {run_dir} -n 64 --out grid.png)", highlight=False)


@app.command()
def sample(
    run: Path = typer.Argument(..., help="Run directory."),
    n: int = typer.Option(64, "-n", help="Number of samples (with --input: one per input)."),
    out: str = typer.Option(..., "--out", "-o", help="FILE.png (grid or 2D scatter), DIR/ (one PNG each) or FILE.npz."),
    seed: int = typer.Option(0, "--seed", help="Noise seed: the same seed gives the same samples."),
    truncation: float = typer.Option(1.0, "--truncation", help="In (0, 1]; below 1 trades diversity for fidelity."),
    cls: Optional[str] = typer.Option(None, "--class", help="Class-conditional runs: a class index or name. "
                                      "Without it a PNG holds one row per class."),
    code: Optional[list[str]] = typer.Option(None, "--code", help="Runs with latent codes (InfoGAN): fix a code, "
                                             "e.g. --code c0=3."),
    vary: Optional[str] = typer.Option(None, "--vary", help="Runs with latent codes: a traversal grid sweeping this "
                                       "code (one column per value, one row per noise)."),
    inputs: Optional[Path] = typer.Option(None, "--input", help="Models that transform inputs (translators, "
                                          "upscalers): an image, a folder of images or an .npz; one sample each."),
) -> None:
    """Generate samples from a trained run."""
    from .train import load

    gen = load(run)
    kind = gen.data_kind
    fmt = kind.check_output(out)
    codes = _parse_codes(code or [])
    given = None
    if inputs is not None:
        gen.check_takes(inputs=True)
        given = kind.read_inputs(inputs, gen.spec)
    if given is None and (vary is not None or fmt == ".png"):
        x, nrow, labels = gen.grid(n, seed, truncation, labels=cls, codes=codes, vary=vary)
    else:
        count = len(given) if given is not None else n
        labels = gen.label_indices(cls, count) if cls is not None else None
        x = gen.sample(count, seed=seed, truncation=truncation, labels=labels, codes=codes, inputs=given)
        nrow = None
    meta = {"run": run.name, "seed": seed, "truncation": truncation, "class": cls, "codes": code, "vary": vary,
            "input": str(inputs) if inputs else None}
    kind.write(out, x, gen.spec, nrow=nrow, labels=labels, meta=meta)
    err.print(f"wrote {len(x)} samples {tuple(x.shape[1:])} to {out}", highlight=False)


def _parse_codes(items: list[str]) -> dict[str, float]:
    codes = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            codes[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UserError(f"--code {item!r} is not NAME=NUMBER", "e.g. --code c0=3 --code c1=0.5")
    return codes


@app.command()
def interpolate(
    run: Path = typer.Argument(..., help="Run directory."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.png (one row per pair) or FILE.gif (animated)."),
    steps: int = typer.Option(8, "--steps", min=2, help="Images from one end to the other."),
    rows: int = typer.Option(4, "--rows", min=1, help="Pairs of endpoints, one row each."),
    seed: int = typer.Option(0, "--seed", help="Seed of the endpoints."),
    cls: Optional[str] = typer.Option(None, "--class", help="Class-conditional runs: keep this class throughout."),
    truncation: float = typer.Option(1.0, "--truncation", help="In (0, 1]."),
) -> None:
    """Walk the latent space between random endpoints (spherical interpolation) as a grid or an animated GIF."""
    import torch

    from . import io
    from .train import load
    from .variants import slerp

    gen = load(run)
    if not gen.data_kind.images:
        raise UserError("interpolate needs an image model", "sample 2D models with `gankit sample`")
    if out.suffix.lower() not in (".png", ".gif"):
        raise UserError(f"--out {out}: unknown output type", "use FILE.png or FILE.gif")
    start, end = gen.latents(rows, seed, truncation), gen.latents(rows, seed + 1, truncation)
    labels = gen.label_indices(cls, rows) if cls is not None else None
    frames = [gen.generate(slerp(start, end, t), labels=labels, seed=seed) for t in torch.linspace(0, 1, steps).tolist()]
    meta = {"run": run.name, "seed": seed, "steps": steps, "class": cls}
    if out.suffix.lower() == ".png":
        io.save_grid(out, torch.stack(frames, dim=1).flatten(0, 1), nrow=steps,
                     scale=max(1, 64 // frames[0].shape[-1]), **meta)
    else:
        io.save_gif(out, [io.image_grid(f, nrow=rows) for f in frames + frames[-2:0:-1]],
                    scale=max(1, 128 // frames[0].shape[-1]), **meta)
    err.print(f"wrote {rows} interpolations of {steps} steps to {out}", highlight=False)


FEATURES_HELP = ("Feature extractor: inception (FID; needs --weights), digits or shapes (shipped classifiers) or raw "
                 "(pixels).")
WEIGHTS_HELP = "Extractor weights (.safetensors); inception default: $GANKIT_INCEPTION_WEIGHTS."


@app.command("eval")
def evaluate(
    run: Path = typer.Argument(..., help="Run directory."),
    features: Optional[str] = typer.Option(None, "--features", help=FEATURES_HELP + " Default: digits or shapes "
                                           "for those data, raw for other data."),
    weights: Optional[Path] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    n: Optional[int] = typer.Option(None, "-n", min=2, help="Generated samples (default: as many as the reference, "
                                    "at most 10,000; toy 2D data always uses PacGAN's 2,500)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    seed: int = typer.Option(0, "--seed", help="Seed of the generated samples."),
) -> None:
    """Measure a run: mode coverage for toy 2D data; FID, KID, IS, precision/recall, density/coverage of samples
    vs the training data otherwise. Written to RUN/metrics.json with the protocol."""
    from .io import write_json
    from .report import evaluate_run

    result = evaluate_run(run, seed=seed, features=features, weights=weights, n=n)
    write_json(run / "metrics.json", result)
    _print_metrics(str(run), result, as_json)
    if not as_json:
        err.print(f"wrote {run / 'metrics.json'}", highlight=False)


@app.command()
def fid(
    a: Path = typer.Argument(..., metavar="A", help="Reference set: image folder, .npz of samples or statistics, "
                             "or run directory."),
    b: Path = typer.Argument(..., metavar="B", help="Set to measure, of the same kinds as A."),
    features: str = typer.Option("inception", "--features", help=FEATURES_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    with_kid: bool = typer.Option(False, "--kid", help="Also the Kernel Inception Distance (needs samples)."),
    with_prdc: bool = typer.Option(False, "--prdc", help="Also precision/recall and density/coverage of B vs A."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics and protocol as one JSON object."),
    n: Optional[int] = typer.Option(None, "-n", min=2, help="Samples generated from a run (default: the other "
                                    "set's size, at most 10,000)."),
    seed: int = typer.Option(0, "--seed", help="Seed of generated samples and of KID's subsets."),
) -> None:
    """Fréchet distance between two sample sets (FID with Inception features), optionally KID and PRDC."""
    from .report.compare import compare_sets

    result = compare_sets(a, b, features=features, weights=weights, with_kid=with_kid, with_prdc=with_prdc, n=n,
                          seed=seed)
    _print_metrics(f"{a} vs {b}", result, as_json)


def _print_metrics(title: str, result: dict, as_json: bool) -> None:
    """One JSON object, or a table of the values followed by the protocol."""
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        if key != "protocol":
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
    out.print(f"protocol: {json.dumps(result['protocol'])}", highlight=False)


@app.command()
def info(run: Path = typer.Argument(..., help="Run directory.")) -> None:
    """Show a run's config, training progress and parameter counts."""
    from .report import run_info

    summary = run_info(run)
    out.print_json(json.dumps(summary))


@app.command()
def doctor(
    run: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as one JSON object."),
) -> None:
    """Find what went wrong in a run's logs: mode collapse, vanishing gradients, D/G imbalance, divergence...

    Each problem comes with its evidence (steps, numbers) and a cure. Exit code 0 whether or not any is found."""
    from .doctor import diagnose, print_report

    diagnosis = diagnose(run)
    if as_json:
        print(json.dumps(diagnosis.as_dict(), allow_nan=False))
    else:
        print_report(diagnosis, out)


@app.command()
def presets() -> None:
    """List the presets shipped with gankit."""
    table = Table(show_header=True)
    table.add_column("preset")
    table.add_column("description")
    for name, desc in config_mod.preset_descriptions().items():
        table.add_row(name, desc)
    out.print(table)


@app.command()
def variants() -> None:
    """List the GAN variants this installation knows: gankit's own and plug-ins (entry-point group gankit.variants),
    with what sampling them takes and their own config keys."""
    from .variants import VARIANTS, plugin_names

    table = Table(show_header=True)
    for column in ("variant", "what it is", "sampling takes", "own keys"):
        table.add_column(column)
    for name, cls in VARIANTS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        keys = ", ".join(f"{name}.{k}" for k in cls.Config.model_fields) or "-"
        table.add_row(name, doc, ", ".join(sorted(cls.sampling)), keys)
    for name in plugin_names():
        table.add_row(name, "plug-in (entry point; loaded when used)", "", "")
    out.print(table)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning UserError into `error: ...` plus a hint and exit code 2."""
    _setup_logging()
    try:
        app(args=argv)
    except UserError as exc:
        err.print(f"error: {exc.message}", markup=False, highlight=False)
        if exc.hint:
            err.print(f"hint: {exc.hint}", markup=False, highlight=False)
        sys.exit(exc.exit_code)
