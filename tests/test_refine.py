"""Discriminator-guided sampling (DRS, MH-GAN): with a D that knows where the data is, refined samples are better than
plain ones; the calibration uses held-out data and the protocol says so; costs are reported; mistakes are one line."""

from __future__ import annotations

import json

import pytest
import torch

import gankit
from gankit.variants import GAN


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """A briefly trained ring8 GAN: its samples are mostly off the modes, so refinement has room."""
    run = tmp_path_factory.mktemp("refine") / "ring"
    cfg = gankit.load_config("ring8-gan", ["train.steps=150", "train.sample_every=0", "train.log_every=50",
                                           "train.export_discriminator=true"])
    gankit.train(cfg, run, progress=False)
    return run


@pytest.fixture
def oracle_d(monkeypatch, ring_run):
    """Replace D by an oracle whose logit falls with the distance to the nearest mode, so the test checks the
    sampler's arithmetic (calibration, acceptance rule, chains), not how well a 150-step D trained."""
    spec = gankit.load(ring_run).spec
    centers, std = torch.tensor(spec["centers"]), spec["std"]

    def score(self, x, cond=None):
        return 3.0 - torch.cdist(x.flatten(1), centers).min(dim=1).values / (10 * std)

    monkeypatch.setattr(GAN, "score", score)
    return centers, std


@pytest.mark.parametrize("method", ["drs", "mh"])
def test_refined_samples_are_closer_to_the_data(ring_run, oracle_d, method):
    centers, _ = oracle_d
    g = gankit.load(ring_run)
    x, stats = g.refined(method, 2000, seed=0)
    plain, refined = (torch.cdist(s, centers).min(dim=1).values.mean().item() for s in (g.sample(2000, seed=0), x))
    assert x.shape == (2000, 2)
    assert refined < 0.7 * plain, (plain, refined)  # mean distance to the nearest mode
    report = stats.as_dict()
    assert 0 < report["acceptance"] < 1 and report["g_evals_per_sample"] > 1
    assert report["calibration"]["real_samples"].startswith("held out")  # fresh draws, not the training set
    assert report["calibration"]["a"] > 0  # a D that likes the data is calibrated with a positive slope
    again, _ = g.refined(method, 2000, seed=0)
    assert torch.equal(again, x)  # seeded


def test_refined_sampling_draws_truncated_proposals_and_calibrates_on_them(ring_run, oracle_d, monkeypatch):
    """Catches --truncation dropped on the way to the proposals D chooses among, or D calibrated on samples of
    another truncation than those it refines (its density ratio would be against another distribution)."""
    g = gankit.load(ring_run)
    g.refiner()  # a refiner for untruncated samples exists: truncated ones need their own
    drawn = []
    run_generator = g.variant.run_generator
    monkeypatch.setattr(g.variant, "run_generator",
                        lambda request: (drawn.append(request.z), run_generator(request))[1])
    _, stats = g.refined("drs", 50, seed=0, truncation=0.5)
    assert len(drawn) > 2 and max(z.abs().max().item() for z in drawn) <= 1.0  # components beyond ±2ψ redrawn
    assert stats.as_dict()["calibration"]["generated_truncation"] == 0.5


def test_a_higher_drs_quantile_accepts_fewer_proposals(ring_run, oracle_d):
    """Catches the quantile read the wrong way round (γ from the 1 − q quantile of the burn-in scores)."""
    g = gankit.load(ring_run)
    strict = g.refined("drs", 300, seed=0, quantile=0.9)[1].as_dict()
    loose = g.refined("drs", 300, seed=0, quantile=0.1)[1].as_dict()
    assert strict["drs"]["gamma"] > loose["drs"]["gamma"] and strict["acceptance"] < loose["acceptance"]


def test_mh_chains_that_never_move_restart_from_a_generated_sample(ring_run, oracle_d):
    """Catches the fallback skipped: a chain that rejects every proposal would return its real starting point, a
    training-data point passed off as a sample."""
    from gankit.train.refine import _real_samples

    g = gankit.load(ring_run)
    x, stats = g.refined("mh", 200, seed=0, chain=1)
    assert stats.fallbacks > 0
    starts = _real_samples(g.refiner(chain=1).cfg, 200, offset=1)[0]
    assert torch.cdist(x, starts).min() > 0  # no real start comes back


def test_d_is_read_from_the_export_or_the_checkpoint(ring_run, oracle_d):
    g = gankit.load(ring_run)
    assert g.refined("drs", 10, seed=0)[1].as_dict()["discriminator"] == "model/discriminator.safetensors"


