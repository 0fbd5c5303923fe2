import os
import sys
from pathlib import Path

# Tiny models gain nothing from a second thread, and on a busy 2-core machine the threads spin
# against each other (a 6-step training run: 1 s on one thread, 55 s on two). Subprocesses
# (torchrun, snakemake jobs) inherit the variable.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))

from tiny_models import save_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A function family -> folder of a saved tiny random model of that family (built once per session)."""
    root = tmp_path_factory.mktemp("tiny_models")
    made: dict[str, Path] = {}

    def get(family: str = "llama") -> Path:
        if family not in made:
            made[family] = save_tiny_model(family, root / family)
        return made[family]

    return get


@pytest.fixture(scope="session")
def tiny_llama(tiny_model_dir) -> Path:
    return tiny_model_dir("llama")
