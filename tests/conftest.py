import sys
from pathlib import Path

import pytest

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
