"""The Variant interface: a module that owns its networks and says what one phase's loss is.

A variant never calls backward() or an optimizer. It declares its optimizer groups (`groups`), the phases of an
iteration (`phases`, each on one group, with a cadence and an optional start/stop step), the names of what it logs
(`log_keys`) and what sampling takes (`sampling`); the trainer walks the phases and steps each phase's group.
New GANs are new phase lists and loss methods, not new loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import BaseModel
from torch import Tensor, nn

from ..config import Config, Section
from ..data import ONE_PROCESS, Batch, Shard
from ..errors import UserError
from ..metrics.ppl import slerp  # noqa: F401 - re-exported: latent interpolation for sampling

# The shared stabilisers of the adversarial game in `loss.*` and `train.*`. A variant lists in `stabilisers` the ones
# it applies; any other one set away from its default is refused, so no run silently trains without what it asked for.
STABILISERS = ("loss.gp_weight", "loss.drift", "loss.r1_weight", "loss.r2_weight", "loss.label_smoothing",
               "loss.feature_matching", "loss.contrastive", "train.instance_noise", "train.diffaug")


@dataclass(frozen=True)
class Phase:
    """One entry of an iteration: `repeats` optimizer steps of loss(`name`) on `group`, at steps where
    start <= step < stop (stop None: to the end) and (step - start) is a multiple of `every`.

    Pre-training is a phase with a stop; the adversarial phases start there; lazy regularisation is `every`.
    """

    name: str
    group: str
    every: int = 1
    repeats: int = 1
    start: int = 0
    stop: int | None = None

    def active(self, step: int) -> bool:
        """Whether this phase runs at `step`."""
        return self.start <= step and (self.stop is None or step < self.stop) and (step - self.start) % self.every == 0


@dataclass
class Group:
    """Networks stepped by one optimizer, with its settings; `ema` keeps an exponential moving average of them
    (decay `optim.ema`) that sampling and export use."""

    modules: list[nn.Module]
    lr: float
    betas: tuple[float, float] = (0.5, 0.999)
    optimizer: str = "adam"  # adam, adamw, rmsprop or sgd
    ema: bool = False

    def parameters(self) -> list[nn.Parameter]:
        return [p for m in self.modules for p in m.parameters()]


def adversarial_groups(optim: Any, d: list[nn.Module], g: list[nn.Module]) -> dict[str, Group]:
    """Groups "D" and "G" of a two-player game with the run's `optim` settings (lr_d / lr_g, betas; an EMA of G's
    nets when optim.ema is set)."""
    betas = (optim.beta1, optim.beta2)
    return {"D": Group(d, optim.lr_d, betas), "G": Group(g, optim.lr_g, betas, ema=optim.ema is not None)}


def grad_norm_key(group: str) -> str:
    """The log key of one group's gradient norm, written by the trainer for every group."""
    return f"grad_norm_{group}"


@dataclass(frozen=True)
class LogKeys:
    """The names a variant's loss() logs for the adversarial game: one definition the doctor and plots read.

    `d_real`/`d_fake` are D's mean output on real and generated samples (probabilities for BCE games); `diversity`
    the fake/real spread ratio; the two groups name whose gradient norms count as D's and G's.
    """

    d_loss: str = "d_loss"
    g_loss: str = "g_loss"
    d_real: str = "d_real"
    d_fake: str = "d_fake"
    diversity: str = "diversity"
    discriminator_group: str = "D"
    generator_group: str = "G"

    @property
    def grad_norm_d(self) -> str:
        return grad_norm_key(self.discriminator_group)

    @property
    def grad_norm_g(self) -> str:
        return grad_norm_key(self.generator_group)

    def canonical(self) -> dict[str, str]:
        """This variant's key -> the default (canonical) name, for readers that compare runs of any variant."""
        default = LogKeys()
        return {getattr(self, f): getattr(default, f) for f in ("d_loss", "g_loss", "d_real", "d_fake", "diversity")} \
            | {self.grad_norm_d: default.grad_norm_d, self.grad_norm_g: default.grad_norm_g}


