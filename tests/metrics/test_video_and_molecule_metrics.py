"""Video and molecule metrics against values worked out by hand."""

import numpy as np
import pytest
import torch

from gankit.metrics.video import consistency, content_distance


def test_content_distance_averages_the_steps_between_consecutive_frames():
    features = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [3.0, 4.0]],   # steps of 5 then 0
                             [[1.0, 1.0], [1.0, 2.0], [1.0, 4.0]]])  # steps of 1 then 2
    assert content_distance(features).item() == pytest.approx((5 + 0 + 1 + 2) / 4)


def test_consistency_is_the_share_of_frames_showing_each_clips_most_common_class():
    classes = torch.tensor([[2, 0, 0, 0],    # class 0 in three of four frames, though the first frame shows 2
                            [1, 1, 1, 1]])
    assert consistency(classes).item() == pytest.approx((3 / 4 + 1) / 2)


def test_internal_diversity_is_one_minus_the_mean_pairwise_tanimoto_similarity():
    pytest.importorskip("rdkit")  # the `chem` extra, installed by `make test`
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    from gankit.metrics.sequences import molecules

    smiles = ["CCO", "CCN", "c1ccccc1"]
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(Chem.MolFromSmiles(s)) for s in smiles]
    pairs = [DataStructs.TanimotoSimilarity(fps[i], fps[j]) for i in range(3) for j in range(i + 1, 3)]
    assert molecules(smiles, set())["internal_diversity"] == pytest.approx(1 - np.mean(pairs))
