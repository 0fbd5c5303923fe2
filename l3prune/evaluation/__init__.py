"""MTEB evaluation of encoders: mteb 2 wrapper with an embedding cache, local tasks, instructions.

Usage (see docs/evaluation.md):
    from l3prune.evaluation import evaluate, load_tasks_file
    summary = evaluate(encoder, load_tasks_file("config/eval/demo.yaml"), "results/m/v/mteb.json", name="l3prune/m-v")
"""

from ..lazy import lazy_exports

_EXPORTS = {
    "evaluate": "run",
    "resolve_tasks": "run",
    "load_tasks_file": "tasks_file",
    "EvalConfig": "tasks_file",
    "LocalTaskSpec": "tasks_file",
    "load_instruction_table": "instructions",
    "InstructionTable": "instructions",
    "MTEBEncoder": "mteb_model",
    "EmbeddingStore": "embedding_store",
    "split_tasks": "groups",
    "merge_parts": "summary",
}
__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
