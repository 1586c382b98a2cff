"""Metrics of generated token sequences: NLL-oracle (SeqGAN's synthetic benchmark), uniqueness and novelty of any
text, and for SMILES the molecule metrics RDKit computes (validity, QED, internal diversity) plus the reward an
RDKit objective gives a generator (after ORGAN, Guimaraes et al. 2017)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ..data.text import build_oracle, decode, require_rdkit
from ..errors import UserError
from .registry import register_progress_metric

DIVERSITY_PAIRS = 1000  # molecules whose pairwise Tanimoto similarities give internal diversity (≈ 500k pairs)


def nll_oracle(x: Tensor, spec: dict) -> float:
    """Mean negative log-likelihood per token (nats) of sequences x (N, L) under the oracle the data spec names."""
    oracle = build_oracle(spec)
    if oracle is None:
        raise ValueError("the data has no oracle")
    return float(oracle.nll(x.cpu()).mean())


def uniqueness_novelty(texts: list[str], training: set[str]) -> dict[str, float]:
    """uniqueness: distinct / all; novelty: distinct ones not in the training set / distinct."""
    distinct = set(texts)
    return {"uniqueness": len(distinct) / max(1, len(texts)),
            "novelty": len(distinct - training) / max(1, len(distinct))}


def molecules(smiles: list[str], training: set[str]) -> dict[str, float]:
    """validity (RDKit parses / all), uniqueness (distinct canonical / valid), novelty (distinct canonical not in the
    training set / distinct valid), mean QED of the valid ones, and internal diversity (1 - mean pairwise Tanimoto of
    Morgan radius-2 fingerprints, 2048 bits, over up to DIVERSITY_PAIRS distinct valid molecules)."""
    require_rdkit("molecule metrics")
    from rdkit import Chem, DataStructs
    from rdkit.Chem import QED, rdFingerprintGenerator

    canonical, qed, first = [], [], {}  # first: canonical SMILES -> the first molecule written so
    for s in smiles:
        mol = Chem.MolFromSmiles(s) if s else None
        if mol is None:
            continue
        canonical.append(Chem.MolToSmiles(mol))
        first.setdefault(canonical[-1], mol)
        qed.append(QED.qed(mol))
    distinct = list(first)
    out = {"validity": len(canonical) / max(1, len(smiles)),
           "uniqueness": len(distinct) / max(1, len(canonical)),
           "novelty": len(set(distinct) - training) / max(1, len(distinct)),
           "qed_mean": float(np.mean(qed)) if qed else 0.0}
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    fps = [gen.GetFingerprint(first[s]) for s in distinct[:DIVERSITY_PAIRS]]
    if len(fps) > 1:
        sims = [np.mean(DataStructs.BulkTanimotoSimilarity(fp, fps[i + 1:])) * (len(fps) - i - 1)
                for i, fp in enumerate(fps[:-1])]
        out["internal_diversity"] = 1 - float(np.sum(sims)) / (len(fps) * (len(fps) - 1) / 2)
    else:
        out["internal_diversity"] = 0.0
    return out


def reward_function(objective: str, spec: dict,
                    training: Callable[[], set[str]] | None = None) -> Callable[[Tensor], Tensor]:
    """Per-sequence rewards in [0, 1] for SMILES ids (N, L): 1 for a valid molecule ("validity"), its QED ("qed", 0
    when invalid), or 1 for a valid molecule whose canonical SMILES is not a training molecule ("novel": what a
    generator that redraws common training molecules, e.g. fatty acids, over and over loses; `training` gives that
    set on first use). Repeated strings are scored once."""
    require_rdkit(f"seqgan.chem_objective={objective}")
    from rdkit import Chem
    from rdkit.Chem import QED

    if objective == "novel" and training is None:
        raise ValueError("the novel objective needs the training molecules")
    cache: dict[str, float] = {}
    known: set[str] = set()

    def value(mol) -> float:
        if mol is None:
            return 0.0
        if objective == "validity":
            return 1.0
        if objective == "qed":
            return QED.qed(mol)
        if not known:
            known.update(training())
        return float(Chem.MolToSmiles(mol) not in known)

    def score(text: str) -> float:
        if text not in cache:
            cache[text] = value(Chem.MolFromSmiles(text) if text else None)
            if len(cache) > 200_000:  # a long run draws many strings: keep the memory flat
                cache.clear()
        return cache[text]

    def rewards(x: Tensor) -> Tensor:
        return torch.tensor([score(t) for t in decode(x.cpu(), spec)])

    return rewards


@register_progress_metric("sequences")
def sequences_progress(fake: Tensor, spec: dict) -> tuple[dict, str] | None:
    """NLL-oracle for oracle data, validity for SMILES (when RDKit is installed), else the share of distinct
    sequences."""
    if build_oracle(spec) is not None:
        value = nll_oracle(fake, spec)
        return {"event": "progress", "nll_oracle": value}, f"NLL-oracle {value:.3f}"
    texts = decode(fake, spec)
    if spec["tokens"].get("tokenizer") == "smiles":
        try:
            require_rdkit("validity")
        except UserError:  # without RDKit the picture goes without the figure
            return None
        from rdkit import Chem

        valid = sum(Chem.MolFromSmiles(t) is not None for t in texts if t) / max(1, len(texts))
        return {"event": "progress", "validity": valid}, f"validity {valid:.2f}"
    unique = len(set(texts)) / max(1, len(texts))
    return {"event": "progress", "unique": unique}, f"distinct {unique:.2f}"
