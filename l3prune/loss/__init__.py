"""Contrastive losses; they gather across processes under torch.distributed."""

from .hard_negative_nll import HardNegativeNLLLoss
from .utils import LOSSES, load_loss

__all__ = ["LOSSES", "HardNegativeNLLLoss", "load_loss"]
