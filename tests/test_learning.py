"""Small but real learning tests: a few thousand steps must actually learn the data (marked slow)."""

import pytest
import torch

import gankit
from gankit.metrics import FeatureStats, load_evaluator, modes2d
from gankit.train import Trainer


@pytest.mark.slow
def test_ring8_best_covers_the_ring_in_a_short_run(tmp_path):
    cfg = gankit.load_config("ring8-best", ["train.steps=4000", "train.sample_every=0", "train.checkpoint_every=0"])
    trainer = Trainer(cfg, tmp_path / "r", progress=False)
    trainer.fit()
    report = modes2d(gankit.load(tmp_path / "r").sample(2500, seed=0), trainer.data.centers, trainer.data.std)
    assert report.modes >= 7 and report.hq_fraction >= 0.7, report


@pytest.mark.slow
def test_digits_dcgan_moves_towards_the_data(tmp_path):
    """400 steps must bring samples far closer to real digits than noise is (Fréchet distance, digits features)."""
    cfg = gankit.load_config("digits-dcgan", ["train.steps=400", "model.width=32", "train.sample_every=0",
                                              "train.checkpoint_every=0"])
    trainer = Trainer(cfg, tmp_path / "d", progress=False)
    trainer.fit()
    evaluator = load_evaluator("digits")

    def stats(x):
        s = FeatureStats()
        s.update(evaluator.features(x))
        return s

    real = stats(trainer.data.x[:800])
    fid_fake = real.frechet_to(stats(gankit.load(tmp_path / "d").sample(800, seed=0)))
    fid_noise = real.frechet_to(stats(torch.rand(800, 1, 16, 16) * 2 - 1))
    assert fid_fake < 0.4 * fid_noise, (fid_fake, fid_noise)
