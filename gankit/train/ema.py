"""Exponential moving average of the generator's weights (Karras et al. 2018; Yazıcı et al. 2019).

The average lives as plain tensors keyed like the variant's state dict, so it is saved, exported and swapped in
for sampling without a second copy of the network.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn


class EMA:
    """shadow ← d·shadow + (1 − d)·param after each G step, with d warmed up as min(decay, (1 + t) / (10 + t))."""

    def __init__(self, model: nn.Module, keys: list[str], decay: float) -> None:
        state = model.state_dict()
        self.decay, self.keys, self.updates = decay, keys, 0
        self.shadow: dict[str, Tensor] = {k: state[k].detach().clone() for k in keys}
        params = dict(model.named_parameters())
        self._param_keys = [k for k in keys if k in params]
        self._buffer_keys = [k for k in keys if k not in params]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average towards the model's current generator weights; buffers (BN statistics) are copied."""
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        state = model.state_dict()
        torch._foreach_lerp_([self.shadow[k] for k in self._param_keys], [state[k] for k in self._param_keys],
                             1.0 - decay)
        for k in self._buffer_keys:
            self.shadow[k].copy_(state[k])

    @contextmanager
    def swapped(self, model: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into `model` (for sample grids), then restore the live ones."""
        live = {k: v.detach().clone() for k, v in model.state_dict().items() if k in self.shadow}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(live, strict=False)
