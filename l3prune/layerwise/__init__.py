"""L3Prune itself: the layerwise loss of the base model and the two prune points it picks."""

from .core import PrunePoints, l3prune, layerwise_loss, pooled_at_every_depth, select_prune_points

__all__ = ["PrunePoints", "l3prune", "layerwise_loss", "pooled_at_every_depth", "select_prune_points"]
