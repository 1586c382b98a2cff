"""gankit doctor: each failure is found from synthetic logs with its evidence, healthy logs give no problems, and
real (small) runs are diagnosed as what they are."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest

from gankit.doctor import diagnose
from gankit.errors import UserError
from gankit.train.logging import JsonlLog, read_logs

DATA = Path(__file__).parent / "data"
N, EVERY = 60, 25  # 60 window records, one every 25 steps, like a 1,500-step ring8-gan run


def healthy_series(t: float, rng: random.Random) -> dict[str, float]:
    """One record of a healthy non-saturating run at progress t in [0, 1]: D near chance, spread rising to ≈ 1."""
    def noisy(mean: float, sd: float) -> float:
        return mean + rng.gauss(0.0, sd)

    return {"d_loss": noisy(1.3, 0.08), "g_loss": noisy(0.8, 0.07), "d_real": noisy(0.55, 0.03),
            "d_fake": noisy(0.45, 0.03), "d_fake_g": noisy(0.44, 0.03),
            "diversity": noisy(min(1.0, 0.2 + 1.5 * t), 0.05), "grad_norm_D": abs(noisy(0.8, 0.2)),
            "grad_norm_G": abs(noisy(1.2, 0.3)), "it_s": 150.0, "lr_D": 2e-4, "lr_G": 2e-4}


def make_records(change=None, n: int = N, seed: int = 0) -> list[dict]:
    """n healthy records; change(t, record) may edit each one (t = progress in [0, 1])."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        t = i / (n - 1)
        record = {"step": (i + 1) * EVERY, **healthy_series(t, rng)}
        if change is not None:
            change(t, record)
        records.append(record)
    return records


def write_run(path, records, events=(), loss: str = "non_saturating"):
    """A run directory whose logs.jsonl the trainer's own log writer wrote."""
    path.mkdir()
    (path / "config.yaml").write_text(f"variant: gan\nloss: {{name: {loss}}}\ntrain: {{log_every: {EVERY}}}\n")
    with JsonlLog(path / "logs.jsonl") as log:
        for line in sorted([*records, *events], key=lambda r: r.get("step", 0)):
            log.write(line)
    return path


def kinds_of(tmp_path, records, events=(), loss: str = "non_saturating") -> set[str]:
    return diagnose(write_run(tmp_path / "run", records, events, loss)).kinds


def modes_event(step: int, modes: int, hq: float, total: int = 8) -> dict:
    return {"step": step, "event": "modes", "modes": modes, "total_modes": total, "hq_fraction": hq,
            "reverse_kl": 0.1}


# ------------------------------------------------------------------------------------------------ healthy logs

def test_healthy_logs_have_no_problems(tmp_path):
    # An early blurry sample save misses modes by chance (0.5 % sharp samples): that is not collapse.
    events = [modes_event(500, 1, 0.005), modes_event(1000, 8, 0.3), modes_event(1500, 8, 0.6)]
    diagnosis = diagnose(write_run(tmp_path / "run", make_records(), events))
    assert diagnosis.problems == []
    assert diagnosis.records == N and diagnosis.steps == (EVERY, N * EVERY) and diagnosis.notes == []


@pytest.mark.parametrize("seed", range(5))
def test_equilibrium_noise_is_not_g_overpowering(tmp_path, seed):
    # At equilibrium D(x) ≈ D(G(z)) ≈ 0.5 and d_loss ≈ log 4: noise puts D(G(z)) above D(x) about half the time.
    rng = random.Random(100 + seed)

    def at_equilibrium(t, r):
        r.update(d_real=0.5 + rng.gauss(0, 0.02), d_fake=0.5 + rng.gauss(0, 0.02),
                 d_loss=math.log(4) + rng.gauss(0, 0.05))

    assert kinds_of(tmp_path, make_records(at_equilibrium, seed=seed)) == set()


def test_healthy_dcgan_like_strong_d_is_not_overpowering(tmp_path):
    # A healthy DCGAN on digits logs D(x) ≈ 0.8, D(G(z)) ≈ 0.2, d_loss 0.4–1.2 with spikes and growing grad norms.
    def dcgan(t, r):
        spike = 0.7 if int(t * 100) % 17 == 0 else 0.0
        r.update(d_real=0.8 - spike / 3, d_fake=0.2 + spike / 3, d_loss=0.45 + spike, g_loss=1.8 - spike / 2,
                 grad_norm_D=10 + 40 * t, grad_norm_G=12 + 20 * t)

    assert kinds_of(tmp_path, make_records(dcgan)) == set()


