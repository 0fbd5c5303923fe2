"""L3Prune: LLM-based text encoders made smaller by dropping their last layers."""

__all__ = ["LLMEncoder", "l3prune"]


def __getattr__(name):
    # Imported on first use, so the command line starts without loading torch and transformers.
    if name == "LLMEncoder":
        from .encoder import LLMEncoder

        return LLMEncoder
    if name == "l3prune":
        from .layerwise import l3prune

        return l3prune
    raise AttributeError(f"module 'l3prune' has no attribute {name!r}")
