"""Token sequences: the SMILES tokenizer, text and SMILES files, the oracle, SeqGAN's wiring, resume and metrics."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch

import gankit
from gankit.data import Batch, load_dataset
from gankit.data.text import (Oracle, TextOptions, decode, draw, sequence_dataset, text_dataset, tokenize)
from gankit.errors import UserError
from gankit.metrics.sequences import molecules, nll_oracle, reward_function, uniqueness_novelty
from gankit.variants import Context, build_variant, resolve

from gankit.train.checkpoint import latest_checkpoint

from conftest import train_until_interrupted


def seq_variant(*overrides: str, n: int = 8):
    """A seeded SeqGAN on a small oracle (vocabulary 50, length 6) and a batch of its first n sequences."""
    torch.manual_seed(0)
    cfg = resolve("oracle-seqgan", ["data.n=200", "data.vocab=50", "data.length=6", "seqgan.rollouts=4",
                                    *overrides])[0]
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), Batch(data.x[:n]), data


# --------------------------------------------------------------------------------------------- tokens and files


def test_smiles_tokens_keep_multi_character_atoms_and_ring_numbers():
    assert tokenize("C[C@@H](Cl)Br", "smiles") == ["C", "[C@@H]", "(", "Cl", ")", "Br"]
    assert tokenize("c1cc[nH]c1", "smiles") == ["c", "1", "c", "c", "[nH]", "c", "1"]
    assert tokenize("C%10CC%10", "smiles") == ["C", "%10", "C", "C", "%10"]
    assert tokenize("O=[N+]([O-])c1ccccc1", "smiles")[1:5] == ["=", "[N+]", "(", "[O-]"]
    assert tokenize("CX", "smiles") is None  # X is no SMILES token: the line is refused, not silently cut
    assert tokenize("ab c", "word") == ["ab", "c"] and tokenize("ab", "char") == ["a", "b"]


def test_text_file_round_trip_with_eos_and_padding(tmp_path):
    path = tmp_path / "lines.txt"
    lines = ["hello", "hi", "", "help me"]
    path.write_text("\n".join(lines) + "\n")
    data = text_dataset(str(path), TextOptions(holdout=0))
    spec = data.spec()
    assert spec["tokens"]["vocab"][:2] == ["<pad>", "<eos>"]
    assert data.x.shape == (3, 8)  # longest line (7) plus <eos>; the blank line is no sequence
    assert sorted(decode(data.x, spec)) == sorted(["hello", "hi", "help me"])
    row = data.x[decode(data.x, spec).index("hi")].tolist()
    assert row[2] == 1 and row[3:] == [0] * 5  # <eos> then <pad>


def test_holdout_split_is_seeded_and_disjoint(tmp_path):
    texts = [f"s{i}" for i in range(50)]
    a = sequence_dataset("t", texts, "char", TextOptions(holdout=0.2, split_seed=3), {})
    b = sequence_dataset("t", texts, "char", TextOptions(holdout=0.2, split_seed=3), {})
    assert a.info["texts"] == b.info["texts"] and len(a.info["heldout_texts"]) == 10
    assert not set(a.info["texts"]) & set(a.info["heldout_texts"])
    c = sequence_dataset("t", texts, "char", TextOptions(holdout=0.2, split_seed=4), {})
    assert set(c.info["heldout_texts"]) != set(a.info["heldout_texts"])  # another seed, another split


def test_decode_stops_at_the_first_eos():
    spec = {"tokens": {"vocab": ["<pad>", "<eos>", "h", "i"], "eos": 1, "tokenizer": "char"}}
    assert decode(torch.tensor([[2, 3, 1, 2, 2, 0], [3, 1, 0, 0, 0, 0]]), spec) == ["hi", "i"]


def test_bad_text_files_name_the_problem(tmp_path):
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(UserError, match="neither .txt nor .smi"):
        text_dataset(str(tmp_path / "x.csv"), TextOptions())
    with pytest.raises(UserError, match="does not exist"):
        text_dataset(str(tmp_path / "gone.txt"), TextOptions())
    with pytest.raises(UserError, match="characters no smiles token covers"):
        sequence_dataset("t", ["CCO", "CQ"], "smiles", TextOptions(holdout=0), {})


def test_smi_with_unparsable_lines_names_them_and_skips_only_when_told(tmp_path):
    pytest.importorskip("rdkit")
    path = tmp_path / "m.smi"
    path.write_text("CCO ethanol\nC1CC x\nc1ccccc1 benzene\nOCC again\n")
    with pytest.raises(UserError, match=r"cannot parse 1 SMILES \(lines 2\)"):
        text_dataset(str(path), TextOptions(holdout=0))
    data = text_dataset(str(path), TextOptions(holdout=0, skip_invalid=True))
    assert sorted(data.info["texts"]) == ["CCO", "c1ccccc1"]  # canonical, the duplicate ethanol counted once


def test_without_rdkit_molecule_data_says_how_to_install(tmp_path, monkeypatch, cli):
    monkeypatch.setitem(sys.modules, "rdkit", None)
    path = tmp_path / "m.smi"
    path.write_text("CCO\n")
    code, _, err = cli("train", "oracle-seqgan", f"data.path={path}", "data.name=text", "--out", str(tmp_path / "r"))
    assert code == 2 and "gankit[chem]" in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------------------------- oracle and sampling


def test_oracle_is_a_function_of_its_seed_and_scores_its_own_data_best():
    a, b = Oracle(50, seed=1), Oracle(50, seed=1)
    x = a.sample(200, 6, seed=2)
    assert torch.equal(x, b.sample(200, 6, seed=2))
    assert not torch.equal(x, Oracle(50, seed=2).sample(200, 6, seed=2))
    uniform = torch.randint(50, (200, 6), generator=torch.Generator().manual_seed(0))
    assert a.nll(x).mean() < a.nll(uniform).mean() - 1


def test_draw_follows_the_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]]).repeat(100_000, 1)
    freq = torch.bincount(draw(logits, torch.rand(100_000)), minlength=4) / 100_000
    assert torch.allclose(freq, torch.softmax(logits[0], 0), atol=0.01)


def test_sampling_is_seeded_and_ends_with_eos_then_padding(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("\n".join(["ab", "abc", "b", "cab", "ba"] * 4))
    cfg = resolve("oracle-seqgan", ["data.name=text", f"data.path={path}", "data.holdout=0"])[0]
    data = load_dataset(cfg.data, 0)
    v = build_variant(cfg, data.spec())
    x = v.G.sample(torch.rand(500, v.G.length))
    for row in x.tolist():
        if 1 in row:
            assert all(t == 0 for t in row[row.index(1) + 1:])
    assert (v.G.mask(x).sum(1) >= 1).all()


# --------------------------------------------------------------------------------------------- SeqGAN's wiring


def test_phases_follow_the_schedule():
    v, _, _ = seq_variant("seqgan.mle_steps=3", "seqgan.d_pretrain_steps=2", "seqgan.d_steps=5")
    active = [[p.name for p in v.phases if p.active(s)] for s in range(7)]
    assert active == [["mle"]] * 3 + [["D_pre"]] * 2 + [["G", "D"]] * 2
    assert next(p for p in v.phases if p.name == "D").repeats == 5


def test_mle_loss_is_the_masked_negative_log_likelihood_and_lowers_it():
    v, batch, _ = seq_variant()
    loss, logs = v.loss("mle", batch, Context())
    by_hand = -v.G.log_probs(batch.x).mean()
    assert torch.allclose(loss, by_hand, atol=1e-5)
    opt = torch.optim.Adam(v.G.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        v.loss("mle", batch, Context())[0].backward()
        opt.step()
    assert v.loss("mle", batch, Context())[0] < loss - 0.1


def test_d_step_raises_real_and_lowers_fake():
    v, batch, _ = seq_variant(n=32)
    opt = torch.optim.Adam(v.D.parameters(), lr=0.01)
    v.D.eval()
    fake = v.G.sample(torch.rand(32, v.G.length, generator=torch.Generator().manual_seed(1)))
    before_real, before_fake = v.D(batch.x).mean(), v.D(fake).mean()
    v.D.train()
    for _ in range(5):
        opt.zero_grad()
        v.loss("D", batch, Context())[0].backward()
        opt.step()
    v.D.eval()
    assert v.D(batch.x).mean() > before_real and v.D(fake).mean() < before_fake


def test_rewards_keep_the_prefix_and_end_with_the_score_of_the_sequence(monkeypatch):
    v, _, _ = seq_variant()
    v.update_rollout()
    x = v.G.sample(torch.rand(20, v.G.length))
    monkeypatch.setattr(v, "score_sequences", lambda s: (s[:, 0] == x[0, 0]).float())
    q = v.rewards(x)
    assert q.shape == x.shape
    # the first token never changes in a completion, so every position's reward is exactly whether it matches
    assert torch.equal(q, (x[:, :1] == x[0, 0]).float().expand_as(q))
    monkeypatch.setattr(v, "score_sequences", lambda s: (s[:, -1] % 2 == 0).float())
    q = v.rewards(x)
    assert torch.equal(q[:, -1], (x[:, -1] % 2 == 0).float())  # the last token: the sequence itself
    assert ((q[:, 0] > 0) & (q[:, 0] < 1)).any()  # earlier ones: the share of completions that end well


def test_rewards_of_sequences_that_end_early_cover_every_position(tmp_path, monkeypatch):
    path = tmp_path / "l.txt"
    path.write_text("\n".join(["ab", "abcabcabca", "b"] * 4))
    cfg = resolve("oracle-seqgan", ["data.name=text", f"data.path={path}", "data.holdout=0", "seqgan.rollouts=2"])[0]
    data = load_dataset(cfg.data, 0)
    v = build_variant(cfg, data.spec())
    v.update_rollout()
    x = data.x[[0, 2]]  # both end long before the longest line: the early exit of the reward loop
    monkeypatch.setattr(v, "score_sequences", lambda s: torch.full((len(s),), 0.25))
    q = v.rewards(x)
    assert q.shape == x.shape and torch.all(q == 0.25)
    loss, _ = v.loss("G", Batch(data.x[:2]), Context())
    assert torch.isfinite(loss)


def test_policy_gradient_moves_g_toward_rewarded_tokens(monkeypatch):
    v, batch, _ = seq_variant("seqgan.mle_steps=0", "seqgan.d_pretrain_steps=0")
    favoured = 7
    monkeypatch.setattr(v, "score_sequences", lambda s: (s == favoured).float().mean(1))
    u = torch.rand(2000, v.G.length, generator=torch.Generator().manual_seed(3))
    before = (v.G.sample(u) == favoured).float().mean()
    opt = torch.optim.Adam(v.G.parameters(), lr=0.05)
    for _ in range(15):
        opt.zero_grad()
        v.loss("G", Batch(torch.zeros(64, 6, dtype=torch.long)), Context())[0].backward()
        opt.step()
    assert (v.G.sample(u) == favoured).float().mean() > before + 0.05


def test_mle_term_of_the_policy_gradient_step_is_the_real_batch_likelihood(monkeypatch):
    v, batch, _ = seq_variant("seqgan.baseline=true", "seqgan.mle_weight=0.5")
    monkeypatch.setattr(v, "score_sequences", lambda s: torch.full((len(s),), 0.7))  # baseline: zero advantage
    loss, logs = v.loss("G", batch, Context())
    assert torch.allclose(loss, 0.5 * -v.G.log_probs(batch.x).mean(), atol=1e-5)
    assert torch.allclose(logs["mle_nll"], -v.G.log_probs(batch.x).mean(), atol=1e-5)


def test_rollout_starts_as_g_then_trails_it_by_the_rate():
    v, _, _ = seq_variant("seqgan.rollout_rate=0.8")
    v.update_rollout()
    assert all(torch.equal(a, b) for a, b in zip(v.rollout.parameters(), v.G.parameters()))
    old = [p.clone() for p in v.rollout.parameters()]
    with torch.no_grad():
        for p in v.G.parameters():
            p.add_(1.0)
    v.update_rollout()
    for mine, was, g in zip(v.rollout.parameters(), old, v.G.parameters()):
        assert torch.allclose(mine, 0.8 * was + 0.2 * g)


def test_resume_in_the_middle_of_the_schedule_is_bit_identical(tmp_path):
    overrides = ["data.n=200", "data.vocab=50", "data.length=6", "seqgan.rollouts=2", "seqgan.mle_steps=4",
                 "seqgan.d_pretrain_steps=3", "seqgan.d_steps=2", "train.steps=10", "train.sample_every=0",
                 "train.checkpoint_every=0", "train.batch_size=16"]
    cfg = resolve("oracle-seqgan", overrides)[0]
    gankit.train(cfg, tmp_path / "whole", progress=False)
    whole = latest_checkpoint(tmp_path / "whole")[2]["model.safetensors"]
    assert any(k.startswith("rollout.") for k in whole) and any(k.startswith("D.") for k in whole)
    for stop in (5, 8):  # mid D pre-training, then mid adversarial training
        run = tmp_path / f"cut{stop}"
        assert train_until_interrupted(cfg, run, stop) == stop
        gankit.train(cfg, run, resume=True, progress=False)
        resumed = latest_checkpoint(run)[2]["model.safetensors"]
        assert whole.keys() == resumed.keys()
        assert all(torch.equal(whole[k], resumed[k]) for k in whole), stop


# --------------------------------------------------------------------------------------------- outputs and metrics


def test_sample_writes_text_with_provenance_and_refuses_smi_for_non_smiles(tmp_path, cli):
    path = tmp_path / "l.txt"
    path.write_text("\n".join(["ab", "abc", "b", "cab", "ba"] * 4))
    run = tmp_path / "run"
    code, _, err = cli("train", "oracle-seqgan", "data.name=text", f"data.path={path}", "seqgan.mle_steps=3",
                       "seqgan.d_pretrain_steps=1", "seqgan.rollouts=2", "train.steps=5", "train.sample_every=0",
                       "--out", str(run))
    assert code == 0, err
    assert cli("sample", str(run), "-n", "7", "--seed", "1", "--out", str(tmp_path / "s.txt"))[0] == 0
    lines = (tmp_path / "s.txt").read_text().splitlines()
    assert len(lines) == 7 and set("".join(lines)) <= set("abc")
    side = json.loads((tmp_path / "s.txt.provenance.json").read_text())
    assert side["gankit:generated"] == "true"
    assert gankit.io.read_provenance(tmp_path / "s.txt")["gankit:generated"] == "true"
    code, _, err = cli("sample", str(run), "-n", "3", "--out", str(tmp_path / "s.smi"))
    assert code == 2 and "not SMILES" in err and not (tmp_path / "s.smi").exists()
    code, _, err = cli("export", str(run), "--format", "torchscript", "--out", str(tmp_path / "g.pt"))
    assert code == 2 and "step by step" in err and not (tmp_path / "g.pt").exists()
    code, out, err = cli("eval", str(run), "--json", "-n", "200")
    assert code == 0, err
    values = json.loads(out)
    assert 0 < values["uniqueness"] <= 1 and 0 <= values["novelty"] <= 1
    from gankit.report.evaluate import RunEval, sequence_sets

    _, texts, _ = sequence_sets(RunEval(gankit.load(run), run, seed=1, n=7))
    assert texts == lines  # eval measures the sequences `sample --seed` writes


def test_nll_oracle_metric_orders_the_oracle_a_random_model_and_uniform_noise():
    _, _, data = seq_variant()
    spec = data.spec()
    uniform = torch.randint(50, (200, 6), generator=torch.Generator().manual_seed(0))
    assert nll_oracle(data.x, spec) < nll_oracle(uniform, spec)
    # per token and per sequence, in nats: the oracle's own samples score their entropy rate, below log(vocab), and
    # uniform tokens that plus KL(uniform ‖ oracle), above it (a sum over tokens or sequences would be far above)
    assert 1.0 < nll_oracle(data.x, spec) < math.log(50) < nll_oracle(uniform, spec) < 2 * math.log(50)


def test_uniqueness_and_novelty_count_as_documented():
    found = uniqueness_novelty(["a", "a", "b", "c"], {"c"})
    assert found == {"uniqueness": 0.75, "novelty": 2 / 3}


def test_molecule_metrics_count_valid_unique_and_novel():
    pytest.importorskip("rdkit")
    found = molecules(["CCO", "OCC", "C1CC", "c1ccccc1", "CCN"], training={"CCN"})
    assert found["validity"] == pytest.approx(4 / 5)
    assert found["uniqueness"] == pytest.approx(3 / 4)  # CCO and OCC are one molecule
    assert found["novelty"] == pytest.approx(2 / 3)
    assert 0 < found["qed_mean"] < 1 and 0 < found["internal_diversity"] <= 1


@pytest.mark.parametrize("objective, expected", [("validity", [1, 1, 0, 1]), ("novel", [0, 0, 0, 1])])
def test_chem_rewards_score_valid_or_valid_and_new_molecules(objective, expected):
    pytest.importorskip("rdkit")
    texts = ["CCO", "OCC", "C1CC", "CCN"]  # OCC is CCO written another way; C1CC leaves a ring open
    data = sequence_dataset("t", texts, "smiles", TextOptions(holdout=0), {})
    assert decode(data.x, data.spec()) == texts
    reward = reward_function(objective, data.spec(), lambda: {"CCO"})
    assert reward(data.x).tolist() == expected


def test_seqgan_mixes_d_and_the_novel_reward_read_from_its_own_training_set(tmp_path):
    """Catches the RDKit share dropped or unweighted, and `novel` judged against anything but the run's data."""
    pytest.importorskip("rdkit")
    path = tmp_path / "m.smi"
    path.write_text("CCO\nc1ccccc1\nCCN\n")
    cfg = resolve("molecules-seqgan", ["data.name=text", f"data.path={path}", "data.holdout=0", "data.augment=0",
                                       "seqgan.hidden=8", "seqgan.layers=1", "seqgan.chem_reward=0.25"])[0]
    data = load_dataset(cfg.data, cfg.seed)
    variant = build_variant(cfg, data.spec())
    variant.eval()
    known = data.x[decode(data.x, data.spec()).index("CCN")]
    new = torch.cat([known[:1], known])[:len(known)]  # one more carbon: CCCN, a molecule the data lacks
    broken = known.clone()
    broken[2] = data.x[decode(data.x, data.spec()).index("c1ccccc1")][1]  # CC1: a ring left open
    x = torch.stack([known, new, broken])
    assert decode(x, data.spec()) == ["CCN", "CCCN", "CC1"]
    with torch.no_grad():
        d = torch.sigmoid(variant.D(x))
        assert torch.allclose(variant.score_sequences(x), 0.75 * d + 0.25 * torch.tensor([0.0, 1.0, 0.0]))


