"""Training data: the E5/echo set, Wiki1M and local jsonl, in batches of one sub-dataset each."""

from .blocks import BlockedDataset
from .e5 import E5_INSTRUCTIONS, E5Data
from .jsonl import JsonlData
from .sample import TrainSample, batch_negatives
from .utils import DATASETS, load_dataset
from .wiki1m import Wiki1M

__all__ = [
    "DATASETS",
    "E5_INSTRUCTIONS",
    "BlockedDataset",
    "E5Data",
    "JsonlData",
    "TrainSample",
    "Wiki1M",
    "batch_negatives",
    "load_dataset",
]
