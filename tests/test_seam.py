"""The seam every variant plugs into: out-of-tree variants (module path and entry point), phases with start/stop
across a resume, sampling requests and `--input`, old keys and old run directories, and the rule that the trainer,
CLI, report and config name no variant and no log key."""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import gankit
from gankit.data import KINDS
from gankit.train import Trainer, read_logs
from gankit.variants import VARIANTS, LogKeys, Phase, Request, resolve, variant_class

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).parent / "plugins"
OLD_RUNS = Path(__file__).parent / "data" / "gankit-0.1"
PATH_SPEC = "toy_variants:PhasedGAN"
SMALL = ["train.steps=8", "train.log_every=1", "train.sample_every=4", "train.checkpoint_every=0", "train.batch_size=32",
         "data.n=2000"]


@pytest.fixture
def plugin(monkeypatch):
    """The tests' own variant module on sys.path, with its call log cleared."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    import toy_variants

    toy_variants.CALLS.clear()
    return toy_variants


def _phased(*overrides: str, variant: str = PATH_SPEC):
    return resolve("ring8-gan", [f"variant={variant}", *SMALL, *overrides])[0]


def test_phase_activity_follows_start_stop_and_every():
    phase = Phase("x", "G", every=3, start=4, stop=13)
    assert [s for s in range(20) if phase.active(s)] == [4, 7, 10]
    assert [s for s in range(5) if Phase("y", "D").active(s)] == [0, 1, 2, 3, 4]


def test_out_of_tree_variant_trains_samples_and_evaluates_by_module_path(plugin, tmp_path, cli):
    cfg = _phased("phasedgan.hidden=8")
    assert cfg.options.hidden == 8 and cfg.options.pretrain_steps == 5  # its own section, validated by its class
    gankit.train(cfg, tmp_path / "r", progress=False)
    logs = read_logs(tmp_path / "r" / "logs.jsonl")
    assert {"critic_loss", "generator_loss", "grad_norm_critic", "grad_norm_generator", "pretrain_loss"} <= \
        {k for r in logs for k in r}
    assert any(r.get("event") == "modes" for r in logs)  # the points kind's progress metric ran
    from gankit.train import run_log_keys
    from gankit.train.plots import panels

    assert (tmp_path / "r" / "losses.png").is_file()  # drawn by the trainer at its checkpoint
    assert [keys for _, keys in panels(run_log_keys(tmp_path / "r"))] == [
        ["critic_loss", "generator_loss"], ["critic_real", "critic_fake"],
        ["grad_norm_critic", "grad_norm_generator"]]  # from the variant's declared keys
    code, out, _ = cli("eval", str(tmp_path / "r"), "--json")
    assert code == 0 and {"modes", "hq_fraction", "reverse_kl"} <= json.loads(out).keys()
    code, _, _ = cli("sample", str(tmp_path / "r"), "-n", "50", "--out", str(tmp_path / "s.npz"))
    assert code == 0 and np.load(tmp_path / "s.npz")["samples"].shape == (50, 2)
    code, out, _ = cli("doctor", str(tmp_path / "r"), "--json")
    assert code == 0 and json.loads(out)["records"] == 8


def test_out_of_tree_variant_found_through_the_entry_point_group(plugin, tmp_path, monkeypatch):
    dist = tmp_path / "site" / "gankit_toy_plugin-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gankit-toy-plugin\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[gankit.variants]\nphased_ep = {PATH_SPEC}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert variant_class("phased_ep") is plugin.PhasedGAN
    gankit.train(_phased("phased_ep.pretrain_steps=2", variant="phased_ep"), tmp_path / "r", progress=False)
    assert gankit.load(tmp_path / "r").sample(10, seed=0).shape == (10, 2)
    assert (0, "pretrain") in plugin.CALLS and (2, "D") in plugin.CALLS


def test_unknown_variant_and_section_keys_are_user_errors(plugin):
    with pytest.raises(gankit.UserError, match="unknown variant 'infogann'.*") as err:
        resolve("ring8-gan", ["variant=infogann"])
    assert "infogan" in err.value.hint
    with pytest.raises(gankit.UserError, match="unknown config key 'phasedgan.pretrain_step'") as err:
        _phased("phasedgan.pretrain_step=3")
    assert err.value.hint == "did you mean 'phasedgan.pretrain_steps'?"
    with pytest.raises(gankit.UserError, match="unknown config key 'infogan'"):
        resolve("ring8-gan", ["infogan.categorical=3"])  # another variant's section
    with pytest.raises(gankit.UserError, match="cannot be imported"):
        resolve("ring8-gan", ["variant=no_such_module:Nothing"])


def test_pretraining_phase_schedule_survives_a_resume(plugin, tmp_path):
    gankit.train(_phased(), tmp_path / "straight", progress=False)
    straight = list(plugin.CALLS)
    expected = [(s, "pretrain") for s in range(5)] + [(s, p) for s in range(5, 8) for p in ("D", "G")]
    assert straight == expected
    plugin.CALLS.clear()
    gankit.train(_phased("train.steps=3"), tmp_path / "split", progress=False)
    Trainer(_phased(), tmp_path / "split", resume=True, progress=False).fit()
    assert plugin.CALLS == expected  # nothing repeated or skipped across the resume, at steps 3 and 5 alike
    a, b = (load_file(str(tmp_path / r / "model" / "model.safetensors")) for r in ("straight", "split"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_inputs_reach_a_variant_that_takes_them_and_are_refused_elsewhere(plugin, tmp_path, cli, ring_cfg):
    gankit.train(_phased(), tmp_path / "p", progress=False)
    inputs = np.arange(12, dtype=np.float32).reshape(6, 2) * 100
    np.savez(tmp_path / "in.npz", samples=inputs)
    code, _, err = cli("sample", str(tmp_path / "p"), "--input", str(tmp_path / "in.npz"), "--out",
                       str(tmp_path / "o.npz"))
    assert code == 0, err
    out = np.load(tmp_path / "o.npz")["samples"]
    assert out.shape == (6, 2) and np.abs(out - inputs).max() < 50  # input + G(z): the inputs were used
    gankit.train(ring_cfg("train.steps=2"), tmp_path / "g", progress=False)
    code, _, err = cli("sample", str(tmp_path / "g"), "--input", str(tmp_path / "in.npz"), "--out",
                       str(tmp_path / "x.npz"))
    assert code == 2 and "takes no inputs" in err and "Traceback" not in err and not (tmp_path / "x.npz").exists()


def test_request_refuses_what_a_variant_does_not_take(ring_cfg, tmp_path):
    gankit.train(ring_cfg("train.steps=2"), tmp_path / "g", progress=False)
    variant = gankit.load(tmp_path / "g").variant
    with pytest.raises(ValueError, match="not class-conditional"):
        variant.generate(Request(3, labels=torch.tensor([0, 1, 2])))
    assert variant.generate(Request(3, truncation=0.5)).shape == (3, 2)


def test_context_carries_fakes_within_one_iteration_only(ring_cfg, tmp_path):
    trainer = Trainer(ring_cfg("train.steps=3"), tmp_path / "r", progress=False)
    seen = []
    real_loss = trainer.variant.loss

    def spy(phase, batch, ctx):
        seen.append((phase, ctx, sorted(ctx.values)))
        return real_loss(phase, batch, ctx)

    trainer.variant.loss = spy
    trainer.fit()
    assert [(p, keys) for p, _, keys in seen] == [("D", []), ("G", ["fake"])] * 3  # the D step's fakes reach G
    contexts = [c for _, c, _ in seen]
    assert all(a is b for a, b in zip(contexts[::2], contexts[1::2]))  # D and G of one iteration share one context
    assert len({id(c) for c in contexts}) == 3  # a fresh one per iteration: nothing outlives it
    assert not [name for name in vars(trainer.variant) if "fake" in name]  # no hidden state on the variant


# ---------------------------------------------------------------------------------------------- old keys and runs


def test_old_shared_section_keys_still_work():
    cfg = resolve("digits-cgan", ["model.cond=concat"])[0]
    assert cfg.options.cond == "concat"
    info = resolve("digits-infogan", ["model.info_categorical=5", "loss.info_weight=2"])[0]
    assert (info.options.categorical, info.options.weight) == (5, 2.0)
    assert resolve("ring8-gan", ["model.cond=projection"])[0].variant == "gan"  # an old default: dropped
    with pytest.raises(gankit.UserError, match="'model.info_categorical' is a key of variant infogan"):
        resolve("ring8-gan", ["model.info_categorical=5"])


@pytest.mark.parametrize("name", ["cgan", "infogan", "ring"])
def test_runs_of_gankit_0_1_load_and_sample_as_before(name, tmp_path, cli):
    """model/config.json of schema 1 (the whole run config, keys where 0.1 had them) still loads; samples are the
    ones gankit 0.1 wrote for the same seed (to float rounding: another CPU's kernels differ in the last bits)."""
    run = tmp_path / name
    shutil.copytree(OLD_RUNS / name, run)
    expected = np.load(OLD_RUNS / f"{name}-samples-seed3.npz")["samples"]
    code, _, err = cli("sample", str(run), "-n", "16", "--seed", "3", "--out", str(tmp_path / "s.npz"))
    assert code == 0, err
    assert np.allclose(np.load(tmp_path / "s.npz")["samples"], expected, rtol=0, atol=1e-6)


def test_a_run_of_gankit_0_1_resumes(tmp_path, cli):
    run = tmp_path / "cgan"
    shutil.copytree(OLD_RUNS / "cgan", run)
    code, _, err = cli("train", "--resume", str(run), "train.steps=6", "--no-progress")
    assert code == 0, err
    assert gankit.load(run).info["step"] == 6
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["schema"] == 2 and saved["generator"]["cgan"] == {"cond": "concat"}
    assert "d_hidden" not in saved["generator"]["model"] and "config" not in saved  # only what rebuilds G


def test_exports_ignore_keys_a_later_schema_dropped(tmp_path, ring_cfg):
    gankit.train(ring_cfg("train.steps=2"), tmp_path / "r", progress=False)
    path = tmp_path / "r" / "model" / "config.json"
    saved = json.loads(path.read_text())
    saved["generator"]["model"]["a_key_from_the_future"] = 1
    path.write_text(json.dumps(saved))
    assert gankit.load(tmp_path / "r").sample(4, seed=0).shape == (4, 2)


# ---------------------------------------------------------------------------------------------- the layer rules

NEUTRAL = ["gankit/train", "gankit/cli.py", "gankit/report", "gankit/config.py", "gankit/edit.py", "gankit/anomaly.py",
           "gankit/explain.py"]


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings}


