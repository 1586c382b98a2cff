"""Federated averaging: the split, the data-size weighting, the clients following the global model, exact resume, and
the configuration errors."""

import copy
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from conftest import train_until_interrupted
from gankit.config import FederatedConfig
from gankit.data import load_dataset
from gankit.errors import UserError
from gankit.train import FederatedTrainer, Trainer, make_trainer, read_logs
from gankit.train.federated import split_rows
from gankit.variants import resolve

TINY = ["data.n=400", "model.g_hidden=[16]", "model.d_hidden=[16]", "train.batch_size=16", "train.log_every=2",
        "train.sample_every=0", "train.checkpoint_every=0"]


def _cfg(*overrides):
    return resolve("ring8-gan", [*TINY, *overrides])[0]


def _labelled_ring(cfg):
    """The ring's points with two made-up classes: a (the first quarter of the rows) and b (the rest)."""
    data = load_dataset(cfg.data, cfg.seed)
    y = torch.ones(len(data), dtype=torch.long)
    y[: len(data) // 4] = 0
    return replace(data, y=y, class_names=["a", "b"])


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_split_gives_each_client_its_classes_and_partitions_the_rows():
    digits = load_dataset(resolve("digits-dcgan")[0].data)
    rows = split_rows(digits, FederatedConfig(clients=5, split="classes", classes_per_client=2), seed=0)
    for k, part in enumerate(rows):
        assert set(digits.y[part].tolist()) == {2 * k, 2 * k + 1}
    everything = torch.cat(rows)
    assert len(everything) == len(digits) and len(everything.unique()) == len(digits)
    # 3 clients x 4 classes wrap round: client 2 holds 8, 9, 0, 1 and shares 0 and 1 with client 0, row-disjointly
    rows = split_rows(digits, FederatedConfig(clients=3, split="classes", classes_per_client=4), seed=0)
    assert set(digits.y[rows[2]].tolist()) == {8, 9, 0, 1}
    assert not set(rows[0].tolist()) & set(rows[2].tolist())
    iid = split_rows(digits, FederatedConfig(clients=4, split="iid"), seed=0)
    assert {len(p) for p in iid} <= {len(digits) // 4, len(digits) // 4 + 1}
    assert len(torch.cat(iid).unique()) == len(digits)
    assert not torch.equal(iid[0], split_rows(digits, FederatedConfig(clients=4, split="iid"), seed=1)[0])


def test_average_is_weighted_by_rows_and_reaches_every_client(tmp_path):
    cfg = _cfg("federated.clients=2", "federated.split=classes", "federated.classes_per_client=1",
               "federated.local_steps=2", "train.steps=4")
    trainer = FederatedTrainer(cfg, tmp_path / "run", progress=False, dataset=_labelled_ring(cfg))
    assert [len(c.rows) for c in trainer.clients] == [100, 300]
    for client in trainer.clients:  # each client draws its own class only
        assert set(client.sampler.next().y.tolist()) == {client.index}
    trainer._iteration({})  # step 0 of a 2-step round: no average yet
    states = [copy.deepcopy(c.variant.state_dict()) for c in trainer.clients]
    key = "G.net.0.weight"
    assert not torch.equal(states[0][key], states[1][key])
    trainer.average()
    expected = {k: 0.25 * states[0][k] + 0.75 * states[1][k] for k in states[0]}
    for model in [trainer.variant] + [c.variant for c in trainer.clients]:
        got = model.state_dict()
        assert all(torch.allclose(got[k], expected[k], atol=1e-7) for k in expected)
    assert not torch.allclose(expected[key], 0.5 * states[0][key] + 0.5 * states[1][key])


def test_run_ends_on_the_average_and_exports_it(tmp_path):
    cfg = _cfg("federated.clients=3", "federated.local_steps=3", "train.steps=6")
    trainer = make_trainer(cfg, tmp_path / "run", progress=False)
    start = copy.deepcopy(trainer.variant.state_dict())
    trainer.fit()
    final = trainer.variant.state_dict()
    assert all(_same(c.variant.state_dict(), final) for c in trainer.clients)
    assert not _same(start, final)
    exported = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    generator = trainer.variant.generator_state()
    assert _same(exported, {k: v for k, v in final.items() if k in generator})
    logs = read_logs(tmp_path / "run" / "logs.jsonl")
    assert [r["round"] for r in logs if r.get("event") == "round"] == [1, 2]
    assert any("d_loss" in r for r in logs)  # the usual training records


def test_run_stopped_mid_round_resumes_bit_identically(tmp_path):
    cfg = _cfg("federated.clients=2", "federated.local_steps=4", "train.steps=12", "optim.ema=0.9", "seed=3")
    make_trainer(cfg, tmp_path / "A", progress=False).fit()
    # clients hold 2 steps of their own: they and their Adam moments must return
    assert train_until_interrupted(cfg, tmp_path / "B", 6) == 6
    make_trainer(cfg, tmp_path / "B", resume=True, progress=False).fit()
    for name in ("model/model.safetensors", "checkpoints/step-12/model.safetensors",
                 "checkpoints/step-12/clients.safetensors"):
        assert _same(load_file(str(tmp_path / "A" / name)), load_file(str(tmp_path / "B" / name))), name


def test_a_clients_rollback_after_a_resume_returns_where_the_uninterrupted_run_does(tmp_path):
    """Each client's guard snapshot (older than the stop) and streaks travel in the checkpoint's clients file."""
    cfg = _cfg("federated.clients=2", "federated.local_steps=4", "train.steps=32", "optim.lr_d=1e6", "optim.lr_g=1e6",
               "train.rollback_lr_factor=1e-6", "train.max_rollbacks=5", "train.log_every=1")
    make_trainer(cfg, tmp_path / "A", progress=False).fit()
    assert train_until_interrupted(cfg, tmp_path / "B", 3) == 3
    make_trainer(cfg, tmp_path / "B", resume=True, progress=False).fit()
    events = [[(e["step"], e.get("client"), e.get("restored_step")) for e in read_logs(tmp_path / r / "logs.jsonl")
               if e.get("event") == "rollback"] for r in "AB"]
    assert events[0] == events[1] and events[0]
    for name in ("checkpoints/step-32/model.safetensors", "checkpoints/step-32/clients.safetensors"):
        assert _same(load_file(str(tmp_path / "A" / name)), load_file(str(tmp_path / "B" / name))), name


def test_fp16_clients_keep_their_own_loss_scales_through_a_resume(tmp_path):
    cfg = _cfg("federated.clients=2", "federated.local_steps=2", "train.steps=4", "train.precision=fp16")
    trainer = make_trainer(cfg, tmp_path / "r", progress=False)
    trainer.clients[1].scalers["D"] = torch.amp.GradScaler("cpu", init_scale=2.0**60)  # client 1's first D steps overflow
    trainer.fit()
    scales = [c.scalers["D"].get_scale() for c in trainer.clients]
    assert scales[0] == 2.0**16 and 2.0**16 < scales[1] < 2.0**60  # each client's scaler saw only its own steps
    more = make_trainer(_cfg("federated.clients=2", "federated.local_steps=2", "train.steps=6", "train.precision=fp16"),
                        tmp_path / "r", resume=True, progress=False)
    assert [c.scalers["D"].get_scale() for c in more.clients] == scales


def test_configuration_errors_name_the_key(tmp_path, cli):
    code, _, err = cli("train", "ring8-gan", "data.n=3", "federated.clients=4", "federated.local_steps=1", "--out",
                       str(tmp_path / "r"), "--no-progress")
    assert code == 2 and "federated.clients=4 is more than the 3 training rows" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()  # nothing left behind
    code, _, err = cli("train", "ring8-gan", "federated.clients=2", "federated.local_steps=7")
    assert code == 2 and "multiple of federated.local_steps=7" in err
    cfg = _cfg("federated.clients=2", "federated.split=classes", "train.steps=20")
    unlabelled = replace(load_dataset(cfg.data, cfg.seed), y=None, class_names=None)
    with pytest.raises(UserError, match="federated.split=classes needs labelled data"):
        make_trainer(cfg, tmp_path / "x", dataset=unlabelled)
    with pytest.raises(UserError, match="make_trainer"):
        Trainer(_cfg("federated.clients=2", "train.steps=20"), tmp_path / "y")
    with pytest.raises(UserError, match="privacy.epsilon"):
        resolve("ring8-gan", ["federated.clients=2", "privacy.epsilon=1", "train.steps=20"])


def test_a_clients_rollback_returns_to_its_latest_good_state_not_the_start(tmp_path, monkeypatch):
    """Catches the clients' periodic snapshots not taken: a rollback at step 25 would go back to step 0."""
    from gankit.variants.gan import GAN

    trainer = make_trainer(_cfg("federated.clients=2", "federated.local_steps=4", "train.steps=32",
                                "train.checkpoint_every=20", "train.nan_patience=1", "train.log_every=1"),
                           tmp_path / "r", progress=False)
    real_loss = GAN.loss

    def loss(self, phase, batch, ctx):
        value, scalars = real_loss(self, phase, batch, ctx)
        return (value * float("nan") if trainer.step == 24 else value), scalars

    monkeypatch.setattr(GAN, "loss", loss)
    trainer.fit()
    events = [(e.get("client"), e["restored_step"]) for e in read_logs(tmp_path / "r" / "logs.jsonl")
              if e.get("event") == "rollback"]
    assert sorted(events) == [(0, 20), (1, 20)]
