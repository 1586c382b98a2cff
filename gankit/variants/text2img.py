"""Text-to-image GAN: GAN-INT-CLS's matching-aware discriminator (Reed et al. 2016) with StackGAN's conditioning
augmentation (Zhang et al. 2017), on BigGAN's blocks (gankit.nets.text).

D step: real images with their captions count as real; generated images with the captions they were drawn for,
and real images with mismatched captions (the data kind gives two per image, each with one attribute changed),
count as fake, each kind of negative weighted one half: ½·game(real, fake) + ½·game(real, mismatched). G step: the game on its images
with their captions, plus the KL term that keeps the text condition's Gaussian near N(0, I).

With `text2img.words` > 0, D also learns to tell from a real image which words its caption holds (a multi-label
head on its pooled features, as TAC-GAN's auxiliary classifier does with classes) and G must draw images from which
that head reads the words of their captions: a signal about every word that depends on no text encoder.

With `text2img.layered`, G draws a mask, the object's colours and the background as separate layers, each from its
own attention heads over the caption's words (gankit.nets.text).

With `text2img.interpolate` > 0, G is also judged on images drawn for the midpoints of pairs of its batch's sentence
vectors (GAN-INT, Reed et al. 2016), D reading the midpoints of the same pairs' vectors: captions no image has, so G
learns to draw something D accepts between the ones it saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator
from torch import Tensor, nn

from .. import losses
from ..config import Config, Section
from ..data import CaptionBatch
from ..data.captions import random_captions, tokenize
from ..errors import UserError
from ..metrics.diversity import diversity_ratio
from ..nets.text import AttentionTextEncoder, LayeredTextGenerator, TextDiscriminator, TextEncoder, TextGenerator, \
    TextMode, compose
from .base import Context, Group, Phase, Request, Variant, adversarial_groups
from .registry import register_variant

FAKE = "fake"  # Context key: the D step's (images, μ, log σ², mask, D's and G's sentence vectors, word ids), for G
OBJECT_AREA = 0.5  # the largest share of an image `object_area` lets the layered G's mask cover unpenalised


class Text2ImgConfig(Section):
    """text2img's own keys."""

    embed_dim: int = Field(32, ge=1, description="word embedding size of the text encoder")
    text_dim: int = Field(64, ge=1, description="hidden size of the bidirectional GRU text encoder (each way)")
    joint_dim: int = Field(64, ge=1, description="size of the text vector D tiles over its 4×4 features")
    kl_weight: float = Field(0.01, ge=0, description="weight of conditioning augmentation's KL(N(μ, σ²) ‖ N(0, I)) "
                              "in G's loss (StackGAN's 1-2 suit pre-trained text encoders; with encoders learnt "
                              "from scratch they pull the condition to pure noise, docs/text2img.md)")
    mismatch: bool = Field(True, description="matching-aware D: real images with a mismatched caption count as fake "
                           "(GAN-INT-CLS); false: D learns realness and text only from generated images")
    contrastive: float = Field(0.0, ge=0, description="weight of contrastive image-text losses (XMC-GAN): D learns "
                               "to pick each real image's caption among the batch's, and G to draw images D matches "
                               "to their captions the same way (0: off)")
    temperature: float = Field(0.1, gt=0, le=1, description="temperature of the contrastive losses' cosine logits")
    words: float = Field(0.0, ge=0, description="weight of the word-prediction terms: D reads which words a real "
                         "image's caption holds (multi-label, from its pooled features) and G must draw images from "
                         "which D reads its captions' words (0: off)")
    interpolate: float = Field(0.0, ge=0, description="weight of GAN-INT's term in G's loss: the game on images "
                               "drawn for the midpoints of pairs of captions' sentence vectors (half a batch), "
                               "judged by D with the midpoint of its own vectors for them (0: off; Reed et al. 2016 "
                               "use 1)")
    encoder: TextMode = Field("gru", description="how both text encoders read a caption: the final states of a "
                              "bidirectional GRU, the mean of the word embeddings (bag: an unseen pair of words reads "
                              "as the sum of its parts), or both side by side (docs/text2img.md)")
    own_encoder: bool = Field(False, description="G reads captions through a text encoder of its own, trained by "
                              "G's loss (as BigGAN's G trains its class embedding); false: G reads D's encoder's "
                              "vectors, detached")
    layered: bool = Field(False, description="G draws an object mask, the object's colours and the background as "
                          "layers, each from its own attention heads over the caption's words (G's own encoder; needs "
                          "own_encoder=true; docs/text2img.md)")
    heads: tuple[PositiveInt, PositiveInt, PositiveInt] = Field(
        (3, 1, 1), description="the layered G's attention heads over the caption's words for its layout, object and "
        "background layers (layout: shape, row and column)")
    query_gain: float = Field(10.0, gt=0, description="learning-rate multiplier of the layered G's attention queries")
    object_area: float = Field(0.0, ge=0, description="weight of a penalty on the layered G's mask covering more "
                               "than half of an image: the object is the smaller layer, so the object layer paints "
                               "it whatever the background (breaks the layers' symmetry; 0: off; docs/text2img.md)")
    field: int = Field(1, ge=1, description="side of the layered G's colour grids (upsampled to the image): 1 gives "
                       "each layer one colour, so where things are is left to the mask alone")

    @model_validator(mode="before")
    @classmethod
    def _bag_of_words(cls, values: object) -> object:
        """Runs saved before `encoder` existed hold `bag_of_words: bool` (true was "gru+bag"): read them the same."""
        if isinstance(values, dict) and "bag_of_words" in values:
            values = dict(values)
            old = values.pop("bag_of_words")
            values.setdefault("encoder", "gru+bag" if old in (True, "true", "True") else "gru")
        return values


