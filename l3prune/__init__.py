"""L3Prune: LLM-based text encoders made smaller by dropping their last layers."""

from .encoder import LLMEncoder

__all__ = ["LLMEncoder", "l3prune"]


def __getattr__(name):
    # `from l3prune import l3prune` without importing the data/loss stack for plain encoder use
    if name == "l3prune":
        from .layerwise import l3prune

        return l3prune
    raise AttributeError(f"module 'l3prune' has no attribute {name!r}")