@dataclass
class Context:
    """What one iteration's phases share: the step, the fraction of training done, and values a phase leaves for a
    later one (e.g. the D phase's fakes for the G phase). The trainer makes a new one per iteration, so nothing in
    it outlives the iteration, a rollback or a checkpoint."""

    step: int = 0
    progress: float = 0.0
    values: dict[str, Any] = field(default_factory=dict)


# What a `Request` may carry, declared by a variant in `sampling`; the CLI offers the matching flags. Each comes with
# (what is wrong, what to do) for a model that does not take it.
SAMPLING_OPTIONS = {
    "truncation": ("this model does not support truncation", "sample without --truncation"),
    "labels": ("this model is not class-conditional: it takes no class", "sample without --class"),
    "codes": ("this model has no latent codes", "sample without --code / --vary"),
    "inputs": ("this model generates from noise: it takes no inputs", "sample without --input"),
    "direction": ("this model translates one way only (A to B)", "translate without --direction"),
    "condition": ("this model takes no column condition", "sample without --condition"),
    "mixing": ("this model has no per-layer styles to mix", "sample without --mix (StyleGAN models mix styles)"),
    "prompt": ("this model takes no text prompt", "sample without --prompt (text-to-image models take one)"),
}
DIRECTIONS = ("a2b", "b2a")  # what a two-way translator's `direction` may be


def categorical_index(name: str, value: float, values: int) -> int:
    """The index a sampling request fixes a categorical code to (`codes={"c0": 3}`), checked against its values."""
    if value != int(value) or not 0 <= value < values:
        raise ValueError(f"{name} is categorical: give an index 0-{values - 1}, not {value:g}")
    return int(value)


def refused(sampling: frozenset[str], **asked: bool) -> tuple[str, str] | None:
    """(problem, hint) for the first option asked for that a model's `sampling` lacks, else None."""
    return next((SAMPLING_OPTIONS[o] for o, given in asked.items() if given and o not in sampling), None)


@dataclass
class Request:
    """What to generate: n samples from noise z (drawn when None, with `truncation`), conditioned on labels, codes,
    a table row's `condition`, or inputs (images to translate, a prefix, a caption) where the variant takes them; a
    two-way translator also takes the `direction`.

    `generator` draws whatever is random (noise, labels, codes); `cond` is the resolved condition, filled once by
    `Variant.prepare` so the same request always gives the same samples.
    """

    n: int
    z: Tensor | None = None
    labels: Tensor | None = None
    codes: dict[str, float] = field(default_factory=dict)
    inputs: Tensor | None = None
    direction: str | None = None  # two-way translators: "a2b" (default) or "b2a"
    condition: Tensor | None = None  # tables: one condition vector per row (a column's category, one-hot)
    truncation: float = 1.0
    generator: torch.Generator | None = None
    cond: Tensor | None = None
    prepared: bool = False


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


