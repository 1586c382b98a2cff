"""The shared part of models that learn from two image domains and map inputs A to outputs B (pix2pix, SRGAN,
CycleGAN): the data check, groups G and D, the game, and sampling from given inputs. Each model is a subclass with
its own nets and losses."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import losses
from ..config import Config
from ..data import PairBatch
from ..errors import UserError
from .base import Context, Group, Phase, Request, Variant, adversarial_groups

FAKE = "fake"  # Context key: the D step's batch and G(A), reused by the G step (one batch per iteration, as in pix2pix)


class PairedGAN(Variant):
    """G maps inputs (N, *spec shape) to outputs; D judges outputs. Subclasses build `G` and `D`, set `verb` and
    `needs` (what their data must be) and implement `loss`."""

    sampling = frozenset({"inputs"})
    z_dim = 0  # no noise: the output is a function of the input
    verb = "translates"  # what G does to its inputs, for messages
    transforms: tuple[str, ...] | None = None  # data.pair values this model learns from (None: any)
    needs_pairs = True  # each input must come with its own true output (False: two unpaired domains will do)

    def __init__(self, cfg: Config, spec: dict) -> None:
        pair = spec.get("pair") or {}  # the data is checked first: the wrong dataset is the error to report first
        wanted = self.transforms
        unpaired = self.needs_pairs and not pair.get("paired")
        if spec["kind"] != "pairs" or unpaired or (wanted and pair.get("transform") not in wanted):
            data = f"data.pair={'|'.join(wanted)}" if wanted else "data.pair (e.g. data.pair=palette for shapes)"
            if self.needs_pairs:
                raise UserError(f"{self.name} learns from paired images (each input with its true output)",
                                f"set {data} and data.paired=true")
            raise UserError(f"{self.name} learns from two image domains", f"set {data}")
        super().__init__(cfg, spec)
        self.shape = tuple(spec["shape"])
        self.shape_b = tuple(pair.get("shape_b", self.shape))  # outputs; same as inputs unless resized
        self.game = losses.game(cfg.loss.name)
        self.optim_cfg = cfg.optim
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]

    @property
    def groups(self) -> dict[str, Group]:
        return adversarial_groups(self.optim_cfg, [self.D], [self.G])

    def d_step_fakes(self, batch: PairBatch, ctx: Context) -> Tensor:
        """G(A) for the D step, kept (with its batch) for this iteration's G step."""
        fake = self.G(batch.x)
        ctx.values[FAKE] = (batch, fake)
        return fake

    def g_step_fakes(self, batch: PairBatch, ctx: Context) -> tuple[PairBatch, Tensor]:
        """The D step's (batch, G(A)), or fresh ones when no D step ran: the trainer draws a batch per phase, so G
        is scored on the pairs its reused fakes came from."""
        return ctx.values.pop(FAKE) if FAKE in ctx.values else (batch, self.G(batch.x))

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        raise ValueError(f"{self.name}'s D judges outputs of given inputs: it does not score samples from noise")

    def progress_request(self, n: int, generator: torch.Generator, inputs: Tensor | None = None) -> Request:
        return Request(len(inputs), inputs=inputs, generator=generator)

    def check_inputs(self, request: Request) -> Tensor:
        """The request's inputs on this variant's device, after checking there are some and of the right shape."""
        if request.inputs is None:
            raise ValueError(f"{self.name} {self.verb} images: give the images (--input, inputs=...)")
        if tuple(request.inputs.shape[1:]) != self.shape:
            raise ValueError(f"inputs are {'×'.join(map(str, request.inputs.shape[1:]))}, this model {self.verb} "
                             f"{'×'.join(map(str, self.shape))} images (channels × height × width)")
        return request.inputs.to(self.device)

    def condition(self, request: Request) -> Tensor:
        return self.check_inputs(request)

    def run_generator(self, request: Request) -> Tensor:
        return self.G(request.cond)
