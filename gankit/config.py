"""Typed run configuration: pydantic sections, YAML presets shipped with the package, dotted `key=value` overrides.

A typo or a wrong type fails here, before any work starts, with a UserError naming the key and the closest valid one.
"""

from __future__ import annotations

import difflib
import types
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError


DIFFAUG_POLICIES = ("color", "translation", "cutout")
MAX_SEED = 2**32 - 1  # numpy's seed range (torch's is wider); derived seeds (seed + 1, + rank) stay within int64
BCE_GAMES = ("minimax", "non_saturating")  # the games whose D outputs are probabilities (label smoothing applies)
M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: Any) -> Any:
        """true/false where a number goes is a mistake (pydantic would read train.steps=true as 1 step, and
        model.g_hidden=[true, 64] as [1, 64])."""
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        if field is not None and _bool_for_number(value, field.annotation):
            raise ValueError("expected a number, not true or false")
        return value


def _takes_number_not_bool(annotation: Any) -> bool:
    """Whether a field typed `annotation` takes numbers (int, float, numeric Literal values) but no booleans."""
    if annotation is bool:
        return False
    if annotation in (int, float):
        return True
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return not any(isinstance(a, bool) for a in args) and any(isinstance(a, (int, float)) for a in args)
    if origin in (Union, types.UnionType):
        return bool not in args and any(_takes_number_not_bool(a) for a in args)
    return False


