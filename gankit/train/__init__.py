"""Training: the loop, checkpoints, logs, EMA, and loading trained generators."""

from .checkpoint import latest_checkpoint, list_checkpoints
from .federated import FederatedTrainer, make_trainer
from .logging import read_logs, run_log_keys
from .plots import plot_losses
from .pretrained import Generator, load
from .trainer import Trainer, resolve_device

__all__ = ["plot_losses", "Trainer", "FederatedTrainer", "make_trainer", "Generator", "load", "read_logs", "run_log_keys", "latest_checkpoint", "list_checkpoints", "resolve_device"]
