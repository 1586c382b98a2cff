"""`gankit doctor`: diagnose a run from its logs.jsonl (and config.yaml), each finding with evidence and a cure.

GAN training fails in a few well-known ways: mode collapse, vanishing generator gradients, one player overpowering
(or steadily pulling away from) the other, losses that oscillate without converging, and divergence to NaN/Inf.
Each check compares the *late* part of the run (last 30 % of the logged records) with the *early* part, and asks
for a condition to persist, so one noisy window mean never decides. A healthy run gives an empty list; a run too
short to judge says so in `notes`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .config import BCE_GAMES
from .errors import UserError
from .train.logging import read_logs, run_log_keys

# ---------------------------------------------------------------------------------------------- thresholds
MIN_RECORDS = 10          # fewer training records: trends are noise, so only NaN/rollback events are judged
WINDOW = 0.3              # early / late window: the first / last 30 % of the training records
MIN_WINDOW = 3            # ... but at least this many records, so a window mean is not one log line
PERSISTENT = 0.7          # "for most of the late run": the condition holds in >= 70 % of the late records ...
RUN_SHARE = 0.5           # ... or in >= half of all records (a run that was broken most of the time, easing at the end)
MIN_STREAK = 3            # an episode needs this many consecutive records (one window mean can be an outlier)
DIVERSITY_COLLAPSED = 0.25  # fakes spread < 1/4 as much as reals (healthy runs: >= 0.4 after warm-up, ≈ 1 late)
MODES_MIN_HQ = 0.1        # a missing mode counts only when >= 10 % of samples are sharp (blurry samples miss by chance)
MODES_MANY_LOST = 2       # ... and then 2 (or a quarter of all) missing modes at one save, or a miss at two saves
VANISH_ABS = 1e-3         # G's gradient norm below this is vanishing whatever its early value
VANISH_RATIO = 1e-2       # ... or two orders of magnitude below its early median
VANISH_D_FAKE = 0.05      # BCE: D(G(z)) below this is where log(1 - D(G(z))) saturates
D_CONFIDENT = 0.95        # BCE: D(x) >= 0.95 and D(G(z)) <= 0.05 means D tells every sample apart
D_LOSS_FLOOR = 0.05       # hinge / least squares: a D loss this close to 0 means D separates (almost) perfectly
AWAY_MARGIN = 0.6         # BCE: D(x) - D(G(z)) this wide late (e.g. 0.8 / 0.2) ...
AWAY_WIDENING = 0.1       # ... and this much wider than early: D keeps pulling away
AWAY_D_LOSS = 0.7         # other games: late d_loss at most 0.7x its early level ...
AWAY_G_RISE = 1.25        # ... while G's loss climbs: late median >= 1.25x the early one, on a rising trend
G_WIN_D_LOSS = 1.6        # BCE: D loss this far above log 4 ≈ 1.386 (chance) with D(G(z)) >= D(x): G fools D
G_WIN_SHARE = 0.9         # fakes rated >= reals in >= 90 % of late records: a trained D keeps reals above fakes
PATTERN_RECORDS = 8       # order and oscillation patterns need >= 8 late records (all 8 one way by chance: 1 in 256)
EXPLODE_RATIO = 100.0     # late median >= 100x the early one: "growing by orders of magnitude"
EXPLODE_FLOOR = 1.0       # early values are floored at 1, so growth from ≈ 0 (WGAN losses, recovering grads) is not
NONCONV_CV = 1.0          # late loss spread (robust sd) >= its level (healthy runs seen: <= 0.55, the digits demo)
NONCONV_FLOOR = 0.5       # ... the level floored at 0.5, so losses hovering near 0 (hinge/WGAN G) need real swings
NONCONV_SIGN_CHANGES = 0.3  # ... the detrended loss reverses at >= 30 % of log steps (oscillates, not drifts) ...
NONCONV_DROP = 0.1        # ... and its late mean is not >= 10 % below the early one (no decrease)

BCE_LOSSES = BCE_GAMES  # d_real / d_fake are probabilities only for these
LOG4 = math.log(4.0)


@dataclass
class Problem:
    """One finding: what (`kind`), why (`evidence`, with steps and numbers), what to do (`advice`), where (`steps`)."""

    kind: str
    evidence: str
    advice: str
    steps: tuple[int, int] | None = None  # first and last step where it was seen
    values: dict[str, float] = field(default_factory=dict)  # the numbers behind the evidence


@dataclass
class Diagnosis:
    """All findings of one run; `records` training log lines were read, `notes` say what could not be judged."""

    run: str
    loss: str | None
    records: int
    steps: tuple[int, int] | None = None  # first and last logged training step
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    judged: bool = True  # False when the run is too short for the trend checks (only NaN/Inf and rollbacks judged)

    @property
    def kinds(self) -> set[str]:
        return {p.kind for p in self.problems}

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe: non-finite numbers become None."""
        return _json_safe(asdict(self))