def _bool_for_number(value: Any, annotation: Any) -> bool:
    """Whether `value` holds true or false where `annotation` wants a number, at any depth of lists and tuples."""
    if isinstance(value, bool):
        return _takes_number_not_bool(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        return any(_bool_for_number(value, a) for a in args if a is not type(None))
    if isinstance(value, (list, tuple)) and origin in (list, tuple) and args:
        kinds = args if origin is tuple and args[-1] is not Ellipsis else [args[0]] * len(value)
        return any(_bool_for_number(v, a) for v, a in zip(value, kinds))
    return False


CLIP_SETS = ("moving-shapes", "moving-digits")  # video clips (gankit.data.clips, docs/video.md)


def _with_clips(only_for: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """DataConfig.ONLY_FOR plus the clip sets: their own keys, and the shapes keys moving-shapes also reads."""
    shapes_keys = ("shapes", "colors", "size_range", "jitter", "rotation", "noise", "gradient", "backgrounds")
    return {**only_for, "frames": CLIP_SETS, "speed": CLIP_SETS,
            **{key: only_for[key] + CLIP_SETS for key in ("n", "resolution")},
            **{key: only_for[key] + CLIP_SETS[:1] for key in shapes_keys}}


class DataConfig(_Section):
    """Which data and how it is shaped. Toy-set fields are ignored by image sets and vice versa."""

    # keys that mean something for some data sets only (the others ignore them); `gankit info --json` leaves them out
    ONLY_FOR: ClassVar[dict[str, tuple[str, ...]]] = {
        "n": ("ring", "grid", "spiral", "shapes", "captions", "oracle"), "modes": ("ring", "spiral"), "radius": ("ring", "spiral"),
        "size": ("grid",), "spacing": ("grid",), "std": ("ring", "grid", "spiral"),
        "resolution": ("digits", "shapes", "captions", "folder", "npz"), "channels": ("folder",), "path": ("folder", "npz", "table", "text"),
        "key": ("npz",), "labels_key": ("npz",), "shapes": ("shapes", "captions"), "colors": ("shapes", "captions"), "label": ("shapes",),
        **{knob: ("shapes", "captions") for knob in ("size_range", "jitter", "rotation", "noise", "gradient",
                                                     "backgrounds")}, "unseen": ("captions",), "drop_color": ("captions",),
        **{key: ("digits", "shapes", "folder", "npz") for key in ("pair", "paired", "scale")},
        "path_a": ("folder",), "path_b": ("folder",),
        "normal": ("ring", "grid", "spiral", "digits", "shapes", "folder", "npz"),
        **{key: ("table",) for key in ("categorical", "discrete", "conditional", "target", "max_modes", "public")},
        **{key: ("table", "text", "nci", "ring", "grid", "spiral", "digits", "shapes", "folder", "npz")
           for key in ("holdout", "split_seed")},
        **{key: ("text", "nci") for key in ("tokenizer", "max_len", "skip_invalid", "augment")}, "vocab": ("oracle",),
        "length": ("oracle",)}
    ONLY_FOR = _with_clips(ONLY_FOR)

    name: Literal["ring", "grid", "spiral", "digits", "shapes", "captions", "folder", "npz", "table", "text", "nci",
                  "oracle", "moving-shapes", "moving-digits"] = \
        Field("ring", description="dataset (captions: shapes with captions, docs/text2img.md; table: a CSV file, "
              "docs/tabular.md; text: a .txt or .smi file, nci: RDKit's NCI molecules, oracle: SeqGAN's synthetic "
              "sequences, docs/sequences.md; moving-shapes, moving-digits: video clips, docs/video.md)")
    n: int | None = Field(None, ge=1, description="generated sets: samples drawn once (toy 2D 100,000; shapes 20,000; "
                          "oracle 10,000; clips 2,000)")
    modes: int = Field(8, ge=1, description="ring: number of Gaussians on the circle")
    radius: float = Field(1.0, gt=0, description="ring: circle radius")
    size: int = Field(5, ge=1, description="grid: modes per side")
    spacing: float = Field(2.0, gt=0, description="grid: distance between neighbouring modes")
    std: float | None = Field(None, gt=0, description="toy sets: std of each mode (ring 0.01, grid 0.05, spiral 0.05)")
    resolution: int | None = Field(None, ge=4, le=1024, description="images: side in pixels (digits 16; shapes, "
                                      "captions, folder and clips 32)")
    channels: Literal[1, 3] | None = Field(None, description="images: 1 (grey) or 3 (RGB; folder default 3)")
    path: str | None = Field(None, description="folder / npz / table: where the data lies")
    key: str | None = Field(None, description="npz: array name holding the data (default: the first array)")
    labels_key: str | None = Field(None, description="npz: optional array of integer labels")
    shapes: list[str] | None = Field(None, description="shapes: which shapes to draw (default: all)")
    colors: list[str] | None = Field(None, description="shapes: which colours to use (default: all)")
    label: Literal["shape", "color", "shape_color"] = Field(
        "shape", description="shapes: what the class label is (shape_color: one class per pair)")
    # shapes difficulty knobs (gankit.data.shapes.Difficulty); the defaults are the full set
    size_range: tuple[float, float] = Field((0.2, 0.42), description="shapes: sizes drawn from [min, max] (circumradius"
                                            " as a fraction of the side; 0 < min ≤ max ≤ 0.5)")
    jitter: float = Field(1.0, ge=0, le=1, description="shapes: position spread (0: always centred, 1: anywhere the "
                                                       "shape fits)")
    rotation: float = Field(360.0, ge=0, le=360, description="shapes: rotations drawn from [0, rotation) degrees "
                                                            "(0: upright)")
    noise: float = Field(0.05, ge=0, le=1, description="shapes: per-pixel background noise std, at most")
    gradient: float = Field(0.25, ge=0, le=1, description="shapes: background luminance change across the image, "
                                                         "at most")
    backgrounds: list[Literal["dark", "light"]] = Field(["dark", "light"], min_length=1, description="shapes: "
                                                        "background tones (white shapes always get dark ones)")
    unseen: list[str] = Field(["green triangle", "white cross"], description="captions: 'colour shape' pairs left "
                              "out of training, to test composition (with captions, `jitter` spreads objects within "
                              "their cell of the 3×3 grid)")
    drop_color: float = Field(0.0, ge=0, le=1, description="captions: share of training captions that leave the "
                              "colour word out ('a star in the top left ...'), so the shape word must do its work "
                              "alone")
    pair: Literal["palette", "outline", "stripes", "night", "invert", "thicken", "downscale", "folders"] | None = Field(
        None, description="images: a second domain B, the images under this transform (docs/image-to-image.md); "
        "palette, outline and stripes are for shapes")
    paired: bool = Field(True, description="with pair: B row for row (true) or from other objects (false)")
    scale: int = Field(4, ge=2, le=8, description="pair=downscale: A is B made this many times smaller")
    path_a: str | None = Field(None, description="pair=folders, paired=false: the folder of domain A's images")
    path_b: str | None = Field(None, description="pair=folders, paired=false: the folder of domain B's images")
    normal: list[str] | None = Field(None, min_length=1, description="labelled data: train on these classes only "
                                     "(names or indices); the others are the anomalies (docs/applications.md)")

    # tables (gankit.data.tabular)
    categorical: list[str] = Field(default_factory=list, description="table: columns to read as categories "
                                   "(text, booleans and integers with at most 10 values are already)")
    discrete: list[str] = Field(default_factory=list, description="table: integer columns to keep as numbers even "
                                "with few distinct values")
    conditional: list[str] | None = Field(None, description="table: categorical columns G is conditioned on "
                                          "(default: all)")
    target: str | None = Field(None, description="table: the column to predict in utility tests (`gankit eval "
                               "--target`); the held-out split is stratified by it")
    holdout: float | None = Field(None, ge=0, le=0.9, description="share of samples held out of training: for "
                                  "tables and sequences the utility and privacy tests' rows (default 0.3 and 0.1); for "
                                  "images and vectors what refinement calibrates D on and inversion and anomaly "
                                  "scores read (default 0: none; docs/refine.md)")
    split_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the held-out split (and of a table's encoding)")
    max_modes: int = Field(10, ge=1, le=50, description="table: most Gaussian modes per continuous column")
    public: str | None = Field(None, description="table: a JSON file of public column facts (number bounds, category "
                               "lists) used instead of the data's own statistics, as differential privacy needs")

    # token sequences (gankit.data.text)
    tokenizer: Literal["char", "word", "smiles"] | None = Field(None, description="text: how lines become tokens "
                                                               "(default: smiles for .smi and nci, else char)")
    max_len: int | None = Field(None, ge=1, description="text: leave out sequences longer than this many tokens "
                                "(they are counted in the log); default: keep all")
    skip_invalid: bool = Field(False, description="text: leave out SMILES RDKit cannot parse (named in the log) "
                               "instead of stopping")
    augment: int = Field(0, ge=0, le=50, description="SMILES: also train on this many random (non-canonical) SMILES "
                         "of each training molecule (needs RDKit)")
    # video clips (gankit.data.clips)
    frames: int = Field(16, ge=4, le=64, description="moving-shapes / moving-digits: frames per clip")
    speed: tuple[float, float] = Field((0.02, 0.05), description="moving-shapes / moving-digits: object speed per "
                                       "frame drawn from [min, max] (fractions of the side; 0 ≤ min ≤ max ≤ 0.25)")
    vocab: int = Field(5000, ge=2, description="oracle: vocabulary size")
    length: int = Field(20, ge=2, description="oracle: sequence length")

    @field_validator("normal", "categorical", "discrete", "conditional", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        """`data.normal=3` or `data.normal=circle` means one class (a list of one); names are text even when YAML
        reads them as numbers (a column called 3)."""
        if isinstance(value, (str, int)):
            return [str(value)]
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("target", mode="before")
    @classmethod
    def _target_name(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class ModelConfig(_Section):
    """Network family and sizes; `auto` picks MLP for vectors and DCGAN for images."""

    # keys that mean something for some network families only (by `family`, i.e. `auto` resolved)
    ONLY_FOR: ClassVar[dict[str, tuple[str, ...]]] = {
        "g_hidden": ("mlp",), "d_hidden": ("mlp",), "g_batchnorm": ("mlp",), "members": ("mlp",),
        "width": ("dcgan", "biggan"),
        "d_batchnorm": ("dcgan",), "attention": ("biggan",), "shared_dim": ("biggan",)}
    # keys that shape only the discriminator: left out of exported generators (model/config.json)
    DISCRIMINATOR_KEYS: ClassVar[tuple[str, ...]] = ("d_hidden", "d_batchnorm", "spectral_norm", "minibatch_std", "pack")

    name: Literal["auto", "mlp", "dcgan", "biggan"] = Field("auto", description="network family")
    z_dim: int = Field(64, ge=1, description="latent noise dimension")
    g_hidden: list[int] = Field(default_factory=lambda: [128, 128, 128], description="MLP generator widths")
    d_hidden: list[int] = Field(default_factory=lambda: [128, 128, 128], description="MLP discriminator widths")
    g_batchnorm: bool = Field(False, description="MLP: batch norm in the generator's hidden layers")
    width: int = Field(64, ge=4, description="DCGAN: channels of the widest-resolution layer")
    d_batchnorm: bool = Field(True, description="DCGAN: batch norm in D (turn off with gradient penalties)")
    spectral_norm: bool = Field(False, description="spectral normalisation of every D layer (Miyato et al. 2018)")
    minibatch_std: bool = Field(False, description="D sees the batch's feature std, so it can spot collapse")
    pack: int = Field(1, ge=1, le=16, description="PacGAN: D judges `pack` samples at once (Lin et al. 2018)")
    attention: int = Field(16, ge=0, description="biggan: resolution of the self-attention block (0: none)")
    shared_dim: int = Field(128, ge=1, description="biggan: size of the class embedding shared by all G blocks")
    members: int = Field(1, ge=1, le=256, description="MLP: train this many independent G/D pairs at once, one "
                         "slice of each batch per member (an ensemble of seeds in one run: larger matrix products); "
                         "`gankit split` then writes one run per member")


class LossConfig(_Section):
    """The adversarial game; see gankit.losses for the sign conventions."""

    name: Literal["minimax", "non_saturating", "wasserstein", "hinge", "least_squares"] = Field(
        "non_saturating", description="the adversarial game (D loss and G loss)")
    gp_weight: float = Field(0.0, ge=0, description="WGAN-GP gradient penalty weight λ (10 in the paper)")
    drift: float = Field(0.0, ge=0, description="weight of ε·E[D(x)²] on real scores, keeping a Wasserstein critic "
                         "from drifting (PGGAN's 0.001)")
    r1_weight: float = Field(0.0, ge=0, description="R1 penalty γ on real data (Mescheder et al. 2018)")
    r2_weight: float = Field(0.0, ge=0, description="R2 penalty γ on generated data")
    reg_every: int = Field(1, ge=1, description="lazy regularisation: R1/R2 every N steps, scaled by N")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="one-sided: real target 1 - s (BCE games)")
    feature_matching: float = Field(0.0, ge=0, description="weight of G's feature-matching term on D's features")
    contrastive: float = Field(0.0, ge=0, description="weight of a SimCLR term in D's loss (NT-Xent between two "
                               "strongly augmented views of each real image, through a projection head on D's pooled "
                               "features; ContraD's real-view term): D's features then keep what the augmentations "
                               "leave alone, the shape, over colour and place (docs/applications.md); 0: off")
    contrastive_temperature: float = Field(0.2, gt=0, description="temperature of the contrastive term's cosine "
                                           "similarities")


class OptimConfig(_Section):
    """Adam per network group; separate learning rates give TTUR."""

    lr_d: float = Field(2e-4, gt=0, description="learning rate of the discriminator group(s)")
    lr_g: float = Field(2e-4, gt=0, description="learning rate of the generator group(s)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam β1 (0.5 as in DCGAN)")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2")
    ema: float | None = Field(None, gt=0, lt=1, description="decay of an EMA copy of G used for sampling (e.g. 0.999)")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="learning-rate decay over train.steps (to 0 at the end)")
    decay_start: float = Field(0.0, ge=0, lt=1, description="fraction of train.steps at which the decay begins "
                               "(constant before; CycleGAN's 0.5)")


class TrainConfig(_Section):
    """Loop length, batch, cadences (in steps; 0 disables) and device."""

    steps: int = Field(2000, ge=1, description="iterations (one iteration = its D steps + one G step)")
    batch_size: int = Field(64, ge=1, description="samples per step")
    n_critic: int = Field(1, ge=1, description="D steps per G step")
    log_every: int = Field(10, ge=1, description="write a logs.jsonl line (window means) every N steps")
    sample_every: int = Field(500, ge=0, description="write samples/step-N.png from fixed noise")
    checkpoint_every: int = Field(1000, ge=0, description="write checkpoints/step-N (and always at the end)")
    keep_checkpoints: int = Field(3, ge=1, description="newest checkpoints kept; older ones are deleted")
    nan_patience: int = Field(3, ge=1, description="non-finite steps in a row (each skipped) before a rollback")
    max_rollbacks: int = Field(3, ge=0, description="rollbacks to the last good state before the run stops")
    rollback_lr_factor: float = Field(0.5, gt=0, le=1, description="learning rates are multiplied by this per rollback")
    instance_noise: float = Field(0.0, ge=0, description="std of noise added to D's inputs, annealed to 0")
    diffaug: str = Field("", description="DiffAugment policy for small image sets, e.g. color,translation,cutout")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    channels_last: bool = Field(False, description="keep conv weights and activations channels-last (NHWC): the "
                                "same maths, often faster convolutions (oneDNN on CPU, tensor cores on GPU)")
    compile: bool = Field(False, description="torch.compile the nets (in place; the first steps pay the compile, "
                          "logged as a `compile` event; the cache lives in RUN/.compile-cache so resumes reuse it). "
                          "No faster for the CPU presets measured (docs/scaling.md)")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="bf16: the nets' forward passes run under bf16 autocast (losses, weights and optimizer "
        "state stay fp32); 1.6-2.8x faster at 64x64 on CPUs with AMX, no faster at 16x16. fp16: the same in float16 "
        "with a dynamic loss scale per optimizer group, for GPUs without bf16. auto: bf16 on a CPU with AMX or a "
        "GPU with bf16, else fp32 (run.json records the choice; docs/scaling.md)")
    export_discriminator: bool = Field(False, description="also export D to model/discriminator.safetensors, so "
                                       "discriminator-guided sampling (--refine) works without checkpoints")
    pictures: bool = Field(True, description="draw samples/step-N.png and losses.png; off skips both (progress "
                           "metrics are still logged, `gankit report` draws the curves later): for sweeps and tight "
                           "memory, as the plots load matplotlib (about 30 MB)")
    tensorboard: bool = Field(False, description="also log scalars and progress pictures to RUN/tensorboard/ (needs "
                              "`pip install gankit[tensorboard]`)")
    restarts: int = Field(1, ge=1, description="train this many candidate starts (seeds seed, seed+1000, ...) for "
                          "train.restart_steps each and continue the one with the lowest train.restart_by; 1: none")
    restart_steps: int = Field(1000, ge=1, description="steps each restart candidate trains before they are compared")
    restart_by: str = Field("", description="the logged scalar that picks the restart candidate (lower is better, "
                            "mean over its last quarter); label-free, e.g. infogan's q_real_shift")

    @field_validator("diffaug", "restart_by", mode="before")
    @classmethod
    def _none_is_off(cls, value: object) -> object:
        return "" if value is None else value  # `train.diffaug=` on the command line turns it off

    @field_validator("diffaug")
    @classmethod
    def _known_policies(cls, value: str) -> str:
        unknown = [p for p in value.split(",") if p.strip() and p.strip() not in DIFFAUG_POLICIES]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {', '.join(DIFFAUG_POLICIES)}")
        return ",".join(p.strip() for p in value.split(",") if p.strip())


class Section(_Section):
    """Base of every config section, including a variant's own (`Variant.Config`): unknown keys are errors."""


class PrivacyConfig(_Section):
    """Differential privacy (DP-SGD on the discriminator, docs/tabular.md); needs `pip install gankit[privacy]`."""

    epsilon: float | None = Field(None, gt=0, description="target ε of (ε, δ)-DP for the whole run (none: no DP); "
                                  "the noise is set so training spends exactly this")
    delta: float | None = Field(None, gt=0, lt=1, description="δ (default: 1 / (10 n) for n training rows)")
    max_grad_norm: float = Field(1.0, gt=0, description="each example's gradient is clipped to this L2 norm")


class FederatedConfig(_Section):
    """Federated averaging (FedAvg, McMahan et al. 2017) over clients simulated in this process or run as Flower
    clients (docs/federated.md)."""

    clients: int = Field(0, ge=0, description="clients that each train on their own part of the data and are averaged "
                         "(0: off, an ordinary run)")
    local_steps: int = Field(20, ge=1, description="steps each client trains between two averages (one round); "
                             "train.steps must be a multiple")
    split: Literal["iid", "classes"] = Field("iid", description="iid: a seeded random equal partition of the rows; "
                                             "classes: client k holds classes k·c … k·c+c-1 (mod the class count) "
                                             "for c = classes_per_client (non-IID; needs labelled data)")
    classes_per_client: int = Field(2, ge=1, description="split=classes: classes each client holds")
    backend: Literal["simulated", "flower"] = Field("simulated", description="simulated: every client in this "
                                                    "process; flower: each client in its own process, talking to "
                                                    "this one through Flower (the `flower` extra)")
    address: str = Field("127.0.0.1:0", description="backend=flower: HOST:PORT the server listens on (port 0: a "
                         "free one)")
    launch_clients: bool = Field(True, description="backend=flower: start the clients as local processes; false: "
                                 "wait for clients started elsewhere with `python -m gankit.train.flower`")


class WatermarkConfig(_Section):
    """An invisible watermark in the generator's output stage (image models; docs/provenance.md)."""

    key: str | None = Field(None, min_length=4, description="a secret phrase: every image the model draws (samples, "
                            "exports) carries a mark `gankit watermark --key` finds (none: no mark)")
    strength: float = Field(8.0, gt=0, le=50, description="the detection score each image is lifted to (an unmarked "
                            "image scores about N(0, 1)): higher survives more re-encoding, costs more PSNR")


class Config(_Section):
    """A whole run: written to runs/NAME/config.yaml, re-runnable as is.

    Besides the shared sections, a config holds the chosen variant's own section under the variant's name (e.g.
    `infogan: {categorical: 10}`); the variant validates it (gankit.variants.check_config), this model only keeps it.
    """

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)

    description: str = Field("", description="one line shown by `gankit presets`")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds initialisation, data order, noise and toy data")
    variant: str | None = Field(None, description="which GAN: a registered name (`gankit variants`; none: the plain "
                                "GAN), `package.module:Class`, or a name from the `gankit.variants` entry-point group")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    watermark: WatermarkConfig = Field(default_factory=WatermarkConfig)
    federated: FederatedConfig = Field(default_factory=FederatedConfig)

    @model_validator(mode="before")
    @classmethod
    def _one_variant_section(cls, data: Any) -> Any:
        if isinstance(data, dict):
            own = section_name(data.get("variant"))
            unknown = [k for k in data if k not in cls.model_fields and k != own]
            if unknown:
                raise ValueError(f"unknown config key '{unknown[0]}'")
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.train.batch_size % self.model.members:
            raise ValueError(f"train.batch_size={self.train.batch_size} must be a multiple of model.members="
                             f"{self.model.members}: each member trains on its slice of every batch")
        if self.train.batch_size % self.model.pack:
            raise ValueError(f"train.batch_size={self.train.batch_size} must be a multiple of model.pack={self.model.pack}")
        if self.loss.label_smoothing and self.loss.name not in BCE_GAMES:
            raise ValueError(f"loss.label_smoothing needs a BCE game (minimax or non_saturating), not {self.loss.name}")
        train = self.train
        if train.restarts > 1 and not train.restart_by:
            raise ValueError(f"train.restarts={train.restarts} needs train.restart_by: the logged scalar that picks "
                             "the candidate to continue")
        if train.restarts > 1 and train.restart_steps >= train.steps:
            raise ValueError(f"train.restart_steps={train.restart_steps} must be below train.steps={train.steps}: lower it, "
                             "or train without restarts (train.restarts=1)")
        fed = self.federated
        if fed.clients and train.restarts > 1:
            raise ValueError("train.restarts is not available with federated.clients")
        if fed.clients and self.train.steps % fed.local_steps:
            raise ValueError(f"train.steps={self.train.steps} must be a multiple of federated.local_steps="
                             f"{fed.local_steps}, so the run ends on an average of the clients")
        if fed.clients and self.privacy.epsilon is not None:
            raise ValueError("federated.clients and privacy.epsilon cannot be combined: the DP accountant assumes one "
                             "noisy sum per step, not one per client; drop one of them")
        return self

    def applicable(self, family: str) -> dict[str, Any]:
        """The config as a dict without the data and model keys that this run's data set and network `family`
        (mlp, dcgan, biggan) ignore, and without label smoothing for games that have none; a watermark key is
        replaced by "(secret)", since what this returns is shown and shared (`gankit info`, the HTML report)."""
        raw = self.model_dump(mode="json")
        if self.watermark.key is not None:
            raw["watermark"]["key"] = "(secret)"
        raw["data"] = {k: v for k, v in raw["data"].items()
                       if self.data.name in DataConfig.ONLY_FOR.get(k, (self.data.name,))}
        raw["model"] = {k: v for k, v in raw["model"].items() if family in ModelConfig.ONLY_FOR.get(k, (family,))}
        if self.loss.name not in BCE_GAMES:
            raw["loss"].pop("label_smoothing")
        return raw

    @property
    def section_key(self) -> str | None:
        """Where the variant's own section lives in this config (the variant's name)."""
        return section_name(self.variant)

    @property
    def options(self) -> Any:
        """The variant's own section: a raw dict until gankit.variants.check_config has validated it."""
        return (self.model_extra or {}).get(self.section_key, {}) if self.section_key else {}

    def set_options(self, section: BaseModel) -> None:
        """Replace the variant's section by its validated model (called by gankit.variants.check_config)."""
        self.__pydantic_extra__[self.section_key] = section


def section_name(variant: str | None) -> str | None:
    """The config key of a variant's own section: its name, or for `package.module:Class` the class name, lowered
    (None before the default variant is filled in)."""
    if variant is None:
        return None
    variant = str(variant)
    return variant.rsplit(":", 1)[-1].lower() if ":" in variant else variant

# ----------------------------------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """Names of the presets shipped inside the package."""
    folder = resources.files("gankit") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_descriptions() -> dict[str, str]:
    """Preset name -> its one-line description."""
    return {name: str(_read_yaml_text(_preset_text(name), f"preset {name}").get("description", "")) for name in preset_names()}


def _preset_text(name: str) -> str:
    return (resources.files("gankit") / "presets" / f"{name}.yaml").read_text(encoding="utf-8")


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a key given twice in one mapping (YAML keeps the last in silence, so a second
    `train:` section would drop the first one's settings)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` keys may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool)):  # lists as keys: the config's checks refuse them
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml_text(text: str, source: str) -> dict[str, Any]:
    try:
        loader = _UniqueKeyLoader(text)  # a SafeLoader: no tags that build objects
        try:
            raw = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise UserError(f"{source}: malformed YAML{where}: {problem}", "fix the file and run again") from None
    except RecursionError:
        raise UserError(f"{source}: YAML nested too deeply to read", "fix the file and run again") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{source}: expected a mapping of config sections, got {type(raw).__name__}")
    return raw


def load_source(name_or_path: str) -> tuple[dict[str, Any], str]:
    """Raw config dict from a preset name or a YAML file, plus a short run name."""
    path = Path(name_or_path)
    try:
        is_file, is_run = path.is_file(), (path / "config.yaml").is_file()
    except OSError:  # e.g. a name too long for the file system: then it can only be a (wrong) preset name
        is_file = is_run = False
    if name_or_path.endswith((".yaml", ".yml")) or is_file:
        if not is_file:
            raise UserError(f"config file {name_or_path} does not exist", "check the path")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read config file {name_or_path}: {exc}") from None
        return _read_yaml_text(text, str(path)), path.stem
    names = preset_names()
    if name_or_path not in names and is_run:
        raise UserError(f"{name_or_path} is a run directory, not a preset or config file",
                        f"continue it with `gankit train --resume {name_or_path}`, or train its config anew with "
                        f"`gankit train {path / 'config.yaml'} --out NEW_DIR`")
    if name_or_path not in names:
        close = difflib.get_close_matches(name_or_path, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "run `gankit presets` to list them"
        raise UserError(f"unknown preset '{name_or_path}'", hint)
    return _read_yaml_text(_preset_text(name_or_path), f"preset {name_or_path}"), name_or_path


# ----------------------------------------------------------------------------------------------- overrides


def parse_override(item: str) -> tuple[list[str], Any]:
    """`train.steps=200` -> (["train", "steps"], 200); the value is read as YAML so numbers and lists work."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise UserError(f"override '{item}' is not of the form key=value", "e.g. train.steps=2000")
    parts = key.split(".")
    if any(not p.isidentifier() for p in parts):
        raise UserError(f"override key '{key}' is not a dotted name", "e.g. optim.lr_d=0.0002")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except (yaml.YAMLError, RecursionError):
        value = text  # a bare string such as a path with a colon: let validation judge it
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each dotted key in a nested dict (a copy); unknown keys are caught later by validation."""
    out = _deep_copy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if not isinstance(child, dict):
                child = {}
                node[p] = child
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def _all_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _all_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _unknown_key(key: str, valid: list[str], source: str) -> UserError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean '{close[0]}'?" if close else "see docs/configuration.md for the keys"
    return UserError(f"{source}: unknown config key '{key}'", hint)


def validate_model(model: type[M], raw: Any, source: str = "config", prefix: str = "") -> M:
    """Build a config model (the whole Config or one section) or raise a one-line UserError for the first problem,
    naming the key (with `prefix`, e.g. `infogan.`) and the closest valid one for typos."""
    if prefix and raw is not None and not isinstance(raw, dict):
        raise UserError(f"{source}: '{prefix[:-1]}' must be a mapping of keys, got {raw!r}")
    try:
        return model.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = prefix + ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            raise _unknown_key(key, _all_keys(model, prefix), source) from None
        msg = err["msg"].removeprefix("Value error, ")
        if not key or key == prefix:  # a rule across sections
            raise UserError(f"{source}: {msg}") from None
        got = err.get("input")
        got_text = f" (got {got!r})" if not isinstance(got, (dict, list)) else ""
        raise UserError(f"{source}: invalid value for '{key}': {msg}{got_text}") from None


def validate(raw: dict[str, Any], source: str = "config") -> Config:
    """The shared sections of a config; the variant's own section stays raw until gankit.variants checks it."""
    own = section_name(raw.get("variant"))
    unknown = [k for k in raw if k not in Config.model_fields and k != own]
    if unknown:
        raise _unknown_key(unknown[0], _all_keys(Config), source)
    return validate_model(Config, raw, source)


def to_yaml(cfg: Config) -> str:
    """The fully resolved config as YAML text (what runs/NAME/config.yaml holds); an empty variant section is left
    out."""
    raw = cfg.model_dump(mode="json")
    if not raw.get(cfg.section_key, True):
        raw.pop(cfg.section_key)
    return yaml.safe_dump(raw, sort_keys=False)
