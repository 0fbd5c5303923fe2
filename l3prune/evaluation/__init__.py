"""MTEB evaluation of encoders: mteb 2 wrapper with an embedding cache, local tasks, instructions.

Usage (see docs/evaluation.md):
    from l3prune.evaluation import evaluate, load_tasks_file
    summary = evaluate(encoder, load_tasks_file("config/eval/demo.yaml"), "results/m/v/mteb.json", name="l3prune/m-v")
"""

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


def __getattr__(name):
    # resolved on use: importing the package costs nothing until a name is used
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
