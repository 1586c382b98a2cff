"""model.members: an ensemble of independent MLP GANs in one run, and `gankit split` into one run per member."""

from __future__ import annotations

import pytest
import torch

import gankit
from gankit.errors import UserError
from gankit.nets.mlp import EnsembleLinear
from gankit.train import Trainer
from gankit.train.checkpoint import load_tensors
from gankit.variants import Context, build_variant, resolve

from conftest import variant_and_batch

MEMBERS, ROWS = 3, 8  # rows per member


def _spec(cfg) -> dict:
    return gankit.data.load_dataset(cfg.data, cfg.seed).spec()


def _members_alone(ensemble, *overrides: str) -> list:
    """One ordinary variant per member, holding the member's slice of every ensemble tensor."""
    cfg = resolve("ring8-best", [*overrides, "model.members=1", f"train.batch_size={ROWS}"])[0]
    alone = []
    for e in range(MEMBERS):
        single = build_variant(cfg, _spec(cfg))
        single.load_state_dict({k: v[e] for k, v in ensemble.state_dict().items()})
        alone.append(single)
    return alone


@pytest.mark.parametrize("phase", ["D", "D_reg", "G"])
def test_each_member_gets_the_gradient_it_would_get_alone(phase):
    # ring8-best's minibatch std and an R1 term: both would couple the members if rows mixed between them
    overrides = ("loss.r1_weight=0.5", f"train.batch_size={MEMBERS * ROWS}")
    ensemble, batch = variant_and_batch("ring8-best", "model.members=3", *overrides, n=MEMBERS * ROWS)
    alone = _members_alone(ensemble, *overrides)
    z = torch.randn(MEMBERS * ROWS, ensemble.z_dim)
    ensemble.noise = lambda n, **kw: z
    ensemble.loss(phase, batch, Context(step=0, progress=0.0))[0].backward()
    for e, single in enumerate(alone):
        rows = slice(e * ROWS, (e + 1) * ROWS)
        single.noise = lambda n, rows=rows, **kw: z[rows]
        part = gankit.data.Batch(batch.x[rows], batch.y[rows] if batch.y is not None else None)
        single.loss(phase, part, Context(step=0, progress=0.0))[0].backward()
        for (name, p), q in zip(ensemble.named_parameters(), single.parameters()):
            if q.grad is None:
                assert p.grad is None or p.grad[e].abs().max() == 0, name
                continue
            # the ensemble's loss is the mean over all members' rows: member e's gradient, divided by MEMBERS
            torch.testing.assert_close(p.grad[e] * MEMBERS, q.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_members_start_from_different_weights():
    ensemble, _ = variant_and_batch("ring8-best", "model.members=3", "train.batch_size=24")
    layers = [m for m in ensemble.modules() if isinstance(m, EnsembleLinear)]
    assert layers and all(not torch.equal(m.weight[0], m.weight[1]) for m in layers)
    bound = 1 / layers[0].weight.shape[-1] ** 0.5  # nn.Linear's default initialisation range
    assert layers[0].weight.abs().max() <= bound


def test_split_members_sample_what_the_ensemble_drew(tmp_path, cli):
    run = tmp_path / "ens"
    cfg = resolve("ring8-best", ["model.members=2", "train.batch_size=32", "train.steps=30", "train.log_every=10",
                                 "train.sample_every=0", "train.checkpoint_every=0"])[0]
    Trainer(cfg, run, progress=False).fit()
    with pytest.raises(UserError, match="gankit split"):
        gankit.load(run)
    code, _, err = cli("eval", str(run))
    assert code == 2 and "gankit split" in err
    code, out, _ = cli("info", str(run))
    assert code == 0 and "an ensemble of 2" in out
    code, _, err = cli("split", str(run), "--out", str(tmp_path / "m"))
    assert code == 0 and "resumed from" not in err and err.count("wrote 2 member runs") == 1, err
    # the ensemble's exported (EMA) generator, rebuilt from its weights
    weights = load_tensors(run / "model" / "model.safetensors")
    z = torch.randn(2 * 50, cfg.model.z_dim)
    variant = build_variant(cfg, _spec(cfg)).eval()
    variant.load_state_dict(weights, strict=False)
    with torch.no_grad():
        drawn = variant.G(z)
    for e in range(2):
        member = gankit.load(tmp_path / "m" / f"member-{e}")
        assert member.config.model.members == 1
        with torch.no_grad():
            torch.testing.assert_close(member.variant.G(z[e * 50:(e + 1) * 50]), drawn[e * 50:(e + 1) * 50])
    # a member is a run: it resumes and trains on with its slice of the optimizer state
    member_cfg = resolve(str(tmp_path / "m" / "member-1" / "config.yaml"), ["train.steps=35"])[0]
    assert member_cfg.train.batch_size == 16 and "member 1 of the 2-member" in member_cfg.description
    trainer = Trainer(member_cfg, tmp_path / "m" / "member-1", resume=True, progress=False)
    exp_avg = next(iter(trainer.optimizers["G"].state.values()))["exp_avg"]
    assert exp_avg.abs().sum() > 0  # the moments came along, not a fresh Adam
    assert trainer.fit()["step"] == 35
    code, _, err = cli("split", str(tmp_path / "m" / "member-0"), "--out", str(tmp_path / "again"))
    assert code == 2 and "nothing to split" in err


@pytest.mark.parametrize("overrides, message", [
    (["variant=cgan", "data.name=digits", "model.name=mlp", "model.members=2"], "does not train ensembles"),
    (["data.name=digits", "model.name=dcgan", "model.members=2"], "model.name=dcgan"),
    (["model.members=2", "model.spectral_norm=true"], "model.spectral_norm"),
    (["model.members=2", "loss.feature_matching=1"], "feature_matching"),
])
def test_what_would_couple_members_is_refused(overrides, message):
    cfg = resolve("ring8-gan", ["train.batch_size=64", *overrides])[0]
    with pytest.raises(UserError, match=message):
        build_variant(cfg, _spec(cfg))


def test_batch_must_split_evenly(cli):
    code, _, err = cli("train", "ring8-gan", "model.members=3", "train.batch_size=64", "train.steps=1")
    assert code == 2 and "multiple of model.members=3" in err


def test_a_split_that_fails_leaves_nothing(tmp_path, monkeypatch):
    run = tmp_path / "ens"
    cfg = resolve("ring8-gan", ["model.members=2", "train.batch_size=32", "train.steps=2", "train.sample_every=0",
                                "train.checkpoint_every=0"])[0]
    Trainer(cfg, run, progress=False).fit()
    from gankit.train import ensemble

    calls, real = [], ensemble.make_trainer

    def failing(*args, **kwargs):  # the second member's export fails
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(ensemble, "make_trainer", failing)
    with pytest.raises(OSError):
        ensemble.split_members(run, tmp_path / "members")
    assert len(calls) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["ens"]