def test_healthy_dcgan_sawtooth_is_not_non_convergence(tmp_path):
    # The 3,000-step digits demo: D slowly wins (d_loss 0.5 -> 0.15), G catches up (a jump to ~1.3), and again;
    # its spread is 0.55x the level, but it turns only every ~9 records.
    def sawtooth(t, r):
        phase = int(round(t * (N - 1))) % 9
        r.update(d_loss=1.3 if phase == 0 else 0.5 * 0.85 ** phase, d_real=0.85, d_fake=0.15, g_loss=2.4)

    assert kinds_of(tmp_path, make_records(sawtooth)) == set()


# ------------------------------------------------------------------------------------------------ each problem

def test_mode_collapse_from_diversity(tmp_path):
    def collapse(t, r):
        if t > 0.5:
            r["diversity"] = 0.02 + 0.01 * t  # fakes 50x less spread out than reals, to the end

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(collapse)))
    assert diagnosis.kinds == {"mode_collapse"}
    problem = diagnosis.problems[0]
    assert "diversity" in problem.evidence and "minibatch_std" in problem.advice and "pack" in problem.advice
    assert problem.values["diversity"] < 0.05 and problem.steps[1] == N * EVERY


def test_brief_diversity_dip_is_not_collapse(tmp_path):
    def dip(t, r):
        if 0.75 < t < 0.85:  # a few late windows, then it recovers
            r["diversity"] = 0.05

    assert kinds_of(tmp_path, make_records(dip)) == set()


def test_mode_collapse_from_mode_events(tmp_path):
    # Diversity looks fine (one wide mode can be as spread as the data), but sharp samples cover 3 of 8 modes.
    events = [modes_event(500, 8, 0.4), modes_event(1000, 5, 0.6), modes_event(1500, 3, 0.7)]
    diagnosis = diagnose(write_run(tmp_path / "run", make_records(), events))
    assert diagnosis.kinds == {"mode_collapse"}
    evidence = diagnosis.problems[0].evidence
    assert "3/8 modes at step 1500" in evidence and "8 modes at step 500" in evidence


@pytest.mark.parametrize("events", [
    [modes_event(1000, 2, 0.01), modes_event(1500, 3, 0.02)],  # blurry samples miss modes by chance
    [modes_event(1000, 8, 0.1), modes_event(1500, 7, 0.15)],  # one mode skipped at one save: a passing dip
])
def test_mode_events_that_are_not_collapse(tmp_path, events):
    assert kinds_of(tmp_path, make_records(), events) == set()


def test_vanishing_gradients_with_saturating_loss(tmp_path):
    def saturated(t, r):
        if 0.1 < t < 0.4:  # D wins outright for a stretch: D(G(z)) ≈ 0 and G's gradient is gone
            r.update(d_real=0.9999, d_fake=1e-4, d_loss=2e-4, g_loss=-1e-4, grad_norm_G=3e-4)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(saturated), loss="minimax"))
    assert diagnosis.kinds == {"vanishing_gradients"}  # early only: D is not overpowering in the late run
    problem = diagnosis.problems[0]
    assert "recovered" in problem.evidence and "non_saturating" in problem.advice
    assert problem.values["grad_norm_G"] == pytest.approx(3e-4) and problem.values["rest_grad_norm_G"] > 0.5


def test_vanishing_gradients_and_d_overpowering_to_the_end(tmp_path):
    def saturated(t, r):
        if t > 0.2:
            r.update(d_real=0.999, d_fake=2e-4, d_loss=1e-3, grad_norm_G=1e-4)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(saturated), loss="minimax"))
    assert diagnosis.kinds == {"vanishing_gradients", "d_overpowering"}
    assert "still vanishing" in next(p for p in diagnosis.problems if p.kind == "vanishing_gradients").evidence


