from .inputs import join_instruction
from .layers import SUPPORTED_FAMILIES
from .llm_encoder import LLMEncoder, PruneReport
from .pooling import POOLING_MODES

__all__ = ["LLMEncoder", "PruneReport", "join_instruction", "POOLING_MODES", "SUPPORTED_FAMILIES"]
