"""SeqGAN (Yu et al. 2017), written from the paper: G is an LSTM over tokens, first trained by maximum likelihood;
D, a CNN, is pre-trained on real vs generated sequences; then G is trained by policy gradient, each token rewarded
by D's belief in Monte-Carlo completions of its prefix drawn by a rollout copy of G that trails G's weights.

The phases are the schedule: `mle` (G, steps 0..mle_steps), `D_pre` (D, the next d_pretrain_steps), then `G`
(policy gradient) and `D` (d_steps D steps) every step after. Everything that persists (the rollout net) is a part
of the variant's state, so a run resumed anywhere, mid-schedule included, continues exactly.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from .. import losses
from ..config import Config, Section
from ..data import Batch, load_dataset
from ..data.text import vocab_size
from ..errors import UserError
from ..nets.seq import SeqDiscriminator, SeqGenerator
from .base import Context, Group, Phase, Request, Variant
from .registry import register_variant

class SeqGANConfig(Section):
    """SeqGAN's own keys: network sizes, the schedule of its phases and the Monte-Carlo rewards."""

    emb: int = Field(32, ge=1, description="G's token embedding width")
    hidden: int = Field(32, ge=1, description="G's LSTM width")
    layers: int = Field(1, ge=1, description="G's LSTM layers")
    d_emb: int = Field(64, ge=1, description="D's token embedding width")
    d_filters: list[tuple[int, int]] = Field(
        default_factory=lambda: [(2, 64), (3, 64), (4, 64), (5, 64)],
        description="D's convolutions as [width, count] pairs (SeqGAN's full set: widths 1-10, 15, 20 with 100-200 "
                    "filters each)")
    dropout: float = Field(0.25, ge=0, lt=1, description="D's dropout (off when D rewards G)")
    mle_steps: int = Field(1000, ge=0, description="steps of G's maximum-likelihood pre-training")
    scheduled_sampling: float = Field(0.0, ge=0, le=1, description="during pre-training, feed G its own token "
                                      "instead of the true one with a probability rising linearly to this (Bengio et "
                                      "al. 2015); 0: plain teacher forcing")
    d_pretrain_steps: int = Field(200, ge=0, description="D steps on real vs generated sequences after pre-training")
    d_steps: int = Field(5, ge=0, description="D steps per adversarial step")
    rollouts: int = Field(16, ge=1, description="Monte-Carlo completions per prefix for each token's reward")
    pg_batch: int | None = Field(None, ge=1, description="sequences per policy-gradient step (default: "
                                 "train.batch_size); the rollouts' cost grows with it")
    rollout_rate: float = Field(0.8, ge=0, le=1, description="share of its own weights the rollout net keeps at each "
                                "update (the rest comes from G): SeqGAN's 0.8")
    pg_lr: float | None = Field(None, gt=0, description="learning rate of the policy-gradient steps, which get an "
                                "optimizer of their own (default: optim.lr_g, as SeqGAN)")
    mle_weight: float = Field(0.0, ge=0, description="weight of a maximum-likelihood term on a real batch in each "
                              "policy-gradient step, which holds G near the data while rewards pull it (keeps "
                              "diversity); 0: SeqGAN's pure policy gradient")
    baseline: bool = Field(False, description="subtract the batch-mean reward at each position (less variance; "
                           "SeqGAN had none)")
    chem_reward: float = Field(0.0, ge=0, le=1, description="SMILES data: share of each reward given by RDKit "
                               "(after ORGAN) instead of D; 0: D alone")
    chem_objective: Literal["validity", "qed", "novel"] = Field(
        "validity", description="what the RDKit reward scores: validity (1 if the SMILES parses), qed (drug-likeness, "
                                "0 when invalid) or novel (1 if it parses into a molecule not in the training set)")


def training_texts(cfg: Config) -> set[str]:
    """The training sequences, reloaded quietly (the loader's warnings were shown when training began)."""
    logger = logging.getLogger("gankit")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return set(load_dataset(cfg.data, cfg.seed).info["texts"])
    finally:
        logger.setLevel(level)