@register_variant("text2img")
class Text2Img(Variant):
    """G(z, caption) and D(x, caption) reading captions through text encoders (`encoder`: a GRU, the mean word
    embedding or both): D's, trained by D's loss, and with `own_encoder` G's, trained by G's loss (else G reads D's
    vectors, detached); `model.z_dim`, `model.width`, `model.attention` size BigGAN's nets and `model.shared_dim`
    the text condition G's batch norms take."""

    Config = Text2ImgConfig
    sampling = frozenset({"truncation", "inputs", "prompt"})

    def __init__(self, cfg: Config, spec: dict) -> None:
        super().__init__(cfg, spec)
        if spec["kind"] != "captions" or "text" not in spec:
            raise UserError(f"variant text2img needs captioned images, not {spec['kind']} data",
                            "set data.name=captions (docs/text2img.md)")
        if cfg.model.name not in ("auto", "biggan"):
            raise UserError(f"variant text2img builds BigGAN's nets, not model.name={cfg.model.name}",
                            "set model.name=biggan (or leave it out)")
        o, m = self.options, cfg.model
        channels, side = spec["shape"][0], spec["shape"][-1]
        vocab = len(spec["text"]["vocab"])
        if o.layered and not o.own_encoder:
            raise UserError("text2img.layered reads the caption through G's own encoder",
                            "set text2img.own_encoder=true")
        if o.object_area and not o.layered:
            raise UserError("text2img.object_area weighs a penalty on the layered G's mask; this G has none",
                            "set text2img.layered=true, or leave object_area at 0")
        self.encoder = TextEncoder(vocab, o.embed_dim, o.text_dim, o.encoder)
        self.g_encoder = (AttentionTextEncoder(vocab, o.embed_dim, o.heads, o.query_gain) if o.layered else
                          TextEncoder(vocab, o.embed_dim, o.text_dim, o.encoder) if o.own_encoder else None)
        try:
            self.G = (LayeredTextGenerator(self.g_encoder.part_dims, m.z_dim, channels, side, m.width, m.shared_dim,
                                           m.attention, o.field)
                      if o.layered else
                      TextGenerator(self.encoder.out_dim, m.z_dim, channels, side, m.width, m.shared_dim, m.attention))
            self.D = TextDiscriminator(self.encoder.out_dim, channels, side, m.width, o.joint_dim, m.attention)
        except ValueError as exc:
            raise UserError(str(exc), "see docs/biggan.md for the sizes BigGAN's nets take") from None
        # the word head: D's pooled features -> one logit per vocabulary word (padding included; it is never a target)
        self.word_head = nn.Linear(self.D.body.linear.in_features, vocab) if o.words else None
        self.z_dim, self.spec = m.z_dim, spec
        self.game = losses.game(cfg.loss.name)
        self.optim_cfg = cfg.optim
        self.phases = [Phase("D", "D", repeats=cfg.train.n_critic), Phase("G", "G")]

    @property
    def groups(self) -> dict[str, Group]:
        heads = [self.word_head] if self.word_head is not None else []
        own = [self.g_encoder] if self.g_encoder is not None else []
        return adversarial_groups(self.optim_cfg, [self.D, self.encoder, *heads], [self.G, *own])

    def loss(self, phase: str, batch: CaptionBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        return self.d_loss(batch, ctx) if phase == "D" else self.g_loss(batch, ctx)

    @property
    def generator_names(self) -> tuple[str, ...]:
        """G and the text encoder it reads captions through (its own, else D's): what the exported model keeps."""
        return ("G", "g_encoder" if self.g_encoder is not None else "encoder")

    @property
    def g_reader(self) -> TextEncoder:
        """The text encoder G reads captions through."""
        return getattr(self, self.generator_names[1])

    def g_sentences(self, tokens: Tensor, d_sentences: Tensor) -> Tensor:
        """The sentence vectors G reads for word ids: its own encoder's (which G's loss trains), else D's encoder's
        `d_sentences`, detached."""
        return self.g_encoder(tokens) if self.g_encoder is not None else d_sentences.detach()

    def fakes(self, sentences: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """(G's images for G's sentence vectors, μ, log σ², the layered G's mask or None), c drawn by conditioning
        augmentation."""
        mu, log_var = self.G.condition(sentences)
        eps = self.local_rows(len(mu), lambda m: torch.randn(m, mu.shape[1], device=mu.device))
        z = self.noise(len(mu))
        if not self.options.layered:
            return self.G.draw(z, mu, log_var, eps), mu, log_var, None
        mask, thing, ground = self.G.layers(z, mu, log_var, eps)
        return compose(mask, thing, ground), mu, log_var, mask

    def d_loss(self, batch: CaptionBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        n = len(batch)
        wrong = batch.wrong.flatten(0, 1)  # (N·MISMATCHES, L), each image's mismatches in a row
        sentences = self.encoder(torch.cat([batch.text, wrong]))  # one encoder pass for all captions
        g_sentences = self.g_sentences(batch.text, sentences[:n])
        fake_live, mu, log_var, mask = self.fakes(g_sentences)
        ctx.values[FAKE] = (fake_live, mu, log_var, mask, sentences[:n].detach(), g_sentences, batch.text)
        fake = fake_live.detach()
        text = self.D.text(sentences)
        # one D pass over real and fake images (no batch norm in D; spectral norm's power iteration runs once, not
        # twice): about 8 % faster per step than two passes on 2 CPU cores
        h = self.D.feature_map(torch.cat([batch.x, fake]))
        h_real = h[:n]
        real_logits, fake_logits = self.D.judge(h, text[:n].repeat(2, 1)).split(n)
        loss = self.game.d(real_logits, fake_logits)
        scalars = {"d_real": self.game.mean_output(real_logits), "d_fake": self.game.mean_output(fake_logits),
                   "diversity": diversity_ratio(fake, batch.x)}
        if self.options.mismatch:
            per_image = len(wrong) // n
            wrong_logits = self.D.judge(h_real.repeat_interleave(per_image, dim=0), text[n:])
            loss = 0.5 * (loss + self.game.d(real_logits, wrong_logits))
            scalars["d_wrong"] = self.game.mean_output(wrong_logits)
        if self.options.contrastive:
            matched = self.contrastive(h_real, text[:n])
            loss = loss + self.options.contrastive * matched
            scalars["d_contrastive"] = matched.detach()
        if self.word_head is not None:
            read = self.read_words(h_real, batch.text)
            loss = loss + self.options.words * read
            scalars["d_words"] = read.detach()
        scalars["d_loss"] = loss.detach()
        return loss, scalars

    def contrastive(self, h: Tensor, text: Tensor) -> Tensor:
        """InfoNCE both ways between images (feature maps) and their captions' vectors, the rest of the batch as
        negatives: ½·CE(image → caption) + ½·CE(caption → image)."""
        logits = self.D.match(h, text, self.options.temperature)
        target = torch.arange(len(logits), device=logits.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def read_words(self, h: Tensor, tokens: Tensor) -> Tensor:
        """Binary cross-entropy of the word head's logits on feature maps h against the words each caption holds
        (word ids (N, L), 0 padding), summed over the vocabulary (each word a yes/no question, as each class is
        one in ACGAN) and averaged over images."""
        logits = self.word_head(h.sum(dim=(2, 3)))
        target = torch.zeros_like(logits).scatter_(1, tokens, 1.0)[:, 1:]  # padding is no word
        return F.binary_cross_entropy_with_logits(logits[:, 1:], target, reduction="none").sum(1).mean()

    def g_loss(self, batch: CaptionBatch, ctx: Context) -> tuple[Tensor, dict[str, Tensor]]:
        if FAKE in ctx.values:
            fake, mu, log_var, mask, sentences, g_sentences, tokens = ctx.values.pop(FAKE)
        else:  # no D step in this iteration
            with torch.no_grad():
                sentences = self.encoder(batch.text)
            g_sentences = self.g_sentences(batch.text, sentences)
            fake, mu, log_var, mask = self.fakes(g_sentences)
            tokens = batch.text
        h, text = self.D.feature_map(fake), self.D.text(sentences)
        fake_logits = self.D.judge(h, text)
        adversarial = self.game.g(fake_logits)
        kl = losses.gaussian_kl(mu, log_var)
        loss = adversarial + self.options.kl_weight * kl
        scalars = {"d_fake_g": self.game.mean_output(fake_logits), "kl": kl.detach()}
        if mask is not None:
            scalars["mask_area"] = mask.detach().mean()
        if self.options.object_area:
            excess = losses.area_excess(mask, OBJECT_AREA)
            loss = loss + self.options.object_area * excess
            scalars["g_area"] = excess.detach()
        if self.options.contrastive:
            matched = self.contrastive(h, text)
            loss = loss + self.options.contrastive * matched
            scalars["g_contrastive"] = matched.detach()
        if self.word_head is not None:
            read = self.read_words(h, tokens)
            loss = loss + self.options.words * read
            scalars["g_words"] = read.detach()
        if self.options.interpolate:
            between = self.between(sentences, g_sentences)
            loss = loss + self.options.interpolate * between
            scalars["g_between"] = between.detach()
        return loss, {**scalars, "g_loss": loss.detach()}

    def between(self, sentences: Tensor, g_sentences: Tensor) -> Tensor:
        """GAN-INT's term: the game's G loss on images drawn for ½(s_i + s_i−1), the midpoint of a caption's sentence
        vector and its neighbour's in the (shuffled) batch, for the first half of the batch (half the cost of a G
        step's images), judged by D with the midpoints of its own vectors."""
        def middle(s: Tensor) -> Tensor:
            return 0.5 * (s + s.roll(1, dims=0))[:(len(s) + 1) // 2]

        fake = self.fakes(middle(g_sentences))[0]
        return self.game.g(self.D.judge(self.D.feature_map(fake), self.D.text(middle(sentences))))

    # ------------------------------------------------------------------------------------------- sampling

    def condition(self, request: Request) -> Tensor:
        """The word ids each sample is drawn for: the request's inputs, else random captions of the training kind."""
        if request.inputs is not None:
            return request.inputs.long().to(self.device)
        texts = random_captions(request.n, request.generator, self.spec)
        return tokenize(texts, self.spec["text"]["vocab"], self.spec["text"]["max_len"]).to(self.device)

    def prepare(self, request: Request) -> Request:
        if request.inputs is not None:
            tokens = request.inputs
            vocab, max_len = len(self.spec["text"]["vocab"]), self.spec["text"]["max_len"]
            if tokens.dim() != 2 or tokens.shape[1] != max_len or tokens.dtype.is_floating_point and \
                    not torch.equal(tokens, tokens.round()) or tokens.min() < 0 or tokens.max() >= vocab:
                raise ValueError(f"text inputs must be word ids (N, {max_len}) in [0, {vocab}); got "
                                 f"{tuple(tokens.shape)}: give prompts instead (--prompt, or a .txt with one per line)")
        return super().prepare(request)

    def progress_request(self, n: int, generator: torch.Generator, inputs: Tensor | None = None) -> Request:
        return Request(n, inputs=inputs, generator=generator)

    def run_generator(self, request: Request) -> Tensor:
        return self.G(request.z, self.g_reader(request.cond))

    def score(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """D's logit for images and their word ids."""
        if cond is None:
            raise ValueError("text2img's D judges images together with their caption")
        return self.D(x, self.encoder(cond))
