"""The task -> instruction table: LLM2Vec's MTEB wording, overridable per task.

`instructions.yaml` (beside this module) holds the defaults: one instruction per MTEB task and one per task
type for tasks it does not list. Which side of a task gets the instruction is decided where
the texts are encoded (`mteb_model.py`); this module only answers "what is task X's instruction".
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

logger = logging.getLogger(__name__)

DEFAULT_INSTRUCTIONS_FILE = Path(__file__).with_name("instructions.yaml")


@dataclass
class InstructionTable:
    tasks: dict[str, str]
    task_types: dict[str, str]
    _warned: set[str] = field(default_factory=set, repr=False, compare=False)

    def with_overrides(self, overrides: Mapping[str, str]) -> InstructionTable:
        """A copy in which `overrides` (task name -> instruction) replace the table's entries."""
        return InstructionTable({**self.tasks, **overrides}, dict(self.task_types))

    def instruction(self, task_name: str, task_type: str) -> str:
        if task_name in self.tasks:
            return self.tasks[task_name]
        if task_type not in self.task_types:
            raise ValueError(
                f"no instruction for task {task_name!r} of type {task_type!r}: add one under `instructions:` "
                f"in the tasks file (task types with a default: {', '.join(sorted(self.task_types))})"
            )
        if task_name not in self._warned:  # once per task, not once per encode call
            self._warned.add(task_name)
            logger.warning(
                "no instruction listed for task %s; using the %s default %r",
                task_name,
                task_type,
                self.task_types[task_type],
            )
        return self.task_types[task_type]


def load_instruction_table(path: str | Path = DEFAULT_INSTRUCTIONS_FILE) -> InstructionTable:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"instruction table {path} not found (expected a YAML file with `tasks:` and `task_types:`)"
        )
    data = yaml.safe_load(path.read_text()) or {}
    sections = {}
    for key in ("tasks", "task_types"):
        section = data.get(key) or {}
        if not isinstance(section, dict) or not all(isinstance(v, str) for v in section.values()):
            raise ValueError(f"{path}: `{key}` must map names to instruction strings")
        sections[key] = section
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: tasks, task_types")
    return InstructionTable(sections["tasks"], sections["task_types"])