@pytest.mark.parametrize("records, kinds", [(2, set()), (3, {"vanishing_gradients"})])
def test_vanishing_gradients_need_three_records_in_a_row(tmp_path, records, kinds):
    """One or two log lines can be outliers of a window mean: an episode needs MIN_STREAK (3) records in a row."""
    def saturated(t, r):
        if 20 <= round(t * (N - 1)) < 20 + records:
            r.update(d_fake=1e-4, grad_norm_G=3e-4)

    assert kinds_of(tmp_path, make_records(saturated), loss="minimax") == kinds


@pytest.mark.parametrize("grad, kinds", [(5e-3, set()), (5e-4, {"vanishing_gradients"})])
def test_raw_score_games_need_both_bounds_for_vanishing_gradients(tmp_path, grad, kinds):
    """Hinge scores cannot confirm a saturated D, so G's gradient must be both 100x below its early median and
    below 1e-3: 5e-3 (250x below 1.2, above 1e-3) is a converging G, 5e-4 a vanished gradient."""
    def shrinking(t, r):
        if t > 0.5:
            r["grad_norm_G"] = grad

    assert kinds_of(tmp_path, make_records(shrinking), loss="hinge") == kinds


def test_vanishing_is_judged_against_the_early_median_not_one_early_spike(tmp_path):
    """G's gradient of 0.5 while D(G(z)) ≈ 0 is no vanished gradient (early median 1.2), even after one early spike
    of 1e5 that would lift an early mean (or maximum) to where 0.5 looks 100x smaller."""
    def spiked(t, r):
        i = round(t * (N - 1))
        if i == 2:
            r["grad_norm_G"] = 1e5
        if 25 <= i < 35:
            r.update(d_fake=1e-3, grad_norm_G=0.5)

    assert kinds_of(tmp_path, make_records(spiked), loss="minimax") == set()


def test_small_gradients_without_saturated_d_are_not_vanishing(tmp_path):
    # A BCE G whose gradients shrink while D stays near chance has converged, not lost its gradient.
    def converged(t, r):
        if t > 0.5:
            r["grad_norm_G"] = 5e-4

    assert kinds_of(tmp_path, make_records(converged)) == set()


def test_d_overpowering_bce(tmp_path):
    def strong_d(t, r):
        if t > 0.5:
            r.update(d_real=0.98, d_fake=0.02, d_loss=0.04)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(strong_d)))
    assert diagnosis.kinds == {"d_overpowering"}
    assert "lr_d" in diagnosis.problems[0].advice and diagnosis.problems[0].values["d_real"] == pytest.approx(0.98)


def test_d_sure_of_the_reals_alone_is_not_overpowering(tmp_path):
    def sure_of_reals(t, r):
        if t > 0.5:
            r.update(d_real=0.98, d_fake=0.35)  # the fakes still get a fair hearing

    assert "d_overpowering" not in kinds_of(tmp_path, make_records(sure_of_reals))


def test_d_overpowering_for_most_of_the_run_easing_at_the_end(tmp_path):
    # grid25 with minimax and lr_d 100x lr_g: D(x) ≈ 0.96, D(G(z)) ≈ 0.04 until step ~1200, then G starts to
    # escape (0.91 / 0.09) and sharp samples sat on 1 of 25 modes at 4 of 6 saves.
    def strong_d(t, r):
        r.update(d_real=0.96, d_fake=0.04, d_loss=0.17) if t < 0.75 else r.update(d_real=0.91, d_fake=0.09)

    events = [modes_event(250 * k, 1, 0.9, total=25) for k in (1, 2, 3, 4)]
    events += [modes_event(1250, 1, 0.01, total=25), modes_event(1500, 3, 0.03, total=25)]
    diagnosis = diagnose(write_run(tmp_path / "run", make_records(strong_d), events))
    assert diagnosis.kinds == {"d_overpowering", "mode_collapse"}
    d_problem = next(p for p in diagnosis.problems if p.kind == "d_overpowering")
    assert "of all records" in d_problem.evidence and "late run: median D(x) 0.91" in d_problem.evidence
    assert "1/25 modes at step 1000" in next(p for p in diagnosis.problems if p.kind == "mode_collapse").evidence