def test_cli_and_eval_refine(ring_run, oracle_d, cli, tmp_path):
    code, _, err = cli("sample", str(ring_run), "-n", "300", "--refine", "drs", "--out", str(tmp_path / "r.npz"))
    assert code == 0 and "acceptance" in err, err
    code, out, err = cli("eval", str(ring_run), "--refine", "mh", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["protocol"]["refine"]["method"] == "mh" and "hq_fraction" in result
    code, _, err = cli("sample", str(ring_run), "-n", "3", "--refine", "best", "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "unknown refinement 'best'" in err and err.count("error:") == 1


def test_a_variant_without_a_scoring_d_is_refused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent / "plugins"))
    cfg = gankit.load_config("ring8-gan", ["variant=toy_variants:PhasedGAN", "train.steps=2", "train.sample_every=0"])
    gankit.train(cfg, tmp_path / "p", progress=False)
    with pytest.raises(gankit.UserError, match="no discriminator that scores samples"):
        gankit.load(tmp_path / "p").sample(5, seed=0, refine="drs")


def _separation(refiner, n: int = 2000) -> float:
    """Share of (held-out real, generated) pairs that D's logit orders right: 0.5 is a D that cannot tell them apart."""
    from gankit.train.refine import _real_samples

    real, _, _ = _real_samples(refiner.cfg, n, offset=5)
    fake, _ = refiner._propose(n, torch.Generator().manual_seed(5))
    return (refiner._logits(real, None)[:, None] > refiner._logits(fake, None)[None, :]).float().mean().item()


def test_refine_steps_train_d_and_only_d_against_the_frozen_g(ring_run):
    from gankit.train.refine import Refiner, discriminator_state

    g = gankit.load(ring_run)
    plain, tuned = Refiner(g, ring_run), Refiner(g, ring_run, steps=150)
    generator = {k: v.clone() for k, v in tuned.critic.generator_state().items()}
    # the 150-step D barely tells this G's samples from the ring (about 0.6); trained on, it does (about 0.9):
    # swapped labels, a dropped or sign-flipped loss, or a step that updates nothing all fail this
    assert _separation(tuned) > _separation(plain) + 0.15
    moved = [k for k, v in discriminator_state(tuned.critic).items() if not torch.equal(v, discriminator_state(
        plain.critic)[k])]
    assert moved, "no weight of D changed"
    assert all(torch.equal(v, generator[k]) for k, v in tuned.critic.generator_state().items())
    sampler, fresh = g.variant.generator_state(), gankit.load(ring_run).variant.generator_state()
    assert sampler.keys() == fresh.keys() and all(torch.equal(sampler[k], fresh[k]) for k in fresh)  # G untouched
    assert all(p.requires_grad for p in tuned.critic.parameters()) == all(
        p.requires_grad for p in plain.critic.parameters())  # flags restored
    finetune = tuned.protocol["finetune"]
    assert finetune["steps"] == 150 and finetune["real_samples"].startswith("held out") and plain.protocol[
        "finetune"] is None


def test_refine_steps_reach_sampling_and_eval(ring_run, cli, tmp_path):
    g = gankit.load(ring_run)
    _, stats = g.refined("drs", 50, seed=0, steps=20)
    assert stats.as_dict()["finetune"]["steps"] == 20
    code, out, err = cli("eval", str(ring_run), "--refine", "drs", "--refine-steps", "20", "--json")
    assert code == 0, err
    assert json.loads(out)["protocol"]["refine"]["finetune"]["steps"] == 20
    code, _, err = cli("sample", str(ring_run), "-n", "3", "--refine-steps", "20", "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "--refine-steps" in err and err.count("error:") == 1
    assert not (tmp_path / "x.npz").exists()
    code, _, err = cli("eval", str(ring_run), "--refine-steps", "20")
    assert code == 2 and "--refine" in err and err.count("error:") == 1
    with pytest.raises(gankit.UserError, match="must be >= 0"):
        g.refined("drs", 5, seed=0, steps=-1)
    with pytest.raises(gankit.UserError, match="no refine was asked for"):
        g.sample(5, seed=0, refine_steps=20)  # silently plain samples would look refined


def test_fixed_data_is_calibrated_on_the_samples_data_holdout_kept_from_training(tmp_path):
    cfg = gankit.load_config("digits-dcgan", ["data.holdout=0.1", "train.steps=2", "train.sample_every=0",
                                              "train.checkpoint_every=2"])
    gankit.train(cfg, tmp_path / "d", progress=False)
    _, stats = gankit.load(tmp_path / "d").refined("drs", 8, seed=0, steps=2)
    report = stats.as_dict()
    assert report["calibration"]["real_samples"] == "held out: the 180 samples data.holdout=0.1 kept from training"
    assert report["finetune"]["real_samples"].startswith("the training data")  # calibration's samples stay unseen
