"""L3Prune: LLM-based text encoders made smaller by dropping their last layers."""

from .lazy import lazy_exports

_EXPORTS = {"LLMEncoder": "encoder", "l3prune": "layerwise"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
