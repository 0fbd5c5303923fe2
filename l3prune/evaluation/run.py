"""evaluate(): run a tasks file's MTEB and local tasks on an encoder and write mteb.json.

Layout under the output folder (results/<model>/<variant>/):
    mteb.json                          the summary, written atomically once every task has finished
    results/<name>/<revision>/*.json   mteb's own per-task results (mteb.ResultCache)
    runs/<revision>/<Task>.json        per task: the instructions, data revision and main score it
                                       ran with, and the encode counts
    embeddings/<revision>/<Task>/      the embeddings of a task while it runs (embedding_store.py),
                                       deleted once its result is saved unless keep_embeddings

A rerun after a failure skips every task whose mteb result exists and whose instructions, data
revision (a local task's: the hash of its files) and main score are unchanged; any other task runs
again (its old result is replaced only once the new one is complete), reading back the embeddings
a killed run had written.

With task_group=(K, N) only the K-th of N groups of tasks runs (groups.py), and the output is a
part for summary.merge_parts.
"""

from __future__ import annotations

import logging
from operator import itemgetter
from pathlib import Path

from ..errors import ReportedFailure
from ..files import read_json, write_json
from .embedding_store import EmbeddingStore
from .groups import task_group as select_group
from .instructions import DEFAULT_INSTRUCTIONS_FILE, InstructionTable, load_instruction_table
from .summary import build_summary
from .tasks_file import EvalConfig, benchmark_tasks, mteb_task

logger = logging.getLogger(__name__)


def resolve_tasks(config: EvalConfig) -> list:
    """mteb task objects for the config: its benchmark's tasks, its named tasks, its local tasks."""
    from .local_tasks import build_local_task

    tasks = benchmark_tasks(config.benchmark) if config.benchmark else []
    tasks += [mteb_task(name) for name in config.tasks]
    tasks += [build_local_task(spec) for spec in config.local_tasks]
    unique = {task.metadata.name: task for task in tasks}  # a named task may also be in the benchmark
    return list(unique.values())


def task_instructions(task, table: InstructionTable) -> dict[str, str]:
    """The instruction of a task and, for an aggregate task (CQADupstackRetrieval), of each part."""
    parts = [task] + list(getattr(task.metadata, "tasks", []))
    return {part.metadata.name: table.instruction(part.metadata.name, part.metadata.type) for part in parts}


def evaluate(
    encoder,
    config: EvalConfig,
    out: str | Path,
    *,
    name: str,
    source: str | Path | None = None,
    batch_size: int | None = None,
    max_length: int | None = None,
    task_group: tuple[int, int] | None = None,
    instructions_file: str | Path = DEFAULT_INSTRUCTIONS_FILE,
    training_datasets: set[str] | None = None,
) -> dict:
    """Evaluate `encoder` (an LLMEncoder) on `config`'s tasks; write and return the summary.

    `name` is the mteb model name (it should carry the model and the variant); `source` is
    where the encoder was loaded from (a variant folder, a model path or hub name), recorded
    and fingerprinted so cached results of another model are never reused.
    `max_length` (else the tasks file's) sets the encoder's token limit for this evaluation; with
    neither, the encoder keeps its own (a trained variant's saved inference length).
    `task_group` (K, N): evaluate only the K-th of N groups of the tasks and write a part.
    `training_datasets`: the mteb tasks the training data overlaps, for mteb's model record.
    """
    import mteb

    from .mteb_model import MTEBEncoder, model_meta

    out = Path(out)
    source = source if source is not None else encoder.base_model_name_or_path
    length = max_length if max_length is not None else config.max_length
    if length is not None:  # before the fingerprint: results at another length are not reused
        encoder.max_length = length
    table = load_instruction_table(instructions_file).with_overrides(config.instruction_overrides())
    all_tasks = resolve_tasks(config)
    instructions = _all_instructions(all_tasks, table, config)
    tasks = select_group(all_tasks, *task_group) if task_group else all_tasks
    meta = model_meta(encoder, name, source, training_datasets=training_datasets)
    store = EmbeddingStore(out.parent / "embeddings" / meta.revision) if config.disk_cache else None
    model = MTEBEncoder(encoder, table, meta, cache=config.cache, store=store)
    run = _TaskRunner(model, mteb.ResultCache(cache_path=out.parent), out.parent / "runs" / meta.revision,
                      {"batch_size": batch_size or config.batch_size, "show_progress_bar": False})  # fmt: skip
    summaries = _run_every_task(run, tasks, instructions, store if not config.keep_embeddings else None, out)
    summary = build_summary(
        _fields(encoder, meta, source, config, run.encode_kwargs, mteb.__version__), summaries
    )
    if task_group:
        summary["task_group"] = {
            "index": task_group[0],
            "count": task_group[1],
            "tasks": [task.metadata.name for task in tasks],
            "all_tasks": [task.metadata.name for task in all_tasks],
        }
    write_json(out, summary)
    return summary


