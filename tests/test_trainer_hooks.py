"""The private Trainer methods ContrastiveTrainer overrides (as sentence-transformers' trainer
does): a transformers release that renames them, changes what they take, or stops calling them
where checkpoints are saved and loaded fails here rather than silently skipping our code."""

import inspect

from transformers import Trainer

from l3prune.training.trainer import ContrastiveTrainer


def parameters(method) -> list[str]:
    return list(inspect.signature(method).parameters)


def test_the_overridden_private_methods_exist_with_the_arguments_we_take():
    assert parameters(Trainer._save) == ["self", "output_dir", "state_dict"]
    assert parameters(Trainer._load_from_checkpoint) == ["self", "resume_from_checkpoint", "model"]
    for name in ("_save", "_load_from_checkpoint"):
        assert getattr(ContrastiveTrainer, name) is not getattr(Trainer, name)
        assert parameters(getattr(ContrastiveTrainer, name)) == parameters(getattr(Trainer, name))


def test_the_trainer_still_saves_and_loads_checkpoints_through_them():
    assert "self._save(" in inspect.getsource(Trainer.save_model)
    assert "self._load_from_checkpoint(" in inspect.getsource(Trainer.train)


def test_no_other_private_trainer_method_is_overridden():
    ours = {name for name in vars(ContrastiveTrainer) if name.startswith("_") and not name.startswith("__")}
    private_of_trainer = {name for name in ours if hasattr(Trainer, name)}
    assert private_of_trainer == {"_save", "_load_from_checkpoint"}