def test_random_smiles_write_the_same_molecules_other_ways():
    pytest.importorskip("rdkit")
    from rdkit import Chem

    texts = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2ccccc2c1", "CCN(CC)CC"]
    data = sequence_dataset("t", texts, "smiles", TextOptions(holdout=0, augment=3), {})
    written = decode(data.x, data.spec())
    assert len(written) == 12 and data.info["texts"] == texts  # metrics compare with the canonical molecules
    canonical = {Chem.MolToSmiles(Chem.MolFromSmiles(t)) for t in texts}
    assert {Chem.MolToSmiles(Chem.MolFromSmiles(t)) for t in written} == canonical
    assert len(set(written)) > len(texts)  # other strings, not copies
    again = sequence_dataset("t", texts, "smiles", TextOptions(holdout=0, augment=3), {})
    assert torch.equal(again.x, data.x)


def test_molecules_from_the_nci_set_train_sample_draw_and_evaluate(tmp_path, cli):
    pytest.importorskip("rdkit")
    run = tmp_path / "mols"
    code, _, err = cli("train", "molecules-seqgan", "seqgan.mle_steps=3", "seqgan.d_pretrain_steps=1",
                       "seqgan.rollouts=2", "seqgan.pg_batch=4", "seqgan.hidden=16", "seqgan.layers=1",
                       "data.max_len=30", "train.steps=5", "train.sample_every=0", "--out", str(run))
    assert code == 0, err
    assert "left out 8 SMILES RDKit cannot parse" in err  # the NCI file's unparsable lines, named
    assert cli("sample", str(run), "-n", "20", "--seed", "0", "--out", str(tmp_path / "m.smi"))[0] == 0
    assert len((tmp_path / "m.smi").read_text().splitlines()) == 20
    assert cli("sample", str(run), "-n", "8", "--seed", "0", "--out", str(tmp_path / "m.png"))[0] == 0
    assert gankit.io.read_provenance(tmp_path / "m.png")["gankit:generated"] == "true"
    code, out, err = cli("eval", str(run), "--json", "-n", "100")
    assert code == 0, err
    values = json.loads(out)
    assert {"validity", "uniqueness", "novelty", "qed_mean", "internal_diversity"} <= values.keys()
    assert values["protocol"]["molecules"]["samples"] == 100
    assert "sequences" not in values["protocol"]  # uniqueness/novelty are the molecules' (canonical SMILES)
