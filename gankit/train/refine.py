"""Discriminator-guided sampling: keep the generator's samples that a calibrated D believes.

Two methods, both on D's logit after Platt scaling (a logistic regression of real-vs-fake on the logit, fitted on
held-out real samples and fresh generated ones, so D̃ estimates log p_data/p_G):

* `drs` — discriminator rejection sampling (Azadi et al. 2019): accept x with probability σ(F(x) − γ), where
  F(x) = D̃(x) − M − log(1 − exp(D̃(x) − M − ε)), M the largest D̃ seen so far and γ the `quantile` of F on a
  burn-in batch (a higher quantile keeps fewer, more typical samples).
* `mh` — Metropolis–Hastings with independent proposals from G (Turner et al. 2019): each output is the end of a
  chain of `chain` proposals, started at a real sample, moving to x' with probability min(1, exp(D̃(x') − D̃(x)));
  a chain that never leaves its real start is run again from a generated sample (counted as a fallback).

D comes from model/discriminator.safetensors when the run exported it (`train.export_discriminator=true`), else
from the run's newest checkpoint. With `steps` > 0, D is first trained further against the frozen G (the logistic
loss, no augmentation) before calibration, as Azadi et al. do: a D trained beside a moving G, often on augmented
images, separates the final G's samples from the data less well than it could. Held-out real samples are fresh
draws for data generated from a seed (toy 2D, shapes), else the samples `data.holdout` kept from training; without
either the training data is used, and the protocol says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from .. import losses
from ..data import load_dataset, load_holdout, only_classes
from ..errors import UserError
from ..metrics.features import progress_bar
from ..variants import Request, Variant, build_variant, resolve, variant_class
from . import checkpoint as ckpt
from .pretrained import checkpoint_variant

METHODS = ("drs", "mh")
CALIBRATION = 10_000  # real and generated samples each for Platt scaling
BURN_IN = 10_000  # generated samples that set M and γ for DRS
HELDOUT_SEED = 1_000_003  # added to the run's seed for fresh draws of generated data sets
DISCRIMINATOR_FILE = "discriminator.safetensors"
EPS = 1e-6
CHUNK = 4096
FINETUNE_BATCH, FINETUNE_LR, FINETUNE_BETAS = 64, 1e-4, (0.5, 0.999)  # D's further training against the frozen G


@dataclass
class RefineStats:
    """What refinement cost: acceptance rate and D / G evaluations per kept sample, and how D was calibrated."""

    method: str
    kept: int = 0
    proposals: int = 0  # proposals drawn after the burn-in
    accepted: int = 0  # DRS: proposals kept; MH: moves of a chain to its proposal
    burn_in: int = 0
    fallbacks: int = 0
    protocol: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        evals = (self.proposals + self.burn_in) / max(self.kept, 1)  # one G and one D pass per proposal
        return {"method": self.method, "acceptance": self.accepted / max(self.proposals, 1),
                "g_evals_per_sample": evals, "d_evals_per_sample": evals, "fallbacks": self.fallbacks,
                **self.protocol}


def discriminator_state(variant: Variant) -> dict[str, Tensor]:
    """The state of every module that is not part of the exported generator (D, and heads on it)."""
    generator = set(variant.generator_state())
    return {k: v for k, v in variant.state_dict().items() if k not in generator}


class Refiner:
    """A run's D, calibrated on held-out data, ready to refine batches of the generator's samples."""

    def __init__(self, gen: Any, source: Path, *, quantile: float = 0.5, chain: int = 20, steps: int = 0,
                 seed: int = 0, truncation: float = 1.0) -> None:
        if not 0 <= quantile < 1:
            raise UserError(f"refine quantile must be in [0, 1), got {quantile}")
        if chain < 1:
            raise UserError(f"refine chain length must be >= 1, got {chain}")
        if steps < 0:
            raise UserError(f"refine steps (D's further training) must be >= 0, got {steps}")
        self.gen, self.quantile, self.chain, self.steps = gen, quantile, chain, steps
        self.truncation = truncation  # of the proposals D is tuned and calibrated against: those it will refine
        self.cfg = resolve(str(_run_dir(source) / "config.yaml"))[0]
        self.critic, where = _load_critic(self.cfg, gen.spec, source)
        finetune = self._finetune(steps, seed) if steps else None
        real, real_cond, heldout = _real_samples(self.cfg, CALIBRATION)
        g = torch.Generator().manual_seed(seed + 7)
        fake, fake_cond = self._propose(len(real), g, truncation=truncation)
        logits = torch.cat([self._logits(real, real_cond), self._logits(fake, fake_cond)]).double().numpy()
        labels = [1] * len(real) + [0] * len(fake)
        platt = LogisticRegression(C=1e6).fit(logits[:, None], labels)
        self.a, self.b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        self.protocol = {"discriminator": where, "finetune": finetune, "calibration": {
            "method": "Platt scaling (logistic regression on D's logit)", "real": len(real), "generated": len(fake),
            "generated_truncation": truncation, "real_samples": heldout, "a": self.a, "b": self.b}}

    @property
    def setting(self) -> tuple[float, int, int, float]:
        """(quantile, chain, steps, truncation): what a Generator compares before reusing this refiner."""
        return self.quantile, self.chain, self.steps, self.truncation

    # ------------------------------------------------------------------------------------------- pieces

    def _finetune(self, steps: int, seed: int) -> dict[str, Any]:
        """Train D (and only D) `steps` more steps against the frozen G: real (label 1) vs fresh samples (label 0),
        the logistic loss on D's plain logit; returns what was done, for the protocol."""
        real, real_cond, where = _real_samples(self.cfg, CALIBRATION, offset=2, heldout=False)
        tuned = set(discriminator_state(self.critic))
        params = [p for name, p in self.critic.named_parameters() if name in tuned]
        was = [(p, p.requires_grad) for p in self.critic.parameters()]
        for p, _ in was:
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=FINETUNE_LR, betas=FINETUNE_BETAS)
        g = torch.Generator().manual_seed(seed + 11)
        history = []
        with torch.enable_grad(), progress_bar("training D further", steps, minimum=1) as advance:
            for _ in range(steps):
                index = torch.randint(len(real), (FINETUNE_BATCH,), generator=g)
                fake, fake_cond = self._propose(FINETUNE_BATCH, g, truncation=self.truncation)
                real_logit = self.critic.score(real[index], None if real_cond is None else real_cond[index])
                loss = losses.d_bce(real_logit, self.critic.score(fake, fake_cond))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                history.append(loss.item())
                advance(1)
        for p, flag in was:
            p.requires_grad_(flag)
        tail = history[-max(1, steps // 10):]
        return {"steps": steps, "batch": FINETUNE_BATCH, "lr": FINETUNE_LR, "loss": "logistic (real 1, generated 0)",
                "real_samples": where, "final_loss": sum(tail) / len(tail)}

    @torch.no_grad()
    def _logits(self, x: Tensor, cond: Tensor | None) -> Tensor:
        parts = []
        for start in range(0, len(x), CHUNK):
            part_cond = None if cond is None else cond[start : start + CHUNK]
            parts.append(self.critic.score(x[start : start + CHUNK], part_cond).float().cpu())
        return torch.cat(parts)

    def calibrated(self, x: Tensor, cond: Tensor | None) -> Tensor:
        """D̃(x): the Platt-scaled logit, an estimate of log p_data(x) / p_G(x) up to a constant."""
        return self.a * self._logits(x, cond) + self.b

    @torch.no_grad()
    def _propose(self, n: int, g: torch.Generator, label: int | None = None,
                 **request: Any) -> tuple[Tensor, Tensor | None]:
        """n samples of G (with their resolved condition), drawn from `g`; `label` fixes one class for all."""
        samples, conds = [], []
        for start in range(0, n, CHUNK):
            m = min(CHUNK, n - start)
            labels = None if label is None else torch.full((m,), label, dtype=torch.long)
            prepared = self.gen.variant.prepare(Request(m, labels=labels, generator=g, **request))
            samples.append(self.gen.variant.run_generator(prepared).cpu())
            conds.append(None if prepared.cond is None else prepared.cond.cpu())
        return torch.cat(samples), (None if conds[0] is None else torch.cat(conds))

    # ------------------------------------------------------------------------------------------- methods

    def sample(self, method: str, n: int, seed: int, **request: Any) -> tuple[Tensor, RefineStats]:
        """n refined samples (and what they cost); `request` fixes labels / codes / truncation for every proposal."""
        if method not in METHODS:
            raise UserError(f"unknown refinement '{method}'", f"choose one of: {', '.join(METHODS)}")
        g = torch.Generator().manual_seed(seed)
        stats = RefineStats(method, protocol=self.protocol)
        out = self._drs(n, g, stats, request) if method == "drs" else self._mh(n, g, stats, request)
        return out, stats

    def _drs(self, n: int, g: torch.Generator, stats: RefineStats, request: dict) -> Tensor:
        burn, burn_cond = self._propose(BURN_IN, g, **request)
        burn_logits = self.calibrated(burn, burn_cond)
        m = float(burn_logits.max())
        gamma = float(torch.quantile(_f(burn_logits, m), self.quantile))
        stats.protocol = {**self.protocol, "drs": {"burn_in": BURN_IN, "quantile": self.quantile, "gamma": gamma}}
        kept: list[Tensor] = []
        have = 0
        while have < n:
            x, cond = self._propose(max(2 * (n - have), 256), g, **request)
            logits = self.calibrated(x, cond)
            m = max(m, float(logits.max()))
            accept = torch.rand(len(x), generator=g) < torch.sigmoid(_f(logits, m) - gamma)
            stats.proposals += len(x)
            stats.accepted += int(accept.sum())
            kept.append(x[accept])
            have += int(accept.sum())
        stats.burn_in, stats.kept = BURN_IN, n
        return torch.cat(kept)[:n]

    def _mh(self, n: int, g: torch.Generator, stats: RefineStats, request: dict) -> Tensor:
        real, real_cond, heldout = _real_samples(self.cfg, n, offset=1)
        out, moved = self._chains(real, self.calibrated(real, real_cond), g, stats, request)
        stay = ~moved  # chains that never left their real start restart from a generated sample (Turner et al.)
        stats.fallbacks = int(stay.sum())
        if stats.fallbacks:
            start, start_cond = self._propose(stats.fallbacks, g, **request)
            stats.proposals += stats.fallbacks
            out[stay], _ = self._chains(start, self.calibrated(start, start_cond), g, stats, request)
        stats.kept = n
        stats.protocol = {**self.protocol, "mh": {"chain": self.chain, "start": f"real samples ({heldout}); a "
                                                  "chain that never moves restarts from a generated sample"}}
        return out

    def _chains(self, current: Tensor, current_logit: Tensor, g: torch.Generator, stats: RefineStats,
                request: dict) -> tuple[Tensor, Tensor]:
        """Run len(current) independence chains of `chain` proposals each: (final states, whether each moved)."""
        current, current_logit = current.clone(), current_logit.clone()
        moved = torch.zeros(len(current), dtype=torch.bool)
        for _ in range(self.chain):
            x, cond = self._propose(len(current), g, **request)
            logit = self.calibrated(x, cond)
            accept = torch.rand(len(current), generator=g) < torch.exp((logit - current_logit).clamp(max=0))
            current[accept], current_logit[accept] = x[accept], logit[accept]
            moved |= accept
            stats.proposals += len(current)
            stats.accepted += int(accept.sum())
        return current, moved


def _f(logits: Tensor, m: float) -> Tensor:
    """DRS's F(x) = D̃ − M − log(1 − exp(D̃ − M − ε)): large for samples D believes, ≤ 0 elsewhere."""
    shifted = logits.double() - m
    return (shifted - torch.log1p(-torch.exp(shifted - EPS))).float()


def _run_dir(source: Path) -> Path:
    if not (source / "config.yaml").is_file():
        raise UserError(f"{source} has no config.yaml, so its D and data are unknown",
                        "refine from a run directory made by `gankit train`")
    return source


def _load_critic(cfg: Any, spec: dict, source: Path) -> tuple[Variant, str]:
    """The run's variant with D's trained weights: from model/discriminator.safetensors or the newest checkpoint."""
    if variant_class(cfg.variant).score is Variant.score:
        raise UserError(f"variant {cfg.variant} has no discriminator that scores samples",
                        "refinement needs a variant whose D scores samples")
    exported = source / "model" / DISCRIMINATOR_FILE
    if not exported.is_file():
        critic, path, _ = checkpoint_variant(cfg, spec, source)
        return critic, f"checkpoints/{path.name}"
    critic, state = build_variant(cfg, spec), ckpt.load_tensors(exported)
    missing = set(discriminator_state(critic)) - set(state)
    if missing:
        raise UserError(f"{exported} lacks D's weights (e.g. {sorted(missing)[0]})",
                        "export it again: resume the run with train.export_discriminator=true")
    critic.load_state_dict(state, strict=False)
    return critic.eval(), f"model/{DISCRIMINATOR_FILE}"


def _real_samples(cfg: Any, n: int, offset: int = 0, heldout: bool = True) -> tuple[Tensor, Tensor | None, str]:
    """n real samples, their labels (None for unlabelled data; an unconditional D ignores them) and where they come
    from: fresh draws for data sets generated from a seed; else, when `heldout`, the samples data.holdout kept
    from training; else the training data."""
    held = load_holdout(cfg.data, cfg.seed) if heldout else None  # keeps the data's info, "generated" included
    data = held if held is not None else load_dataset(cfg.data, cfg.seed)
    if data.info.get("generated"):
        fresh = cfg.data.model_copy(update={"n": max(n, 1)})
        data = load_dataset(fresh, cfg.seed + HELDOUT_SEED + offset)
        where = f"held out: fresh draws of the data set (seed {cfg.seed + HELDOUT_SEED + offset})"
    elif held is not None:
        data = only_classes(held, cfg.data.normal) if cfg.data.normal else held
        where = f"held out: the {len(data)} samples data.holdout={cfg.data.holdout} kept from training"
    else:
        where = "the training data (" + ("D's further training" if not heldout else "this data set has no held-out "
                                         "split; data.holdout keeps one") + ")"
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(offset))[:n]
    if len(index) < n:
        index = index[torch.randint(len(index), (n,), generator=torch.Generator().manual_seed(offset))]
    x, y = data.take(index)
    return x, y, where
