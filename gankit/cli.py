"""The `gankit` command line: train, sample, interpolate, translate, upscale, reconstruct, invert, edit, directions,
score, explain, serve, eval, fid, info, report, provenance, doctor, export, weights, presets, variants.

User mistakes print one `error: ...` line (plus a hint) and exit 2; bugs keep their traceback.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

try:  # typer >= 0.28 has its own command-line errors; older typer raises click's
    from typer.exceptions import TyperException as CommandLineError
except ImportError:  # typer < 0.28 (what Flower pins): the same errors are click's
    from click.exceptions import ClickException as CommandLineError
from rich.console import Console
from rich.table import Table

from . import config as config_mod
from .errors import UserError

if TYPE_CHECKING:
    from torch import Tensor

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train, sample, evaluate and inspect GANs. `gankit COMMAND --help` for each command.",
                  epilog="Example: gankit train digits-dcgan --out runs/digits, then gankit sample runs/digits -n 64 "
                         "--out grid.png")


def _version(value: bool) -> None:
    if value:
        from .version import __version__

        print(f"gankit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print gankit's version and exit.")) -> None:
    """Train, sample, evaluate and inspect GANs. `gankit COMMAND --help` for each command."""


def _examples(*lines: str) -> str:
    """A help epilog listing example command lines (one per line in the rendered help)."""
    return "Examples:\n\n" + "\n\n".join(f"  {line}" for line in lines)
SEED = {"min": 0, "max": config_mod.MAX_SEED}  # every --seed option's range
out = Console(markup=False)  # paths and JSON are printed as they are, never read as rich markup
err = Console(stderr=True, soft_wrap=True, markup=False)


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
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out {out_dir} is a file, and a run is a directory", "choose another --out directory")
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


_WROTE: ContextVar[list[str] | None] = ContextVar("gankit_cli_wrote", default=None)


@contextlib.contextmanager
def _writing(*outputs: str | Path) -> Iterator[None]:
    """gankit.io.outputs_together, and the lines given to `_wrote` inside the block printed once the outputs are in
    place: a command never says it wrote files that a failure then removed."""
    from .io import outputs_together

    if _WROTE.get() is not None:  # nested: the outermost block prints
        with outputs_together(*outputs):
            yield
        return
    lines: list[str] = []
    token = _WROTE.set(lines)
    try:
        with outputs_together(*outputs):
            yield
    finally:
        _WROTE.reset(token)
    for line in lines:
        err.print(line, highlight=False)


def _wrote(message: str) -> None:
    """Say what a command wrote: now, or inside a `_writing` block once its outputs are in place."""
    lines = _WROTE.get()
    if lines is None:
        err.print(message, highlight=False)
    else:
        lines.append(message)


def _outputs_together(*params: str):
    """A command whose output files (the paths its options `params` name, and the files that go with them) appear
    together when it ends, or none of them (`_writing`): a failure part-way leaves no half-written set of outputs,
    and no line saying they were written."""
    def wrap(command):
        @functools.wraps(command)
        def run(**kwargs):
            with _writing(*(kwargs[p] for p in params if isinstance(kwargs.get(p), (str, Path)))):
                return command(**kwargs)
        return run
    return wrap


def _check_files(*paths: Path | None) -> None:
    """Refuse, before any work, an output file whose path is an existing folder."""
    for path in paths:
        if path is not None and Path(path).is_dir():
            raise UserError(f"cannot write {path}: it is a folder", "give a file name, or move the folder away")


def _check_not_among_inputs(inputs: Path, *outs: Path | str | None) -> None:
    """Refuse, before any work, an output that would replace an input or land in the input folder (where real images
    would be overwritten, or generated ones read as inputs the next time)."""
    source = inputs.resolve()
    for out in outs:
        if out is None:
            continue
        target = Path(out).resolve()
        if inputs.is_dir() and (target == source or source in target.parents):
            raise UserError(f"--out {out} lies in the input folder {inputs}: generated files would replace real "
                            "ones there, or be read as inputs the next time", "give an --out outside that folder")
        if target == source:
            raise UserError(f"--out {out} is the input file itself: it would be overwritten", "give another --out")


@app.command(epilog=_examples("gankit train ring8-gan train.steps=2000 seed=0 --out runs/ring",
                              "gankit train digits-cgan cgan.cond=concat optim.lr_d=1e-4",
                              "gankit train --resume runs/ring train.steps=5000",
                              "gankit train digits-dcgan --nproc 2 --out runs/dp"))
def train(
    target: Optional[str] = typer.Argument(None, help="Preset name (see `gankit presets`) or a YAML config file."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.steps=2000."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default: runs/NAME)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
    force: bool = typer.Option(False, "--force", help="Replace an existing run in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine, each training on its part of "
                              "every batch (starts torchrun; see docs/scaling.md)."),
) -> None:
    """Train a GAN from a preset or YAML file; `--resume RUN \\[key=value...]` continues (steps may be raised)."""
    from .train import distributed, list_checkpoints, make_trainer, resolve_device
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
    if nproc > 1 and cfg.federated.clients:
        raise UserError("federated.clients simulates every client in one process", "drop --nproc")
    if nproc > 1 and not distributed.launched():  # the workers get the run directory chosen here, so a
        # restarted worker finds the run to continue
        out_dir = out_dir or (None if resume else _new_run_dir(None, name, False)[0])
        args = [a for a in [target, *(overrides or [])] if a]
        args += ["--out", str(out_dir)] if out_dir else []
        args += ["--resume", str(resume)] if resume else []
        args += ["--force"] if force else []
        args += [] if progress else ["--no-progress"]
        raise typer.Exit(_torchrun(nproc, ["train", *args]))
    shard, _ = distributed.setup(resolve_device(cfg.train.device))  # one of one without torchrun
    main = shard.rank == 0
    if resume is None and distributed.restarted() and out_dir is not None and _launched_here(out_dir):
        # torchrun restarted this job's workers after a failure: continue the run they were writing
        if list_checkpoints(out_dir):
            resume, run_dir = out_dir, out_dir
        elif main:
            shutil.rmtree(out_dir)  # it never reached a checkpoint: start it again
        distributed.barrier(shard)
    replaced = created = None
    if resume is None:
        if main:
            run_dir, replaced = _new_run_dir(out_dir, name, force)
            created = not run_dir.exists()
            _check_writable(run_dir)
        run_dir = Path(distributed.broadcast_text(str(run_dir) if main else "", shard))
    try:
        trainer = make_trainer(cfg, run_dir, resume=resume is not None, progress=progress)
    except UserError:
        if created:  # bad data or model: leave no empty run directory behind
            shutil.rmtree(run_dir, ignore_errors=True)
        if replaced is not None:
            os.replace(replaced, run_dir)
        raise
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    if main:
        processes = f" in {shard.world} processes" if shard.world > 1 else ""
        t = cfg.train
        starts = f", from the best of {t.restarts} starts of {t.restart_steps} steps (train.restarts)" \
            if trainer.choosing else ""
        err.print(f"training {cfg.variant} on {cfg.data.name} for {t.steps} steps{processes}{starts} → {run_dir}",
                  highlight=False)
    try:
        result = trainer.fit()
    except (MemoryError, RuntimeError) as exc:  # CPU and CUDA allocators report running out as RuntimeError
        if not _out_of_memory(exc):
            raise
        raise UserError(f"out of memory at step {trainer.step}: {str(exc).splitlines()[0][:200]}",
                        "lower train.batch_size or the model size; the last checkpoint is kept") from None
    distributed.finish()
    if main and cfg.model.members > 1:  # one report per model: the members' own runs get theirs
        err.print(f"step {result['step']} saved in {run_dir}: {cfg.model.members} members; `gankit split {run_dir} "
                  "--out DIR` writes one run per member to sample, evaluate or report on", highlight=False)
    elif main:
        try:
            _report_run(run_dir, result["step"], trainer.kind.usage.format(run=run_dir))
        except UserError:
            if result["interrupted_by"] is None:
                raise  # stopped before there was anything to report on (no log record or model yet): say how to resume
    if result["interrupted_by"] is not None:
        if main:
            err.print(f"stopped at step {result['step']}; resume with `gankit train --resume {run_dir}`")
        raise typer.Exit(128 + result["interrupted_by"])


def _torchrun(nproc: int, args: list[str]) -> int:
    """`gankit COMMAND --nproc N ...` as torchrun on this machine running `gankit *args`; returns torchrun's exit
    code."""
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "gankit", *args]
    torchrun = subprocess.Popen(command)
    # Ctrl-C reaches torchrun and the workers from the terminal already; a SIGTERM sent to this process is passed
    # on, and torchrun's workers then checkpoint and stop
    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, lambda signum, frame: torchrun.send_signal(signum))}
    try:
        code = torchrun.wait()
        return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _launched_here(run_dir: Path) -> bool:
    """Whether `run_dir` is the run this torchrun job started (its run.json names the job)."""
    from .train import distributed

    try:
        sessions = json.loads((run_dir / "run.json").read_text()).get("sessions") or [{}]
    except (OSError, ValueError, AttributeError):
        return False
    return sessions[-1].get("launch") == distributed.launch_id()


def _report_run(run_dir: Path, step: int, use: str) -> None:
    from .report.html import write_report

    report = write_report(run_dir)
    plot = run_dir / "losses.png" if (run_dir / "losses.png").is_file() else None
    err.print(f"step {step} saved in {run_dir}:", highlight=False)
    err.print(f"  samples     {run_dir / 'samples' / f'step-{step}.png'}", highlight=False)
    if plot:
        err.print(f"  loss plot   {plot}", highlight=False)
    err.print(f"  checkpoint  {run_dir / 'checkpoints' / f'step-{step}'}", highlight=False)
    err.print(f"  model       {run_dir / 'model'}  ({use})", highlight=False)
    err.print(f"  report      {report}  (after `gankit eval`, `gankit report {run_dir}` adds the metrics)",
              highlight=False)


@app.command(epilog=_examples("gankit sample runs/digits -n 64 --out grid.png --seed 3",
                              "gankit sample runs/ring -n 1000 --out ring.npz",
                              "gankit sample runs/cgan --class 7 --truncation 0.5 --out sevens.png",
                              "gankit sample runs/info --code c0=3 --vary c1 --out c1.png",
                              "gankit sample runs/table -n 1000 --out synthetic.csv --condition target=1",
                              'gankit sample runs/t2i --prompt "a blue circle" -n 16 --out blue.png'))
@_outputs_together("out")
def sample(
    run: Path = typer.Argument(..., help="Run directory."),
    n: int = typer.Option(64, "-n", help="Number of samples (with --input: one per input)."),
    out: str = typer.Option(..., "--out", "-o", help="FILE.png (grid or 2D scatter), DIR/ (one PNG each) or FILE.npz."),
    seed: int = typer.Option(0, "--seed", **SEED, help="Noise seed: the same seed gives the same samples."),
    truncation: float = typer.Option(1.0, "--truncation", help="In (0, 1]; below 1 trades diversity for fidelity."),
    cls: Optional[str] = typer.Option(None, "--class", help="Class-conditional runs: a class index or name. "
                                      "Without it a PNG holds one row per class."),
    code: Optional[list[str]] = typer.Option(None, "--code", help="Runs with latent codes (InfoGAN): fix a code, "
                                             "e.g. --code c0=3."),
    vary: Optional[str] = typer.Option(None, "--vary", help="Runs with latent codes: a traversal grid sweeping this "
                                       "code (one column per value, one row per noise)."),
    inputs: Optional[Path] = typer.Option(None, "--input", help="Models that transform inputs (translators, "
                                          "upscalers): an image, a folder of images or an .npz; text-to-image "
                                          "models: a .txt file of prompts, one per line. One sample each."),
    refine: Optional[str] = typer.Option(None, "--refine", help="Keep the samples the run's calibrated D believes: "
                                         "drs (rejection) or mh (Metropolis-Hastings). See docs/refine.md."),
    refine_steps: int = typer.Option(0, "--refine-steps", min=0, help="With --refine: train D this many steps "
                                     "further against the frozen G before calibrating it (e.g. 1000)."),
    condition: Optional[list[str]] = typer.Option(None, "--condition", help="Table models: every row shows this "
                                                  "category, e.g. --condition target=1."),
    mix: Optional[str] = typer.Option(None, "--mix", help="StyleGAN models: a style-mixing grid from seeds A,B "
                                      "(columns A, B, then A with B's coarse, middle, fine styles; n/5 rows)."),
    prompt: Optional[str] = typer.Option(None, "--prompt", help="Text-to-image models: what to draw, e.g. "
                                         "\"a blue circle in the centre\" (n samples of it)."),
) -> None:
    """Generate samples from a trained run."""
    from .train import load

    if refine_steps and refine is None:
        raise UserError("--refine-steps trains D for refinement", "add --refine drs or --refine mh")
    gen = load(run)
    kind = gen.data_kind
    fmt = kind.check_output(out)
    codes = _parse_codes(code or [])
    given = None
    if sum(x is not None for x in (inputs, prompt, condition or None)) > 1:
        raise UserError("--input, --prompt and --condition each say what to generate from", "give one of them")
    if inputs is not None:
        gen.check_takes(inputs=True)
        _check_not_among_inputs(inputs, out)
        given = kind.read_inputs(inputs, gen.spec)
    if prompt is not None:
        gen.check_takes(prompt=True)
        given = kind.read_prompt([prompt] * n, gen.spec)
    rows = None
    if condition:
        gen.check_takes(condition=True)
        rows = kind.read_condition(condition, gen.spec).expand(n, -1)
    cells = nrow = None
    if mix is not None:
        if given is not None or vary is not None or rows is not None or refine is not None or cls is not None:
            raise UserError("--mix draws its own grid from two seeds", "drop --input / --vary / --condition / "
                            "--refine / --class, or --mix")
        x, nrow = gen.mixing_grid(*_parse_seed_pair(mix), rows=max(1, n // 5), truncation=truncation)
        labels = None
    elif refine is not None:
        if given is not None or vary is not None or rows is not None:
            raise UserError("--refine works on samples from noise", "drop --input / --vary / --condition, or --refine")
        x, stats = gen.refined(refine, n, seed, truncation, labels=cls, codes=codes, steps=refine_steps)
        labels = gen.label_indices(cls, n) if cls is not None else None
        report = stats.as_dict()
        err.print(f"refined by {refine}: acceptance {report['acceptance']:.3f}, "
                  f"{report['g_evals_per_sample']:.1f} G and D passes per kept sample", highlight=False)
    elif given is None and (vary is not None or fmt == ".png"):
        x, nrow, labels, cells = gen.grid(n, seed, truncation, labels=cls, codes=codes, vary=vary)
    else:
        count = len(given) if given is not None else n
        labels = gen.label_indices(cls, count) if cls is not None else None
        x = gen.sample(count, seed=seed, truncation=truncation, labels=labels, codes=codes, inputs=given,
                       condition=rows)
    meta = {**gen.provenance(run), "seed": seed, "truncation": truncation, "class": cls, "codes": code, "vary": vary,
            "input": str(inputs) if inputs else None, "prompt": prompt, "refine": refine,
            "refine_steps": refine_steps if refine else None, "mix": mix,
            "condition": ",".join(condition) if condition else None}
    items = kind.describe_inputs(given, gen.spec) if inputs is not None else None
    kind.write(out, x, gen.spec, nrow=nrow, labels=labels, cells=cells, meta=meta, items=items)
    _wrote(f"wrote {kind.describe(x, gen.spec)} to {out}{_spread(gen, labels)}")


def _spread(gen, labels: Tensor | None) -> str:
    """How samples are spread over classes, e.g. ": 7 each of classes 0-3, 6 each of classes 4-9"."""
    if not gen.class_names:
        return ""
    if labels is None:
        return ": classes drawn at random (--class K for one class, a .png for one row per class)"
    counts = labels.bincount(minlength=len(gen.class_names)).tolist()
    groups: list[tuple[int, list[str]]] = []
    for name, count in zip(gen.class_names, counts):
        if not count:
            continue
        if groups and groups[-1][0] == count:
            groups[-1][1].append(name)
        else:
            groups.append((count, [name]))
    parts = [f"{count} of {names[0]}" if len(names) == 1 else f"{count} each of {names[0]}-{names[-1]}"
             for count, names in groups]
    return ": " + ", ".join(parts)


def _parse_seed_pair(text: str) -> tuple[int, int]:
    """--mix A,B -> (A, B)."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"--mix {text}: expected two seeds, e.g. --mix 1,2")
    return int(parts[0]), int(parts[1])


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