def _all_instructions(tasks: list, table: InstructionTable, config: EvalConfig) -> dict[str, dict[str, str]]:
    """Task -> its (and its parts') instructions, resolved for every task before any encoding, so
    that a missing one warns (or fails) at once."""
    instructions = {task.metadata.name: task_instructions(task, table) for task in tasks}
    unused = sorted(set(config.instructions) - {name for parts in instructions.values() for name in parts})
    if unused:
        logger.warning("instructions given for tasks this run does not have: %s", ", ".join(unused))
    return instructions


def _run_every_task(run, tasks: list, instructions: dict, store_to_empty, out: Path) -> dict[str, dict]:
    """Each task's summary entry; a failed task does not stop the others, and all failures end in
    one ReportedFailure. A finished task's embeddings are dropped from `store_to_empty`."""
    summaries, failures = {}, {}
    for task in tasks:
        task_name = task.metadata.name
        try:
            summaries[task_name] = run(task, instructions[task_name])
        except Exception as e:  # the other tasks still run; the failure is reported at the end
            logger.exception("task %s failed", task_name)
            failures[task_name] = f"{type(e).__name__}: {e}"
            continue
        if store_to_empty is not None:
            store_to_empty.drop(instructions[task_name])  # the task and its parts
    if failures:
        listed = "; ".join(f"{task} ({error})" for task, error in failures.items())
        raise ReportedFailure(
            f"{len(failures)} of {len(tasks)} tasks failed: {listed}. "
            f"Finished tasks are kept under {out.parent}; rerun to run only the rest"
        )
    return summaries


def _fields(encoder, meta, source, config: EvalConfig, encode_kwargs: dict, mteb_version: str) -> dict:
    """The summary's fields besides the tasks (summary.IDENTITY and summary.SETTINGS)."""
    return {
        "model": meta.name,
        "revision": meta.revision,
        "source": str(source),
        "base_model": str(encoder.base_model_name_or_path),
        "num_layers": encoder.num_layers,
        "num_parameters": meta.n_parameters,
        "embedding_dim": meta.embed_dim,
        "cache": config.cache,
        "batch_size": encode_kwargs["batch_size"],
        "max_length": encoder.max_length,
        "mteb_version": mteb_version,
        "mteb_results": str(Path("results") / meta.model_name_as_path() / meta.revision),
    }


class _TaskRunner:
    """Runs one task through mteb (or takes its saved result) and returns its summary entry."""

    def __init__(self, model, result_cache, runs: Path, encode_kwargs: dict):
        self.model, self.result_cache, self.runs, self.encode_kwargs = (
            model,
            result_cache,
            runs,
            encode_kwargs,
        )

    def __call__(self, task, instructions: dict[str, str]) -> dict:
        import mteb

        task_name, main_metric = task.metadata.name, task.metadata.main_score
        record_path = self.runs / f"{task_name}.json"
        record = read_json(record_path, if_missing=None)
        # mteb's "only-missing" reuses any result covering every split, whatever data, metric or
        # instructions produced it: the run record says whether those are still the same
        ran_with = {
            "instructions": instructions,
            "revision": task.metadata.revision,
            "main_score": main_metric,
        }
        unchanged = record is not None and all(record.get(key) == value for key, value in ran_with.items())
        before = self.model.counts()
        result = mteb.evaluate(
            self.model,
            task,
            cache=self.result_cache,
            encode_kwargs=dict(self.encode_kwargs),
            overwrite_strategy="only-missing" if unchanged else "always",
            show_progress_bar=False,
            co2_tracker=False,
        ).task_results[0]
        counts = {key: value - before[key] for key, value in self.model.counts().items()}
        if counts["texts_requested"] == 0 and unchanged:  # mteb took the result from its cache
            counts = {key: record.get(key, 0) for key in counts}
        else:
            write_json(record_path, {**ran_with, **counts})
        # read by name, so the value reported is that of the metric named beside it
        main_score = float(result.get_score(getter=itemgetter(main_metric)))
        logger.info("%s: %s = %.4f", task_name, main_metric, main_score)
        return {
            "type": task.metadata.type,
            "main_metric": main_metric,
            "main_score": main_score,
            "instruction": instructions[task_name],
            "scores": result.scores,
            "evaluation_seconds": result.evaluation_time,
            **counts,
        }