@dataclass
class _Run:
    """What the checks read: training records and events in step order, the loss, and the early/late windows."""

    records: list[dict[str, Any]]
    events: list[dict[str, Any]]
    loss: str | None

    @property
    def bce(self) -> bool:
        return self.loss in BCE_LOSSES

    @property
    def window(self) -> int:
        return max(MIN_WINDOW, math.ceil(WINDOW * len(self.records)))

    @property
    def early(self) -> list[dict[str, Any]]:
        return self.records[: self.window]

    @property
    def late(self) -> list[dict[str, Any]]:
        return self.records[-self.window:]


# ---------------------------------------------------------------------------------------------- entry point

def diagnose(run_dir: str | Path) -> Diagnosis:
    """Read RUN/logs.jsonl (+ config.yaml) and check it for every known failure; a healthy run has no problems."""
    run_dir = Path(run_dir)
    logs = run_dir / "logs.jsonl"
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} {'is not a directory' if run_dir.exists() else 'does not exist'}",
                        "give the --out directory of a `gankit train` run")
    if not logs.is_file():
        raise UserError(f"{run_dir} has no logs.jsonl, so it is not a gankit run (or has not started)",
                        "give the --out directory of a `gankit train` run")
    # Checks read the canonical names of gankit.variants.LogKeys; a variant that logs under other names declares them
    rename = run_log_keys(run_dir).canonical()
    lines = sorted(({rename.get(k, k): v for k, v in r.items()} for r in read_logs(logs)), key=lambda r: r.get("step", 0))
    if not lines:
        raise UserError(f"{logs} has no log records yet", "wait for the first `train.log_every` steps, then retry")
    run = _Run(records=[r for r in lines if "event" not in r], events=[r for r in lines if "event" in r],
               loss=_loss_name(run_dir))
    diagnosis = Diagnosis(run=str(run_dir), loss=run.loss, records=len(run.records),
                          steps=_span(run.records) if run.records else None)
    if run.loss is None:
        diagnosis.notes.append("loss unknown (no readable config.yaml): D outputs were not judged")
    checks: list[Callable[[_Run, list[str]], Problem | None]] = [_divergence]
    if len(run.records) < MIN_RECORDS:
        diagnosis.judged = False
        diagnosis.notes.append(f"only {len(run.records)} training records (< {MIN_RECORDS}): too few to judge "
                               "trends, so only NaN/Inf and rollbacks were checked")
    else:
        checks += [_mode_collapse, _vanishing_gradients, _d_overpowering, _d_pulling_away, _g_overpowering,
                   _non_convergence]
    for check in checks:
        problem = check(run, diagnosis.notes)
        if problem is not None and not (problem.kind == "d_pulling_away" and "d_overpowering" in diagnosis.kinds):
            diagnosis.problems.append(problem)
    return diagnosis


