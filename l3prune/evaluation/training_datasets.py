"""The mteb datasets a training set overlaps, for ModelMeta.training_datasets (mteb's leaderboard
marks a model as not zero-shot on those tasks).

The E5 / echo-data files by their sources, named as mteb names its tasks (the sets mteb records
for LLM2Vec and E5-Mistral, trained on the same data). A file with no mteb task is left out.
"""

from __future__ import annotations

E5_SOURCES: dict[str, tuple[str, ...]] = {
    "allnli": (),  # SNLI/MultiNLI: no mteb task
    "dureader": ("DuRetrieval",),
    "eli5_question_answer": (),
    "fever": ("FEVER", "FEVERHardNegatives", "NanoFEVERRetrieval"),
    "hotpot_qa": ("HotpotQA", "HotpotQAHardNegatives", "NanoHotpotQARetrieval"),
    "miracl": ("MIRACLRetrieval", "MIRACLRetrievalHardNegatives", "MIRACLReranking"),
    "mrtydi": ("MrTidyRetrieval",),
    "msmarco_passage": ("MSMARCO", "MSMARCOHardNegatives", "NanoMSMARCORetrieval"),
    "msmarco_document": ("MSMARCO", "MSMARCOHardNegatives", "NanoMSMARCORetrieval"),
    "nq": ("NQ", "NQHardNegatives", "NanoNQRetrieval"),
    "quora_duplicates": ("QuoraRetrieval", "NanoQuoraRetrieval"),
    "squad": ("XQuADRetrieval",),  # mteb's record for models trained on SQuAD
    "t2ranking": ("T2Reranking", "T2Retrieval"),
    "trivia_qa": (),
}
# dataset_name of a training config -> the mteb tasks its data overlaps
BY_DATASET: dict[str, set[str]] = {
    "E5": {task for tasks in E5_SOURCES.values() for task in tasks},
    "Wiki1M": set(),  # Wikipedia sentences, no labels of any task
}


def training_datasets(dataset_name: str | None) -> set[str] | None:
    """The mteb task names `dataset_name`'s data overlaps; None when unknown (a jsonl of one's own)."""
    found = BY_DATASET.get(dataset_name) if dataset_name else None
    return None if found is None else set(found)
