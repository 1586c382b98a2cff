"""Conditional tabular GAN (after Xu et al. 2019, "Modeling Tabular Data using Conditional GAN"), written from the
paper: mode-specific normalisation and training by sampling live in the table data kind; here G is conditioned on
the sampled (column, category), D judges packed rows with their conditions, and G is also scored on whether the
conditioned column shows the category it was asked for. Train it with the Wasserstein loss and a gradient penalty
(preset `table`).
"""

from __future__ import annotations

from dataclasses import replace

import torch
from pydantic import Field
from torch import Tensor, nn

from ..config import Config, Section
from ..data import Batch
from ..data.tabular import column_blocks, condition_dim, condition_layout, spans
from ..errors import UserError
from ..nets.tabular import ColumnClassifier, PackedCritic, TableGenerator
from .base import Context, Group, Phase, Request
from .gan import FAKE, GAN
from .private import PrivateSGD
from .registry import register_variant

REJECTION_ROUNDS = 100  # redraws for rows of a conditioned request that came out with another category


class TabularConfig(Section):
    """Conditional tabular GAN (variant tabular): network widths and the conditional term."""

    g_dims: list[int] = Field(default_factory=lambda: [256, 256], description="G's residual layer widths")
    d_dims: list[int] = Field(default_factory=lambda: [256, 256], description="D's layer widths")
    dropout: float = Field(0.5, ge=0, lt=1, description="D's dropout")
    tau: float = Field(0.2, gt=0, description="Gumbel-softmax temperature of G's one-hot outputs in training")
    cond_weight: float = Field(1.0, ge=0, description="weight of G's term for showing the conditioned category")
    classifier: float | None = Field(None, ge=0, description="weight of auxiliary classifiers' term (after "
                                     "CTAB-GAN): separate nets learn data.target (without a target: each conditional "
                                     "column) from the other columns of real rows, and G is charged when its rows' "
                                     "other columns do not predict their own category. Default: 1 when there is such "
                                     "a categorical column (and no privacy.epsilon), else off; 0: off")


