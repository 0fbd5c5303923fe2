"""The sentence-transformers export: one LLMEncoderModule (st_module.py) over the merged model,
the instruction table's tasks as named prompts, cosine similarity.

    SentenceTransformer(out, trust_remote_code=True).encode(texts, prompt=instruction)
        == LLMEncoder.from_pretrained(variant).encode([[instruction, t] for t in texts])

sentence-transformers 6 imports a module class outside its own package only with
`trust_remote_code=True`; here that flag lets it import the installed l3prune's class (the folder
holds no code; the model itself still loads with transformers' trust_remote_code off).

Prompts: each task (and task type) of the instruction table by name, and `<name>-document` empty,
so that mteb's prompt lookup gives documents no instruction, as l3prune's own evaluation does;
`default_prompt_name` is unset, so texts encoded without a prompt get none.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..encoder import LLMEncoder
from ..evaluation.instructions import DEFAULT_INSTRUCTIONS_FILE, InstructionTable, load_instruction_table
from ..files import atomic_output
from .common import check_new_output, load_merged


def task_prompts(table: InstructionTable) -> dict[str, str]:
    prompts = {}
    for name, instruction in {**table.task_types, **table.tasks}.items():
        prompts[name] = instruction
        prompts[f"{name}-document"] = ""
    return prompts


def write_sentence_transformers(
    encoder: LLMEncoder, folder: Path, instructions_file: str | Path = DEFAULT_INSTRUCTIONS_FILE
) -> None:
    """Write the sentence-transformers files of a merged `encoder` into `folder` (no model card)."""
    from sentence_transformers import SentenceTransformer

    from .st_module import LLMEncoderModule

    model = SentenceTransformer(
        modules=[LLMEncoderModule(encoder)],
        prompts=task_prompts(load_instruction_table(instructions_file)),
        default_prompt_name=None,
        similarity_fn_name="cosine",
        device=str(encoder.device),
    )
    model.save(str(folder), create_model_card=False)


def export_sentence_transformers(
    variant_dir: str | os.PathLike,
    out: str | os.PathLike,
    instructions_file: str | Path = DEFAULT_INSTRUCTIONS_FILE,
) -> Path:
    out = Path(out)
    check_new_output(out)
    encoder = load_merged(variant_dir)
    with atomic_output(out) as staging:
        staging.mkdir()
        write_sentence_transformers(encoder, staging, instructions_file)
    return out