@register_variant("seqgan")
class SeqGAN(Variant):
    """LSTM G, CNN D; maximum likelihood, then policy gradient with Monte-Carlo rollout rewards."""

    Config = SeqGANConfig
    own_nets = "LSTM G, CNN D with highway (seqgan.*)"
    sampling = frozenset()
    one_pass = False  # sequences are drawn token by token, stopping at <eos>
    log_keys_mle = "mle_nll"

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        if spec["kind"] != "tokens":
            raise UserError(f"variant seqgan models token sequences; the data is {spec['kind']}",
                            "use data.name=text, nci or oracle")
        o, meta = self.options, spec["tokens"]
        vocab, length = vocab_size(spec), meta["length"]
        self.z_dim = length  # one Gaussian per position, turned into the uniform that draws its token
        self.G = SeqGenerator(vocab, length, o.emb, o.hidden, o.layers, meta.get("eos"), meta.get("pad"))
        self.rollout = SeqGenerator(vocab, length, o.emb, o.hidden, o.layers, meta.get("eos"), meta.get("pad"))
        self.rollout.requires_grad_(False)
        self.register_buffer("rollout_started", torch.zeros((), dtype=torch.bool))
        self.D = SeqDiscriminator(vocab, length, o.d_emb, [tuple(f) for f in o.d_filters], o.dropout)
        self.chem = None
        if o.chem_reward:
            if meta.get("tokenizer") != "smiles":
                raise UserError("seqgan.chem_reward scores SMILES, and this data is not", "set seqgan.chem_reward=0")
            from ..metrics.sequences import reward_function

            self.chem = reward_function(o.chem_objective, spec, lambda: training_texts(cfg))
        self.optim_cfg = cfg.optim
        adversarial = o.mle_steps + o.d_pretrain_steps
        self.phases = [Phase("mle", "G", stop=o.mle_steps)]
        if o.d_pretrain_steps:
            self.phases.append(Phase("D_pre", "D", start=o.mle_steps, stop=adversarial))
        self.phases.append(Phase("G", "G_pg", start=adversarial))
        if o.d_steps:
            self.phases.append(Phase("D", "D", start=adversarial, repeats=o.d_steps))

    @property
    def groups(self) -> dict[str, Group]:
        betas, ema = (self.optim_cfg.beta1, self.optim_cfg.beta2), self.optim_cfg.ema is not None
        return {"G": Group([self.G], self.optim_cfg.lr_g, betas, ema=ema),
                "G_pg": Group([self.G], self.options.pg_lr or self.optim_cfg.lr_g, betas, ema=ema),
                "D": Group([self.D], self.optim_cfg.lr_d, betas)}

    def loss(self, phase: str, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if phase == "mle":
            return self.mle_loss(batch, ctx)
        if phase == "G":
            n = self.options.pg_batch // self.shard.world if self.options.pg_batch else len(batch)  # this process's
            return self.pg_loss(n, batch)
        return self.d_loss(batch)

    # ------------------------------------------------------------------------------------------- phases

    def mle_loss(self, batch: Batch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        """Teacher forcing (or scheduled sampling): the mean negative log-likelihood of the real tokens."""
        x, mix = batch.x, self.options.scheduled_sampling
        if mix:
            logits = self.scheduled_logits(x, mix * min(1.0, ctx.step / max(1, self.options.mle_steps)))
        else:
            logits = self.G(x)
        loss = losses.sequence_nll(logits, x, self.G.mask(x))
        return loss, {self.log_keys_mle: loss.detach()}

    def scheduled_logits(self, x: Tensor, p: float) -> Tensor:
        """G's logits when each input token is, with probability p, G's own draw from the previous step's logits."""
        token, state, out = self.G.start(len(x)), None, []
        for t in range(x.shape[1]):
            logits, state = self.G.step(token, state)
            out.append(logits)
            own = torch.distributions.Categorical(logits=logits.detach()).sample()
            token = torch.where(torch.rand(len(x), device=x.device) < p, own, x[:, t])
        return torch.stack(out, 1)

    def uniforms(self, n: int) -> Tensor:
        """The uniforms (n, length) that G.sample turns into n fresh sequences during training."""
        return self.local_rows(n, lambda m: torch.rand(m, self.G.length, device=self.device))

    def d_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """D's cross-entropy on real sequences vs fresh ones of G."""
        with torch.no_grad():
            fake = self.G.sample(self.uniforms(len(batch)))
        real_logits, fake_logits = self.D(batch.x), self.D(fake)
        loss = losses.d_bce(real_logits, fake_logits)
        keys = self.log_keys
        return loss, {keys.d_loss: loss.detach(), keys.d_real: torch.sigmoid(real_logits).mean().detach(),
                      keys.d_fake: torch.sigmoid(fake_logits).mean().detach()}

    def pg_loss(self, n: int, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Policy gradient on n fresh sequences, each token rewarded by its Monte-Carlo completions (plus, with
        `mle_weight`, the likelihood of the real batch)."""
        self.update_rollout()
        with torch.no_grad():
            x = self.G.sample(self.uniforms(n))
            rewards = self.rewards(x)
        mask = self.G.mask(x)
        advantage = rewards - (rewards * mask).sum(0) / mask.sum(0).clamp(min=1) if self.options.baseline \
            else rewards
        loss = losses.policy_gradient(self.G.log_probs(x), advantage, mask)
        scalars = {"reward": (rewards * mask).sum() / mask.sum()}
        if self.options.mle_weight:
            nll = losses.sequence_nll(self.G(batch.x), batch.x, self.G.mask(batch.x))
            loss = loss + self.options.mle_weight * nll
            scalars[self.log_keys_mle] = nll.detach()
        scalars[self.log_keys.g_loss] = loss.detach()
        return loss, scalars

    @torch.no_grad()
    def update_rollout(self) -> None:
        """Start the rollout net as a copy of G, then move it a (1 - rollout_rate) share toward G at each G step."""
        if not self.rollout_started:
            self.rollout.load_state_dict(self.G.state_dict())
            self.rollout_started.fill_(True)
            return
        keep = self.options.rollout_rate
        for mine, theirs in zip(self.rollout.parameters(), self.G.parameters()):
            mine.mul_(keep).add_(theirs.detach(), alpha=1 - keep)

    @torch.no_grad()
    def rewards(self, x: Tensor) -> Tensor:
        """Q (N, L): for t < L, the mean score of `rollouts` completions of x[:, :t+1]; for the last token, the score
        of x itself. Scores are D's probability of "real" (dropout off), mixed with RDKit's when asked."""
        n, length, r = len(x), x.shape[1], self.options.rollouts
        was_training = self.D.training
        self.D.eval()
        try:
            whole = self.score_sequences(x)
            out = []
            states = self.rollout.states(x)
            prefix = x.repeat(r, 1)
            for t in range(1, length):
                if self.G.eos is not None and bool((x[:, :t] == self.G.eos).any(1).all()):
                    out += [whole] * (length - t + 1)  # all have ended: completions are the sequences themselves
                    break
                h, c = states[t - 1]
                done = self.rollout.complete(torch.rand(n * r, length, device=x.device), prefix[:, t - 1],
                                             (h.repeat(1, r, 1), c.repeat(1, r, 1)), t, prefix)
                out.append(self.score_sequences(done).view(r, n).mean(0))
            else:
                out.append(whole)
        finally:
            self.D.train(was_training)
        return torch.stack(out, 1)

    def score_sequences(self, x: Tensor) -> Tensor:
        d = torch.sigmoid(self.D(x))
        if self.chem is None:
            return d
        w = self.options.chem_reward
        return (1 - w) * d + w * self.chem(x).to(d)

    # ------------------------------------------------------------------------------------------- sampling

    def run_generator(self, request: Request) -> Tensor:
        return self.G.sample(torch.special.ndtr(request.z))

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self.D(x)
