"""Tables: reading and encoding CSVs exactly, training by sampling, the conditional tabular GAN's wiring, CSV samples
and the utility / privacy figures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import train_until_interrupted
from gankit.config import DataConfig
from gankit.data import TableOptions, TableSampler, decode, load_dataset, table_dataset, table_from_frame
from gankit.data.tabular import condition_layout, encode, spans, split
from gankit.errors import UserError
from gankit.metrics.tabular import column_similarity, privacy, tstr
from gankit.variants import Context, build_variant, resolve


def mixed_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Every column type gankit reads, with missing values, and a label the other columns depend on."""
    rng = np.random.default_rng(seed)
    label = rng.choice(["yes", "no"], n, p=[0.3, 0.7])
    frame = pd.DataFrame({
        "age": rng.integers(18, 90, n),
        "income": np.round(np.where(label == "yes", 80, 30) + rng.normal(0, 5, n), 2),
        "city": rng.choice(["Oslo", "Lima", "Pune"], n).astype(object),
        "member": rng.random(n) < 0.4,
        "joined": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D"),
        "stars": rng.integers(1, 6, n),
        "label": label,
    })
    frame["joined"] = frame["joined"].dt.strftime("%Y-%m-%d")
    frame.loc[rng.random(n) < 0.1, "income"] = np.nan
    frame.loc[rng.random(n) < 0.1, "city"] = None
    return frame


@pytest.fixture
def mixed_csv(tmp_path):
    path = tmp_path / "mixed.csv"
    mixed_frame().to_csv(path, index=False)
    return path


def tiny_table_cfg(path, *overrides: str):
    return resolve("table", [f"data.path={path}", "data.target=label", "train.steps=30", "train.batch_size=50",
                             "model.pack=5", "train.log_every=10", "train.sample_every=0",
                             "train.checkpoint_every=0", *overrides])[0]


# ----------------------------------------------------------------------------------------------- reading, encoding


def test_encoding_inverts_exactly_to_the_original_columns_and_dtypes(mixed_csv):
    data = table_dataset(str(mixed_csv), TableOptions(holdout=0))
    meta = data.info["table"]
    back = decode(data.x, meta)
    original = pd.read_csv(mixed_csv)
    written = mixed_csv.parent / "back.csv"
    back.to_csv(written, index=False)
    assert written.read_text() == mixed_csv.read_text()  # byte for byte, missing values and dates included
    types = {c["name"]: (c["type"], c["dtype"]) for c in meta["columns"]}
    assert types == {"age": ("continuous", "int"), "income": ("continuous", "float"), "city": ("categorical", "str"),
                     "member": ("categorical", "bool"), "joined": ("continuous", "datetime"),
                     "stars": ("categorical", "int"), "label": ("categorical", "str")}
    assert list(back.dtypes.astype(str)) == list(original.dtypes.astype(str))


def test_whole_numbers_keep_the_form_they_were_written_in(tmp_path):
    """127.0 stays a float, 3 with gaps stays an integer (pandas reads both as floats): the CSV text comes back."""
    path = tmp_path / "w.csv"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"mass": rng.integers(60, 160, 50).astype(float), "rooms": rng.integers(1, 30, 50)})
    frame["rooms"] = frame["rooms"].astype("Int64").mask(rng.random(50) < 0.2)
    frame.to_csv(path, index=False)
    assert "127.0" in path.read_text() or ".0," in path.read_text()
    data = table_dataset(str(path), TableOptions(holdout=0))
    assert [c["dtype"] for c in data.info["table"]["columns"]] == ["float", "int"]
    decode(data.x, data.info["table"]).to_csv(tmp_path / "back.csv", index=False)
    assert (tmp_path / "back.csv").read_text() == path.read_text()


def test_overrides_decide_between_numbers_and_categories(mixed_csv):
    frame = pd.read_csv(mixed_csv)
    meta = table_from_frame(frame, TableOptions(holdout=0, discrete=("stars",), categorical=("age",),
                                               conditional=("label",))).info["table"]
    types = {c["name"]: c["type"] for c in meta["columns"]}
    assert types["stars"] == "continuous" and types["age"] == "categorical"
    assert decode(encode(frame, meta), meta)["stars"].tolist() == frame["stars"].tolist()


