"""Exports of a trained variant that load without l3prune's training code: a merged model
(AutoModel), a sentence-transformers folder, a hub folder with a model card."""

from ..lazy import lazy_exports

_EXPORTS = {
    "export_merged": "merged",
    "export_sentence_transformers": "sentence_transformers",
    "export_hub": "hub",
    "LLMEncoderModule": "st_module",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