@pytest.mark.parametrize("d_loss, kinds", [(0.01, {"d_overpowering"}), (1.5, set())])
def test_d_overpowering_hinge(tmp_path, d_loss, kinds):
    # Hinge scores are raw: 0.9 vs -0.9 says nothing alone, but a D loss of ≈ 0 means every margin is met.
    def hinge(t, r):
        r.update(d_real=1.5, d_fake=-1.5) if d_loss < 0.1 else r.update(d_real=0.2, d_fake=-0.3)
        if t > 0.5:
            r["d_loss"] = d_loss

    assert kinds_of(tmp_path, make_records(hinge), loss="hinge") == kinds


def test_g_overpowering_bce(tmp_path):
    def strong_g(t, r):
        if t > 0.5:
            r.update(d_real=0.4, d_fake=0.62, d_loss=1.9)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(strong_g)))
    assert diagnosis.kinds == {"g_overpowering"}
    assert "n_critic" in diagnosis.problems[0].advice


def test_g_overpowering_from_a_stalled_d(tmp_path):
    # D barely learns (tiny lr_d): its outputs sit at chance, but always a little higher for fakes.
    def stalled(t, r):
        if t > 0.5:
            r.update(d_real=0.515, d_fake=0.521, d_loss=1.40)

    assert kinds_of(tmp_path, make_records(stalled)) == {"g_overpowering"}


@pytest.mark.parametrize("fake_above_real, kinds", [(True, {"g_overpowering"}), (False, set())])
def test_g_overpowering_wasserstein(tmp_path, fake_above_real, kinds):
    def critic(t, r):
        real, fake = 0.5 + 0.1 * math.sin(9 * t), -0.5 + 0.1 * math.cos(7 * t)
        r.update(d_real=fake if fake_above_real else real, d_fake=real if fake_above_real else fake,
                 d_loss=(real - fake) * (1 if fake_above_real else -1), g_loss=-r["d_fake"])

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(critic), loss="wasserstein"))
    assert diagnosis.kinds == kinds
    assert any("wasserstein" in note for note in diagnosis.notes)  # what could not be judged is said


def test_non_convergence(tmp_path):
    def swinging(t, r):
        if t > 0.4:  # D and G take turns winning: the losses swing between 0.3 and 2.5, no trend
            high = int(t * (N - 1)) % 4 < 2
            r.update(d_loss=2.5 if high else 0.3, g_loss=0.2 if high else 3.0)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(swinging)))
    assert diagnosis.kinds == {"non_convergence"}
    assert "d_loss swings" in diagnosis.problems[0].evidence and "g_loss swings" in diagnosis.problems[0].evidence


def test_oscillation_on_a_drift_is_non_convergence(tmp_path):
    """The reversals are counted once the trend is removed: a hinge G loss drifting from -4 to 4 over the late run
    while swinging by ±1 at every log step oscillates (its raw values cross their middle only a few times)."""
    def drifting(t, r):
        i = round(t * (N - 1))
        late = max(0.0, (t - 0.7) / 0.3)
        r["g_loss"] = (-4 + 8 * late if t > 0.7 else 0.0) + (1.0 if i % 2 else -1.0)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(drifting), loss="hinge"))
    assert diagnosis.kinds == {"non_convergence"} and "g_loss swings" in diagnosis.problems[0].evidence


def test_oscillation_that_dies_down_is_not_non_convergence(tmp_path):
    def settling(t, r):
        amplitude = 1.0 * max(0.0, 1 - 2 * t)  # large swings early, gone by mid-run
        r["d_loss"] += amplitude * (1 if int(t * (N - 1)) % 2 else -1)

    assert kinds_of(tmp_path, make_records(settling)) == set()


def test_divergence_from_skipped_updates_and_rollbacks(tmp_path):
    records = make_records()
    records[40]["skipped_nonfinite"] = 5
    events = [{"step": 1010, "event": "rollback", "group": "G", "restored_step": 900, "lr_scale": 0.5,
               "rollbacks": 1}]
    diagnosis = diagnose(write_run(tmp_path / "run", records, events))
    assert diagnosis.kinds == {"divergence"}
    problem = diagnosis.problems[0]
    assert "5 updates skipped" in problem.evidence and "1 rollbacks" in problem.evidence
    assert problem.values["skipped_nonfinite"] == 5 and problem.steps == (1010, 1025)


