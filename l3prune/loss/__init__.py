"""Contrastive losses; they gather across processes under torch.distributed."""

from ..lazy import lazy_exports
from .utils import LOSSES, load_loss

_EXPORTS = {"HardNegativeNLLLoss": "hard_negative_nll"}
__all__ = [*_EXPORTS, "LOSSES", "load_loss"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