def test_data_holdout_sets_the_share_of_rows_kept_out(mixed_csv):
    data = load_dataset(DataConfig(name="table", path=str(mixed_csv), holdout=0.5))
    assert len(data) == 150 and len(data.info["holdout"]) == 150
    assert len(load_dataset(DataConfig(name="table", path=str(mixed_csv)))) == 210  # 30 % kept out by default


def test_split_is_stratified_by_the_target_and_seeded():
    frame = pd.DataFrame({"x": np.arange(100.0), "label": ["yes"] * 10 + ["no"] * 90})
    helds = [split(frame, TableOptions(holdout=0.3, target="label", split_seed=s), "t")[1] for s in range(5)]
    assert all((held["label"] == "yes").sum() == 3 for held in helds)  # 10 % of the held-out rows, as of all rows
    assert not helds[0].equals(helds[1])  # another seed, other rows
    assert helds[0].equals(split(frame, TableOptions(holdout=0.3, target="label"), "t")[1])


def test_encoding_refuses_a_category_never_seen_in_training(mixed_csv):
    frame = pd.read_csv(mixed_csv)
    meta = table_from_frame(frame, TableOptions(holdout=0)).info["table"]
    frame.loc[0, "city"] = "Rome"
    with pytest.raises(UserError, match="'Rome' was not in the training data"):
        encode(frame, meta)


def test_decoded_numbers_stay_in_the_training_range_and_are_rounded(mixed_csv):
    data = table_dataset(str(mixed_csv), TableOptions(holdout=0))
    meta = data.info["table"]
    wild = data.x.clone()
    scalars = [at for at, (size, act) in enumerate(_starts(spans(meta))) if act == "tanh"]
    wild[:, scalars] = torch.linspace(-1, 1, len(wild))[:, None] * 1e3
    back = decode(wild, meta)
    income = meta["columns"][1]
    assert back["income"].min() >= income["min"] and back["income"].max() <= income["max"]
    assert (back["income"].dropna() == back["income"].dropna().round(2)).all()
    assert back["age"].dtype == np.int64


def _starts(layout):
    out = []
    for size, act in layout:
        out += [(size, act)] + [(0, "")] * (size - 1)
    return out


@pytest.mark.parametrize("body, column, problem", [
    ("", None, "is empty"),
    ("a,b\n1,x\n", None, "1 data rows"),
    ("a,b\n1,x\n1,y\n2,x\n", "a", None),  # fine: two values
    ("a,b\n1,x\n1,y\n1,x\n", "a", "holds one value only"),
    ("a,b\n,x\n,y\n,x\n", "a", "is empty (every value is missing)"),
    ("a,b\n1,x\n2,y\nthree,x\n4,y\n", "a", "mixes numbers and text"),
    ("a,b\n1.5,x\n2.5,y\n3.5,x\n", "b", "appears in one training row only"),
    ("a,b\n1.5,x\n2.5,\n3.5,y\n4.5,x\n5.5,y\n", "b", "a missing value appears in one training row only"),
    ("a,b\n1,x,9\n2,y,9\n3,x,9\n", None, "more fields than its header line names"),
])
def test_bad_tables_name_the_column_and_the_problem(tmp_path, body, column, problem):
    path = tmp_path / "t.csv"
    path.write_text(body)
    if problem is None:
        table_dataset(str(path), TableOptions(holdout=0, conditional=()))
        return
    with pytest.raises(UserError) as exc:
        table_dataset(str(path), TableOptions(holdout=0))
    assert problem in str(exc.value) and (column is None or f"'{column}'" in str(exc.value))


def test_a_target_missing_in_one_row_names_its_line_with_exit_2_and_writes_no_run(tmp_path, cli):
    path = tmp_path / "t.csv"
    path.write_text("a,t\n" + "".join(f"{i},{i % 2}\n" for i in range(8)) + "9,\n10,1\n")
    code, _, err = cli("train", "table", f"data.path={path}", "data.target=t", "--out", str(tmp_path / "run"))
    assert code == 2 and "data row 9 of" in err and "column 't'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_cli_refuses_a_bad_csv_with_exit_2_and_writes_no_run(tmp_path, cli):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n1,y\n1,x\n")
    code, _, err = cli("train", "table", f"data.path={path}", "--out", str(tmp_path / "run"))
    assert code == 2 and "column 'a'" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------------- training by sampling