def test_trainer_cli_report_and_config_name_no_variant_and_no_log_key():
    keys = LogKeys()
    forbidden = set(VARIANTS) | {getattr(cls.log_keys, f) for cls in VARIANTS.values()
                                 for f in ("d_loss", "g_loss", "d_real", "d_fake", "diversity")}
    forbidden |= {keys.grad_norm_d, keys.grad_norm_g}
    files = [p for place in NEUTRAL for p in ([ROOT / place] if place.endswith(".py") else (ROOT / place).rglob("*.py"))]
    found = {f"{p.relative_to(ROOT)}: {s!r}" for p in files for s in _string_literals(p) & forbidden}
    assert not found, sorted(found)


def test_no_import_points_up_the_layer_order():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import layers
    finally:
        sys.path.pop(0)
    assert layers.upward_imports(ROOT / "gankit") == []


def test_every_kind_names_metrics_the_registry_has():
    from gankit.metrics import PROGRESS_METRICS
    from gankit.report import RUN_METRICS

    for kind in KINDS.values():
        assert set(kind.metrics) <= set(RUN_METRICS), kind.name
        assert kind.progress_metric is None or kind.progress_metric in PROGRESS_METRICS


STABILISER_VALUES = {"loss.gp_weight": "10", "loss.drift": "0.001", "loss.r1_weight": "1", "loss.r2_weight": "1",
                     "loss.label_smoothing": "0.1", "loss.feature_matching": "1", "loss.contrastive": "1",
                     "train.instance_noise": "0.1",
                     "train.diffaug": "translation"}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_refuses_the_shared_stabilisers_it_does_not_apply(name):
    """Catches a variant that silently trains without a stabiliser its config asks for (vaegan ignored
    train.diffaug, text2img and the translators every one of them): the refusal comes before any net is built."""
    from gankit.errors import UserError
    from gankit.variants.base import STABILISERS

    assert set(STABILISER_VALUES) == set(STABILISERS)
    cls = variant_class(name)
    skipped = [key for key in STABILISERS if key not in cls.stabilisers]
    transforms = getattr(cls, "transforms", None) or ("palette",)  # the translators check their data first
    spec = {"kind": "pairs", "pair": {"paired": True, "transform": transforms[0]}}
    for key in skipped:
        cfg = resolve("ring8-gan", [f"variant={name}", f"{key}={STABILISER_VALUES[key]}"])[0]
        with pytest.raises(UserError, match=f"does not apply {key}="):
            cls(cfg, spec)
    if name == "gan":
        assert not skipped