@pytest.mark.parametrize("key", ["grad_norm_D", "grad_norm_G"])
def test_divergence_from_exploding_gradients(tmp_path, key):
    def explode(t, r):
        r[key] = 0.8 * 10 ** (5 * t)  # five orders of magnitude over the run

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(explode)))
    assert diagnosis.kinds == {"divergence"}
    assert f"{key} grew" in diagnosis.problems[0].evidence


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_divergence_from_non_finite_values_in_standard_json_logs(tmp_path, value):
    records = make_records()
    records[-1]["g_loss"] = value
    run = write_run(tmp_path / "run", records)
    last = (run / "logs.jsonl").read_text().splitlines()[-1]
    # strict JSON (jq, JSON.parse): no bare NaN / Infinity; null stands for the value that was not finite
    assert json.loads(last, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))["g_loss"] is None
    assert math.isnan(read_logs(run / "logs.jsonl")[-1]["g_loss"])
    diagnosis = diagnose(run)
    assert diagnosis.kinds == {"divergence"} and "non-finite values logged at 1 steps" in diagnosis.problems[0].evidence


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_logs_of_older_versions_with_nan_literals_still_read(tmp_path, value):
    records = make_records()
    records[-1]["g_loss"] = value
    run = write_run(tmp_path / "run", [])
    (run / "logs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))  # bare NaN / Infinity, as before
    assert diagnose(run).kinds == {"divergence"}


def test_diverged_run_too_short_for_trends(tmp_path):
    # The lr=1e12 case: the guard gave up after a few steps; one partial window and the events.
    events = [{"step": 2, "event": "rollback", "group": "G", "restored_step": 0, "lr_scale": 0.5, "rollbacks": 1},
              {"step": 11, "event": "diverged", "message": "training diverged: NaN/Inf in the G step",
               "d_loss": 1.38, "skipped_nonfinite": 20}]
    diagnosis = diagnose(write_run(tmp_path / "run", [], events))
    assert diagnosis.kinds == {"divergence"}
    assert "stopped at step 11" in diagnosis.problems[0].evidence
    assert diagnosis.records == 0 and "too few" in diagnosis.notes[0]


def test_short_run_reports_nothing_but_says_why(tmp_path):
    def collapsed(t, r):
        r.update(diversity=0.01, d_real=0.999, d_fake=0.001)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(collapsed, n=5)))
    assert diagnosis.problems == [] and "5 training records" in diagnosis.notes[0]


def test_missing_keys_are_tolerated(tmp_path):
    # A variant that logs no diversity and no G gradient norm (and an unreadable config): judge what is there.
    def sparse(t, r):
        del r["diversity"], r["grad_norm_G"], r["d_fake_g"]

    run = write_run(tmp_path / "run", make_records(sparse))
    (run / "config.yaml").write_text("not: [valid")
    diagnosis = diagnose(run)
    assert diagnosis.problems == [] and diagnosis.loss is None
    assert any("diversity" in n for n in diagnosis.notes) and any("grad_norm_G" in n for n in diagnosis.notes)


def test_torn_last_line_is_ignored(tmp_path):
    run = write_run(tmp_path / "run", make_records())
    with open(run / "logs.jsonl", "a") as f:
        f.write('{"step": 1525, "d_lo')  # a run killed mid-write
    assert diagnose(run).records == N


# ------------------------------------------------------------------------------------------------ errors, CLI

def test_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no logs.jsonl"):
        diagnose(tmp_path)
    with pytest.raises(UserError, match="missing does not exist"):
        diagnose(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="file is not a directory"):
        diagnose(tmp_path / "file")
    (tmp_path / "logs.jsonl").write_text("")
    with pytest.raises(UserError, match="no log records"):
        diagnose(tmp_path)


def test_cli_healthy_run(tmp_path, cli):
    run = write_run(tmp_path / "run", make_records())
    code, out, _ = cli("doctor", str(run))
    text = " ".join(out.split())  # rich wraps long lines
    assert code == 0 and "no problems found" in text and f"{N} log records" in text
    assert "[bold]" not in out and "[/]" not in out  # styled, not printed as markup tags


