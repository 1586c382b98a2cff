"""The Variant interface: a module that owns its networks and says what one phase's loss is.

A variant never calls backward() or an optimizer; the trainer walks `phases` and steps the optimizer of each
phase's group. New GANs are new phase lists and loss methods, not new loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data import Batch


@dataclass(frozen=True)
class Phase:
    """One entry of an iteration: run `repeats` steps of loss(`name`) on `group`'s optimizer every `interval` steps."""

    name: str
    group: str
    interval: int = 1
    repeats: int = 1


def truncated_noise(n: int, dim: int, truncation: float = 1.0, generator: torch.Generator | None = None,
                    device: torch.device | str = "cpu") -> Tensor:
    """N(0, I) noise (N, dim); truncation τ < 1 redraws every component beyond ±2τ (BigGAN's truncation trick).

    Redrawing is done exactly by inverse CDF: u ~ U(Φ(-2τ), Φ(2τ)), z = Φ⁻¹(u), so one pass suffices.
    """
    if not 0 < truncation <= 1:
        raise ValueError(f"truncation must be in (0, 1], got {truncation}")
    if truncation == 1:
        return torch.randn(n, dim, generator=generator).to(device)
    bound = torch.special.ndtr(torch.tensor(2.0 * truncation, dtype=torch.float64))
    u = torch.rand(n, dim, generator=generator, dtype=torch.float64)
    z = torch.special.ndtri((1 - bound) + u * (2 * bound - 1))
    return z.float().to(device)


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation between latent batches a and b (N, D) at t ∈ [0, 1]: stays on the shell where
    Gaussian noise lives, unlike a straight line through the low-norm middle (White 2016)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b


class Variant(nn.Module):
    """Base class: subclasses set `phases`, implement `loss` and `generate`, and name their generator modules."""

    phases: list[Phase]
    generator_names: tuple[str, ...] = ("G",)  # child modules that make up the exported generator (EMA'd too)
    z_dim: int
    class_names: list[str] | None = None  # set by class-conditional variants: what `sample(labels=...)` accepts

    @property
    def groups(self) -> dict[str, list[nn.Module]]:
        """Optimizer groups: each gets one Adam with its own learning rate."""
        raise NotImplementedError

    def loss(self, phase: str, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar to minimise for this phase and detached scalars to log."""
        raise NotImplementedError

    def generate(self, n: int, *, z: Tensor | None = None, cond: Tensor | None = None,
                 truncation: float = 1.0) -> Tensor:
        """n samples (in the data's layout); z overrides the noise."""
        raise NotImplementedError

    def noise(self, n: int, *, truncation: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Latent noise on this variant's device."""
        return truncated_noise(n, self.z_dim, truncation, generator, self.device)

    def condition(self, n: int, *, generator: torch.Generator | None = None, labels: Tensor | None = None,
                  **codes: float) -> Tensor | None:
        """What `generate` is conditioned on for n samples: None for unconditional variants; class-conditional ones
        take `labels` (random when None), InfoGAN takes code values."""
        if labels is not None or codes:
            raise ValueError("this model is unconditional: it takes no labels or codes")
        return None

    def code_values(self, name: str) -> list[float]:
        """Values to sweep a latent code over in a traversal grid (InfoGAN); other variants have no codes."""
        raise ValueError(f"this model has no latent code {name!r}")

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def generator_state(self) -> dict[str, Tensor]:
        """State-dict entries of the generator modules only: what `gankit.load()` needs to sample."""
        prefixes = tuple(f"{name}." for name in self.generator_names)
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}
