"""The SimCLR term on D (`loss.contrastive`): its loss, its views, its wiring into GAN.d_loss, its refusals, and the
cosine neighbour score that reads the features it trains."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gankit import anomaly, losses
from gankit.config import DataConfig
from gankit.data import Batch, load_dataset
from gankit.errors import UserError
from gankit.nets.augment import simclr_view
from gankit.variants import Context, build_variant, resolve

SMALL = ("train.batch_size=16", "model.width=8", "data.n=200", "data.resolution=16")


def _setup(*overrides: str):
    torch.manual_seed(0)
    cfg = resolve("shapes-anomaly", [*SMALL, *overrides])[0]
    data = load_dataset(cfg.data, cfg.seed)
    return build_variant(cfg, data.spec()), Batch(*data.take(torch.arange(16)))


def test_nt_xent_is_the_cross_entropy_of_picking_each_rows_partner():
    """Catches partners misaligned (row i of a paired with another row of b), the diagonal left in, or the
    temperature ignored: the loss recomputed row by row."""
    torch.manual_seed(0)
    a, b = torch.randn(5, 7), torch.randn(5, 7)
    z = F.normalize(torch.cat([a, b]), dim=1)
    total = 0.0
    for i in range(10):
        others = [j for j in range(10) if j != i]
        similarity = torch.stack([z[i] @ z[j] for j in others]) / 0.3
        total += -(similarity[others.index((i + 5) % 10)] - similarity.logsumexp(0))
    assert losses.nt_xent(a, b, temperature=0.3).item() == pytest.approx(total.item() / 10, rel=1e-5)
    assert losses.nt_xent(a, a + 0.01 * torch.randn(5, 7)) < losses.nt_xent(a, b)  # matched views: lower


def test_simclr_views_scramble_colour_and_place_but_keep_the_batch():
    """Catches a view op dropped: the channel scramble, the inversion, or the geometry (rotation, shift, mirror)."""
    torch.manual_seed(0)
    red = torch.full((64, 3, 16, 16), -1.0)
    red[:, 0, 4:12, 4:12] = 1.0  # a red square on black
    views = simclr_view(red)
    assert views.shape == red.shape and views.min() >= -3 and views.max() <= 3
    centre, corner = views[:, :, 8, 8], views[:, :, 0, 0]  # the square's centre stays inside it under ±15 % moves
    inverted = centre.mean(1) < corner.mean(1)  # the object darker than the background: the view was inverted
    assert 0.2 < inverted.float().mean() < 0.8
    top2 = centre.topk(2, dim=1).values
    coloured = ~inverted & (top2[:, 0] - top2[:, 1] > 0.8)  # one channel far above the others: not greyed
    assert coloured.sum() > 10
    assert len(set(centre[coloured].argmax(1).tolist())) == 3  # red moves to the other channels in some views
    bar = torch.full((64, 1, 16, 16), -1.0)
    bar[:, :, 2:5, 2:14] = 1.0  # an off-centre horizontal bar: geometry moves it, colour ops cannot
    moved = simclr_view(bar)
    top = (moved - moved.flatten(1).median(1).values[:, None, None, None]).abs()[:, 0, 2:5, 2:14].mean((1, 2))
    assert (top < 0.5 * top.max()).float().mean() > 0.5  # most views no longer have the bar where it was
    assert not torch.allclose(simclr_view(red), views)  # every call draws anew
    torch.manual_seed(1)
    first = simclr_view(red)
    torch.manual_seed(1)
    assert torch.equal(simclr_view(red), first)  # seeded: reproducible


def test_d_loss_adds_weight_times_nt_xent_of_two_views_of_the_reals():
    """Catches the term dropped, its sign flipped, its weight or temperature ignored, it computed on fakes, or it
    logged into d_loss (which the doctor reads as the game's): the D loss with the term minus the loss without it, on
    the same random stream, is weight × NT-Xent of D's projected views of the real batch."""
    with_term, batch = _setup("loss.contrastive=2", "loss.contrastive_temperature=0.5")
    without, _ = _setup("loss.contrastive=0")
    without.load_state_dict({k: v for k, v in with_term.state_dict().items() if not k.startswith("projection.")})
    torch.manual_seed(5)
    loss, scalars = with_term.loss("D", batch, Context())
    torch.manual_seed(5)
    base, base_scalars = without.loss("D", batch, Context())
    assert scalars["d_loss"].item() == pytest.approx(base_scalars["d_loss"].item(), rel=1e-6)
    assert scalars["contrastive"] > 0.5
    assert (loss - base).item() == pytest.approx(2 * scalars["contrastive"].item(), rel=1e-4)
    torch.manual_seed(5)
    without.loss("D", batch, Context())  # the GAN part draws the same numbers, then the views come
    views = with_term.D.features(torch.cat([simclr_view(batch.x), simclr_view(batch.x)]))
    a, b = with_term.projection(views.mean((2, 3))).chunk(2)
    assert scalars["contrastive"].item() == pytest.approx(losses.nt_xent(a, b, temperature=0.5).item(), rel=1e-4)


def test_the_term_trains_d_and_its_head_and_lowers_itself():
    """Catches the projection head left out of D's optimizer group, D's features detached from the term (only the
    head would learn), or a term whose steps do not descend."""
    variant, batch = _setup("loss.contrastive=1", "loss.contrastive_temperature=0.5")
    group = variant.groups["D"].parameters()
    assert any(p is variant.projection[0].weight for p in group)
    assert not any(p is q for p in group for q in variant.G.parameters())
    without, _ = _setup("loss.contrastive=0")
    without.load_state_dict({k: v for k, v in variant.state_dict().items() if not k.startswith("projection.")})
    grads = []
    for model in (variant, without):
        torch.manual_seed(3)
        first_conv = next(p for p in model.D.parameters() if p.dim() == 4)
        grads.append(torch.autograd.grad(model.loss("D", batch, Context())[0], first_conv)[0])
    assert (grads[0] - grads[1]).abs().max() > 1e-4  # the term's own gradient reaches D's first layer
    optimizer = torch.optim.Adam(group, lr=1e-3)
    first = None
    for _ in range(30):
        torch.manual_seed(3)  # the same views each time: the term on them must fall
        _, scalars = variant.loss("D", batch, Context())
        first = scalars["contrastive"].item() if first is None else first
        optimizer.zero_grad()
        torch.manual_seed(3)
        variant.loss("D", batch, Context())[0].backward()
        optimizer.step()
    torch.manual_seed(3)
    assert variant.loss("D", batch, Context())[1]["contrastive"].item() < first - 0.05


@pytest.mark.parametrize("preset, overrides, message", [
    ("digits-cgan", [], "no class given to D"),
    ("shapes-dcgan", ["model.pack=2"], "model.pack=2"),
    ("shapes-dcgan", ["model.members=2"], "model.members=2"),
    ("ring8-gan", [], "it needs image data"),
    ("shapes32-pggan", [], "does not apply loss.contrastive"),
    ("moving-shapes-video", [], "does not apply loss.contrastive"),
])
def test_runs_the_term_cannot_serve_exit_2_and_write_nothing(preset, overrides, message, cli, tmp_path):
    code, _, err = cli("train", preset, "loss.contrastive=1", *overrides, "train.steps=1",
                       "--out", str(tmp_path / "r"), "--no-progress")
    assert code == 2 and message in err and "Traceback" not in err and not (tmp_path / "r").exists()


def test_a_trained_run_keeps_its_head_and_scores_by_cosine_from_the_cli(train_tiny, tmp_path, cli):
    """Catches the head missing from checkpoints (the strict load of D's side fails), and --distance auto not picking
    cosine for such a run."""
    import numpy as np

    run = train_tiny("shapes-anomaly", "loss.contrastive=1", *SMALL[1:], "train.steps=3", "train.sample_every=0",
                     "train.checkpoint_every=3")
    critic = anomaly.discriminator(run)
    assert critic is not None and critic.projection[0].weight.abs().sum() > 0
    x, y = load_dataset(DataConfig(name="shapes", n=24, resolution=16), 7).take(torch.arange(24))
    assert 0 < int((y == 0).sum()) < 24  # circles (normal) and other shapes
    np.savez(tmp_path / "x.npz", samples=x.numpy(), labels=y.numpy())
    normal = anomaly.training_images(run)
    scores = {}
    for distance in ("auto", "cosine", "euclidean"):
        code, _, err = cli("score", str(run), str(tmp_path / "x.npz"), "--out", str(tmp_path / f"{distance}.csv"),
                           "--knn", "3", "--distance", distance)
        assert code == 0, err
        scores[distance] = np.loadtxt(tmp_path / f"{distance}.csv", delimiter=",", skiprows=1, usecols=1)
    assert np.allclose(scores["auto"], scores["cosine"]) and not np.allclose(scores["cosine"], scores["euclidean"])
    expected = anomaly.neighbour_scores(critic, normal, x, 3, distance="cosine").score.numpy()
    assert np.allclose(scores["cosine"], expected, rtol=1e-4)


def test_cosine_neighbours_ignore_the_length_of_d_features():
    """Catches the cosine distance computed on unnormalised features: scaling an image's features changes its
    Euclidean score, not its cosine one."""

    class Scaled:
        device = torch.device("cpu")

        def __init__(self, scale: torch.Tensor) -> None:
            self.scale = scale

        def features(self, images: torch.Tensor) -> torch.Tensor:
            return images.flatten(1) * images.flatten(1).abs().sum(1, keepdim=True) * self.scale

    torch.manual_seed(0)
    normal, x = torch.randn(20, 1, 2, 2), torch.randn(6, 1, 2, 2)
    one, ten = Scaled(torch.tensor(1.0)), Scaled(torch.tensor(10.0))
    cosine = anomaly.neighbour_scores(one, normal, x, 3, distance="cosine").score
    assert torch.allclose(cosine, anomaly.neighbour_scores(ten, normal, x, 3, distance="cosine").score)
    unit = F.normalize(x.flatten(1), dim=1).double()
    expected = torch.cdist(unit, F.normalize(normal.flatten(1), dim=1).double()).topk(3, largest=False).values.mean(1)
    assert torch.allclose(cosine.double(), expected, atol=1e-6)
    assert not torch.allclose(anomaly.neighbour_scores(one, normal, x, 3).score, cosine)
    with pytest.raises(UserError, match="is not one of euclidean, cosine"):
        anomaly.neighbour_scores(one, normal, x, 3, distance="manhattan")


def test_data_parallel_runs_refuse_the_term(tmp_path, monkeypatch):
    """Each process would contrast its views with its own rows only: another term than one process trains."""
    from gankit.train import Trainer, distributed
    from gankit.train.distributed import Shard

    monkeypatch.setattr(distributed, "setup", lambda device: (Shard(0, 2), device))
    with pytest.raises(UserError, match="loss.contrastive contrasts each view"):
        Trainer(resolve("shapes-anomaly", ["loss.contrastive=1"])[0], tmp_path / "R", progress=False)
    assert not (tmp_path / "R").exists()
