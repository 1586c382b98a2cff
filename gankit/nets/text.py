"""Nets of a text-to-image GAN (GAN-INT-CLS, Reed et al. 2016; StackGAN's conditioning augmentation, Zhang et al.
2017), on BigGAN's blocks.

One text encoder (word embedding + bidirectional GRU, the mean of the word embeddings, or both) turns a caption into
a sentence vector; both nets take sentence vectors (the variant decides who trains the encoder). G turns the
sentence vector into a Gaussian (conditioning augmentation) and draws its condition from it; the condition feeds
every conditional batch norm and, with the first noise chunk, the 4×4 input projection, where the layout is decided.
D's text vector is projected on its pooled features (Miyato & Koyama's projection: *what*) and tiled over its last
4×4 feature map and judged jointly with it (GAN-INT-CLS: *where*); an unconditional head sits beside them.

The layered G (LR-GAN, Yang et al. 2017; FineGAN, Singh et al. 2019) draws an object mask, the object's colours and
the background as separate layers, each from its own part of the caption: an encoder of attention heads with learnt
queries over context-free word keys, so a head that passes over a word in the captions it saw passes over it in a
pair of words never seen together too.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm
from torch.nn.utils.rnn import pack_padded_sequence

from .biggan import BigGANDiscriminator, BigGANGenerator


TextMode = Literal["gru", "gru+bag", "bag"]  # how a TextEncoder reads a caption


class TextEncoder(nn.Module):
    """Word ids (N, L), 0 padding, at least one word -> sentence vectors (N, out_dim), read as `mode` says: "gru" the
    final states of a bidirectional GRU over the word embeddings; "bag" the mean of the word embeddings (each word's
    contribution adds up whatever its neighbours, so a pair of words never seen together reads as the sum of its
    parts); "gru+bag" both, side by side."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden: int, mode: TextMode = "gru") -> None:
        super().__init__()
        if mode not in get_args(TextMode):
            raise ValueError(f"text encoder mode {mode!r} is not one of {get_args(TextMode)}")
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True, bidirectional=True) if "gru" in mode else None
        self.bag = "bag" in mode
        self.out_dim = (2 * hidden if self.gru is not None else 0) + (embed_dim if self.bag else 0)

    def forward(self, tokens: Tensor) -> Tensor:
        lengths = (tokens != 0).sum(1).clamp(min=1)
        words = self.embed(tokens)  # padding embeds to zeros
        parts = []
        if self.gru is not None:
            packed = pack_padded_sequence(words, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, last = self.gru(packed)  # (2, N, hidden): forward and backward directions
            parts += [last[0], last[1]]
        if self.bag:
            parts.append(words.sum(1) / lengths[:, None].to(words.dtype))
        return torch.cat(parts, dim=1)


class AttentionTextEncoder(nn.Module):
    """Word ids (N, L), 0 padding -> (N, sum(heads)·embed_dim): per head, the mean of the caption's word embeddings
    weighted by attention, a softmax over the words of a learnt query's product with each word's key; `heads` gives
    each part of the output its number of heads. Keys depend on the word alone (no context), so a word scores the
    same in every caption: a head that learnt to pass over colour words in training passes over them in an unseen
    pair too. The queries are `gain` times their parameters (a learning-rate multiplier); at zero, as they start,
    every head reads the mean word."""

    def __init__(self, vocab_size: int, embed_dim: int, heads: tuple[int, ...], gain: float = 1.0) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.key = nn.Linear(embed_dim, embed_dim, bias=False)
        self.query = nn.Parameter(torch.zeros(sum(heads), embed_dim))
        self.gain = gain
        self.part_dims = tuple(h * embed_dim for h in heads)
        self.out_dim = sum(self.part_dims)

    def attention(self, tokens: Tensor) -> Tensor:
        """(N, heads, L): each head's weights over the caption's words (rows sum to 1; padding 0)."""
        scores = self.key(self.embed(tokens)) @ (self.gain * self.query).T / self.query.shape[1] ** 0.5  # (N, L, H)
        scores = scores.masked_fill((tokens == 0)[..., None], float("-inf"))
        return scores.softmax(1).transpose(1, 2)

    def forward(self, tokens: Tensor) -> Tensor:
        return (self.attention(tokens) @ self.embed(tokens)).flatten(1)


class TextGenerator(nn.Module):
    """G(z (N, z_dim), sentence vectors (N, text_dim), eps (N, cond_dim) or None) -> images (N, C, R, R) in [-1, 1].

    `condition(sentences)` gives the conditioning augmentation's (μ, log σ²); G draws c = μ + σ·eps (eps None: c = μ,
    what sampling uses)."""

    def __init__(self, text_dim: int, z_dim: int, out_channels: int, resolution: int, width: int, cond_dim: int,
                 attention: int) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.augment = nn.Linear(text_dim, 2 * cond_dim)
        self.body = BigGANGenerator(z_dim, 0, out_channels, resolution, width, cond_dim, attention)

    def condition(self, sentences: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²), each (N, cond_dim)."""
        mu, log_var = F.leaky_relu(self.augment(sentences), 0.2).chunk(2, dim=1)
        return mu, log_var

    def forward(self, z: Tensor, sentences: Tensor, eps: Tensor | None = None) -> Tensor:
        mu, log_var = self.condition(sentences)
        return self.draw(z, mu, log_var, eps)

    def draw(self, z: Tensor, mu: Tensor, log_var: Tensor, eps: Tensor | None = None) -> Tensor:
        """Images for a given conditioning Gaussian (what the G step reuses, so its KL term sees the same μ, σ)."""
        c = mu if eps is None else mu + eps * (0.5 * log_var).exp()
        return self.body(z, c)


LAYERS = ("layout", "object", "background")  # the parts of a layered G's sentence vector, in order


class LayeredTextGenerator(nn.Module):
    """G(z, sentences from an AttentionTextEncoder (its parts side by side), eps) -> images: image = m·object +
    (1 − m)·background, the mask m drawn by BigGAN's blocks from the layout part (where, which shape), each colour
    layer (a `field`×`field` grid of colours, bilinearly upsampled) by a small MLP from its own part and z.

    Each part gets its own conditioning augmentation; `condition` gives their (μ, log σ²) side by side, as
    TextGenerator's, so the variant draws and charges the KL the same way."""

    def __init__(self, part_dims: tuple[int, ...], z_dim: int, out_channels: int, resolution: int, width: int,
                 cond_dim: int, attention: int, field: int = 1) -> None:
        super().__init__()
        if len(part_dims) != len(LAYERS):
            raise ValueError(f"a layered G reads {len(LAYERS)} parts ({', '.join(LAYERS)}), not {len(part_dims)}")
        self.z_dim, self.resolution, self.field, self.channels = z_dim, resolution, field, out_channels
        self.part_dims = tuple(part_dims)
        self.augment = nn.ModuleList(nn.Linear(dim, 2 * cond_dim) for dim in part_dims)
        self.body = BigGANGenerator(z_dim, 0, 1, resolution, width, cond_dim, attention)
        hidden = 4 * cond_dim
        self.colours = nn.ModuleList(
            nn.Sequential(nn.Linear(cond_dim + z_dim, hidden), nn.LeakyReLU(0.2),
                          nn.Linear(hidden, out_channels * field * field)) for _ in LAYERS[1:])

    def condition(self, sentences: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, log σ²), each (N, 3·cond_dim): the layout's, the object's and the background's, side by side."""
        stats = [F.leaky_relu(augment(part), 0.2).chunk(2, dim=1)
                 for augment, part in zip(self.augment, sentences.split(self.part_dims, dim=1))]
        return torch.cat([mu for mu, _ in stats], dim=1), torch.cat([log_var for _, log_var in stats], dim=1)

    def forward(self, z: Tensor, sentences: Tensor, eps: Tensor | None = None) -> Tensor:
        mu, log_var = self.condition(sentences)
        return self.draw(z, mu, log_var, eps)

    def layers(self, z: Tensor, mu: Tensor, log_var: Tensor, eps: Tensor | None = None) -> tuple[Tensor, ...]:
        """(mask (N, 1, R, R) in [0, 1], object colours, background colours (N, C, R, R) in [-1, 1])."""
        c = mu if eps is None else mu + eps * (0.5 * log_var).exp()
        layout, *colours = c.chunk(len(LAYERS), dim=1)
        mask = 0.5 * (self.body(z, layout) + 1)
        fields = [torch.tanh(mlp(torch.cat([part, z], dim=1))).view(-1, self.channels, self.field, self.field)
                  for mlp, part in zip(self.colours, colours)]
        return mask, *(F.interpolate(f, size=self.resolution, mode="bilinear", align_corners=False) for f in fields)

    def draw(self, z: Tensor, mu: Tensor, log_var: Tensor, eps: Tensor | None = None) -> Tensor:
        """Images for a given conditioning Gaussian: the object's colours where the mask is, the background's
        elsewhere."""
        return compose(*self.layers(z, mu, log_var, eps))


def compose(mask: Tensor, thing: Tensor, ground: Tensor) -> Tensor:
    """A layered G's image: `thing` where the mask is 1, `ground` where it is 0."""
    return mask * thing + (1 - mask) * ground


class TextDiscriminator(nn.Module):
    """D(x (N, C, R, R), sentence vectors (N, text_dim)) -> logits (N,): an unconditional head on BigGAN D's pooled
    features, the projection of the text vector on them (what is drawn), and a joint head on [4×4 features ⊕ tiled
    text vector] (conv 3×3, ReLU, linear over the 4×4 map: where it is drawn)."""

    def __init__(self, text_dim: int, in_channels: int, resolution: int, width: int, joint_dim: int,
                 attention: int) -> None:
        super().__init__()
        self.body = BigGANDiscriminator(in_channels, 0, resolution, width, attention)
        channels = self.body.linear.in_features
        self.project = spectral_norm(nn.Linear(text_dim, joint_dim))
        self.embed = spectral_norm(nn.Linear(joint_dim, channels, bias=False))  # the projection ⟨W t, Σ h⟩
        self.joint = spectral_norm(nn.Conv2d(channels + joint_dim, channels, 3, padding=1))
        self.joint_out = spectral_norm(nn.Linear(channels * 16, 1))
        self.image_embed = nn.Linear(channels, joint_dim)  # the image side of the contrastive match (XMC-GAN)

    def match(self, h: Tensor, text: Tensor, temperature: float) -> Tensor:
        """Cosine similarities / temperature (N, N) of every image in h (feature maps) with every text vector: the
        logits of the contrastive image-text loss, the matching pairs on the diagonal."""
        image = F.normalize(self.image_embed(h.sum(dim=(2, 3))), dim=1)
        return image @ F.normalize(text, dim=1).T / temperature

    def text(self, sentences: Tensor) -> Tensor:
        """(N, joint_dim) text vectors as the heads take them."""
        return F.leaky_relu(self.project(sentences), 0.2)

    def judge(self, h: Tensor, text: Tensor) -> Tensor:
        """Logits (N,) for feature maps h (N, C, 4, 4) (from `feature_map`) and text vectors (from `text`)."""
        tiled = text[:, :, None, None].expand(-1, -1, *h.shape[-2:])
        joint = F.relu(self.joint(torch.cat([h, tiled], dim=1))).flatten(1)
        pooled = h.sum(dim=(2, 3))
        return self.body.logits_from(pooled) + (self.embed(text) * pooled).sum(1) + self.joint_out(joint).flatten()

    def feature_map(self, x: Tensor) -> Tensor:
        return self.body.feature_map(x)

    def forward(self, x: Tensor, sentences: Tensor) -> Tensor:
        return self.judge(self.feature_map(x), self.text(sentences))
