"""The one training loop: walk the variant's phases, step each group's optimizer, log, sample, checkpoint.

The trainer owns everything stateful about training (optimizers, EMA, RNG, data order, files); variants only say
what a phase's loss is. A resumed CPU run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import Config, to_yaml
from ..data import Dataset, kind_of, load_dataset
from ..errors import UserError
from ..io import atomic_path, write_bytes
from ..metrics import PROGRESS_METRICS
from ..nets import count_parameters
from ..variants import Context, Group, Variant, build_variant, grad_norm_key
from ..version import __version__
from . import checkpoint as ckpt
from . import distributed, restarts
from .ema import EMA
from .guard import Diverged, NanGuard
from .plots import plot_losses
from .pretrained import generator_section, output_stage, write_model_dir
from .refine import DISCRIMINATOR_FILE, discriminator_state
from .runrecord import RunRecord
from .logging import JsonlLog, ProgressBar, TensorBoardLog, summary_writer

log = logging.getLogger("gankit")
SNAPSHOT_EVERY = 100  # steps between in-memory "last good state" copies used by the NaN guard (and every checkpoint)
GUARD_FILE = "guard.safetensors"  # in a checkpoint: the NaN guard's snapshot when it is older than the checkpoint
OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop,
              "sgd": torch.optim.SGD}


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then CPU; a named device must exist on this machine (else a UserError)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"train.device={name!r} is not a device name", "use auto, cpu, cuda, cuda:N or mps") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(device.type, False):
        why = "is not supported" if device.type not in available else "is not available on this machine"
        raise UserError(f"train.device={name!r}: {device.type} {why}", "use train.device=auto (or cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"train.device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                        "use cuda:0 ... or auto")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto` picks bf16 where the hardware computes it natively (a CPU with AMX tiles, where it was measured to pay;
    a CUDA GPU with bf16) and fp32 elsewhere, where bf16 would be emulated."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private in torch 2.x: absent means unknown, so fp32
    return "bf16" if device.type == "cpu" and amx is not None and amx() else "fp32"


class Trainer:
    """Builds data, variant, optimizers and EMA from a Config and trains into `run_dir`.

    Started by torchrun, each process trains on its part of every batch (see gankit.train.distributed); process 0
    alone writes the run's files.
    """

    def __init__(self, cfg: Config, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
                 dataset: Dataset | None = None) -> None:
        self.cfg, self.run_dir, self.show_progress = cfg, Path(run_dir), progress
        self.shard, self.device = distributed.setup(resolve_device(cfg.train.device))
        self.main = self.shard.rank == 0  # the process that writes files
        self.precision = resolve_precision(cfg.train.precision, self.device)
        if not resume and self.run_dir.is_dir() and any(self.run_dir.iterdir()):
            what = "already holds a run" if (self.run_dir / "config.yaml").is_file() else "is not empty"
            raise UserError(f"{self.run_dir} {what}", "resume it (resume=True, `gankit train --resume`) or train "
                            "into a new directory")
        if cfg.train.batch_size % self.shard.world:
            raise UserError(f"train.batch_size={cfg.train.batch_size} does not divide over {self.shard.world} "
                            "processes", "use a multiple of the process count (it is the global batch)")
        if cfg.federated.clients and type(self) is Trainer:
            raise UserError("federated.clients is set: this config trains with gankit.train.FederatedTrainer",
                            "build the trainer with gankit.train.make_trainer(cfg, run_dir)")
        if self.shard.world > 1 and cfg.train.restarts > 1:
            raise UserError("train.restarts trains its candidates in one process", "run without torchrun / --nproc, "
                            "or with train.restarts=1")
        if self.shard.world > 1 and cfg.loss.contrastive:
            raise UserError("loss.contrastive contrasts each view with the rest of its process's batch, so more "
                            "processes would train another term", "run without torchrun / --nproc")
        if self.shard.world > 1 and cfg.privacy.epsilon is not None:
            raise UserError("privacy.epsilon runs train in one process: the DP accountant assumes one noisy sum per "
                            "step", "run without torchrun / --nproc")
        if self.precision == "fp16" and cfg.privacy.epsilon is not None:
            raise UserError("privacy.epsilon clips each example's gradient to privacy.max_grad_norm, and fp16's loss "
                            "scale would multiply those gradients first", "train it with train.precision=fp32 or bf16")
        distributed.barrier(self.shard)  # every process has looked at run_dir before process 0 writes to it
        if cfg.train.tensorboard:
            summary_writer()  # fails here, before any work, when tensorboard is missing
        torch.manual_seed(cfg.seed)
        self.data = dataset if dataset is not None else load_dataset(cfg.data, cfg.seed)
        self.spec = self.data.spec()
        self.kind = kind_of(self.spec)
        if output_stage(cfg, self.spec) is not None and min(self.spec["shape"][1:]) < 32 and self.main:
            # a watermark the outputs cannot carry failed above, before training; a small one can, but not unseen
            log.warning("watermark: at %s pixels a mark of strength %g shows (PSNR about 19 dB at 16×16 and "
                        "strength 8); docs/provenance.md has the trade-off", "×".join(map(str, self.spec["shape"][1:])),
                        cfg.watermark.strength)
        self.variant: Variant = build_variant(cfg, self.spec).to(self.device)
        if cfg.train.channels_last:  # checkpoints and exports are written contiguous as always
            _channels_last(self.variant)
        self.groups: dict[str, Group] = self.variant.groups
        if cfg.train.compile:
            self._compile()
        self.optimizers = {name: make_optimizer(group) for name, group in self.groups.items()}
        averaged = [m for group in self.groups.values() if group.ema for m in group.modules]
        self.ema = EMA(self.variant, self.variant.state_keys(averaged), cfg.optim.ema) \
            if averaged and cfg.optim.ema else None
        # fp16 gradients underflow without a loss scale: one dynamic scaler per group (D's and G's gradients differ
        # by orders of magnitude), whose overflow skips are normal and are not the NaN guard's business
        self.scalers = {name: torch.amp.GradScaler(self.device.type) for name in self.groups} \
            if self.precision == "fp16" else {}
        if self.scalers and self.device.type == "cpu" and self.main:
            log.warning("train.precision=fp16 on a CPU runs, but CPUs rarely compute float16 fast: use bf16 (or fp32)")
        self.overflows = 0  # fp16 steps skipped because the scaled gradients overflowed, since the last log line
        self.guard = NanGuard(self.variant, self.optimizers, self.ema, {n: g.lr for n, g in self.groups.items()},
                              cfg.train.nan_patience, cfg.train.max_rollbacks, cfg.train.rollback_lr_factor)
        self.sampler = self.kind.sampler(self.data, cfg.train.batch_size, cfg.seed, self.device)
        self.sampler.shard = self.variant.shard = self.shard
        # The fixed request behind the progress pictures draws from its own generator, so pictures are comparable
        # across steps and training's RNG stream is untouched.
        fixed_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.fixed = self.variant.prepare(self.variant.progress_request(self.kind.fixed_count, fixed_gen,
                                                                        self.kind.fixed_inputs(self.data)))
        self.step = 0
        self.stop_signal: int | None = None
        self.peer_stop = False  # some process of a data-parallel run was asked to stop
        self.logs: JsonlLog | None = None  # open only while fit() runs
        self.board: TensorBoardLog | None = None  # with train.tensorboard, open only while fit() runs
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # with train.restarts the run starts from the best candidate, chosen (or finished choosing) in fit()
        self.choosing = cfg.train.restarts > 1 and restarts.pending(self.run_dir)
        if resume:
            self._refuse_fixed_changes()
        if resume and not self.choosing:
            self._restore()
        elif not resume and self.main:
            write_bytes(self.run_dir / "config.yaml", to_yaml(cfg).encode())
        distributed.broadcast_state(self.variant, self.shard)

    # ------------------------------------------------------------------------------------------- the loop

    def fit(self) -> dict[str, Any]:
        """Train until `train.steps`, a signal, or divergence; the last good state is checkpointed in every case."""
        with ckpt.run_lock(self.run_dir) if self.main else contextlib.nullcontext():
            if self.choosing:
                stopped = restarts.choose_start(self.cfg, self.run_dir, self._train_candidate)
                if stopped is not None:
                    return {"step": 0, "run_dir": str(self.run_dir), "interrupted_by": stopped, "steps_per_s": 0.0}
                self._restore()
                self.choosing = False
            if self.step > self.cfg.train.steps:
                raise UserError(f"train.steps={self.cfg.train.steps} is below the step {self.run_dir} is at "
                                f"({self.step})", f"raise it to continue, e.g. train.steps={2 * self.step}; "
                                "`gankit sample` and `gankit eval` use the run as it is")
            self._record_config()  # once the checkpoint has loaded: a config that cannot resume changes nothing
            if self.step:  # said here, where training goes on, not wherever a trainer is built from a checkpoint
                log.info("resumed from step-%d", self.step)
            return self._fit()

    def snapshot_due(self) -> bool:
        """Whether the NaN guard takes a snapshot at this step: every SNAPSHOT_EVERY steps, and at every checkpoint
        of the cadence, so that those need no copy of it."""
        every = self.cfg.train.checkpoint_every
        return self.step % SNAPSHOT_EVERY == 0 or bool(every) and self.step % every == 0

    def _refuse_fixed_changes(self) -> None:
        """A resume may change most keys (steps, learning rates, ...), not those the variant fixes for its run."""
        fixed = self.variant.fixed_on_resume()
        path = self.run_dir / "config.yaml"
        if not fixed or not path.is_file():
            return
        from ..variants import resolve

        before = resolve(str(path))[0]
        for key, why in fixed.items():
            old, new = _config_value(before, key), _config_value(self.cfg, key)
            if old != new:
                raise UserError(f"{key} cannot change when this run resumes ({_yaml_value(old)} → "
                                f"{_yaml_value(new)}): {why}", f"resume without {key}=..., or train a new run")

    def _record_config(self) -> None:
        """config.yaml is the config this session trains with, a resume's overrides included: a later resume keeps
        them, and `gankit train RUN/config.yaml` re-runs the run."""
        path, text = self.run_dir / "config.yaml", to_yaml(self.cfg)
        if self.main and (not path.is_file() or path.read_text() != text):
            write_bytes(path, text.encode())

    def _train_candidate(self, cfg: Config, run_dir: Path, resume: bool) -> dict[str, Any]:
        """One restart candidate, trained as a run of its own (gankit.train.restarts)."""
        return type(self)(cfg, run_dir, resume=resume, progress=self.show_progress).fit()

    def _fit(self) -> dict[str, Any]:
        cfg = self.cfg.train
        main = self.main
        self.logs = JsonlLog(self.run_dir / "logs.jsonl", resume_step=self.step if self.step else None) \
            if main else None
        self.board = TensorBoardLog(self.run_dir) if cfg.tensorboard and main else None
        bar = ProgressBar(cfg.steps, self.step, self.variant.log_keys, enabled=self.show_progress and main)
        window: dict[str, list] = {}  # scalar name -> [running sum (tensor, no sync), count]
        window_start, window_from, first_step = time.perf_counter(), self.step, self.step
        diverged: Diverged | None = None
        record = RunRecord(self.run_dir) if main else None
        if record is not None:
            record.start(self.device, self.step, self.shard.world, distributed.launch_id(), self.precision)
        status = "failed"  # until the loop ends one of the known ways
        previous = self._install_signal_handlers()
        if not self.guard.has_snapshot:  # a resumed run has its checkpoint's
            self.guard.snapshot(self.step)
        loop_start = time.perf_counter()
        try:
            while self.step < cfg.steps and not self._stopping():
                try:
                    self._iteration(window)
                except Diverged as exc:  # the guard restored the last good state: save it below, then report
                    diverged = exc
                    break
                self.step += 1
                if cfg.compile and self.step == first_step + 1 and self.logs is not None:
                    self.logs.write({"step": self.step, "event": "compile",
                                     "seconds": round(time.perf_counter() - loop_start, 2)})
                bar.advance()
                if self.snapshot_due() and self.guard.clean:  # a good state to roll back to
                    self.guard.snapshot(self.step)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    bar.show(self._log_window(window, self.step - window_from, time.perf_counter() - window_start))
                    window, window_start, window_from = {}, time.perf_counter(), self.step
                if main and cfg.sample_every and self.step % cfg.sample_every == 0:
                    self.save_samples()
                if main and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
            loop_seconds = time.perf_counter() - loop_start
            fresh = diverged is None and self.step > first_step  # cadence saves at this step are still current
            if main and not (fresh and cfg.sample_every and self.step % cfg.sample_every == 0):
                self.save_samples()
            if main and not (fresh and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0):
                self.save_checkpoint()
            if self.peer_stop and self.stop_signal is None:
                self.stop_signal = signal.SIGTERM  # another process was signalled: this one stopped with it
            status = "interrupted" if self.stop_signal is not None else "diverged" if diverged else "finished"
            if diverged is not None:
                self._log_window(window, 0, 0.0, {"event": "diverged", "message": diverged.message})
                if main and cfg.pictures:
                    plot_losses(self.run_dir)
                raise diverged
        finally:
            self._restore_signal_handlers(previous)
            bar.close()
            if self.logs is not None:
                self.logs.close()
            if self.board is not None:
                self.board.close()
            if record is not None:
                record.end(self.step, status)
        return {"step": self.step, "run_dir": str(self.run_dir), "interrupted_by": self.stop_signal,
                "steps_per_s": (self.step - first_step) / max(loop_seconds, 1e-9)}

    def _iteration(self, window: dict[str, list]) -> None:
        """One iteration: each phase due at this step runs `repeats` optimizer steps of its group."""
        if self.cfg.optim.schedule != "constant":
            self.guard.schedule = lr_schedule(self.cfg.optim.schedule, self.step / self.cfg.train.steps,
                                              self.cfg.optim.decay_start)
            self.guard.apply_lrs()
        ctx = Context(step=self.step, progress=self.step / self.cfg.train.steps)
        for phase in self.variant.phases:
            if not phase.active(self.step):
                continue
            optimizer = self.optimizers[phase.group]
            for _ in range(phase.repeats):
                batch = self.sampler.next()
                optimizer.zero_grad(set_to_none=True)
                with self._precision():
                    loss, scalars = self.variant.loss(phase.name, batch, ctx)
                scaler = self.scalers.get(phase.group)
                # gradients for this group only: the other players' weight gradients would be computed and thrown
                # away (D's in G's step), which is a fifth of a DCGAN step and more for packed tabular critics
                mine = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad]
                (loss if scaler is None else scaler.scale(loss)).backward(inputs=mine)
                loss, stop = loss.detach(), None
                if self.shard.world > 1:
                    loss, stop = distributed.reduce_gradients(optimizer, loss, self.stop_signal is not None,
                                                              self.shard)
                if scaler is not None:
                    scaler.unscale_(optimizer)
                grad_norm = _grad_norm(optimizer)
                finite = torch.isfinite(loss) & torch.isfinite(grad_norm)
                if stop is not None:  # read with the finite check: still one sync per step
                    finite, stop = torch.stack([finite, stop]).tolist()
                    self.peer_stop |= stop
                if not bool(finite):  # the one sync per step
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None and bool(torch.isfinite(loss)):  # fp16 overflow: a smaller scale next
                        scaler.update()
                        self.overflows += 1
                        continue
                    if self.guard.nonfinite(phase.group, self.step):
                        return  # weights were restored in place: what this iteration's context holds is stale
                    continue
                if scaler is None:
                    optimizer.step()
                else:
                    scaler.step(optimizer)
                    scaler.update()
                self.guard.finite(phase.group)
                scalars[grad_norm_key(phase.group)] = grad_norm
                for key, value in scalars.items():
                    entry = window.setdefault(key, [0.0, 0])
                    entry[0] += value
                    entry[1] += 1
            if self.ema is not None and self.groups[phase.group].ema:
                self.ema.update(self.variant)

    def _compile(self) -> None:
        """torch.compile every net of every group in place (parameter names and checkpoints are unchanged); the
        compiled code is cached in the run, so a resumed run skips most of the compile."""
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(self.run_dir / ".compile-cache")
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)  # one net is called
        # with several input kinds (reals, fakes with and without grad, eval mode for samples)
        for group in self.groups.values():
            for module in group.modules:
                module.compile()

    def _precision(self) -> contextlib.AbstractContextManager:
        """The forward passes' precision: bf16 or fp16 autocast (backward and optimizer steps run outside it), or
        fp32."""
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return contextlib.nullcontext() if dtype is None else torch.autocast(self.device.type, dtype=dtype)

    def _log_window(self, window: dict[str, list], steps: int, seconds: float,
                    final: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the guard's events and one record of window means (step, rate, learning rates) to logs.jsonl."""
        skipped, events = self.guard.take_window()
        keys = sorted(window)
        means = distributed.mean_over_processes(
            torch.tensor([float(window[k][0]) / window[k][1] for k in keys], dtype=torch.float64), self.shard)
        record: dict[str, Any] = {"step": self.step}
        record.update(zip(keys, means.tolist()))
        if steps and seconds:
            record["it_s"] = steps / seconds
        record.update({f"lr_{g}": opt.param_groups[0]["lr"] for g, opt in self.optimizers.items()})
        if skipped:
            record["skipped_nonfinite"] = skipped
        if self.scalers:
            record.update({f"loss_scale_{g}": s.get_scale() for g, s in self.scalers.items()})
            record["fp16_overflows"], self.overflows = self.overflows, 0
        record.update(final or {})
        if self.logs is not None:  # process 0's
            for event in events:
                self.logs.write(event)
            self.logs.write(record)
        if self.board is not None:
            self.board.write(record)
        return record

    # ------------------------------------------------------------------------------------------- outputs

    @torch.no_grad()
    def sample_fixed(self) -> Tensor:
        """Samples of the fixed request from G (the EMA weights when enabled) in eval mode."""
        gens = self.variant.generator_modules()
        modes = [g.training for g in gens]
        for g in gens:
            g.eval()
        try:
            if self.ema is not None:
                with self.ema.swapped(self.variant):
                    return self.variant.generate(self.fixed).cpu()
            return self.variant.generate(self.fixed).cpu()
        finally:
            for g, mode in zip(gens, modes):
                g.train(mode)

    def save_samples(self) -> Path | None:
        """samples/step-N.png, drawn by the data kind (unless `train.pictures` is off); its progress metric (e.g.
        modes found, for data with known modes) is logged with it, so what happened over time is visible to
        `gankit doctor`."""
        path = self.run_dir / "samples" / f"step-{self.step}.png"
        # a picture must not change training: whatever it draws comes from a copy of the RNG state
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            fake = self.sample_fixed()
            metric = PROGRESS_METRICS.get(self.kind.progress_metric or "")
            scored = metric(fake, self.spec) if metric is not None else None
        meta = {"run": self.run_dir.name, "step": self.step, "seed": self.cfg.seed}
        title = f"{self.run_dir.name} step {self.step}"
        if scored is not None:
            record, summary = scored
            title += f": {summary}"
            if self.logs is not None and not self.logs.closed:
                self.logs.write({"step": self.step, **record})
        if not self.cfg.train.pictures:
            return None
        self.kind.save_progress(path, fake, self.data, title, meta)
        if self.board is not None:
            self.board.picture(path, self.step)
        return path

    def save_checkpoint(self) -> Path:
        """checkpoints/step-N (resumable state) and model/ (what `gankit.load` reads), then prune old ones."""
        model = dict(self.variant.state_dict())
        if self.ema is not None:
            model.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        optim_tensors, optim_meta = ckpt.optimizer_to_files(self.optimizers)
        state = {"gankit_version": __version__, "rng": ckpt.rng_state(), "sampler": self.sampler.state_dict(),
                 "optim": optim_meta, "spec": self.spec,
                 "lr_scale": self.guard.lr_scale, "rollbacks": self.guard.rollbacks,
                 "ema_updates": self.ema.updates if self.ema else 0,
                 "loss_scales": {g: s.state_dict() for g, s in self.scalers.items()}}
        files = {"model.safetensors": model, "optim.safetensors": optim_tensors}
        snapshot, state["guard"] = self.guard.to_files(self.guard.snapshot_step == self.step)
        if snapshot is not None:
            files[GUARD_FILE] = snapshot
        self._save_mode_state(files, state)
        path = ckpt.save_checkpoint(self.run_dir, self.step, files, state)
        self.export()
        ckpt.prune_checkpoints(self.run_dir, self.cfg.train.keep_checkpoints)
        if self.cfg.train.pictures:
            plot_losses(self.run_dir)
        return path

    def export(self) -> Path:
        """model/: config.json + model.safetensors with the generator (EMA weights where kept)."""
        weights = self.variant.generator_state()
        if self.ema is not None:
            weights.update({k: v for k, v in self.ema.shadow.items() if k in weights})
        parameters = {n: sum(count_parameters(m) for m in g.modules) for n, g in self.groups.items()}
        if self.cfg.train.export_discriminator:  # asked for by the run: D beside G, for refined sampling
            (self.run_dir / "model").mkdir(parents=True, exist_ok=True)
            with atomic_path(self.run_dir / "model" / DISCRIMINATOR_FILE) as tmp:
                ckpt.save_tensors(tmp, discriminator_state(self.variant))
        return write_model_dir(self.run_dir / "model", weights, {
            "step": self.step, "weights": "ema" if self.ema else "raw", "spec": self.spec, "parameters": parameters,
            "generator": generator_section(self.cfg)})

    # ------------------------------------------------------------------------------------------- resume

    def _restore(self) -> None:
        path, state, files = ckpt.latest_checkpoint(self.run_dir)
        model = files["model.safetensors"]
        try:
            self.variant.load_state_dict({k: v for k, v in model.items() if not k.startswith("ema.")})
        except RuntimeError as exc:  # resumed with other network sizes
            detail = (str(exc).splitlines()[1:] or [""])[0].strip()
            raise UserError(f"{path.name} does not fit this config: {detail}",
                            "resume without changing `variant`, model.*, the variant's own keys or whether "
                            "loss.contrastive is on (they shape the networks)") from None
        if self.ema is not None:
            shadow = {k[4:]: v for k, v in model.items() if k.startswith("ema.")}
            if shadow:
                self.ema.shadow = {k: v.to(self.device) for k, v in shadow.items()}
                self.ema.updates = state.get("ema_updates", 0)
        ckpt.optimizer_from_files(self.optimizers, files["optim.safetensors"], state["optim"])
        self.guard.lr_scale, self.guard.rollbacks = state.get("lr_scale", 1.0), state.get("rollbacks", 0)
        for group, saved in state.get("loss_scales", {}).items():  # a run resumed in another precision has none
            if group in self.scalers:
                self.scalers[group].load_state_dict(saved)
        self.guard.apply_lrs()  # learning rates follow the (possibly changed) config, times any NaN-guard scaling
        ckpt.set_rng_state(state["rng"])
        self.sampler.load_state_dict(state["sampler"] if "sampler" in state else {"cursor": state["data_cursor"]})
        self.step = state["step"]
        self.guard.from_files(self.step, files.get(GUARD_FILE), state.get("guard"))
        self._restore_mode_state(state, files)

    def _save_mode_state(self, files: dict[str, dict[str, Tensor]], state: dict[str, Any]) -> None:
        """Add a training mode's own state to a checkpoint (files and state.json); the plain loop has none, federated
        training (gankit.train.federated) keeps its clients here."""

    def _restore_mode_state(self, state: dict[str, Any], files: dict[str, dict[str, Tensor]]) -> None:
        """Inverse of _save_mode_state."""

    # ------------------------------------------------------------------------------------------- signals

    def _stopping(self) -> bool:
        """A signal stops a one-process run at once; a data-parallel run once every process knows (next step)."""
        return self.peer_stop if self.shard.world > 1 else self.stop_signal is not None

    def _install_signal_handlers(self) -> dict[int, Any]:
        """First SIGINT/SIGTERM: finish the step, checkpoint, stop. A second one: exit at once (files are atomic)."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_signal is not None:
                if self.shard.world > 1:  # Ctrl-C reaches a worker twice (terminal, then torchrun), and torchrun
                    return  # kills workers itself when they take too long
                raise SystemExit(128 + signum)
            self.stop_signal = signum
            again = "" if self.shard.world > 1 else " (again to quit at once)"
            if self.main:
                log.warning("%s received: finishing this step and saving a checkpoint%s", signal.Signals(signum).name,
                            again)

        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for s, h in previous.items():
            signal.signal(s, h)


def make_optimizer(group: Group) -> torch.optim.Optimizer:
    """The optimizer a group asks for, over its parameters."""
    if group.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{group.optimizer}'", f"choose one of: {', '.join(OPTIMIZERS)}")
    params = group.parameters()
    extra: dict[str, Any] = {}
    if group.optimizer in ("adam", "adamw"):
        # the fused kernel updates every tensor in one pass: ~13 % of a step on small MLPs (docs/benchmarks.md)
        extra = {"betas": group.betas, "fused": all(p.device.type in ("cpu", "cuda") for p in params)}
    return OPTIMIZERS[group.optimizer](params, lr=group.lr, **extra)


def lr_schedule(name: str, progress: float, start: float = 0.0) -> float:
    """Learning-rate factor at `progress` ∈ [0, 1) of training: constant 1, linear or cosine decay to 0 over the part
    of training after `start` (1 before it)."""
    progress = max(0.0, progress - start) / (1.0 - start)
    if name == "linear":
        return 1.0 - progress
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def _grad_norm(optimizer: torch.optim.Optimizer) -> Tensor:
    """L2 norm of all gradients of one optimizer's parameters."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _config_value(cfg: Config, key: str) -> Any:
    """The value of a dotted config key ("train.steps")."""
    value: Any = cfg
    for part in key.split("."):
        value = getattr(value, part)
    return value


def _yaml_value(value: Any) -> str:
    """A config value as an override would spell it (None as null)."""
    return "null" if value is None else str(value)


@torch.no_grad()
def _channels_last(module: nn.Module) -> None:
    """Lay every 4-D parameter out channels-last (NHWC). Module.to(memory_format=...) would refuse a model that
    also has 5-D weights (a video D's 3D convs), which keep their layout."""
    for m in module.modules():
        for p in m.parameters(recurse=False):
            if p.dim() == 4:
                p.data = p.data.contiguous(memory_format=torch.channels_last)
