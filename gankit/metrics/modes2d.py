"""Mode coverage on toy 2D mixtures, as in the PacGAN paper (Lin et al. 2018), following VEEGAN's protocol."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from .registry import register_progress_metric


@dataclass
class ModeReport:
    """modes captured, fraction of high-quality samples, reverse KL of the mode histogram to uniform."""

    modes: int
    hq_fraction: float
    reverse_kl: float
    total_modes: int
    samples: int
    counts: list[int]

    def as_dict(self) -> dict:
        return asdict(self)


def modes2d(samples: Tensor, centers: Tensor, std: float, threshold: float = 3.0) -> ModeReport:
    """Score samples (N, 2) against mode centres (K, 2) of Gaussians with standard deviation `std`.

    A sample is high quality if it lies within `threshold`·std of its nearest centre; a mode is captured if at least
    one high-quality sample is nearest to it; reverse KL is KL(p ‖ uniform) for p the high-quality samples'
    histogram over modes (0 when all modes are hit equally; inf when no sample is high quality). PacGAN uses 2,500
    samples.
    """
    samples, centers = samples.detach().double().cpu(), centers.detach().double().cpu()
    dist = torch.cdist(samples, centers)  # (N, K)
    nearest_dist, nearest = dist.min(dim=1)
    hq = nearest_dist <= threshold * std
    k = len(centers)
    counts = torch.bincount(nearest[hq], minlength=k)
    total = int(counts.sum())
    if total:
        p = counts.double() / total
        nz = p > 0
        reverse_kl = float((p[nz] * (p[nz] * k).log()).sum())
    else:
        reverse_kl = math.inf
    return ModeReport(modes=int((counts > 0).sum()), hq_fraction=float(hq.double().mean()), reverse_kl=reverse_kl,
                      total_modes=k, samples=len(samples), counts=counts.tolist())


@register_progress_metric("modes")
def modes_progress(fake: Tensor, spec: dict) -> tuple[dict, str] | None:
    """The mode protocol on the trainer's fixed samples, for data with known modes (logged as event "modes")."""
    if spec.get("centers") is None:
        return None
    report = modes2d(fake, torch.tensor(spec["centers"]), spec["std"])
    record = {"event": "modes", "modes": report.modes, "total_modes": report.total_modes,
              "hq_fraction": report.hq_fraction, "reverse_kl": report.reverse_kl}
    return record, f"{report.modes}/{report.total_modes} modes, {report.hq_fraction:.0%} high quality"