def test_cli_reports_problems_with_exit_code_0(tmp_path, cli):
    def strong_d(t, r):
        if t > 0.5:
            r.update(d_real=0.98, d_fake=0.02, d_loss=0.04)

    run = write_run(tmp_path / "run", make_records(strong_d))
    code, out, _ = cli("doctor", str(run))
    text = " ".join(out.split())
    assert code == 0 and "discriminator overpowering" in text and "D(x) ≥ 0.95" in text and "cure" in text
    code, out, _ = cli("doctor", str(run), "--json")
    result = json.loads(out)
    assert code == 0 and [p["kind"] for p in result["problems"]] == ["d_overpowering"]
    assert set(result["problems"][0]) >= {"kind", "evidence", "advice", "steps"}
    assert result["records"] == N and result["loss"] == "non_saturating"


def test_cli_json_is_strict_json(tmp_path, cli):
    events = [{"step": 11, "event": "modes", "modes": 0, "total_modes": 8, "hq_fraction": 0.0,
               "reverse_kl": float("inf")},
              {"step": 11, "event": "diverged", "message": "training diverged", "skipped_nonfinite": 3}]
    run = write_run(tmp_path / "run", [], events)
    code, out, _ = cli("doctor", str(run), "--json")

    def reject(constant):
        raise AssertionError(f"{constant} is not JSON")

    assert code == 0
    assert [p["kind"] for p in json.loads(out, parse_constant=reject)["problems"]] == ["divergence"]


def test_cli_not_a_run_exits_2(tmp_path, cli):
    code, _, err = cli("doctor", str(tmp_path))
    assert code == 2 and "error:" in err and "hint:" in err


# ------------------------------------------------------------------------------------------------ real runs
# 300 steps, a log line every 10 and a mode score every 100: a few seconds of training each on 2 CPU cores.
REAL = ("train.steps=300", "train.sample_every=100")


