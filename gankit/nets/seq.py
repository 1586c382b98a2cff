"""Networks for token sequences: an LSTM generator that samples token by token and a CNN discriminator with a
highway layer (the shapes SeqGAN used; Yu et al. 2017 after Kim 2014 and Srivastava et al. 2015)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..data.text import draw

State = tuple[Tensor, Tensor]


class SeqGenerator(nn.Module):
    """LSTM language model over `vocab` tokens plus a start token (id `vocab`, input only). With an `eos` id, a
    sequence ends at its first `eos` and every later position is `pad`."""

    def __init__(self, vocab: int, length: int, emb: int = 32, hidden: int = 32, layers: int = 1,
                 eos: int | None = None, pad: int | None = None) -> None:
        super().__init__()
        self.vocab, self.length, self.eos, self.pad = vocab, length, eos, pad
        self.embed = nn.Embedding(vocab + 1, emb)
        self.lstm = nn.LSTM(emb, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def start(self, n: int) -> Tensor:
        return torch.full((n,), self.vocab, dtype=torch.long, device=self.head.weight.device)

    def forward(self, tokens: Tensor) -> Tensor:
        """Next-token logits (N, L, V) under teacher forcing: position t sees the start token and tokens[:, :t]."""
        inputs = torch.cat([self.start(len(tokens))[:, None], tokens[:, :-1]], 1)
        return self.head(self.lstm(self.embed(inputs))[0])

    def log_probs(self, tokens: Tensor) -> Tensor:
        """log G(x_t | x_<t) per position (N, L)."""
        return torch.log_softmax(self(tokens), -1).gather(2, tokens[..., None]).squeeze(2)

    def mask(self, tokens: Tensor) -> Tensor:
        """1 where a position belongs to the sequence (up to and including its `eos`), else 0 (N, L) float."""
        if self.eos is None:
            return torch.ones_like(tokens, dtype=torch.float)
        ended_before = torch.cumsum((tokens == self.eos).long(), 1) - (tokens == self.eos).long()
        return (ended_before == 0).float()

    def step(self, token: Tensor, state: State | None) -> tuple[Tensor, State]:
        """(logits of the next token (N, V), new state) after reading `token` (N,)."""
        out, state = self.lstm(self.embed(token)[:, None], state)
        return self.head(out[:, 0]), state

    def sample(self, u: Tensor) -> Tensor:
        """Sequences (N, L) drawn token by token by inverse CDF from uniforms u (N, L)."""
        return self.complete(u, self.start(len(u)), None, 0)

    def complete(self, u: Tensor, last: Tensor, state: State | None, at: int,
                 prefix: Tensor | None = None) -> Tensor:
        """Sequences (N, L) that keep `prefix[:, :at]` and draw positions at..L-1 from uniforms u (N, L): `last` (the
        prefix's last token; the start token when at = 0) is read from `state` first (None when at = 0). Sequences
        that have ended leave the batch, so the work follows their real lengths."""
        n = len(u)
        out = torch.full((n, self.length), self.pad if self.pad is not None else 0, dtype=torch.long, device=u.device)
        done = torch.zeros(n, dtype=torch.bool, device=u.device)
        if prefix is not None and at:
            out[:, :at] = prefix[:, :at]
            if self.eos is not None:
                done = (prefix[:, :at] == self.eos).any(1)
        rows, token = torch.arange(n, device=u.device), last
        for t in range(at, self.length):
            if self.eos is not None and bool(done.any()):
                keep = ~done
                if not bool(keep.any()):
                    break
                rows, token, done = rows[keep], token[keep], done[keep]
                if state is not None:
                    state = (state[0][:, keep], state[1][:, keep])
            logits, state = self.step(token, state)
            token = draw(logits, u[rows, t])
            out[rows, t] = token
            if self.eos is not None:
                done = token == self.eos
        return out

    def states(self, tokens: Tensor) -> list[State]:
        """For t = 1..L-1, the state from which `complete(..., last=tokens[:, t-1], at=t)` continues: the state after
        reading the start token and tokens[:, :t-1] (L-1 states)."""
        _, state = self.step(self.start(len(tokens)), None)
        found = [state]
        for t in range(self.length - 2):
            _, state = self.step(tokens[:, t], state)
            found.append(state)
        return found


class Highway(nn.Module):
    """y = g·relu(W x) + (1 - g)·x with a learned gate g (Srivastava et al. 2015)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform, self.gate = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        g = torch.sigmoid(self.gate(x))
        return g * torch.relu(self.transform(x)) + (1 - g) * x


class SeqDiscriminator(nn.Module):
    """Token embeddings, parallel convolutions of several widths max-pooled over time, a highway layer, dropout and
    a linear realness logit (N,)."""

    def __init__(self, vocab: int, length: int, emb: int = 64, filters: list[tuple[int, int]] | None = None,
                 dropout: float = 0.25) -> None:
        super().__init__()
        filters = [(w, n) for w, n in (filters or [(2, 64), (3, 64), (4, 64), (5, 64)]) if w <= length]
        self.embed = nn.Embedding(vocab, emb)
        self.convs = nn.ModuleList(nn.Conv1d(emb, n, w) for w, n in filters)
        width = sum(n for _, n in filters)
        self.highway = Highway(width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, 1)

    def features(self, tokens: Tensor) -> Tensor:
        e = self.embed(tokens).transpose(1, 2)  # (N, emb, L)
        pooled = torch.cat([torch.relu(conv(e)).amax(2) for conv in self.convs], 1)
        return self.highway(pooled)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.out(self.drop(self.features(tokens))).squeeze(1)