def test_sampler_draws_real_rows_that_show_the_condition(mixed_csv):
    data = table_dataset(str(mixed_csv), TableOptions(holdout=0))
    layout = condition_layout(data.info["table"])
    batch = TableSampler(data, 4000, seed=0).next()
    for part in layout:
        rows_block = batch.x[:, part["start"]:part["start"] + part["size"]]
        cond_block = batch.cond[:, part["cond_start"]:part["cond_start"] + part["size"]]
        asked = cond_block.sum(1) == 1
        assert asked.any() and torch.equal(rows_block[asked], cond_block[asked])
    # columns uniform, categories ∝ log(1 + count)
    share = torch.stack([batch.cond[:, p["cond_start"]:p["cond_start"] + p["size"]].sum() for p in layout]) / 4000
    assert torch.allclose(share, torch.full_like(share, 1 / len(layout)), atol=0.03)
    label = next(p for p in layout if p["name"] == "label")
    counts = torch.tensor(label["counts"], dtype=torch.float)
    expected = torch.log1p(counts) / torch.log1p(counts).sum()
    got = batch.cond[:, label["cond_start"]:label["cond_start"] + label["size"]].sum(0)
    assert torch.allclose(got / got.sum(), expected, atol=0.04)


def test_sampler_resumes_exactly_from_its_state(mixed_csv):
    data = table_dataset(str(mixed_csv), TableOptions(holdout=0))
    a = TableSampler(data, 20, seed=3)
    a.next()
    state = a.state_dict()
    expected = a.next()
    b = TableSampler(data, 20, seed=3)
    b.load_state_dict(state)
    got = b.next()
    assert torch.equal(got.x, expected.x) and torch.equal(got.cond, expected.cond)


# ----------------------------------------------------------------------------------------------- the variant's wiring


def variant_and_table_batch(mixed_csv, *overrides: str):
    torch.manual_seed(0)
    cfg = tiny_table_cfg(mixed_csv, *overrides)
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), TableSampler(data, 50, seed=0).next()