@pytest.fixture
def one_thread():
    """Tiny MLPs gain nothing from a second intra-op thread; on a busy shared machine its spin-waiting made a
    300-step run take minutes instead of seconds."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_real_healthy_ring_run_has_no_problems(tmp_path, ring_cfg, one_thread):
    import gankit

    gankit.train(ring_cfg(*REAL), tmp_path / "run", progress=False)
    diagnosis = diagnose(tmp_path / "run")
    assert diagnosis.records == 30 and diagnosis.notes == []
    assert diagnosis.problems == []


@pytest.mark.slow
def test_real_saturating_run_with_a_100x_faster_d_is_diagnosed(tmp_path, ring_cfg, one_thread):
    # minimax loss, lr_d = 100 x lr_g: D wins at once, D(G(z)) → 0 and G's gradient through log(1 - D(G(z)))
    # drops to ~3e-4 (vs ~1 later) for a stretch of the first 200 steps.
    import gankit

    cfg = ring_cfg(*REAL, "loss.name=minimax", "optim.lr_d=0.02", "optim.lr_g=0.0002")
    gankit.train(cfg, tmp_path / "run", progress=False)
    diagnosis = diagnose(tmp_path / "run")
    assert "vanishing_gradients" in diagnosis.kinds
    assert diagnosis.kinds <= {"vanishing_gradients", "d_overpowering", "mode_collapse"}
    vanishing = next(p for p in diagnosis.problems if p.kind == "vanishing_gradients")
    assert vanishing.values["grad_norm_G"] < 1e-3 and "non_saturating" in vanishing.advice


@pytest.mark.slow
def test_real_exploding_learning_rate_is_divergence(tmp_path, ring_cfg, cli, one_thread):
    import gankit
    from gankit.train.guard import Diverged

    with pytest.raises(Diverged):
        gankit.train(ring_cfg(*REAL, "optim.lr_d=1e12", "optim.lr_g=1e12"), tmp_path / "run", progress=False)
    diagnosis = diagnose(tmp_path / "run")
    assert diagnosis.kinds == {"divergence"}
    assert diagnosis.problems[0].values["rollbacks"] >= 1 and "stopped at step" in diagnosis.problems[0].evidence
    code, out, _ = cli("doctor", str(tmp_path / "run"), "--json")
    assert code == 0 and [p["kind"] for p in json.loads(out)["problems"]] == ["divergence"]


# ------------------------------------------------------------------------------------------------ D pulling away

def test_d_pulling_away_bce(tmp_path):
    # D's lead widens (0.8/0.2 -> 0.9/0.08) and G's loss climbs (1.6 -> 3), short of D separating everything.
    def away(t, r):
        r.update(d_real=0.78 + 0.12 * t, d_fake=0.22 - 0.14 * t, d_loss=0.5 - 0.3 * t, g_loss=1.6 + 1.4 * t,
                 grad_norm_G=15 + 400 * t)

    diagnosis = diagnose(write_run(tmp_path / "run", make_records(away)))
    assert diagnosis.kinds == {"d_pulling_away"}
    problem = diagnosis.problems[0]
    assert "widened" in problem.evidence and "climbed" in problem.evidence and "gradient norm grew" in problem.evidence
    assert problem.values["margin_late"] > problem.values["margin_early"] + 0.1 and "diffaug" in problem.advice


@pytest.mark.parametrize("widening, g_rise, kinds", [(True, True, {"d_pulling_away"}), (False, True, set()),
                                                     (True, False, set())])
def test_d_pulling_away_needs_both_a_widening_lead_and_a_climbing_g_loss(tmp_path, widening, g_rise, kinds):
    def change(t, r):
        r.update(d_real=0.8 + (0.12 * t if widening else 0), d_fake=0.2 - (0.14 * t if widening else 0),
                 g_loss=1.6 + (1.4 * t if g_rise else 0))

    assert kinds_of(tmp_path, make_records(change)) == kinds


def test_a_late_g_loss_above_the_early_one_on_a_falling_trend_is_not_pulling_away(tmp_path):
    """G's loss must be climbing, not only higher late than early: one that jumped after the early run and has
    fallen ever since (6 -> 2.6 from the 13th record, late median 1.6x the early 2.0) is G recovering, whatever D's
    widening lead."""
    def recovering(t, r):
        i = round(t * (N - 1))
        r.update(d_real=0.78 + 0.12 * t, d_fake=0.22 - 0.14 * t,
                 g_loss=2.0 if i < 12 else 6.0 - 3.4 * (i - 12) / (N - 13))

    from gankit.doctor import _slope

    records = make_records(recovering)
    assert _slope([r["g_loss"] for r in records]) < 0
    assert kinds_of(tmp_path, records) == set()


@pytest.mark.parametrize("falling, kinds", [(True, {"d_pulling_away"}), (False, set())])
def test_d_pulling_away_hinge(tmp_path, falling, kinds):
    def hinge(t, r):
        r.update(d_loss=1.2 - (0.8 * t if falling else 0), g_loss=0.3 + 0.6 * t)

    assert kinds_of(tmp_path, make_records(hinge), loss="hinge") == kinds


def test_d_overpowering_is_not_also_reported_as_pulling_away(tmp_path):
    def away_then_total(t, r):
        r.update(d_real=0.8 + 0.19 * t, d_fake=0.2 - 0.19 * t, g_loss=1.6 + 3 * t)

    assert kinds_of(tmp_path, make_records(away_then_total)) == {"d_overpowering"}


def test_the_old_demo_log_shows_d_pulling_away():
    # digits-dcgan before its small-data fix (3,000 steps): D(x) 0.87 / D(G(z)) 0.14 late, G's loss 1.7 -> 2.4.
    diagnosis = diagnose(DATA / "doctor" / "demo-d-pulls-away")
    assert diagnosis.kinds == {"d_pulling_away"}
    assert 0.5 < diagnosis.problems[0].values["margin_early"] < 0.6 < 0.7 < diagnosis.problems[0].values["margin_late"]


def test_trend_slopes_of_long_logs_are_thinned_but_stay_per_record():
    # a 200,000-step run logged every 20 steps has 10,000 records: all pairs would be 50 million
    from gankit.doctor import _slope

    line = [0.5 + 0.002 * i for i in range(10_000)]
    start = time.perf_counter()
    assert _slope(line) == pytest.approx(0.002) and _slope(line[:200]) == pytest.approx(0.002)
    assert time.perf_counter() - start < 2
    assert _slope([1.0, 1.0, 9.0, 1.0, 1.0]) == 0.0  # one spike does not tilt it