def _loss_name(run_dir: Path) -> str | None:
    """loss.name from config.yaml, read as plain YAML so runs of older versions still load."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        return str(config["loss"]["name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


# ---------------------------------------------------------------------------------------------- helpers

def _values(records: list[dict[str, Any]], key: str) -> list[float]:
    """Finite values of `key` (records without it are skipped)."""
    return [float(r[key]) for r in records if _finite(r.get(key))]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def _share(records: list[dict[str, Any]], keys: tuple[str, ...], cond: Callable[..., bool]) -> tuple[float, list]:
    """Fraction of the records having all `keys` for which cond(*values) holds, and those records."""
    rows = [r for r in records if all(_finite(r.get(k)) for k in keys)]
    hits = [r for r in rows if cond(*(r[k] for k in keys))]
    return (len(hits) / len(rows) if rows else 0.0), hits


def _streaks(records: list[dict[str, Any]], cond: Callable[[dict[str, Any]], bool]) -> list[list[dict[str, Any]]]:
    """Runs of >= MIN_STREAK consecutive records satisfying cond."""
    runs, current = [], []
    for r in records:
        if cond(r):
            current.append(r)
            continue
        if len(current) >= MIN_STREAK:
            runs.append(current)
        current = []
    if len(current) >= MIN_STREAK:
        runs.append(current)
    return runs


def _persistent(run: _Run, keys: tuple[str, ...], cond: Callable[..., bool]) -> tuple[str, list, bool] | None:
    """Where cond holds "for most of" the run: in >= PERSISTENT of the late records, else in >= RUN_SHARE of all
    records (then it may have eased at the end). Returns a description of where, the records, and whether late."""
    share, hits = _share(run.late, keys, cond)
    if share >= PERSISTENT:
        return f"{share:.0%} of the late records ({_steps_text(_span(run.late))})", hits, True
    share, hits = _share(run.records, keys, cond)
    if share >= RUN_SHARE:
        return f"{share:.0%} of all records ({_steps_text(_span(hits))})", hits, False
    return None


def _span(records: list[dict[str, Any]]) -> tuple[int, int]:
    return int(records[0]["step"]), int(records[-1]["step"])


def _steps_text(steps: tuple[int, int]) -> str:
    return f"step {steps[0]}" if steps[0] == steps[1] else f"steps {steps[0]}–{steps[1]}"


def _fmt(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.2e}"


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------- checks

def _divergence(run: _Run, notes: list[str]) -> Problem | None:
    """NaN/Inf (skipped updates, rollbacks, a stop) or a loss / gradient norm growing by orders of magnitude."""
    skipped = [r for r in run.records + run.events if _finite(r.get("skipped_nonfinite")) and r["skipped_nonfinite"]]
    rollbacks = [e for e in run.events if e["event"] == "rollback"]
    stopped = [e for e in run.events if e["event"] == "diverged"]
    nonfinite = [r for r in run.records if any(isinstance(v, float) and not math.isfinite(v) for v in r.values())]
    found, seen = [], skipped + rollbacks + stopped + nonfinite
    if skipped:
        found.append(f"{sum(int(r['skipped_nonfinite']) for r in skipped)} updates skipped as NaN/Inf")
    if rollbacks:
        last = rollbacks[-1]
        scale = _fmt(last.get("lr_scale", 1.0))
        found.append(f"{len(rollbacks)} rollbacks to a good state (learning rates now x{scale})")
    if stopped:
        found.append(f"stopped at step {stopped[-1].get('step')}: {stopped[-1].get('message', 'diverged')}")
    if nonfinite:
        found.append(f"non-finite values logged at {len(nonfinite)} steps")
    values: dict[str, float] = {"skipped_nonfinite": float(sum(int(r["skipped_nonfinite"]) for r in skipped)),
                                "rollbacks": float(len(rollbacks))}
    if len(run.records) >= MIN_RECORDS:
        for key in ("d_loss", "g_loss", "grad_norm_D", "grad_norm_G"):
            early = _median([abs(v) for v in _values(run.early, key)])
            late = _median([abs(v) for v in _values(run.late, key)])
            if late >= EXPLODE_RATIO * max(early, EXPLODE_FLOOR):
                found.append(f"{key} grew from {_fmt(early)} to {_fmt(late)} (median, early vs late)")
                values[f"{key}_growth"] = late / max(early, EXPLODE_FLOOR)
                seen += run.late
    if not found:
        return None
    steps = sorted(int(r["step"]) for r in seen if "step" in r)
    return Problem("divergence", "; ".join(found),
                   "lower optim.lr_d and optim.lr_g (e.g. 10x), keep Adam's optim.beta1 at 0.5 or 0; add "
                   "model.spectral_norm=true or a gradient penalty (loss.gp_weight=10 / loss.r1_weight); check the "
                   "data for NaN/Inf", (steps[0], steps[-1]) if steps else None, values)


def _mode_collapse(run: _Run, notes: list[str]) -> Problem | None:
    """Fakes far less varied than reals for most of the (late) run, or sharp samples covering only some modes."""
    found, values, seen = [], {}, []
    if not _values(run.records, "diversity"):
        notes.append("no `diversity` logged: mode collapse judged from mode events only")
    else:
        held = _persistent(run, ("diversity",), lambda d: d < DIVERSITY_COLLAPSED)
        if held is not None:
            where, hits, late = held
            text = (f"diversity (fake/real mean pairwise distance, ≈ 1 when healthy) below {DIVERSITY_COLLAPSED} "
                    f"in {where}: median {_fmt(_median(_values(hits, 'diversity')))}")
            found.append(text + ("" if late else f", {_fmt(_median(_values(run.late, 'diversity')))} in the late run"))
            values.update(diversity=_median(_values(hits, "diversity")),
                          late_diversity=_median(_values(run.late, "diversity")))
            seen += hits
    lost = _modes_lost(run.events)
    if lost is not None:
        cited, best, count = lost
        text = (f"only {cited['modes']}/{cited['total_modes']} modes at step {cited['step']} although "
                f"{cited['hq_fraction']:.0%} of samples are sharp")
        extra = [f"modes missed at {count} sample saves"] if count > 1 else []
        extra += [f"{best['modes']} modes at step {best['step']}"] if best["modes"] > cited["modes"] else []
        found.append(text + (f" ({'; '.join(extra)})" if extra else ""))
        values.update(modes=float(cited["modes"]), total_modes=float(cited["total_modes"]),
                      hq_fraction=float(cited["hq_fraction"]))
        seen.append(cited)
    if not found:
        return None
    steps = sorted(int(r["step"]) for r in seen)
    return Problem("mode_collapse", "; ".join(found),
                   "let D see batch statistics (model.minibatch_std=true) or packed samples (model.pack=2, PacGAN); "
                   "use WGAN-GP (loss.name=wasserstein loss.gp_weight=10) or hinge with model.spectral_norm=true; "
                   "add feature matching (loss.feature_matching=1); lower optim.lr_g",
                   (steps[0], steps[-1]), values)


def _modes_lost(events: list[dict[str, Any]]) -> tuple[dict, dict, int] | None:
    """(cited, best, count) when sharp samples miss modes and that is no passing dip: at the last save together with
    the save before it, or with many modes missing (a ring GAN hops past one mode for a moment), or at half or
    more of all saves. `count` saves missed modes; `cited` is the last of them, `best` the sharp save with most."""
    modes = [e for e in events if e["event"] == "modes" and all(_finite(e.get(k)) for k in
                                                                ("modes", "total_modes", "hq_fraction"))]

    def missing(e: dict[str, Any]) -> int:
        return int(e["total_modes"] - e["modes"]) if e["hq_fraction"] >= MODES_MIN_HQ else 0

    lossy = [e for e in modes if missing(e)]
    if not lossy:
        return None
    last = modes[-1]
    at_end = missing(last) and ((len(modes) >= 2 and missing(modes[-2])) or
                                missing(last) >= max(MODES_MANY_LOST, math.ceil(last["total_modes"] / 4)))
    if not (at_end or (len(lossy) >= 2 and len(lossy) >= RUN_SHARE * len(modes))):
        return None
    sharp = [e for e in modes if e["hq_fraction"] >= MODES_MIN_HQ]  # blurry saves prove no coverage
    return lossy[-1], max(sharp, key=lambda e: e["modes"]), len(lossy)


def _vanishing_gradients(run: _Run, notes: list[str]) -> Problem | None:
    """G's gradient norm orders of magnitude below its early value (or < 1e-3) for a stretch of records; for BCE
    games also D(G(z)) -> 0, where log(1 - D(G(z))) saturates."""
    early = _median(_values(run.early, "grad_norm_G"))
    if math.isnan(early):
        notes.append("no `grad_norm_G` logged: vanishing gradients not judged")
        return None
    limit_rel = early * VANISH_RATIO

    def vanished(r: dict[str, Any]) -> bool:
        g = r.get("grad_norm_G")
        if not _finite(g):
            return False
        if run.bce:  # D's probabilities confirm the cause, so either bound suffices
            return (g < VANISH_ABS or g < limit_rel) and _finite(r.get("d_fake")) and r["d_fake"] < VANISH_D_FAKE
        return g < VANISH_ABS and g < limit_rel  # raw scores cannot confirm it: ask for both

    streaks = _streaks(run.records, vanished)
    if not streaks:
        return None
    worst = max(streaks, key=len)
    first, last = _span(worst)
    grads = [r["grad_norm_G"] for r in worst]
    inside = {id(r) for streak in streaks for r in streak}
    rest = _median(_values([r for r in run.records if id(r) not in inside], "grad_norm_G"))
    text = f"grad_norm_G {_fmt(_median(grads))} (median) at {_steps_text((first, last))}"
    text += f" vs {_fmt(rest)} in the rest of the run" if not math.isnan(rest) else ""
    if run.bce:
        text += f", while D(G(z)) ≈ {_fmt(_median([r['d_fake'] for r in worst]))}"
    recovered = worst[-1] is not run.records[-1]
    text += "; recovered later" if recovered else "; still vanishing at the end of the run"
    if len(streaks) > 1:
        text += f" ({len(streaks)} such stretches)"
    advice = ("use the non-saturating loss (loss.name=non_saturating): the minimax G loss log(1 - D(G(z))) has no "
              "gradient once D wins; " if run.loss == "minimax" else "")
    advice += ("slow D down (lower optim.lr_d, or optim.lr_d below optim.lr_g); one-sided label smoothing "
               "(loss.label_smoothing=0.1); instance noise (train.instance_noise=0.1)")
    return Problem("vanishing_gradients", text, advice, (int(streaks[0][0]["step"]), int(streaks[-1][-1]["step"])),
                   {"grad_norm_G": _median(grads), "rest_grad_norm_G": rest, "records": float(len(inside))})


BALANCE_ADVICE = ("rebalance the players: TTUR (change optim.lr_d relative to optim.lr_g), D steps per G step "
                  "(train.n_critic), model.spectral_norm=true, an R1 penalty (loss.r1_weight=1)")


def _d_overpowering(run: _Run, notes: list[str]) -> Problem | None:
    """D separates real from fake (almost) perfectly for most of the (late) run: G learns little from it."""
    if run.bce:
        held = _persistent(run, ("d_real", "d_fake"), lambda r, f: r >= D_CONFIDENT and f <= 1 - D_CONFIDENT)
        what = f"D(x) ≥ {D_CONFIDENT} and D(G(z)) ≤ {1 - D_CONFIDENT:.2g}"
    elif run.loss in ("hinge", "least_squares"):
        held = _persistent(run, ("d_loss",), lambda d: d <= D_LOSS_FLOOR)
        what = f"d_loss ≤ {D_LOSS_FLOOR} ({run.loss}: 0 means D separates every sample)"
    else:
        if run.loss == "wasserstein":
            notes.append("wasserstein critic scores have no fixed scale: D/G balance judged only by their order")
        return None
    if held is None:
        return None
    where, hits, late = held
    text = f"{what} in {where}: {_d_outputs(hits)}" + ("" if late else f"; late run: {_d_outputs(run.late)}")
    return Problem("d_overpowering", text,
                   "weaken D: lower optim.lr_d; " + BALANCE_ADVICE, _span(hits), _d_values(hits))


def _d_pulling_away(run: _Run, notes: list[str]) -> Problem | None:
    """D's lead over G widens through the run (short of separating every sample) while G's loss climbs: D is
    learning the training set faster than G learns to fool it, which on small data means D memorises it."""
    if run.loss is None or run.loss == "wasserstein":
        return None
    g_early, g_late = _values(run.early, "g_loss"), _values(run.late, "g_loss")
    if not g_early or len(g_late) < MIN_WINDOW:
        return None
    rising = _slope(_values(run.records, "g_loss")) > 0
    g_rise = rising and _median(g_late) >= AWAY_G_RISE * max(_median(g_early), 1e-8)
    if run.bce:
        early, late = (_median([r["d_real"] - r["d_fake"] for r in part if _finite(r.get("d_real"))
                                and _finite(r.get("d_fake"))] or [math.nan]) for part in (run.early, run.late))
        ahead = late >= AWAY_MARGIN and late >= early + AWAY_WIDENING
        lead = f"D(x) − D(G(z)) widened from {_fmt(early)} to {_fmt(late)} (median of the early / late run)"
    else:
        d_early, d_late = _values(run.early, "d_loss"), _values(run.late, "d_loss")
        ahead = bool(d_early and d_late) and _median(d_late) <= AWAY_D_LOSS * _median(d_early)
        lead = (f"d_loss fell from {_fmt(_median(d_early))} to {_fmt(_median(d_late))}" if ahead else "")
    if not (ahead and g_rise):
        return None
    text = f"{lead} while G's loss climbed from {_fmt(_median(g_early))} to {_fmt(_median(g_late))}"
    values = {"g_loss_early": _median(g_early), "g_loss_late": _median(g_late)}
    grads_early, grads_late = _values(run.early, "grad_norm_G"), _values(run.late, "grad_norm_G")
    if grads_early and grads_late and _median(grads_late) >= 3 * _median(grads_early):
        text += f"; G's gradient norm grew {_median(grads_late) / _median(grads_early):.0f}x (spikes when D flips)"
    if run.bce:
        values.update(margin_early=early, margin_late=late)
    return Problem("d_pulling_away", text + f" ({_steps_text(_span(run.records))})",
                   "D is learning the training set faster than G learns to fool it (on a few thousand images it "
                   "memorises them): augment what D sees (train.diffaug=color,translation; DiffAugment) or "
                   "penalise it (loss.r1_weight=1); lower optim.lr_d; more data if you have it",
                   _span(run.records), values)


def _slope(xs: list[float], most: int = 300) -> float:
    """Theil–Sen slope of equally spaced values (the median pairwise slope; spikes do not tilt it), per index; long
    series are thinned to about `most` evenly spaced values first, so the pairs stay few."""
    every = max(1, len(xs) // most)
    xs = xs[::every]
    n = len(xs)
    pairs = [(xs[j] - xs[i]) / (j - i) for i in range(n) for j in range(i + 1, n)]
    return _median(pairs) / every if pairs else 0.0


def _g_overpowering(run: _Run, notes: list[str]) -> Problem | None:
    """D rates fakes at least as real as reals for most of the late run: nearly always (a trained D keeps reals
    above fakes, so this is no coin flip), or for BCE games with a D loss far above chance (log 4)."""
    if run.loss is None:
        return None
    share, hits = _share(run.late, ("d_real", "d_fake"), lambda r, f: f >= r)
    if len(run.late) >= PATTERN_RECORDS and share >= G_WIN_SHARE:
        what = "D(G(z)) ≥ D(x)" if run.bce else "fakes score at least as high as reals"
        where = f"{share:.0%} of the late records ({_steps_text(_span(run.late))})"
    elif run.bce:
        held = _persistent(run, ("d_real", "d_fake", "d_loss"), lambda r, f, d: f >= r and d >= G_WIN_D_LOSS)
        if held is None:
            return None
        (where, hits, _), what = held, f"D(G(z)) ≥ D(x) with d_loss ≥ {G_WIN_D_LOSS} (chance: log 4 ≈ {LOG4:.3f})"
    else:
        return None
    return Problem("g_overpowering", f"{what} in {where}: {_d_outputs(hits)}; D cannot tell fakes from reals",
                   "strengthen D: raise optim.lr_d or train.n_critic; " + BALANCE_ADVICE, _span(hits),
                   _d_values(hits))


def _d_outputs(records: list[dict[str, Any]]) -> str:
    """Median D(x), D(G(z)) and d_loss of some records, for evidence."""
    return "median " + ", ".join(f"{label} {_fmt(_median(_values(records, key)))}" for key, label in
                                 (("d_real", "D(x)"), ("d_fake", "D(G(z))"), ("d_loss", "d_loss"))
                                 if _values(records, key))


def _d_values(records: list[dict[str, Any]]) -> dict[str, float]:
    return {key: _median(_values(records, key)) for key in ("d_real", "d_fake", "d_loss")}


def _non_convergence(run: _Run, notes: list[str]) -> Problem | None:
    """A loss that swings widely around a flat level over the late run: large spread for its size, frequent
    reversals once the trend is removed (oscillation, not drift), and no decrease from the early run."""
    if run.loss == "wasserstein":  # the critic's offset is free and its estimate hovers near 0 when healthy
        notes.append("wasserstein losses have no fixed level: non-convergence not judged")
        return None
    found, values = [], {}
    for key in ("d_loss", "g_loss"):
        late, early = _values(run.late, key), _values(run.early, key)
        if len(late) < PATTERN_RECORDS or not early:
            continue
        residuals = _detrend(late)
        q1, _, q3 = statistics.quantiles(residuals, n=4)
        spread = (q3 - q1) / 1.349  # robust sd: isolated spikes do not count, a back-and-forth does
        level, start = statistics.fmean(late), statistics.fmean(early)
        relative = spread / max(abs(level), NONCONV_FLOOR)
        above = [x > (q1 + q3) / 2 for x in residuals]  # sides of the box's midpoint: robust to spikes and plateaus
        reversals = sum(a != b for a, b in zip(above, above[1:])) / (len(above) - 1)
        decreased = level < start - NONCONV_DROP * max(abs(start), NONCONV_FLOOR)
        if relative >= NONCONV_CV and reversals >= NONCONV_SIGN_CHANGES and not decreased:
            found.append(f"{key} swings by ±{_fmt(spread)} around {_fmt(level)} ({relative:.2f}x its level), "
                         f"reversing at {reversals:.0%} of log steps; early mean {_fmt(start)}")
            values.update({f"{key}_spread": spread, f"{key}_level": level, f"{key}_reversals": reversals})
    if not found:
        return None
    return Problem("non_convergence", "; ".join(found) + f" ({_steps_text(_span(run.late))})",
                   "lower both learning rates (e.g. optim.lr_d=1e-4 optim.lr_g=1e-4) and Adam's optim.beta1 "
                   "(0.5 or 0); TTUR (optim.lr_d above optim.lr_g); a gradient penalty (loss.r1_weight=1 or "
                   "WGAN-GP) or model.spectral_norm=true; an EMA of G (optim.ema=0.999) for smoother samples",
                   _span(run.late), values)


def _detrend(xs: list[float]) -> list[float]:
    """Residuals of a Theil–Sen line through xs (equally spaced): median slope and offset, so a spike does not
    tilt the line and smear itself over the other residuals."""
    slope = _slope(xs)
    offset = _median([x - slope * t for t, x in enumerate(xs)])
    return [x - offset - slope * t for t, x in enumerate(xs)]


# ---------------------------------------------------------------------------------------------- report

TITLES = {"mode_collapse": "mode collapse", "vanishing_gradients": "vanishing generator gradients",
          "d_overpowering": "discriminator overpowering",
          "d_pulling_away": "discriminator pulling away", "g_overpowering": "generator overpowering",
          "non_convergence": "non-convergence", "divergence": "divergence"}


def print_report(diagnosis: Diagnosis, console: Console) -> None:
    """The readable form of a diagnosis: one block per problem (evidence, cure), then notes."""
    span = f", {_steps_text(diagnosis.steps)}" if diagnosis.steps else ""
    console.print(f"[bold]{escape(diagnosis.run)}[/]: {diagnosis.loss or 'unknown'} loss, "
                  f"{diagnosis.records} log records{span}", highlight=False)
    if not diagnosis.problems and not diagnosis.judged:
        console.print(f"[yellow]? too short to judge[/]: {diagnosis.records} training records, at least "
                      f"{MIN_RECORDS} are needed for the trend checks (no NaN/Inf or rollbacks seen)", highlight=False)
    elif not diagnosis.problems:
        console.print("[green]✓ no problems found[/]")
    for problem in diagnosis.problems:
        where = f" ({_steps_text(problem.steps)})" if problem.steps else ""
        console.print(f"[red]✗ {TITLES.get(problem.kind, problem.kind)}[/]{where}", highlight=False)
        block = Table.grid(padding=(0, 1))
        block.add_column(style="dim", no_wrap=True)
        block.add_column()
        block.add_row("evidence", Text(problem.evidence))  # Text: no markup is read from the numbers
        block.add_row("cure", Text(problem.advice))
        console.print(Padding(block, (0, 0, 0, 2), expand=False), highlight=False)
    for note in diagnosis.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