def test_d_loss_is_the_wasserstein_game_on_real_then_fake_packs(mixed_csv):
    variant, batch = variant_and_table_batch(mixed_csv, "loss.gp_weight=0")
    variant.D.eval()  # no dropout: the logits can be recomputed exactly
    torch.manual_seed(1)
    loss, scalars = variant.d_loss(batch, Context())
    torch.manual_seed(1)
    fake = variant.g_forward(variant.noise(len(batch)), batch.cond).detach()
    real_logits = variant.D(torch.cat([batch.x, batch.cond], 1))
    fake_logits = variant.D(torch.cat([fake, batch.cond], 1))
    assert real_logits.shape == (len(batch) // variant.pack,)
    assert torch.allclose(loss, fake_logits.mean() - real_logits.mean(), atol=1e-5)
    assert torch.allclose(scalars["d_real"], real_logits.mean()) and torch.allclose(scalars["d_fake"],
                                                                                    fake_logits.mean())


def test_g_and_d_both_read_the_condition(mixed_csv):
    variant, batch = variant_and_table_batch(mixed_csv)
    variant.eval()
    z = variant.noise(len(batch))
    other = batch.cond.roll(1, dims=1)
    with torch.no_grad():
        draws = []
        for cond in (batch.cond, other):  # through the game's hook, as the D and G steps draw their fakes
            torch.manual_seed(0)
            draws.append(variant.g_forward(z, cond))
        assert not torch.allclose(*draws)
        assert not torch.allclose(variant.score(batch.x, batch.cond), variant.score(batch.x, other))


def test_conditional_term_is_minus_log_of_the_mass_on_the_asked_category(mixed_csv):
    variant, batch = variant_and_table_batch(mixed_csv, "tabular.cond_weight=2", "tabular.classifier=0")
    fake = batch.x.clone()  # real rows show the asked categories: mass 1, loss 0
    loss, scalars = variant.aux_g_loss(None, batch.cond, fake)
    assert loss.item() == pytest.approx(0, abs=1e-6) and scalars["cond_hit"].item() == 1
    wrong = fake.clone()
    wrong[:, variant.cond_columns] = 1 - batch.cond  # every other category on, the asked one off
    loss, _ = variant.aux_g_loss(None, batch.cond, wrong)
    assert loss.item() == pytest.approx(2 * -np.log(1e-8), rel=1e-4)
    # and the G step adds it: its loss is the game's plus the weighted term
    _, scalars = variant.g_loss(batch, Context())
    assert scalars["g_loss"].item() == pytest.approx(-scalars["d_fake_g"].item() + 2 * scalars["cond_loss"].item(),
                                                     rel=1e-4)


def test_classifier_learns_the_target_from_the_other_columns_and_charges_g(mixed_csv):
    import torch.nn.functional as F

    from gankit.data.tabular import column_blocks

    variant, batch = variant_and_table_batch(mixed_csv, "tabular.classifier=0.5", "tabular.cond_weight=2")
    assert [p.name for p in variant.phases] == ["D", "C", "G"] and "C" in variant.groups
    assert len(variant.C) == 1  # the target's only
    start, width = column_blocks(variant.spec_table)["label"]
    # C never sees the target it predicts: changing the target block leaves its output alone
    flipped = batch.x.clone()
    flipped[:, start:start + width] = flipped[:, start:start + width].flip(1)
    assert torch.equal(variant.C[0](batch.x), variant.C[0](flipped))
    loss, scalars = variant.loss("C", batch, Context())
    expected = F.cross_entropy(variant.C[0](batch.x), batch.x[:, start:start + width].argmax(1))
    assert torch.allclose(loss, expected)
    _, scalars = variant.g_loss(batch, Context())
    assert scalars["g_loss"].item() == pytest.approx(-scalars["d_fake_g"].item() + 2 * scalars["cond_loss"].item()
                                                     + 0.5 * scalars["g_classifier"].item(), rel=1e-4)
    off, _ = variant_and_table_batch(mixed_csv, "tabular.classifier=0")
    assert [p.name for p in off.phases] == ["D", "G"] and "C" not in off.groups


def test_without_a_target_each_conditional_column_gets_a_classifier_blind_to_its_own_block(mixed_csv):
    """Catches a classifier that sees the column it predicts, a conditional column left out, or the term averaged
    over the wrong heads."""
    import torch.nn.functional as F

    from gankit.data.tabular import column_blocks

    variant, batch = variant_and_table_batch(mixed_csv, "data.target=null")
    meta = variant.spec_table
    assert [p.name for p in variant.phases] == ["D", "C", "G"] and len(meta["conditional"]) >= 2
    blocks = column_blocks(meta)
    assert [(c.start, c.size) for c in variant.C] == [blocks[name] for name in
                                                       [c["name"] for c in meta["columns"] if c["name"] in
                                                        meta["conditional"]]]
    losses_each = []
    for head in variant.C:
        changed = batch.x.clone()
        changed[:, head.start:head.start + head.size] = changed[:, head.start:head.start + head.size].flip(1)
        assert torch.equal(head(batch.x), head(changed))
        losses_each.append(F.cross_entropy(head(batch.x), batch.x[:, head.start:head.start + head.size].argmax(1)))
    loss, _ = variant.loss("C", batch, Context())
    assert torch.allclose(loss, torch.stack(losses_each).mean())


def test_gradient_penalty_treats_a_pack_as_one_example():
    from gankit.losses import gradient_penalty

    real, fake = torch.ones(4, 3), torch.zeros(4, 3)
    critic = lambda x: x.reshape(2, 6).sum(1)  # noqa: E731 - a packed critic of pairs: gradient 1 everywhere
    # per pack the gradient norm is √6, per row it would be √3
    assert gradient_penalty(critic, real, fake, group=2).item() == pytest.approx((6 ** 0.5 - 1) ** 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx((3 ** 0.5 - 1) ** 2)


# ----------------------------------------------------------------------------------------------- sampling and eval


@pytest.fixture
def table_run(mixed_csv, tmp_path):
    from gankit.train import Trainer

    run = tmp_path / "run"
    Trainer(tiny_table_cfg(mixed_csv), run, progress=False).fit()
    return run


def test_the_same_seed_writes_the_same_csv_with_the_original_columns(table_run, tmp_path, cli, mixed_csv):
    a, b, c = (tmp_path / f"{name}.csv" for name in "abc")
    assert cli("sample", str(table_run), "-n", "200", "--out", str(a))[0] == 0
    assert cli("sample", str(table_run), "-n", "200", "--out", str(b))[0] == 0
    assert cli("sample", str(table_run), "-n", "200", "--out", str(c), "--seed", "1")[0] == 0
    assert a.read_bytes() == b.read_bytes() and a.read_bytes() != c.read_bytes()
    synthetic, original = pd.read_csv(a), pd.read_csv(mixed_csv)
    assert list(synthetic.columns) == list(original.columns) and len(synthetic) == 200
    assert set(synthetic["city"].dropna()) <= {"Oslo", "Lima", "Pune"}
    assert synthetic["stars"].dtype == np.int64 and set(synthetic["stars"]) <= set(range(1, 6))
    fields = json.loads((tmp_path / "a.csv.provenance.json").read_text())
    assert fields["gankit:generated"] == "true" and fields["gankit:seed"] == "0"


def test_condition_gives_every_row_the_asked_category(table_run, tmp_path, cli):
    out = tmp_path / "yes.csv"
    code, _, err = cli("sample", str(table_run), "-n", "100", "--out", str(out), "--condition", "label=yes")
    assert code == 0, err
    assert (pd.read_csv(out)["label"] == "yes").all()
    code, _, err = cli("sample", str(table_run), "-n", "5", "--out", str(out), "--condition", "label=maybe")
    assert code == 2 and "no value 'maybe'" in err and "yes" in err


def test_eval_reports_utility_and_privacy_and_refuses_a_changed_csv(table_run, cli, mixed_csv):
    code, out, err = cli("eval", str(table_run), "--json", "--target", "income")
    assert code == 0, err
    result = json.loads(out)
    assert result["tstr"]["task"] == "regression" and "r2_synthetic" in result["tstr"]["random_forest"]
    assert 0 <= result["privacy"]["membership_auc"] <= 1 and set(result["column_similarity_per_column"]) == set(
        pd.read_csv(mixed_csv).columns)
    code, out, _ = cli("eval", str(table_run), "--target", "income")  # the table: nested groups as dotted rows
    assert code == 0 and "privacy.membership_auc" in out and "tstr.random_forest.r2_synthetic" in out
    mixed_csv.write_text(mixed_csv.read_text() + "30,1.0,Oslo,True,2020-01-01,3,no\n")
    code, _, err = cli("eval", str(table_run), "--json")
    assert code == 2 and "changed since the model was trained" in err


# ----------------------------------------------------------------------------------------------- the figures themselves


def split_frames(seed: int = 0):
    data = table_from_frame(mixed_frame(600, seed), TableOptions(target="label"))
    return data.info["frame"], data.info["holdout"], data.info["table"]


def test_privacy_flags_copies_of_the_training_rows_and_not_fresh_rows():
    train, holdout, meta = split_frames()
    copied = privacy(train, holdout, train, meta)
    assert copied["exact_copies"] == 1 and copied["dcr_median"] == 0
    # nearer_to_training compares against a training subset as large as the held-out rows (180 of 420), so a full
    # copy of the training rows scores 0.5 + 0.5 * 180/420 ≈ 0.71 rather than 1
    assert copied["membership_auc"] > 0.95 and copied["nearer_to_training"] > 0.68
    fresh = table_from_frame(mixed_frame(600, seed=1), TableOptions(target="label")).info["frame"]
    clean = privacy(train, holdout, fresh, meta)
    assert clean["exact_copies"] == 0 and 0.4 < clean["membership_auc"] < 0.6
    assert 0.4 < clean["nearer_to_training"] < 0.6
    assert clean["dcr_median"] == pytest.approx(clean["dcr_holdout_median"], rel=0.3)


def test_tstr_of_real_rows_equals_real_to_real_and_noise_scores_low():
    train, holdout, meta = split_frames()
    same = tstr(train, train, holdout, meta, "label")["random_forest"]
    assert same["f1_synthetic"] == same["f1_real"] > 0.9 and same["ratio"] == 1
    shuffled = train.copy()
    shuffled["label"] = shuffled["label"].sample(frac=1, random_state=0).to_numpy()  # the label's link cut
    broken = tstr(train, shuffled, holdout, meta, "label")["random_forest"]
    assert broken["f1_synthetic"] < 0.7


def test_column_similarity_is_one_for_the_same_rows_and_drops_for_shifted_ones():
    train, _, meta = split_frames()
    assert all(v == pytest.approx(1) for v in column_similarity(train, train, meta).values())
    shifted = train.assign(income=train["income"] + 40, city="Oslo")
    sim = column_similarity(train, shifted, meta)
    assert sim["income"] < 0.5 and sim["city"] < 0.7 and sim["age"] == pytest.approx(1)


@pytest.mark.slow
def test_tabular_gan_learns_the_label_dependence(mixed_csv, tmp_path):
    """A short real run: conditioned on the label, incomes come out near 80 for yes and 30 for no."""
    from gankit.train import Trainer, load

    run = tmp_path / "learn"
    Trainer(tiny_table_cfg(mixed_csv, "train.steps=1000", "train.batch_size=200", "model.pack=10"), run,
            progress=False).fit()  # the preset's batch, pack and learning rate
    gen = load(run)
    meta = gen.spec["table"]
    kind = gen.data_kind
    means = {}
    for value in ("yes", "no"):
        cond = kind.read_condition([f"label={value}"], gen.spec).expand(400, -1)
        rows = decode(gen.sample(400, seed=0, condition=cond), meta)
        assert (rows["label"] == value).all()
        means[value] = rows["income"].mean()
    assert means["yes"] > 65 and means["no"] < 45, means


# ----------------------------------------------------------------------------------------------- differential privacy


def public_facts(frame: pd.DataFrame) -> dict:
    facts = {}
    for name in frame.columns:
        if name in ("city", "member", "stars", "label"):
            facts[name] = {"categories": sorted(frame[name].dropna().unique().tolist()), "missing": name == "city"}
        elif name == "joined":
            facts[name] = {"min": "2019-12-01", "max": "2022-12-31"}
        else:
            facts[name] = {"min": 0, "max": 120, "decimals": 2}
    return {"columns": facts}


@pytest.fixture
def public_json(mixed_csv):
    path = mixed_csv.parent / "public.json"
    path.write_text(json.dumps(public_facts(pd.read_csv(mixed_csv))))
    return path


def dp_cfg(mixed_csv, public_json, *overrides: str):
    return tiny_table_cfg(mixed_csv, f"data.public={public_json}", "privacy.epsilon=3", "loss.name=non_saturating",
                          "loss.gp_weight=0", *overrides)


def test_public_facts_replace_the_data_statistics_and_clip_to_their_bounds(mixed_csv, public_json):
    from gankit.data import read_public

    frame = pd.read_csv(mixed_csv)
    frame.loc[0, "income"] = 500.0  # beyond the declared bound of 120
    data = table_from_frame(frame, TableOptions(holdout=0, public=read_public(str(public_json))))
    meta = data.info["table"]
    income = next(c for c in meta["columns"] if c["name"] == "income")
    assert (income["min"], income["max"], len(income["means"])) == (0, 120, 1)
    assert meta["conditional"] == [] and meta["sampling"] == "poisson"
    back = decode(data.x, meta)
    assert back.loc[0, "income"] == 120 and back.loc[1:, "income"].equals(frame.loc[1:, "income"])
    bad = json.loads(public_json.read_text())
    del bad["columns"]["age"]
    with pytest.raises(UserError, match="no facts for column"):
        table_from_frame(frame, TableOptions(public=bad["columns"]))


def test_poisson_batches_vary_in_size_around_the_batch_and_replay_exactly(mixed_csv, public_json):
    from gankit.data import read_public

    data = table_from_frame(pd.read_csv(mixed_csv), TableOptions(holdout=0, public=read_public(str(public_json))))
    sampler = TableSampler(data, 60, seed=0)
    sizes = [len(sampler.next()) for _ in range(200)]
    assert len(set(sizes)) > 5 and abs(np.mean(sizes) - 60) < 2
    again = TableSampler(data, 60, seed=0)
    again.load_state_dict({"cursor": 60 * 5})
    first = TableSampler(data, 60, seed=0)
    for _ in range(5):
        first.next()
    assert torch.equal(again.next().x, first.next().x)


def test_epsilon_follows_opacus_accountant_and_the_plan_spends_the_target():
    from opacus.accountants import RDPAccountant

    from gankit.variants.private import PrivateSGD

    cfg = resolve("table", ["privacy.epsilon=2", "train.steps=400", "train.batch_size=50"])[0]
    plan = PrivateSGD.plan(cfg, rows=1000)
    accountant = RDPAccountant()
    accountant.history = [(plan.sigma, plan.rate, 123)]
    assert plan.epsilon(123) == pytest.approx(accountant.get_epsilon(plan.delta))
    assert plan.delta == pytest.approx(1e-4) and plan.rate == 0.05
    assert 1.9 < plan.epsilon(400) <= 2.0 and plan.epsilon(200) < plan.epsilon(400)


def test_dp_gradient_is_the_clipped_per_pair_game_gradient_plus_noise(mixed_csv, public_json):
    from dataclasses import replace

    variant, _ = variant_and_table_batch_dp(mixed_csv, public_json)
    variant.D.eval()  # no dropout: per-pair gradients are deterministic
    dim = variant.D.body[0].in_features // variant.pack
    real, fake = torch.randn(4 * variant.pack, dim), torch.randn(4 * variant.pack, dim)
    exact = replace(variant.private, sigma=0.0, max_grad_norm=1e6, batch=4 * variant.pack)
    got = exact.gradients(variant.D, variant.d_game, real, fake, variant.pack)
    # without clipping or noise: the mean over the 4 pairs of each pair's game gradient = the batch game's gradient
    variant.D.zero_grad()
    variant.d_game(variant.D(real), variant.D(fake)).backward()
    for name, p in variant.D.named_parameters():
        assert torch.allclose(got[name], p.grad, atol=1e-5), name
    clipped = replace(exact, max_grad_norm=1e-3).gradients(variant.D, variant.d_game, real, fake, variant.pack)
    norm = torch.sqrt(sum(g.pow(2).sum() for g in clipped.values()))
    assert norm <= 1e-3 + 1e-7  # each pair clipped to C, their mean no longer than C
    noisy = replace(exact, sigma=2.0, max_grad_norm=1.0).gradients(variant.D, variant.d_game, real[:0], fake[:0],
                                                                   variant.pack)
    spread = torch.cat([g.flatten() for g in noisy.values()]).std()
    assert spread.item() == pytest.approx(2.0 / 4, rel=0.1)  # σC over the expected 4 pairs


def variant_and_table_batch_dp(mixed_csv, public_json):
    torch.manual_seed(0)
    cfg = dp_cfg(mixed_csv, public_json)
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), TableSampler(data, 50, seed=0).next()


def test_dp_d_step_applies_the_private_gradient_and_counts_the_step(mixed_csv, public_json):
    from dataclasses import replace

    variant, batch = variant_and_table_batch_dp(mixed_csv, public_json)
    variant.private = replace(variant.private, sigma=0.0)
    torch.manual_seed(3)
    surrogate, scalars = variant.loss("D", batch, Context())
    variant.D.zero_grad()
    surrogate.backward()
    torch.manual_seed(3)
    n = len(batch) // variant.pack * variant.pack  # the Poisson draw, cut to whole packs
    fake = variant.g_forward(variant.noise(n), None).detach()
    expected = variant.private.gradients(variant.D, variant.d_game, batch.x[:n], fake, variant.pack)
    assert all(torch.allclose(p.grad, expected[k], atol=1e-6) for k, p in variant.D.named_parameters())
    assert int(variant.private_steps) == 1 and scalars["epsilon"].item() > 0


def test_dp_needs_public_facts_and_no_gradient_penalty(mixed_csv, public_json, cli, tmp_path):
    code, _, err = cli("train", "table", f"data.path={mixed_csv}", "privacy.epsilon=1", "--out", str(tmp_path / "a"))
    assert code == 2 and "data.public" in err
    code, _, err = cli("train", "table", f"data.path={mixed_csv}", f"data.public={public_json}", "privacy.epsilon=1",
                       "--out", str(tmp_path / "b"))
    assert code == 2 and "gp_weight" in err
    for i, key in enumerate(("loss.drift", "train.instance_noise")):  # DP's gradient path skips both: refused
        out = tmp_path / f"c{i}"
        code, _, err = cli("train", "table", f"data.path={mixed_csv}", f"data.public={public_json}",
                           "privacy.epsilon=1", "loss.name=non_saturating", "loss.gp_weight=0", f"{key}=0.1",
                           "--out", str(out))
        assert code == 2 and f"{key}=0.1 would not be applied" in err and not out.exists()


def test_dp_run_reports_the_epsilon_it_spent(mixed_csv, public_json, tmp_path, cli):
    from gankit.train import Trainer

    run = tmp_path / "dp"
    Trainer(dp_cfg(mixed_csv, public_json, "train.steps=20"), run, progress=False).fit()
    code, out, err = cli("eval", str(run), "--json")
    assert code == 0, err
    dp = json.loads(out)["privacy"]["dp"]
    assert dp["d_steps"] == 20 and 2.8 < dp["epsilon_spent"] <= 3.0 and dp["noise_multiplier"] > 0
    logged = [json.loads(line)["epsilon"] for line in (run / "logs.jsonl").read_text().splitlines()
              if "epsilon" in line]
    assert logged == sorted(logged) and logged[-1] <= 3.0


def test_a_private_run_cannot_resume_to_spend_more_than_its_epsilon(mixed_csv, public_json, tmp_path, cli):
    """σ was set for the planned steps: raising them (or the batch, or the privacy keys) on resume would spend more
    than privacy.epsilon while the logs and `gankit eval` still said the target."""
    from gankit.train import Trainer

    run = tmp_path / "dp"
    Trainer(dp_cfg(mixed_csv, public_json, "train.steps=6"), run, progress=False).fit()
    for change in ("train.steps=60", "train.batch_size=20", "privacy.epsilon=6"):
        key = change.split("=")[0]
        code, _, err = cli("train", "--resume", str(run), change, "--no-progress")
        assert code == 2 and f"{key} cannot change when this run resumes" in err and "Traceback" not in err, err
    assert "steps: 6" in (run / "config.yaml").read_text()
    code, _, err = cli("train", "--resume", str(run), "train.steps=6", "optim.lr_g=0.001", "--no-progress")
    assert code == 0, err  # other keys may change


@pytest.mark.parametrize("private", [False, True])
def test_a_resumed_table_run_is_bit_identical(mixed_csv, public_json, tmp_path, private):
    """Catches the sampler's cursor, the condition stream or (under DP) the counted steps left out of checkpoints:
    a run stopped at step 4 and resumed ends where an uninterrupted one does, having spent the same ε."""
    from safetensors.torch import load_file

    from gankit.train import Trainer

    steps = ["train.steps=8", "train.log_every=2"]
    cfg = dp_cfg(mixed_csv, public_json, *steps) if private else tiny_table_cfg(mixed_csv, *steps)
    Trainer(cfg, tmp_path / "A", progress=False).fit()
    assert train_until_interrupted(cfg, tmp_path / "B", 4) == 4
    resumed = Trainer(cfg, tmp_path / "B", resume=True, progress=False)
    phases = len(resumed.variant.phases)  # D, (C, with the classifier of the plain run), G
    assert phases == (2 if private else 3) and resumed.sampler.cursor == 4 * phases * 50  # a batch per phase
    if private:
        assert int(resumed.variant.private_steps) == 4
    resumed.fit()
    a, b = (load_file(str(tmp_path / r / "model" / "model.safetensors")) for r in "AB")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if private:
        assert int(resumed.variant.private_steps) == 8


def test_a_wide_category_costs_its_own_width_only(tmp_path):
    """One-hot blocks are activated per width: a 400-category column beside 20 yes/no columns makes one (1, 400) and
    one (20, 2) block group, not 21 blocks padded to 400 (what once made wide tables slow and memory-hungry)."""
    from gankit.nets.tabular import TableGenerator

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"code": np.repeat([f"c{i}" for i in range(400)], 2),
                          **{f"flag{j}": rng.random(800) < 0.5 for j in range(20)}})
    data = table_from_frame(frame, TableOptions(holdout=0))
    G = TableGenerator(8, [16], spans(data.info["table"]))
    assert sorted(tuple(index.shape) for index in G.block_index) == [(1, 400), (20, 2)]
    rows = G.activate(G(torch.randn(5, 8)), tau=0.2, generator=torch.Generator().manual_seed(0), hard=True)
    assert rows.shape == (5, 440) and torch.equal(rows.sum(1), torch.full((5,), 21.0))  # one hot per column


def test_eval_compares_synthetic_with_training_rows_and_tests_on_held_out_rows(table_run):
    import gankit
    from gankit.report.evaluate import RUN_METRICS, RunEval, table_sets

    run = RunEval(gankit.load(table_run), table_run, target="income")
    values, protocol = RUN_METRICS["table_utility"].compute(run)
    train, holdout, synthetic = table_sets(run)
    meta = run.gen.spec["table"]
    table = protocol["table"]
    assert table["training_rows"] == len(train) == len(synthetic) == table["synthetic_rows"]
    assert table["held_out_rows"] == len(holdout) and 0 < len(holdout) < len(train)
    assert values["column_similarity_per_column"] == column_similarity(train, synthetic, meta)
    assert values["tstr"] == tstr(train, synthetic, holdout, meta, "income", 0)