@register_variant("tabular")
class TabularGAN(GAN):
    """G(z ⊕ condition) → a row; D(pack of rows ⊕ their conditions); conditions come from the batch sampler."""

    Config = TabularConfig
    own_nets = "residual MLP G, packed MLP critic"
    sampling = frozenset({"truncation", "condition"})

    def __init__(self, cfg: Config, spec: dict) -> None:
        if spec["kind"] != "table":
            raise UserError(f"variant tabular models tables; the data is {spec['kind']}", "use data.name=table")
        options = self.read_options(cfg)
        meta = spec["table"]
        layout, cond_dim, layout_spans = condition_layout(meta), condition_dim(meta), spans(meta)
        data_dim = sum(size for size, _ in layout_spans)
        G = TableGenerator(cfg.model.z_dim + cond_dim, options.g_dims, layout_spans)
        D = PackedCritic(data_dim + cond_dim, options.d_dims, cfg.model.pack, options.dropout)
        super().__init__(cfg, spec, G=G, D=D)
        self.layout, self.cond_dim, self.spec_table = layout, cond_dim, meta
        self.private = self._plan_privacy(cfg, meta)
        if self.private is not None:
            self.register_buffer("private_steps", torch.zeros((), dtype=torch.long))  # checkpointed: ε on resume
        self.classified = self._classified_columns(meta)
        self.classifier_weight = options.classifier if options.classifier is not None else \
            float(bool(self.classified) and self.private is None)
        if self.classifier_weight:
            self._add_classifiers(meta, data_dim, options.d_dims[0])
        # where each position of the condition vector sits in an encoded row
        where = [part["start"] + i for part in self.layout for i in range(part["size"])]
        self.register_buffer("cond_columns", torch.tensor(where, dtype=torch.long), persistent=False)
        self.counts = [torch.tensor(part["counts"], dtype=torch.float) for part in self.layout]

    def fixed_on_resume(self) -> dict[str, str]:
        """A private run's noise was set so that its planned D steps spend privacy.epsilon: more steps, another
        batch size or other privacy keys would spend more than the run's accountant (and `gankit eval`) assume."""
        if self.private is None:
            return {}
        why = ("DP-SGD's noise was set from it so that the run's planned steps spend privacy.epsilon: with another "
               "value the ε spent would differ from what the run and `gankit eval` record (more steps overspend it)")
        keys = ("train.steps", "train.n_critic", "train.batch_size", "privacy.epsilon", "privacy.delta",
                "privacy.max_grad_norm")
        return dict.fromkeys(keys, why)

    @staticmethod
    def _plan_privacy(cfg: Config, meta: dict) -> PrivateSGD | None:
        """DP-SGD's plan under privacy.epsilon (None without), after checking the run can be private."""
        if cfg.privacy.epsilon is None:
            return None
        if meta.get("sampling") != "poisson":
            raise UserError("privacy.epsilon needs data.public: without declared column facts, the encoding's "
                            "statistics would come from the private rows", "see docs/tabular.md#differential-privacy")
        if cfg.loss.gp_weight or cfg.loss.r1_weight or cfg.loss.r2_weight:
            raise UserError("privacy.epsilon works with per-example gradients, which gradient penalties "
                            "(a second backward) do not allow", "set loss.gp_weight=0 (and r1/r2), e.g. "
                            "loss.name=non_saturating")
        for key, value in (("loss.drift", cfg.loss.drift), ("train.instance_noise", cfg.train.instance_noise)):
            if value:  # the clipped per-example gradients are of the game alone: these would be dropped silently
                raise UserError(f"privacy.epsilon clips D's per-example gradients of the game alone, so {key}={value} "
                                "would not be applied", f"set {key}=0 with privacy.epsilon")
        return PrivateSGD.plan(cfg, meta["rows"])

    @staticmethod
    def _classified_columns(meta: dict) -> list[dict]:
        """The categorical columns the auxiliary classifiers predict: data.target's, or without one the conditional
        columns (so every category G is asked for shows in the rest of its row, as in real rows)."""
        names = [meta["target"]] if meta.get("target") else meta["conditional"]
        return [c for c in meta["columns"] if c["name"] in names and c["type"] == "categorical"]

    def _add_classifiers(self, meta: dict, data_dim: int, width: int) -> None:
        """The auxiliary classifiers C (a phase and a group of their own), one per classified column."""
        if not self.classified:
            raise UserError("tabular.classifier predicts data.target (or the conditional columns), which must name a "
                            "categorical column", "set data.target, or tabular.classifier=0")
        if self.private is not None:
            raise UserError("tabular.classifier learns from real rows outside the privacy budget",
                            "set tabular.classifier=0 with privacy.epsilon")
        blocks = column_blocks(meta)
        self.C = nn.ModuleList(ColumnClassifier(data_dim, *blocks[c["name"]], width) for c in self.classified)
        self.phases.insert(-1, Phase("C", "C"))

    # ------------------------------------------------------------------------------------- the game's hooks

    def fake_condition(self, batch: Batch) -> Tensor | None:
        return batch.cond

    def real_condition(self, batch: Batch) -> Tensor | None:
        return batch.cond

    def g_forward(self, z: Tensor, cond: Tensor | None) -> Tensor:
        return self.G.activate(self.G(self._join(z, cond)), self.options.tau)

    def d_forward(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.D(self._join(x, cond))

    def d_features(self, x: Tensor, cond: Tensor | None) -> Tensor:
        return self.D.features(self._join(x, cond))

    def aux_g_loss(self, fake_aux: Tensor | None, fake_cond: Tensor | None,
                   fake: Tensor) -> tuple[Tensor | None, dict[str, Tensor]]:
        """−log of the (relaxed one-hot) mass G put on the category it was conditioned on; with a classifier, also
        its cross-entropy on G's rows."""
        total, scalars = None, {}
        if fake_cond is not None and self.options.cond_weight:
            hit = (fake[:, self.cond_columns] * fake_cond).sum(1)
            loss = -torch.log(hit.clamp_min(1e-8)).mean()
            total = self.options.cond_weight * loss
            scalars.update(cond_loss=loss.detach(), cond_hit=(hit > 0.5).float().mean().detach())
        if self.classifier_weight:
            loss = self._classifier_loss(fake)
            total = self.classifier_weight * loss + (0 if total is None else total)
            scalars["g_classifier"] = loss.detach()
        return total, scalars

    @property
    def groups(self) -> dict[str, Group]:
        groups = super().groups
        if self.classifier_weight:
            groups["C"] = Group([self.C], self.optim_cfg.lr_d, groups["D"].betas)
        return groups

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        """Any phase's loss on the batch cut to whole packs (Poisson-sampled batches vary in size)."""
        n = len(batch) // self.pack * self.pack
        if n < len(batch):
            batch = replace(batch, x=batch.x[:n], cond=None if batch.cond is None else batch.cond[:n])
        if phase == "C":
            loss = self._classifier_loss(batch.x)
            return loss, {"classifier_loss": loss.detach()}
        return super().loss(phase, batch, ctx)

    def _classifier_loss(self, rows: Tensor) -> Tensor:
        """The classifiers' mean cross-entropy on the rows: each predicts its column from the row's other columns."""
        return torch.stack([c.loss(rows) for c in self.C]).mean()

    def d_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        """Under privacy.epsilon: D's DP-SGD gradient (gankit.variants.private) as the gradient of a surrogate, so
        the trainer's backward and step apply it unchanged; else the game of GAN.d_loss."""
        if self.private is None:
            return super().d_loss(batch, ctx)
        real = batch.x
        fake_live = self.g_forward(self.noise(len(real)), None)
        ctx.values[FAKE] = (fake_live, None)
        fake = fake_live.detach()
        grads = self.private.gradients(self.D, self.d_game, real, fake, self.pack)
        self.private_steps += 1
        with torch.no_grad():
            real_logits, fake_logits = self.D(real), self.D(fake)
        keys = self.log_keys
        surrogate = sum((p * grads[k]).sum() for k, p in self.D.named_parameters())
        return surrogate, {keys.d_loss: self.d_game(real_logits, fake_logits).detach(),
                           keys.d_real: self.game.mean_output(real_logits),
                           keys.d_fake: self.game.mean_output(fake_logits),
                           "epsilon": torch.tensor(self.private.epsilon(int(self.private_steps)))}

    @staticmethod
    def _join(x: Tensor, cond: Tensor | None) -> Tensor:
        return x if cond is None else torch.cat([x, cond], dim=1)

    # ------------------------------------------------------------------------------------- sampling

    def condition(self, request: Request) -> Tensor | None:
        """The given condition rows, else a column drawn uniformly and its category by its training frequency."""
        if not self.layout:
            return None
        if request.condition is not None:
            if request.condition.shape != (request.n, self.cond_dim):
                raise ValueError(f"condition rows must be ({request.n}, {self.cond_dim}), got "
                                 f"{tuple(request.condition.shape)}")
            return request.condition.to(self.device)
        column = torch.randint(len(self.layout), (request.n,), generator=request.generator)
        cond = torch.zeros(request.n, self.cond_dim)
        for j, part in enumerate(self.layout):
            rows = (column == j).nonzero().flatten()
            if len(rows):
                pick = torch.multinomial(self.counts[j], len(rows), replacement=True, generator=request.generator)
                cond[rows, part["cond_start"] + pick] = 1
        return cond.to(self.device)

    def run_generator(self, request: Request) -> Tensor:
        raw = self.G(self._join(request.z, request.cond))
        return self.G.activate(raw, self.options.tau, request.generator, hard=True)

    def generate(self, request: Request) -> Tensor:
        """Rows for a request; rows asked for a category (a given condition) that came out with another one are
        drawn again (rejection sampling), so every row shows the category asked for."""
        request = self.prepare(request)
        out = self.run_generator(request)
        if request.condition is None or request.cond is None:
            return out
        wanted = request.cond.bool()
        ok = (out[:, self.cond_columns].bool() | ~wanted).all(1)
        for _ in range(REJECTION_ROUNDS):
            if ok.all():
                return out
            redo = (~ok).nonzero().flatten()
            again = replace(request, n=len(redo), z=self.noise(len(redo), truncation=request.truncation,
                                                               generator=request.generator), cond=request.cond[redo])
            out[redo] = self.run_generator(again)
            ok[redo] = (out[redo][:, self.cond_columns].bool() | ~wanted[redo]).all(1)
        if not ok.all():
            raise UserError(f"the model gave the asked-for category in too few rows ({int(ok.sum())} of {len(ok)} "
                            f"after {REJECTION_ROUNDS} redraws)", "train longer, or condition on a commoner value")
        return out