class Variant(nn.Module):
    """Base class. Subclasses set `phases`, `groups`, implement `loss` and `run_generator`, and may declare:

    Config: their own config section (keys only they use), found in a run's config under the variant's name.
    legacy_keys: old shared-section keys that now live in their section ({"model.cond": "cond"}), still accepted.
    log_keys, sampling, generator_names: see the class attributes below.
    """

    name: ClassVar[str] = ""  # set by @register_variant
    Config: ClassVar[type[BaseModel]] = Section
    legacy_keys: ClassVar[dict[str, str]] = {}
    log_keys: ClassVar[LogKeys] = LogKeys()
    sampling: ClassVar[frozenset[str]] = frozenset({"truncation"})  # what generate() takes: SAMPLING_OPTIONS
    generator_names: ClassVar[tuple[str, ...]] = ("G",)  # child modules that make up the exported generator
    own_nets: ClassVar[str | None] = None  # what nets the variant builds itself, ignoring `model.*` (None: from it)
    encodes: ClassVar[bool] = False  # it has an encoder: encode(x) gives latents that G decodes back to x
    scores_anomalies: ClassVar[bool] = False  # it scores images itself: anomaly_score(x) (GANomaly)
    one_pass: ClassVar[bool] = True  # G's samples are one forward pass of its inputs (what an export traces)
    w_space: ClassVar[bool] = False  # it maps z to an intermediate latent w: to_w(z) and from_w(w) (StyleGAN)
    stabilisers: ClassVar[frozenset[str]] = frozenset()  # which of STABILISERS it applies
    # it trains model.members independent G/D pairs at once (no term mixes the members' rows); read from the class's
    # own body only, so a subclass that adds heads or cross-sample terms does not inherit it
    ensembles: ClassVar[bool] = False

    phases: list[Phase]
    z_dim: int
    class_names: list[str] | None = None  # set by class-conditional variants: what `labels` index
    shard: Shard = ONE_PROCESS  # set by the trainer in data-parallel runs (see local_rows)

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__()
        if cfg.model.members > 1 and not type(self).__dict__.get("ensembles", False):
            raise UserError(f"variant {cfg.variant} does not train ensembles (model.members={cfg.model.members})",
                            "set model.members=1; variant gan with MLP nets trains them")
        self.refuse_unapplied(cfg)
        self.options = self.read_options(cfg)

    @classmethod
    def refuse_unapplied(cls, cfg: Config) -> None:
        """Exit 2 when cfg sets a shared stabiliser this variant does not apply (variants that build their nets
        before Variant.__init__ call it first, so the refusal comes before any net)."""
        for key in STABILISERS:
            section, name = key.split(".")
            value = getattr(getattr(cfg, section), name)
            if key not in cls.stabilisers and value != type(getattr(cfg, section)).model_fields[name].default:
                applied = ", ".join(k for k in STABILISERS if k in cls.stabilisers) or "none of them"
                raise UserError(f"variant {cfg.variant} does not apply {key}={value}",
                                f"drop {key} (of the shared stabilisers it applies {applied})")

    @classmethod
    def read_options(cls, cfg: Config) -> Any:
        """This variant's own config section (validated by gankit.variants.check_config, or here)."""
        return cls.Config.model_validate(cfg.options) if isinstance(cfg.options, dict) else cfg.options

    @property
    def groups(self) -> dict[str, Group]:
        """Optimizer groups by name: the trainer builds one optimizer per group from its settings."""
        raise NotImplementedError

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        """The scalar to minimise for this phase and detached scalars to log."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------------------- sampling

    def noise(self, n: int, *, truncation: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Latent noise on this variant's device (training's draws, without a generator, are this process's rows)."""
        if generator is None:
            return self.local_rows(n, lambda m: truncated_noise(m, self.z_dim, truncation, None, self.device))
        return truncated_noise(n, self.z_dim, truncation, generator, self.device)

    def local_rows(self, n: int, draw: Callable[[int], Tensor]) -> Tensor:
        """`draw(n)` for one process; in a data-parallel run every process draws the rows of the whole global batch
        from the same (lockstep) random stream and keeps its own n, so N processes train on what one would."""
        return self.shard.part(draw(n * self.shard.world))

    def condition(self, request: Request) -> Tensor | None:
        """What G is conditioned on for a request: None here; class-conditional variants resolve labels (random
        from the request's generator when not given), InfoGAN its codes."""
        return None

    def prepare(self, request: Request) -> Request:
        """A copy of the request with noise and condition drawn (noise first, then the condition), after checking
        that it asks only for what this variant takes."""
        if request.prepared:
            return request
        problem = refused(self.sampling, labels=request.labels is not None, codes=bool(request.codes),
                          inputs=request.inputs is not None, truncation=request.truncation != 1,
                          direction=request.direction is not None, condition=request.condition is not None)
        if problem is not None:
            raise ValueError(problem[0])
        z = request.z if request.z is not None else self.noise(request.n, truncation=request.truncation,
                                                              generator=request.generator)
        request = replace(request, z=z.to(self.device))
        return replace(request, cond=self.condition(request), prepared=True)

    def progress_request(self, n: int, generator: torch.Generator, inputs: Tensor | None = None) -> Request:
        """The fixed request behind the progress grids (drawn once per run); conditional variants cycle classes,
        translators take the data kind's fixed `inputs`."""
        return Request(n, generator=generator)

    def generate(self, request: Request) -> Tensor:
        """Samples (in the data's layout) for a request."""
        return self.run_generator(self.prepare(request))

    def run_generator(self, request: Request) -> Tensor:
        """G's forward pass on a prepared request."""
        raise NotImplementedError

    def features(self, x: Tensor) -> Tensor:
        """D's features (N, d) of samples x, for scores that compare samples as D sees them (anomaly detection);
        variants whose D needs more than the sample raise ValueError."""
        raise ValueError(f"variant {self.name} has no discriminator features for samples alone")

    def anomaly_score(self, x: Tensor) -> Tensor:
        """Per-image anomaly scores (N,), higher meaning more anomalous, for variants built to give them."""
        raise ValueError(f"variant {self.name} does not score anomalies itself")

    def encode(self, x: Tensor) -> Tensor:
        """Latents (N, z_dim) that G decodes back to images x: variants with an encoder (VAE-GAN) override this."""
        raise ValueError(f"variant {self.name} has no encoder: it cannot reconstruct images")

    def to_w(self, z: Tensor) -> Tensor:
        """Intermediate latents w (N, w_dim) for z, for models with `w_space`."""
        raise ValueError(f"variant {self.name} has no intermediate latent space w")

    def from_w(self, w: Tensor) -> Tensor:
        """Samples for intermediate latents w, for models with `w_space`."""
        raise ValueError(f"variant {self.name} has no intermediate latent space w")

    def mix(self, z_a: Tensor, z_b: Tensor, part: str, truncation: float = 1.0) -> Tensor:
        """Samples of z_a with one part of their styles (coarse, middle, fine) taken from z_b: models that take
        `mixing`."""
        raise ValueError(SAMPLING_OPTIONS["mixing"][0])

    @property
    def code_names(self) -> list[str]:
        """The latent codes sampling can fix (InfoGAN: c0, c1, ...); none for other variants."""
        return []

    def code_values(self, name: str) -> list[float]:
        """Values to sweep a latent code over in a traversal grid (InfoGAN); other variants have no codes."""
        raise ValueError(f"this model has no latent code {name!r}")

    def categorical_code(self) -> str | None:
        """The name of a categorical latent code whose values may have found the data's classes (None: none)."""
        return None

    def predict_code(self, x: Tensor, name: str) -> Tensor:
        """For real samples x, the index (N,) of the most likely value of the categorical latent code `name`, as the
        variant's own networks read it back (a head beside D, say); variants that cannot read codes raise ValueError."""
        raise ValueError(f"this model cannot read a latent code {name!r} from samples")

    # ------------------------------------------------------------------------------------------- state

    def fixed_on_resume(self) -> dict[str, str]:
        """Config keys ("train.steps") that this run may not change when it resumes, each with the reason; none for
        most variants (a resume may raise steps, change learning rates, ...)."""
        return {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def state_keys(self, modules: list[nn.Module]) -> list[str]:
        """State-dict keys of this variant that belong to `modules` (children of it)."""
        prefixes = tuple(f"{name}." for name, child in self.named_children() if any(child is m for m in modules))
        return [k for k in self.state_dict() if k.startswith(prefixes)]

    def generator_modules(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.generator_names]

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """D's realness logit (N,) for samples x and, where D takes one, their condition: what discriminator-guided
        sampling (gankit.train.refine) calibrates and accepts by. Variants without such a D say so."""
        raise ValueError(f"variant {self.name} has no discriminator that scores samples")

    def generator_state(self) -> dict[str, Tensor]:
        """State-dict entries of the generator modules only: what `gankit.load()` needs to sample."""
        prefixes = tuple(f"{name}." for name in self.generator_names)
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}