@app.command(epilog=_examples("gankit interpolate runs/cgan --class 3 --out walk.gif",
                              "gankit interpolate runs/digits --rows 2 --steps 10 --out walk.png"))
@_outputs_together("out")
def interpolate(
    run: Path = typer.Argument(..., help="Run directory."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.png (one row per pair) or FILE.gif (animated)."),
    steps: int = typer.Option(8, "--steps", min=2, help="Images from one end to the other."),
    rows: int = typer.Option(4, "--rows", min=1, help="Pairs of endpoints, one row each."),
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of the endpoints."),
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
    if not gen.variant.z_dim:
        raise UserError(f"{run} transforms images and draws from no noise: there are no latents to walk between",
                        "give a run of a model that draws from noise, or use `gankit translate`")
    if out.suffix.lower() not in (".png", ".gif"):
        raise UserError(f"--out {out}: unknown output type", "use FILE.png or FILE.gif")
    _check_files(out)
    start, end = gen.latents(rows, seed, truncation), gen.latents(rows, seed + 1, truncation)
    labels = gen.label_indices(cls, rows) if cls is not None else None
    frames = [gen.generate(slerp(start, end, t), labels=labels, seed=seed, truncation=truncation)
              for t in torch.linspace(0, 1, steps).tolist()]
    meta = {**gen.provenance(run), "seed": seed, "steps": steps, "rows": rows, "class": cls, "truncation": truncation}
    if out.suffix.lower() == ".png":
        io.save_grid(out, torch.stack(frames, dim=1).flatten(0, 1), nrow=steps,
                     scale=max(1, 64 // frames[0].shape[-1]), **meta)
    else:
        io.save_gif(out, [io.image_grid(f, nrow=rows) for f in frames + frames[-2:0:-1]],
                    scale=max(1, 128 // frames[0].shape[-1]), **meta)
    _wrote(f"wrote {rows} interpolations of {steps} steps to {out}")


OUT_PER_INPUT_HELP = ("DIR/ (one PNG per input, named as the input), FILE.png (one input: that image; several: a "
                      "grid), or FILE.npz.")


@app.command(epilog=_examples("gankit translate runs/p2p photos/ --out translated/",
                              "gankit translate runs/p2p cat.png --out cat-b.png",
                              "gankit translate runs/p2p photos/ --out side-by-side.png --grid"))
@_outputs_together("out")
def translate(
    run: Path = typer.Argument(..., help="Run directory of an image-to-image model (pix2pix, srgan)."),
    inputs: Path = typer.Argument(..., help="An image, a folder of images or an .npz of domain-A images."),
    out: str = typer.Option(..., "--out", "-o", help=OUT_PER_INPUT_HELP),
    grid: bool = typer.Option(False, "--grid", help="Write a PNG of input | output pairs side by side."),
    direction: Optional[str] = typer.Option(None, "--direction", help="Two-way models (CycleGAN): a2b (default) or "
                                            "b2a."),
) -> None:
    """Translate images from domain A to domain B (or back, --direction b2a) with a trained image-to-image run: one
    output per input."""
    _map_images(run, inputs, out, grid, upscale=False, direction=direction)


@app.command(epilog=_examples("gankit upscale runs/sr small/ --out large/",
                              "gankit upscale runs/sr small/ --out compare.png --grid"))
@_outputs_together("out")
def upscale(
    run: Path = typer.Argument(..., help="Run directory of a super-resolution model (srgan, srresnet presets)."),
    inputs: Path = typer.Argument(..., help="An image, a folder of images or an .npz of low-resolution images."),
    out: str = typer.Option(..., "--out", "-o", help=OUT_PER_INPUT_HELP),
    grid: bool = typer.Option(False, "--grid", help="Write a PNG of input (enlarged) | output pairs side by side."),
) -> None:
    """Upscale images with a trained super-resolution run: one output per input, `data.scale` times larger."""
    _map_images(run, inputs, out, grid, upscale=True)


@app.command(epilog=_examples("gankit reconstruct runs/vaegan digits/ --out redrawn/",
                              "gankit reconstruct runs/vaegan digits/ --out side-by-side.png --grid"))
@_outputs_together("out")
def reconstruct(
    run: Path = typer.Argument(..., help="Run directory of a model with an encoder (vaegan)."),
    inputs: Path = typer.Argument(..., help="An image, a folder of images or an .npz of images."),
    out: str = typer.Option(..., "--out", "-o", help=OUT_PER_INPUT_HELP),
    grid: bool = typer.Option(False, "--grid", help="Write a PNG of input | reconstruction pairs side by side."),
) -> None:
    """Redraw images through a model's encoder and generator, G(E(x)): one output per input. Models without an
    encoder find their latents by search instead (`gankit invert --grid`)."""
    from .train import load

    gen = load(run)
    if not gen.encodes:
        raise UserError(f"{run} has no encoder: it cannot reconstruct images",
                        "train a model with one (variant=vaegan), or use `gankit invert RUN IMAGES --grid`")
    if not inputs.exists():
        raise UserError(f"{inputs} does not exist", "give an image, a folder of images or an .npz")
    _check_per_input_out(gen, inputs, out, grid)
    x = gen.data_kind.read_inputs(inputs, gen.spec)
    y = gen.reconstruct(x)
    meta = {**gen.provenance(run), "input": str(inputs), "task": "reconstruct"}
    _write_per_input(gen, out, y, _input_names(inputs), meta, [x, y] if grid else None,
                     real="the first column of each pair: the inputs")
    _wrote(f"reconstructed {len(x)} image{'s' * (len(x) != 1)} to {out}")


def _map_images(run: Path, inputs: Path, out: str, grid: bool, upscale: bool, direction: str | None = None) -> None:
    """Read images, run the model on each, write one output per input (translate and upscale)."""
    import torch.nn.functional as F

    from .train import load

    gen = load(run)
    if "prompt" in gen.sampling:
        raise UserError(f"{run} draws images from text prompts: it does not {'upscale' if upscale else 'translate'} "
                        "images", 'use `gankit sample RUN --prompt "a blue circle" --out blue.png`')
    if "inputs" not in gen.sampling:
        raise UserError(f"{run} generates from noise: it has nothing to {'upscale' if upscale else 'translate'}",
                        f"give a run of an {'super-resolution' if upscale else 'image-to-image'} model, or use "
                        "`gankit sample`")
    shape_b = gen.spec.get("pair", {}).get("shape_b", gen.spec["shape"])
    if upscale and shape_b[-1] <= gen.spec["shape"][-1]:
        raise UserError(f"{run} translates images at their size: it does not upscale", "use `gankit translate`")
    if direction is not None:
        from .variants import DIRECTIONS

        gen.check_takes(direction=True)
        if direction not in DIRECTIONS:
            raise UserError(f"--direction {direction}: unknown direction", f"use {' or '.join(DIRECTIONS)}")
    if not inputs.exists():
        raise UserError(f"{inputs} does not exist", "give an image, a folder of images or an .npz")
    _check_per_input_out(gen, inputs, out, grid)
    x = gen.data_kind.read_inputs(inputs, gen.spec)
    y = gen.sample(inputs=x, direction=direction)
    meta = {**gen.provenance(run), "input": str(inputs), "task": "upscale" if upscale else "translate",
            "direction": direction}
    shown = F.interpolate(x, size=y.shape[-2:], mode="nearest") if x.shape[-1] != y.shape[-1] else x
    _write_per_input(gen, out, y, _input_names(inputs), meta, [shown, y] if grid else None,
                     real="the first column of each pair: the inputs" + (", enlarged" if upscale else ""))
    size = "×".join(map(str, y.shape[1:]))
    _wrote(f"{'upscaled' if upscale else 'translated'} {len(x)} image{'s' * (len(x) != 1)} to {out} ({size})")


def _check_per_input_out(gen, inputs: Path, out: str, grid: bool) -> None:
    """Refuse an --out the data kind cannot write, a --grid that is not a PNG, or an --out among the inputs, before
    any work."""
    _check_not_among_inputs(inputs, out)
    fmt = gen.data_kind.check_output(out)
    if grid and fmt != ".png":
        raise UserError(f"--grid writes a PNG, not {out}", "give --out FILE.png")


def _write_per_input(gen, out: str, y: Tensor, names: list[str] | None, meta: dict,
                     columns: list[Tensor] | None = None, real: str | None = None) -> None:
    """One output per input: `columns` side by side in a grid PNG (--grid; `real` says which of them are real
    images), DIR/ (one PNG each, named as the inputs), FILE.png (the image, for one input), or the data kind's writer
    (.npz, a grid PNG)."""
    from . import io

    if columns is not None:
        import torch

        io.save_grid(out, torch.stack(columns, dim=1).flatten(0, 1), nrow=len(columns) * min(4, len(y)),
                     scale=max(1, 64 // y.shape[-1]), **meta, real=real)
    elif gen.data_kind.check_output(out) == "/":
        io.save_images(out, y, names=names, **meta)
    elif out.lower().endswith(".png") and len(y) == 1:
        io.save_image(out, y[0], **meta)
    else:
        gen.data_kind.write(out, y, gen.spec, meta=meta)


def _input_names(inputs: Path) -> list[str] | None:
    """Each input image's path under its folder (outputs are named after it, io.save_images); None for an .npz
    (numbered outputs)."""
    from .data.folder import IMAGE_SUFFIXES, list_images

    if inputs.is_dir():
        return [p.relative_to(inputs).as_posix() for p in list_images(inputs)]
    return [inputs.name] if inputs.suffix.lower() in IMAGE_SUFFIXES else None


ENCODER_HELP = ("Start from an encoder's guess where it beats the random pool; the encoder is trained on the model's "
                "own samples the first time (a few minutes on a CPU) and kept in RUN/edit/.")


@app.command(epilog=_examples("gankit invert runs/shapes photo.png --out z.npz",
                              "gankit invert runs/shapes photos/ --out z.npz --grid"))
@_outputs_together("out")
def invert(
    run: Path = typer.Argument(..., help="Run directory of an image GAN that generates from noise (dcgan, cgan, "
                               "biggan, ...)."),
    images: Path = typer.Argument(..., help="An image or a folder of images (resized to the model's size)."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.npz: the latents (z, labels, psnr, names) for "
                             "`gankit edit`."),
    steps: int = typer.Option(300, "--steps", min=0, help="Adam steps refining each latent (0: the best of the "
                              "random pool only)."),
    cls: Optional[str] = typer.Option(None, "--class", help="Class-conditional runs: the class of every image "
                                      "(default: the class that redraws each image best)."),
    grid: bool = typer.Option(False, "--grid", help="Also write OUT.png: each input beside its reconstruction."),
    encoder: bool = typer.Option(False, "--encoder", help=ENCODER_HELP),
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of the random pool the search starts from."),
) -> None:
    """Find the latent (and class) from which a trained image GAN redraws each image, by search and optimisation;
    PSNR says how close it got. The .npz feeds `gankit edit`."""
    from . import edit as editing

    if out.suffix.lower() != ".npz":
        raise UserError(f"--out {out}: latents are written as .npz", "give --out FILE.npz")
    picture = out.with_suffix(".png") if grid else None
    _check_files(out, picture)
    if images.exists():
        _check_not_among_inputs(images, out, picture)
    gen, x, names = _images_to_edit(run, images)
    inv = _invert(gen, run, x, cls, steps, seed, encoder)
    editing.save_latents(out, inv, names, {**gen.provenance(run), "input": str(images), "task": "invert"})
    if grid:
        from . import io
        import torch

        io.save_grid(picture, torch.stack([x, inv.images], dim=1).flatten(0, 1),
                     nrow=2 * min(4, len(x)), scale=max(1, 64 // x.shape[-1]), **gen.provenance(run), input=str(images),
                     task="invert", real="the first column of each pair: the inputs")
    also = f" and {out.with_suffix('.png')}" if grid else ""
    _wrote(f"inverted {len(x)} image{'s' * (len(x) != 1)} into {out}{also}: PSNR {inv.psnr.mean():.2f} dB "
           f"(best of the random pool: {inv.psnr_start.mean():.2f} dB)")


def _images_to_edit(run: Path, images: Path):
    """(generator, images at its size, their names) for invert / edit, with clear errors for the wrong model."""
    from .edit import check_invertible
    from .train import load

    gen = load(run)
    check_invertible(gen)
    if not images.exists():
        raise UserError(f"{images} does not exist", "give an image or a folder of images")
    return gen, gen.data_kind.read_inputs(images, gen.spec), _input_names(images)


def _invert(gen, run: Path, x: Tensor, cls: Optional[str], steps: int, seed: int, encoder: bool):
    from . import edit as editing
    from .metrics import progress_bar

    labels = gen.label_indices(cls, len(x)) if cls is not None else None
    net = None
    if encoder:
        trained = (run / "edit" / "encoder.json").is_file()
        with progress_bar("training the encoder", None if trained else editing.ENCODER_STEPS, minimum=1) as advance:
            net = editing.run_encoder(gen, run, advance=advance)
    with progress_bar("inverting", len(x), minimum=8) as advance:
        return editing.invert(gen, x, labels, steps=steps, seed=seed, encoder=net, advance=advance)


@app.command(epilog=_examples("gankit edit runs/shapes photo.png --direction red=3 --out red.png",
                              "gankit edit runs/shapes z.npz --direction star=2.5 --direction sefa0=-2 --out edited/",
                              "gankit edit runs/shapes photos/ --direction blue=3 --out before-after.png --grid"))
@_outputs_together("out")
def edit(
    run: Path = typer.Argument(..., help="Run directory of an image GAN that generates from noise."),
    inputs: Path = typer.Argument(..., help="An image or a folder of images (inverted first), or the .npz of "
                                  "`gankit invert`."),
    direction: list[str] = typer.Option(..., "--direction", "-d", help="NAME=AMOUNT: move this far along a "
                                        "direction (`gankit directions RUN` lists them); repeat to combine."),
    out: str = typer.Option(..., "--out", "-o", help=OUT_PER_INPUT_HELP),
    grid: bool = typer.Option(False, "--grid", help="Write a PNG of input | reconstruction | edit side by side."),
    free: bool = typer.Option(False, "--free", help="Move along the attribute's own boundary normal, without "
                              "holding the other attributes."),
    steps: int = typer.Option(300, "--steps", min=0, help="Inversion steps for image inputs."),
    cls: Optional[str] = typer.Option(None, "--class", help="Class-conditional runs, image inputs: their class."),
    encoder: bool = typer.Option(False, "--encoder", help="Image inputs: " + ENCODER_HELP),
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of the inversion's random pool."),
) -> None:
    """Edit images with a trained image GAN: invert them (or read latents), move the latents along named
    directions (attributes such as `red` or `star`, or SeFa's `sefa0`, ...), and draw the result."""
    from . import edit as editing

    amounts = editing.parse_edits(direction)
    if inputs.suffix.lower() == ".npz":
        from .train import load

        gen = load(run)
        editing.check_invertible(gen)
        z, labels, names = editing.read_latents(inputs, gen)
        x = shown = None
    else:
        gen, x, names = _images_to_edit(run, inputs)
    _check_per_input_out(gen, inputs, out, grid)
    found = editing.run_directions(gen, run, editing.evaluator_for(gen))
    for name in amounts:
        found[name]  # unknown names fail before any work
    if x is not None:
        inv = _invert(gen, run, x, cls, steps, seed, encoder)
        z, labels, shown = inv.z, inv.labels, inv.images
    y = gen.generate(editing.edit(z, found, amounts, hold=not free), labels=labels)
    meta = {**gen.provenance(run), "input": str(inputs), "task": "edit", "edit": ", ".join(direction), "free": free}
    columns = ([x, shown] if x is not None else [gen.generate(z, labels=labels)]) + [y]
    _write_per_input(gen, out, y, names, meta, columns if grid else None,
                     real="the first column of each triple: the inputs" if x is not None else None)
    _wrote(f"edited {len(y)} image{'s' * (len(y) != 1)} ({', '.join(direction)}) to {out}")


@app.command("directions", epilog=_examples("gankit directions runs/shapes",
                                            "gankit directions runs/shapes --grid directions.png"))
@_outputs_together("grid")
def directions_cmd(
    run: Path = typer.Argument(..., help="Run directory of an image GAN that generates from noise."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Write a PNG: one row per direction, the same sample "
                                        "moved from -3 to +3 along it."),
    refit: bool = typer.Option(False, "--refit", help="Find the directions again rather than reading RUN/edit/."),
    as_json: bool = typer.Option(False, "--json", help="Print the directions and their protocol as JSON."),
) -> None:
    """List the latent directions `gankit edit` can move along: one per attribute value the data's evaluator names
    (InterFaceGAN boundaries, with their held-out accuracy) and SeFa's closed-form directions. Found once per model
    and kept in RUN/edit/."""
    import torch

    from . import edit as editing
    from .train import load

    if grid is not None and grid.suffix.lower() != ".png":
        raise UserError(f"--grid {grid}: the sweep is a PNG", "give --grid FILE.png")
    _check_files(grid)
    gen = load(run)
    editing.check_invertible(gen)
    found = editing.run_directions(gen, run, editing.evaluator_for(gen), refit=refit)
    if grid is not None:
        from . import io

        images = editing.sweep(gen, found, torch.linspace(-3, 3, 7))
        io.save_grid(grid, images, nrow=7, scale=max(1, 64 // images.shape[-1]), **gen.provenance(run),
                     task="directions", rows=", ".join(found.items), amounts="-3 to 3")
    if as_json:
        items = {name: {"method": d.method, "attribute": d.attribute, "value": d.value, "accuracy": d.accuracy}
                 for name, d in found.items.items()}
        _print_json({"directions": items, "protocol": found.protocol}, indent=2)
        return
    table = Table("direction", "method", "attribute", "boundary accuracy (held out)")
    for name, d in found.items.items():
        what = f"{d.attribute} = {d.value}" if d.attribute else \
            f"{'eigenvalue' if d.method == 'sefa' else 'variance'} share {d.value}"
        table.add_row(name, d.method, what, "" if d.accuracy is None else f"{d.accuracy:.3f}")
    out.print(table)
    skipped = found.protocol.get("interfacegan", {}).get("skipped")
    if skipped:
        err.print(f"no direction for {', '.join(skipped)}: too rare in the model's samples", highlight=False)
    if grid is not None:
        _wrote(f"wrote {grid}")


@app.command(epilog=_examples("gankit explain runs/shapes", "gankit explain runs/digits --out ex/ -n 4"))
def explain(
    run: Path = typer.Argument(..., help="Run directory of an image GAN that generates from noise."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for saliency.png, directions.png and "
                                       "explain.json (default: RUN/explain/)."),
    n: int = typer.Option(8, "-n", min=1, max=64, help="Real and generated images in the saliency grid (each)."),
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of the generated images and of the direction samples."),
) -> None:
    """What D looks at (saliency maps of its logit for real and generated images: gradient × input, integrated
    gradients) and what each latent direction changes, as the data's evaluator reads it."""
    import torch

    from . import edit as editing
    from . import explain as explaining
    from . import io
    from .data import load_heldout_labelled
    from .io import write_json
    from .train import load

    gen = load(run)
    editing.check_invertible(gen)
    out = out or run / "explain"
    with _writing(out):  # the pictures and explain.json appear together, or none of them
        report: dict = {"run": run.name, "protocol": explaining.protocol()}
        critic = explaining.critic(run)
        if critic is not None:
            cfg = resolve_run_config(run)
            real, real_labels, _, heldout = load_heldout_labelled(cfg.data, cfg.seed, n)
            fake_labels = torch.arange(n) % len(gen.class_names) if gen.class_names else None
            images = torch.cat([real, gen.sample(n, seed=seed, labels=fake_labels)])
            labels = torch.cat([real_labels, fake_labels]) if gen.class_names else None
            grad_input, integrated = explaining.saliency(critic, images, labels)
            shown = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images  # greyscale beside RGB heat maps
            cells = torch.stack([shown, explaining.heat(grad_input), explaining.heat(integrated)], dim=1).flatten(0, 1)
            io.save_grid(out / "saliency.png", cells, nrow=6, scale=max(1, 64 // images.shape[-1]),
                         **gen.provenance(run), task="explain",
                         columns="image, gradient x input, integrated gradients (real first)",
                         real=f"the first {n} of the {2 * n} images (two to a row, each with its two saliency "
                              "maps): held-out real images")
            report["saliency"] = {"file": "saliency.png", "real": heldout, "generated": n}
        else:
            report["saliency"] = "none: the run kept no checkpoint with a D that scores images alone"
        found = editing.run_directions(gen, run, editing.evaluator_for(gen))
        images = editing.sweep(gen, found, torch.linspace(-3, 3, 7), seed=seed)
        io.save_grid(out / "directions.png", images, nrow=7, scale=max(1, 64 // images.shape[-1]),
                     **gen.provenance(run), task="explain", rows=", ".join(found.items), amounts="-3 to 3")
        evaluator = editing.evaluator_for(gen)
        effects = explaining.direction_effects(gen, evaluator, found, seed=seed) if evaluator is not None else {}
        lines = explaining.describe(effects) if effects else {}
        report["directions"] = {name: {"method": d.method, "attribute": d.attribute, "value": d.value,
                                       "effects": effects.get(name), "reading": lines.get(name)}
                                for name, d in found.items.items()}
        write_json(out / "explain.json", report)
    table = Table("direction", "method", "what the evaluator sees change")
    for name, d in found.items.items():
        table.add_row(name, d.method, lines.get(name, "no evaluator for this data"))
    out_console = Console()
    out_console.print(table)
    err.print(f"wrote {out / 'saliency.png'}, {out / 'directions.png'} and {out / 'explain.json'}"
              if critic is not None else f"wrote {out / 'directions.png'} and {out / 'explain.json'} (no D for "
              "saliency)", highlight=False)


def resolve_run_config(run: Path):
    """The run's full config, or a clear error when it has none."""
    from .variants import resolve

    if not (run / "config.yaml").is_file():
        raise UserError(f"{run} has no config.yaml", "give a run directory made by `gankit train`")
    return resolve(str(run / "config.yaml"))[0]


@app.command(epilog=_examples("gankit serve runs/digits", "gankit serve runs/cgan --port 8080"))
def serve(
    run: Path = typer.Argument(..., help="Run directory (or exported model folder) of an image GAN."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default, loopback, is reachable "
                             "from this machine only."),
) -> None:
    """A local web page to explore a model: seed, truncation, class, interpolation between seeds, PNG download
    with provenance; and its API (/api/sample, /api/interpolate, /api/info). Needs the `serve` extra."""
    try:
        import uvicorn

        from .serve import make_app
    except ImportError:
        raise UserError("gankit serve needs starlette and uvicorn", "pip install 'gankit[serve]'") from None
    app_ = make_app(run)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: listening on {host}: other machines can reach this page", highlight=False)
    err.print(f"serving {run} at http://{host}:{port}/ (Ctrl-C stops)", highlight=False)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command(epilog=_examples("gankit score runs/normal3 test/ --out scores.csv",
                              "gankit score runs/normal3 test/ --out scores.csv --roc roc.png",
                              "gankit score runs/normal3 test/ --out scores.csv --knn 5"))
@_outputs_together("out", "roc")
def score(
    run: Path = typer.Argument(..., help="Run of a model trained on normal images only (data.normal=...)."),
    inputs: Path = typer.Argument(..., help="An image, a folder of images (sub-folders named after classes label "
                                  "them) or an .npz (images, and optionally `labels`: class indices)."),
    out: Path = typer.Option(..., "--out", "-o", help="FILE.csv: one row per input with its score (higher: more "
                             "anomalous) and residuals."),
    roc: Optional[Path] = typer.Option(None, "--roc", help="Labelled inputs: also write the ROC curve as a PNG."),
    steps: int = typer.Option(100, "--steps", min=0, help="Latent search steps per image."),
    kappa: float = typer.Option(0.1, "--kappa", min=0, max=1, help="Weight of the residual in D's features."),
    encoder: bool = typer.Option(False, "--encoder", help="Find each latent in one pass with f-AnoGAN's encoder "
                                 "(trained on the run's training images the first time, kept in RUN/anomaly/) "
                                 "instead of searching."),
    knn: int = typer.Option(0, "--knn", min=0, help="Score by the mean distance to the K nearest normal training "
                            "images in D's features instead (no redraw; 5 in docs/applications.md); 0: off."),
    distance: str = typer.Option("auto", "--distance", help="--knn's distance between D's features: euclidean, "
                                 "cosine, or auto (cosine for a D trained with loss.contrastive, else euclidean)."),
) -> None:
    """Anomaly scores: how badly a GAN trained on normal images redraws each input (AnoGAN search, f-AnoGAN score),
    or how far each input lies from the normal images in D's features (--knn). Labelled inputs also get the AUROC,
    anomalies being the classes outside the run's data.normal."""
    import numpy as np
    import torch

    from . import anomaly
    from .data import read_npz
    from .data.folder import list_images
    from .train import load

    if out.suffix.lower() != ".csv":
        raise UserError(f"--out {out}: scores are written as .csv", "give --out FILE.csv")
    if roc is not None and roc.suffix.lower() != ".png":
        raise UserError(f"--roc {roc}: the ROC curve is a PNG", "give --roc FILE.png")
    if knn and encoder:
        raise UserError("--knn and --encoder are two ways to score", "give one of them")
    if distance not in ("auto", *anomaly.DISTANCES):
        raise UserError(f"--distance {distance}: not a distance gankit knows", "give euclidean, cosine or auto")
    if distance != "auto" and not knn:
        raise UserError(f"--distance {distance} measures --knn's neighbours", "give --knn K too, or drop --distance")
    _check_files(out, roc)
    if inputs.exists():
        _check_not_among_inputs(inputs, roc)
    gen = load(run)
    normal = gen.spec.get("normal")
    if not inputs.exists():
        raise UserError(f"{inputs} does not exist", "give an image, a folder of images or an .npz")
    x = gen.data_kind.read_inputs(inputs, gen.spec)
    names = _input_names(inputs) or [str(i) for i in range(len(x))]
    labels = None
    if inputs.is_dir():
        labels = anomaly.folder_labels(inputs, list_images(inputs))
    elif inputs.suffix.lower() == ".npz":
        arrays = read_npz(inputs)
        if "labels" in arrays:
            classes = gen.spec.get("class_names") or []
            given = arrays["labels"]
            if given.shape != (len(x),) or given.dtype.kind not in "iuf" or not np.array_equal(given, np.round(given)) \
                    or given.min() < 0 or (classes and given.max() >= len(classes)):
                limit = f" below {len(classes)} ({', '.join(classes)})" if classes else ""
                raise UserError(f"{inputs}['labels']: expected {len(x)} whole class indices from 0{limit}, one per "
                                f"image; got {given.dtype}{list(given.shape)}", "fix the labels, or leave them out")
            labels = [classes[i] if i < len(classes) else str(i) for i in given.astype(int).tolist()]
    flags = None if labels is None or not normal else torch.tensor([label not in normal for label in labels])
    mixed = flags is not None and 0 < int(flags.sum()) < len(flags)
    if roc is not None and not mixed:
        raise UserError("--roc needs labelled inputs with both normal and anomalous classes, and a run trained with "
                        "data.normal", "put the inputs in sub-folders named after their classes, or give an .npz "
                        "with labels")
    from .metrics import progress_bar

    anomaly.check_model(gen)
    critic = anomaly.discriminator(run) if kappa or knn else None
    if knn:
        if critic is None:
            raise UserError(f"--knn needs the D of {run}'s newest checkpoint, judging images alone",
                            "use a run directory that kept its checkpoints, of a model without classes")
        normal_images = anomaly.training_images(run)
        if distance == "auto":
            distance = anomaly.trained_distance(run)
        with progress_bar("scoring", len(x), minimum=8) as advance:
            result = anomaly.neighbour_scores(critic, normal_images, x, knn, advance=advance, distance=distance)
    else:
        net = None
        if encoder:
            with progress_bar("training the encoder", None if (run / "anomaly" / "encoder.json").is_file()
                              else anomaly.ENCODER_STEPS, minimum=1) as advance:
                net = anomaly.run_encoder(gen, run, critic, kappa, advance=advance)
        with progress_bar("scoring", len(x), minimum=8) as advance:
            result = anomaly.anomaly_scores(gen, x, critic, kappa, steps, advance=advance, encoder=net)
    anomaly.write_scores(out, names, result, labels, flags)
    message = f"scored {len(x)} image{'s' * (len(x) != 1)} to {out}"
    if mixed:
        message += (f": AUROC {anomaly.auroc(result.score, flags):.3f} ({int(flags.sum())} anomalous, "
                    f"{int((~flags).sum())} normal; normal = {', '.join(normal)})")
        if roc is not None:
            anomaly.roc_plot(roc, result.score, flags, f"{run.name}: normal = {', '.join(normal)}")
    _wrote(message)


FEATURES_HELP = ("Feature extractor: inception (FID; needs --weights), digits or shapes (shipped classifiers) or raw "
                 "(pixels).")
WEIGHTS_HELP = "Extractor weights (.safetensors); inception default: $GANKIT_INCEPTION_WEIGHTS."
ROUND_HELP = "Round generated images to 8 bits before features, as saved PNGs are (default), or measure the floats."


@app.command("eval", epilog=_examples("gankit eval runs/digits", "gankit eval runs/ring --json",
                                      "gankit eval runs/shapes -n 2000 --features shapes",
                                      "gankit eval runs/table --target income --json",
                                      "gankit eval runs/digits -n 50000 --nproc 2"))
def evaluate(
    run: Path = typer.Argument(..., help="Run directory."),
    features: Optional[str] = typer.Option(None, "--features", help=FEATURES_HELP + " Default: digits or shapes "
                                           "for those data, raw for other data."),
    weights: Optional[Path] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    n: Optional[int] = typer.Option(None, "-n", min=2, help="Generated samples (default: as many as the reference, "
                                    "at most 10,000; papers use 50,000; toy 2D data always uses PacGAN's 2,500)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as one JSON object."),
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of the generated samples."),
    round_8bit: bool = typer.Option(True, "--round/--no-round", help=ROUND_HELP),
    refine: Optional[str] = typer.Option(None, "--refine", help="Measure discriminator-guided samples (drs or mh) "
                                         "instead of plain ones; the protocol records acceptance and cost."),
    refine_steps: int = typer.Option(0, "--refine-steps", min=0, help="With --refine: train D this many steps "
                                     "further against the frozen G before calibrating it (e.g. 1000)."),
    target: Optional[str] = typer.Option(None, "--target", help="Tables: the column to predict in the utility test "
                                         "(train on synthetic, test on real; default: the run's data.target)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes on this machine sharing out the generated "
                              "samples of FID/KID/IS/PRDC (their statistics merged); the same figures as one "
                              "process. Also works under torchrun."),
) -> None:
    """Measure a run: mode coverage for toy 2D data; FID, KID, IS, precision/recall, density/coverage of samples
    vs the training data otherwise. Written to RUN/metrics.json with the protocol."""
    from .io import write_json
    from .report import evaluate_run
    from .train import distributed

    if nproc > 1 and not distributed.launched():
        args = [str(run), "--seed", str(seed), "--round" if round_8bit else "--no-round"]
        args += ["--features", features] if features else []
        args += ["--weights", str(weights)] if weights else []
        args += ["-n", str(n)] if n else []
        args += ["--json"] if as_json else []
        args += ["--refine", refine] if refine else []
        args += ["--refine-steps", str(refine_steps)] if refine_steps else []
        args += ["--target", target] if target else []
        raise typer.Exit(_torchrun(nproc, ["eval", *args]))
    result = evaluate_run(run, seed=seed, features=features, weights=weights, n=n, round_8bit=round_8bit,
                          refine=refine, target=target, refine_steps=refine_steps)
    if result is None:  # another process of a distributed evaluation: process 0 writes and prints
        return
    write_json(run / "metrics.json", result)
    _print_metrics(str(run), result, as_json)
    if not as_json:
        err.print(f"wrote {run / 'metrics.json'}", highlight=False)


@app.command(epilog=_examples("gankit fid real_images/ runs/digits --features digits",
                              "gankit fid data.npz samples.npz --features raw --kid --prdc",
                              "gankit fid stats.npz my_folder/ --weights pt_inception.safetensors --json"))
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
    seed: int = typer.Option(0, "--seed", **SEED, help="Seed of generated samples and of KID's subsets."),
    round_8bit: bool = typer.Option(True, "--round/--no-round", help=ROUND_HELP),
) -> None:
    """Fréchet distance between two sample sets (FID with Inception features), optionally KID and PRDC."""
    from .report.compare import compare_sets

    result = compare_sets(a, b, features=features, weights=weights, with_kid=with_kid, with_prdc=with_prdc, n=n,
                          seed=seed, round_8bit=round_8bit)
    _print_metrics(f"{a} vs {b}", result, as_json)


def _print_json(obj: object, indent: int | None = None) -> None:
    """`--json` output: one standard JSON document (NaN and infinities as null)."""
    from .io import json_text

    print(json_text(obj, indent=indent))


def _print_metrics(title: str, result: dict, as_json: bool) -> None:
    """One JSON object, or a table of the values followed by the protocol."""
    if as_json:
        _print_json(result)
        return
    table = Table(title=title, show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    from .report.info import metric_rows

    for key, value in metric_rows(result):
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    out.print(table)
    out.print(f"protocol: {json.dumps(result['protocol'])}", highlight=False)


weights_app = typer.Typer(no_args_is_help=True, help="The FID Inception weights: convert pytorch-fid's file once "
                          "(gankit never downloads or unpickles), verify a converted one.",
                          epilog=_examples("gankit weights convert pt_inception-2015-12-05-6726825d.pth",
                                           "gankit weights verify pt_inception-2015-12-05-6726825d.safetensors"))
app.add_typer(weights_app, name="weights")


@weights_app.command("convert", epilog=_examples(
    "gankit weights convert pt_inception-2015-12-05-6726825d.pth",
    "gankit weights convert ~/Downloads/pt_inception-2015-12-05-6726825d.pth --out ~/weights/inception.safetensors"))
def weights_convert(
    src: Path = typer.Argument(..., metavar="FILE", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth, from "
                               "its GitHub releases."),
    dest: Optional[Path] = typer.Option(None, "--out", "-o", help="Output .safetensors (default: FILE with that "
                                        "suffix)."),
) -> None:
    """Convert pytorch-fid's Inception weights (.pth, read with torch's weights-only loader) to safetensors."""
    from .metrics.inception import WEIGHTS_ENV
    from .metrics.inception_weights import RELEASE_SHA256_PREFIX, convert

    converted = convert(src, dest)
    print(f"wrote {converted.path}")
    print(f"sha256 {converted.sha256}")
    if not converted.from_release:
        err.print(f"warning: {src.name} is not pytorch-fid's release file (sha256 {converted.source_sha256[:8]}..., "
                  f"expected {RELEASE_SHA256_PREFIX}...): FIDs from it are not comparable to published ones",
                  markup=False, highlight=False)
    err.print(f"use it with --weights {converted.path} or `export {WEIGHTS_ENV}={converted.path.resolve()}`",
              markup=False, highlight=False)


@weights_app.command("verify", epilog=_examples("gankit weights verify",
                                                "gankit weights verify pt_inception-2015-12-05-6726825d.safetensors"))
def weights_verify(
    path: Optional[Path] = typer.Argument(None, metavar="FILE", help="Converted .safetensors (default: "
                                          "$GANKIT_INCEPTION_WEIGHTS)."),
) -> None:
    """Check a converted file loads as the FID Inception network; print its sha256 and where it came from.

    Exit code 0 when it loads, 2 with one error line when not (damaged, incomplete, wrong shapes, not finite)."""
    from .metrics.inception_weights import RELEASE_SHA256_PREFIX, verify

    checked = verify(path)
    print(f"ok {checked.path}: complete FID Inception weights (keys, shapes and finite values as the network expects)")
    print(f"sha256 {checked.sha256}")
    source = {None: "not recorded (not written by `gankit weights convert`)",
              True: f"{checked.source_sha256}, pytorch-fid's release file (by its sha256 prefix)",
              False: f"{checked.source_sha256}, NOT pytorch-fid's release file (expected {RELEASE_SHA256_PREFIX}...): "
                     "FIDs from it are not comparable to published ones"}[checked.from_release]
    print(f"source sha256 {source}")
    print("official conversion: sha256 not known to gankit, so this file cannot be matched against it byte for byte")


@app.command("report", epilog=_examples("gankit report runs/digits", "gankit report runs/digits --out digits.html"))
def report_cmd(
    run: Path = typer.Argument(..., help="Run directory (or exported model folder)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="FILE.html (default: RUN/report.html)."),
) -> None:
    """Write one self-contained HTML page about a run: samples over training, curves, metrics with their protocol,
    the doctor's verdict, a model card and the config. Also written at the end of every training."""
    from .report.html import write_report

    if out is not None and out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {out}: the report is an HTML file", "give --out FILE.html")
    _check_files(out)
    path = write_report(run, out)
    err.print(f"wrote {path}", highlight=False)


@app.command("provenance", epilog=_examples("gankit provenance grid.png", "gankit provenance samples.npz --json"))
def provenance_cmd(
    path: Path = typer.Argument(..., help="A PNG, GIF or .npz."),
    as_json: bool = typer.Option(False, "--json", help="Print the fields as one JSON object."),
) -> None:
    """Say whether a file was generated by gankit, and by what: the provenance every image, GIF and .npz it writes
    carries (an inversion's latents say they were found for real images). Exit code 1 when the file has none (not
    made by gankit, or its metadata was stripped)."""
    from .io import is_plot, read_provenance

    if not path.is_file():
        raise UserError(f"{path} is a folder" if path.is_dir() else f"{path} does not exist",
                        "give a PNG, GIF or .npz file")
    fields = read_provenance(path)
    if fields is None:
        what = "a gankit plot of measurements, not a generated image" if is_plot(path) else \
            "no gankit provenance (not made by gankit, or its metadata was stripped)"
        err.print(f"{path}: {what}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        _print_json(fields, indent=2)
        return
    table = Table("field", "value")
    for key, value in fields.items():
        table.add_row(key.removeprefix("gankit:"), value)
    out.print(table)


@app.command("watermark", epilog=_examples("gankit watermark samples/ --run runs/shapes",
                                           "gankit watermark photo.jpg --key 'my secret phrase' --size 32x32"))
def watermark_cmd(
    paths: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, ...) or folders of them: single images, "
                                       "as `gankit sample --out DIR/` writes them, not grids."),
    run: Optional[Path] = typer.Option(None, "--run", help="The run (or model folder) whose watermark to look for."),
    key: Optional[str] = typer.Option(None, "--key", help="The secret phrase (watermark.key), instead of --run."),
    size: Optional[str] = typer.Option(None, "--size", help="With --key: WxH the model drew (default: each image's "
                                    "own size)."),
    fpr: float = typer.Option(1e-4, "--fpr", min=1e-12, max=0.5, help="False-positive rate: an image counts as "
                              "marked when an unmarked one would score as high less often than this."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per image, as a list."),
) -> None:
    """Look for a model's invisible watermark (watermark.key) in images, also after JPEG re-encoding, rescaling or
    cropping. Exit code 1 when some image carries no mark."""
    import torch

    from .data.folder import IMAGE_SUFFIXES, as_array, list_images, open_image
    from .nets.watermark import MIN_SIDE, detect
    from .train import load

    if (run is None) == (key is None):
        raise UserError("give the watermark to look for: --run RUN or --key PHRASE", "one of the two")
    channels = 3
    if run is not None:
        gen = load(run)
        if gen.watermark is None:
            raise UserError(f"{run} draws no watermark (its watermark.key is unset)",
                            "train with watermark.key=PHRASE, or resume it with that key and the same steps")
        key, (channels, height, width) = gen.config.watermark.key, gen.spec["shape"]
        native: Optional[tuple[int, int]] = (height, width)
    elif size is not None:
        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise UserError(f"--size {size!r} is not WxH", "e.g. --size 32x32") from None
        if min(w, h) < MIN_SIDE:
            raise UserError(f"--size {size}: a watermark needs sides of {MIN_SIDE} pixels or more",
                            "give the size the model drew, e.g. --size 32x32")
        native = (h, w)
    else:
        native = None
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += list_images(path)
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            files.append(path)
        else:
            raise UserError(f"{path} is not an image file or folder", f"give files ending in "
                            f"{', '.join(sorted(IMAGE_SUFFIXES))}, or folders of them")
    if not files:
        raise UserError(f"no images in {', '.join(map(str, paths))}", "give PNG / JPEG files or folders of them")
    results = []
    for path in files:
        try:
            image = torch.tensor(as_array(open_image(path, channels)), dtype=torch.float32) / 127.5 - 1
        except OSError as exc:
            raise UserError(f"{path} is not a readable image: {exc}", "give PNG / JPEG files") from None
        if min(image.shape[-2:]) < MIN_SIDE:
            raise UserError(f"{path} is {image.shape[-1]}x{image.shape[-2]} pixels: too small to hold a watermark",
                            f"marks are read from images of {MIN_SIDE}x{MIN_SIDE} pixels or more")
        height, width = native or image.shape[-2:]
        found = detect(image, key, height, width)
        results.append({"file": str(path), "marked": found.marked(fpr), "score": round(found.score, 2),
                        "p_value": found.p_value, "read": found.how})
    if as_json:
        _print_json(results, indent=2)
    else:
        table = Table("file", "marked", "score", "p-value", "read")
        for r in results:
            table.add_row(r["file"], "yes" if r["marked"] else "no", f"{r['score']:.1f}", f"{r['p_value']:.1e}",
                          r["read"])
        out.print(table)
    if not all(r["marked"] for r in results):
        raise typer.Exit(1)


@app.command(epilog=_examples("gankit info runs/digits", "gankit info runs/digits --json"))
def info(run: Path = typer.Argument(..., help="Run directory or exported model folder."),
         as_json: bool = typer.Option(False, "--json", help="Everything as one JSON object, with the config keys "
                                      "that apply to this run.")) -> None:
    """Summarise a run: what was trained on what, how far and how long, parameters, weights, last metrics."""
    from .report.info import run_info, summary_lines

    summary = run_info(run)
    if as_json:
        _print_json(summary)
        return
    for line in summary_lines(summary):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command(epilog=_examples("gankit doctor runs/digits", "gankit doctor runs/digits --json"))
def doctor(
    run: Path = typer.Argument(..., help="Run directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the diagnosis as one JSON object."),
) -> None:
    """Find what went wrong in a run's logs: mode collapse, vanishing gradients, D/G imbalance, divergence...

    Each problem comes with its evidence (steps, numbers) and a cure. Exit code 0 whether or not any is found."""
    from .doctor import diagnose, print_report

    diagnosis = diagnose(run)
    if as_json:
        _print_json(diagnosis.as_dict())
    else:
        print_report(diagnosis, Console())  # the doctor's report styles itself (its values escaped)


@app.command("export", epilog=_examples("gankit export runs/digits --format onnx --out digits.onnx",
                                        "gankit export runs/cgan --format torchscript --out cgan.pt"))
def export_model(
    run: Path = typer.Argument(..., help="Run directory or exported model folder."),
    fmt: str = typer.Option("torchscript", "--format",
                            help="torchscript or onnx (needs `pip install gankit\\[onnx]`)."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.pt for TorchScript, .onnx for ONNX)."),
) -> None:
    """Write the generator as a TorchScript or ONNX file that runs without gankit: inputs z (N, z_dim) and, for
    conditional models, the condition (class indices or codes), or the images to transform for image-to-image
    models; output the samples."""
    from .train import load
    from .train.export import example_inputs, export, takes_inputs

    gen = load(run)
    export(gen, fmt, out)
    names = ("inputs",) if takes_inputs(gen) else ("z", "condition")
    shapes = ", ".join(f"{name} {tuple(t.shape[1:])} {str(t.dtype).removeprefix('torch.')}"
                       for name, t in zip(names, example_inputs(gen)))
    output = tuple(gen.spec.get("pair", {}).get("shape_b", gen.spec["shape"]))
    err.print(f"wrote {out} ({fmt}): inputs per sample {shapes}; output samples {output}", highlight=False)


@app.command(epilog=_examples("gankit train grid25-best model.members=10 train.batch_size=1200 --out runs/g10",
                              "gankit split runs/g10 --out runs/g10-members"))
def split(
    run: Path = typer.Argument(..., help="Run directory of an ensemble (trained with model.members > 1)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="New folder: one run per member goes in it."),
) -> None:
    """Write one run per member of an ensemble run (OUT/member-0, ...), each with the member's weights, optimizer
    state and exported model: sample, evaluate, refine or resume them like runs trained alone."""
    from .train.ensemble import split_members

    runs = split_members(run, out_dir)
    err.print(f"wrote {len(runs)} member runs to {out_dir}: evaluate one with `gankit eval {runs[0]}`",
              highlight=False)


@app.command(epilog=_examples("gankit presets"))
def presets() -> None:
    """List the presets shipped with gankit."""
    table = Table(show_header=True)
    table.add_column("preset")
    table.add_column("description")
    for name, desc in config_mod.preset_descriptions().items():
        table.add_row(name, desc)
    out.print(table)


@app.command(epilog=_examples("gankit variants"))
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
    """Entry point: run the app; user mistakes (ours and the command line's) print `error: ...` plus a hint and exit
    with code 2; a closed pipe (`gankit ... | head`) ends quietly with code 1 (click's rule); bugs keep their
    traceback."""
    _setup_logging()
    args = sys.argv[1:] if argv is None else argv
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals can be set there only
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main_thread else None
    try:
        _refuse_empty_outputs(args)
        code = app(args=args, prog_name="gankit", standalone_mode=False)
    except UserError as exc:
        _fail(exc.message, exc.hint, exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _fail("aborted", None, 130)
    except CommandLineError as exc:  # the command line itself: unknown option, missing argument, bad value
        if not exc.format_message().strip():  # no arguments at all: the help was shown, nothing went wrong
            sys.exit(0)
        command = getattr(getattr(exc, "ctx", None), "command_path", "gankit")
        _fail(exc.format_message(), f"see `{command} --help`", getattr(exc, "exit_code", 2))
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        _fail(f"{exc.filename or 'a path'}: {exc.strerror}", "give a shorter file or folder name", 2)
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        _fail(f"out of memory{': ' + first if first else ''}", "ask for less at once: a smaller -n (or write samples "
              "to a folder, --out DIR/), a smaller train.batch_size or model", 2)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
    if _TERMINATED:  # typer returned Ctrl-C's 130 for it
        _TERMINATED.clear()
        _fail("terminated (SIGTERM)", None, 128 + signal.SIGTERM)
    sys.exit(code if isinstance(code, int) else 0)


_TERMINATED: list[int] = []  # the SIGTERM this command got, if any


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, `timeout`, a job scheduler) is raised like Ctrl-C, so the outputs being written are removed
    as they are on Ctrl-C. Training installs its own handler (checkpoint, then stop) while it runs."""
    _TERMINATED.append(signum)
    raise KeyboardInterrupt


def _refuse_empty_outputs(args: list[str]) -> None:
    """`--out ""` (an unset shell variable) would mean the current directory: say so instead of writing there."""
    for i, arg in enumerate(args):
        if arg == "--out=" or arg in ("--out", "-o") and i + 1 < len(args) and not args[i + 1].strip():
            raise UserError("--out is empty", "give a file or a folder (DIR/); in a script, check that the variable "
                            "holding it is set")


OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")  # CPU allocators' and CUDA's words


def _out_of_memory(exc: BaseException) -> bool:
    """An allocation that failed (host or GPU memory): something the user can fix by asking for less. CPU and CUDA
    allocators report it as a RuntimeError; other RuntimeErrors are bugs and keep their traceback."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or \
        any(words in text for words in OUT_OF_MEMORY)


def _fail(message: str, hint: str | None, code: int) -> None:
    err.print(f"error: {message}", markup=False, highlight=False)
    if hint:
        err.print(f"hint: {hint}", markup=False, highlight=False)
    sys.exit(code)

