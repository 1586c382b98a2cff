"""The PacGAN mode metric on hand-made samples, and the benchmark's summary of trials over seeds."""

import importlib.util
import math
import statistics
from pathlib import Path
from types import ModuleType

import pytest
import torch

from gankit.data import ring_centers
from gankit.metrics.modes2d import modes2d

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "modes2d.py"


def test_perfect_samples_cover_all_modes_uniformly():
    centers = ring_centers(8)
    x = centers.repeat(10, 1)
    r = modes2d(x, centers, std=0.01)
    assert (r.modes, r.hq_fraction, r.reverse_kl) == (8, 1.0, 0.0)


def test_collapse_to_one_mode_and_low_quality():
    centers = ring_centers(8)
    x = torch.cat([centers[:1].repeat(3, 1), torch.zeros(1, 2)])  # 3 samples on mode 0, one far from all modes
    r = modes2d(x, centers, std=0.01)
    assert r.modes == 1 and r.hq_fraction == 0.75
    assert math.isclose(r.reverse_kl, math.log(8))  # KL(δ ‖ uniform over 8) = log 8


def test_threshold_is_three_std():
    centers = torch.zeros(1, 2)
    inside, outside = torch.tensor([[0.0299, 0.0]]), torch.tensor([[0.0301, 0.0]])
    assert modes2d(inside, centers, 0.01).hq_fraction == 1.0
    assert modes2d(outside, centers, 0.01).hq_fraction == 0.0
    assert math.isinf(modes2d(outside, centers, 0.01).reverse_kl)


def test_reverse_kl_of_two_modes_split_unevenly():
    centers = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    x = torch.tensor([[0.0, 0.0]] * 3 + [[10.0, 0.0]])
    expected = 0.75 * math.log(0.75 * 2) + 0.25 * math.log(0.25 * 2)
    assert math.isclose(modes2d(x, centers, 0.1).reverse_kl, expected, rel_tol=1e-12)
    assert modes2d(x, centers, 0.1).modes == 2  # a mode hit by one sample is found


def load_benchmark() -> ModuleType:
    """benchmarks/modes2d.py as a module: it is a script, not part of the package."""
    spec = importlib.util.spec_from_file_location("modes2d_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def trials(*values: tuple[int, float, float]) -> list[dict]:
    return [{"modes": m, "hq": hq, "rkl": rkl, "seconds": 10.0 + i} for i, (m, hq, rkl) in enumerate(values)]


def test_benchmark_table_shows_the_standard_error_and_the_json_both():
    bench = load_benchmark()
    sm = bench.summarise(trials((8, 0.98, 0.004), (8, 0.97, 0.006), (7, 0.99, 0.05)))
    std = statistics.stdev([8, 8, 7])
    assert sm["modes"] == pytest.approx((23 / 3, std, std / math.sqrt(3)))
    assert bench.plus_minus(sm["modes"], 2) == f"7.67 ± {std / math.sqrt(3):.2f}"  # PacGAN's ±: 0.33, not 0.58
    entry = bench.json_summary(sm)
    assert entry["modes_std"] == round(std, 3) and entry["modes_sem"] == round(std / math.sqrt(3), 3)
    assert {"hq_std", "hq_sem", "reverse_kl_std", "reverse_kl_sem"} <= entry.keys() and entry["seeds"] == 3


def test_benchmark_summary_of_one_seed_or_an_infinite_kl():
    bench = load_benchmark()
    one = bench.summarise(trials((8, 0.3, 0.3)))
    assert bench.plus_minus(one["hq"], 1, 100) == "30.0"  # one seed: no spread to show
    assert bench.json_summary(one)["hq_sem"] is None
    infinite = bench.summarise(trials((20, 0.07, 0.7), (24, 0.05, math.inf)))
    assert bench.plus_minus(infinite["rkl"], 3) == "∞"
    assert bench.json_summary(infinite)["reverse_kl"] is None


def test_benchmark_orders_refined_rows_after_their_method_and_keeps_their_cost():
    bench = load_benchmark()
    keys = [("grid25", "gankit best + MH"), ("ring8", "gankit best"), ("grid25", "gankit best"),
            ("grid25", "gankit best + DRS"), ("ring8", "GAN (minimax)"), ("grid36", "gankit best")]
    assert sorted(keys, key=bench.row_order) == [
        ("ring8", "GAN (minimax)"), ("ring8", "gankit best"), ("grid25", "gankit best"),
        ("grid25", "gankit best + DRS"), ("grid25", "gankit best + MH"), ("grid36", "gankit best")]
    assert bench.label("gankit best", "plain") == "gankit best"
    assert bench.label("gankit best", "drs") == "gankit best + DRS"
    rows = [dict(r, acceptance=a, passes=p) for r, a, p in zip(trials((25, 0.97, 0.01), (25, 0.98, 0.02)),
                                                               (0.5, 0.4), (6.0, 8.0))]
    entry = bench.json_summary(bench.summarise(rows))
    assert entry["acceptance"] == 0.45 and entry["passes"] == 7.0 and entry["max_seconds"] == 11.0


def test_benchmark_variation_sets_change_only_the_data():
    bench = load_benchmark()
    base = bench.job_config(("grid25", "gankit best", 0, []))
    varied = bench.job_config(("grid36", "gankit best", 0, []))
    assert (base.data.size, varied.data.size) == (5, 6)
    assert varied.model == base.model and varied.loss == base.loss and varied.optim == base.optim
    assert bench.job_config(("ring12", "GAN (minimax)", 3, [])).data.modes == 12
