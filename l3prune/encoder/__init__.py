"""The encoder: a decoder LLM as a text encoder (LLMEncoder), its inputs, pooling and layers."""

from ..lazy import lazy_exports
from .settings import POOLING_MODES

_EXPORTS = {
    "LLMEncoder": "llm_encoder",
    "PruneReport": "llm_encoder",
    "join_instruction": "inputs",
    "SUPPORTED_FAMILIES": "layers",
}
__all__ = [*_EXPORTS, "POOLING_MODES"]
__getattr__ = lazy_exports(__name__, _EXPORTS)
