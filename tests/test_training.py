"""Contrastive LoRA training on tiny models: learning, schedule, progress, outputs, resume (only from
matching state), checkpoint rotation, NaN guard, CLI and its failure messages."""

import csv
import itertools
import json
import logging

import pytest
import torch
from safetensors.torch import load_file
from tiny_models import FAMILIES

from l3prune import LLMEncoder
from l3prune.config import load_config, parse_config
from l3prune.precision import resolve_precision
from l3prune.training import run as run_module
from l3prune.training.arguments import training_arguments
from l3prune.training.collator import ContrastiveCollator
from l3prune.training.lora import add_lora
from l3prune.training.run import train
from l3prune.training.trainer import COMPLETE_MARK, ContrastiveModel, ContrastiveTrainer, last_checkpoint

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron".split()
NUM_SAMPLES = 32


class Killed(Exception):
    """Stands in for the process being killed."""


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """A learnable task: the query names two words, the positive repeats them, the negative names others."""
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    topics = list(itertools.combinations(WORDS, 2))[:NUM_SAMPLES]
    with path.open("w") as f:
        for i, topic in enumerate(topics):
            other = topics[(i + 7) % NUM_SAMPLES]
            sample = {
                "query": f"{' '.join(topic)}?",
                "positive": f"the {' '.join(topic)} answer",
                "negative": f"the {' '.join(other)} answer",
            }
            f.write(json.dumps(sample) + "\n")
    return path


def make_config(model, data, out, **overrides):
    keys = dict(
        model_name_or_path=str(model),
        dataset_name="jsonl",
        dataset_file_path=str(data),
        max_seq_length=32,
        per_device_train_batch_size=4,
        learning_rate=2e-3,
        lora_r=4,
        lora_dropout=0.1,
        loss_scale=20.0,
        num_train_epochs=2,
        warmup_steps=2,
        stop_after_n_steps=6,
        save_steps=2,
        logging_steps=1,
        seed=3,
        disable_tqdm=True,
        output_dir=str(out),
    )
    return parse_config({**keys, **overrides})


def read_log(folder):
    with (folder / "training_log.csv").open() as f:
        return list(csv.DictReader(f))


def adapter(folder):
    return load_file(folder / "adapter_model.safetensors")


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=0, msg=key)


@pytest.fixture(scope="module")
def reference(tiny_llama, pairs, tmp_path_factory):
    """An uninterrupted 6-step run of the full tiny model (checkpoints every 2 steps)."""
    out = tmp_path_factory.mktemp("reference")
    return train(make_config(tiny_llama, pairs, out), variant="full")["full"]


# ---------------------------------------------------------------- LoRA, collator, arguments


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_wraps_every_linear_projection_of_every_layer(tiny_model_dir, family):
    from peft.tuners.lora import Linear as LoraLinear

    encoder = LLMEncoder.from_pretrained(tiny_model_dir(family))
    linear = {
        n
        for n, m in encoder.model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layers." in f".{n}"
    }
    assert len(linear) >= 4 * encoder.num_layers  # Phi-3 fuses q/k/v and gate/up: 4 per layer, others 7
    trainable = add_lora(encoder, r=4, alpha=8, dropout=0.0)
    wrapped = {
        n.removeprefix("base_model.model.")
        for n, m in encoder.model.named_modules()
        if isinstance(m, LoraLinear)
    }
    assert wrapped == linear
    lora_a = [m.lora_A["default"] for n, m in encoder.model.named_modules() if isinstance(m, LoraLinear)]
    assert trainable == sum(p.numel() for p in encoder.model.parameters() if p.requires_grad) > 0
    assert all(a.out_features == 4 for a in lora_a)
    assert next(iter(encoder.model.peft_config.values())).lora_alpha == 8


def test_lora_refuses_an_unknown_family(tiny_llama):
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    encoder.model.config.model_type = "gpt2"
    with pytest.raises(
        ValueError, match="no LoRA target modules known for model type 'gpt2'; supported: llama, "
    ):
        add_lora(encoder, 4, 8, 0.0)


def test_collator_tokenizes_each_column_as_the_encoder_does(tiny_llama):
    from l3prune.dataset.sample import TrainSample

    encoder = LLMEncoder.from_pretrained(tiny_llama)
    samples = [TrainSample(["Retrieve", "a query"], "a passage", "other"), TrainSample("q2", "p2 text", "n2")]
    batch = ContrastiveCollator(encoder.tokenize)(samples)
    for column, texts in zip(("query", "positive", "negative"), zip(*samples, strict=True), strict=True):
        want = encoder.tokenize(list(texts))
        assert batch[column].keys() == want.keys()
        assert all(torch.equal(batch[column][k], want[k]) for k in want)
    no_negatives = ContrastiveCollator(encoder.tokenize)([TrainSample("q", "p"), TrainSample("q2", "p2")])
    assert set(no_negatives) == {"query", "positive"}
    with pytest.raises(ValueError, match="mixes 1 samples with a hard negative and 1 without"):
        ContrastiveCollator(encoder.tokenize)([TrainSample("q", "p", "n"), TrainSample("q2", "p2")])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU precision fallback")
@pytest.mark.parametrize("name", ["MetaLlama3", "Mistral", "Qwen2", "Phi3"])
def test_paper_configs_build_training_arguments_on_cpu(name, tmp_path):
    config = load_config(f"config/training/{name}.json")
    dtype, bf16, fp16 = resolve_precision(config)
    assert (dtype, bf16, fp16) == ("float32", False, False)  # no GPU: bfloat16 falls back to float32
    args = training_arguments(config, tmp_path / "ckpt", bf16, fp16)
    assert args.output_dir == str(tmp_path / "ckpt") and args.train_sampling_strategy == "sequential"
    assert (args.learning_rate, args.warmup_steps, args.per_device_train_batch_size) == (2e-4, 300, 64)
    assert args.activation_checkpointing is True and args.save_steps == 200 and args.seed == 42


def test_training_arguments_refuse_what_breaks_contrastive_batches(tiny_llama, pairs, tmp_path):
    config = make_config(tiny_llama, pairs, tmp_path, train_sampling_strategy="random")
    with pytest.raises(ValueError, match="key 'train_sampling_strategy' must be 'sequential'"):
        training_arguments(config, tmp_path, False, False)
    config = make_config(tiny_llama, pairs, tmp_path, resume_from_checkpoint="x")
    with pytest.raises(ValueError, match="remove key 'resume_from_checkpoint': a run resumes by itself"):
        training_arguments(config, tmp_path, False, False)


# ---------------------------------------------------------------- training runs


def test_loss_falls_on_a_learnable_task(tiny_llama, pairs, tmp_path):
    config = make_config(
        tiny_llama, pairs, tmp_path, lora_r=8, num_train_epochs=4, stop_after_n_steps=None,
        lora_dropout=0.0, save_steps=100, warmup_steps=0,
    )  # fmt: skip
    folder = train(config, variant="full")["full"]
    losses = [float(row["loss"]) for row in read_log(folder)]
    per_epoch = NUM_SAMPLES // 4
    assert len(losses) == 4 * per_epoch
    first, last = sum(losses[:per_epoch]) / per_epoch, sum(losses[-per_epoch:]) / per_epoch
    # the pairs are learnable: four epochs must cut the mean loss well below its first epoch's
    assert last < 0.3 * first, (first, last)


def test_step_one_loss_is_the_scaled_hard_negative_loss_of_the_base_model(tiny_llama, pairs, tmp_path):
    from l3prune.dataset.utils import load_dataset
    from l3prune.loss import HardNegativeNLLLoss

    config = make_config(
        tiny_llama, pairs, tmp_path, loss_scale=35.0, lora_dropout=0.0, pooling_mode="mean",
        stop_after_n_steps=1, save_steps=10,
    )  # fmt: skip
    logged = float(read_log(train(config, variant="full")["full"])[0]["loss"])
    # LoRA's B starts at zero, so step 1's forward is the base model's; the tiny model has no
    # dropout, so eval mode gives what training mode gave
    base = LLMEncoder.from_pretrained(tiny_llama, pooling_mode="mean", max_length=32)
    assert base.model.config.attention_dropout == 0.0
    base.eval()
    # the trainer reads the dataset in order: batch 1 is samples 0..3 of the seeded blocks of 4
    dataset = load_dataset("jsonl", file_path=pairs, effective_batch_size=4, seed=3)
    samples = [dataset[i] for i in range(4)]
    assert all(s.negative is not None for s in samples)
    with torch.no_grad():
        query, positive, negative = (
            base(base.tokenize([getattr(s, column) for s in samples]))
            for column in ("query", "positive", "negative")
        )
        want = HardNegativeNLLLoss(scale=35.0)(query, positive, negative).item()
        # the negatives and the scale each change the loss: a run that dropped either differs
        assert abs(HardNegativeNLLLoss(scale=35.0)(query, positive).item() - want) > 1e-3 * want
        assert abs(HardNegativeNLLLoss()(query, positive, negative).item() - want) > 1e-3 * want
    # the trainer's step-1 loss is this computation on the same inputs: only rounding may differ
    assert logged == pytest.approx(want, rel=1e-6)


def test_final_folder_holds_encoder_log_and_model_info(reference, tiny_llama, pairs):
    # no checkpoints, no optimizer state: the work folder is removed once the final folder is in place
    assert sorted(p.name for p in reference.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "l3prune_encoder.json",
        "model_info.json", "tokenizer.json", "tokenizer_config.json", "training_log.csv",
    ]  # fmt: skip
    assert sorted(p.name for p in reference.parent.iterdir()) == ["full"]
    base = LLMEncoder.from_pretrained(tiny_llama)
    info = json.loads((reference / "model_info.json").read_text())
    assert 0 < info.pop("train_seconds") < 600  # the wall-clock time of training, for the report
    assert info == {
        "variant": "full",
        "base_model": str(tiny_llama),
        "prune": None,
        "layers_before": 4,
        "layers_after": 4,
        "params_before": base.num_parameters(),
        "params_after": base.num_parameters(),
        "trainable_params": sum(t.numel() for t in adapter(reference).values()),
        "steps": 6,
        "resumed_from_step": 0,
        "elastic_depths": None,
        "prune_points": None,
    }
    rows = read_log(reference)
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(
        float(r["loss"]) > 0 and float(r["samples_per_second"]) > 0 and float(r["grad_norm"]) > 0
        for r in rows
    )
    # the trained encoder loads back, adapter attached, and differs from the base model
    trained = LLMEncoder.from_pretrained(reference)
    assert trained.has_adapter and trained.num_layers == 4
    assert not torch.allclose(trained.encode(["alpha question"]), base.encode(["alpha question"]))


def test_warmup_then_linear_decay_stopped_after_n_steps(reference):
    lr, warmup, total = 2e-3, 2, 2 * (NUM_SAMPLES // 4)  # the schedule spans num_train_epochs, not the stop
    want = [lr * (k / warmup if k < warmup else (total - k) / (total - warmup)) for k in range(6)]
    got = [float(row["learning_rate"]) for row in read_log(reference)]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12)


def test_the_progress_bar_counts_to_the_step_limit(reference, tiny_llama, pairs, tmp_path, capsys):
    import re

    # 2 epochs of 8 batches: the schedule spans 16 steps, the run stops after 6
    config = make_config(tiny_llama, pairs, tmp_path, disable_tqdm=False)
    capsys.readouterr()
    folder = train(config, variant="full")["full"]
    totals = set(re.findall(r"\| *\d+/(\d+) \[", capsys.readouterr().err)) - {"38"}  # 38: loading weights
    assert totals == {"6"}
    # the learning rate still follows the 16-step schedule (test_warmup_then_linear_decay_...)
    assert [r["learning_rate"] for r in read_log(folder)] == [r["learning_rate"] for r in read_log(reference)]


def test_a_variant_trained_at_64_tokens_is_saved_with_the_inference_length(tiny_llama, tmp_path, monkeypatch):
    long = " ".join(WORDS * 10)  # 120 words: longer than 64 tokens
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps({"query": f"{i} {long}", "positive": long}) + "\n" for i in range(8)))
    seen = []
    compute_loss = ContrastiveTrainer.compute_loss

    def spy(self, model, inputs, *args, **kwargs):
        seen.append((self.encoder.max_length, inputs["query"]["input_ids"].shape[1]))
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(ContrastiveTrainer, "compute_loss", spy)
    config = make_config(tiny_llama, data, tmp_path, max_seq_length=64, stop_after_n_steps=1, save_steps=10)
    folder = train(config, variant="full")["full"]
    assert seen == [(64, 64)]  # trained on inputs cut to max_seq_length
    assert json.loads((folder / "l3prune_encoder.json").read_text())["max_length"] == 512
    assert LLMEncoder.from_pretrained(folder).tokenize([long])["input_ids"].shape[1] > 64


def test_pruned_variant_loads_only_the_kept_layers(tiny_llama, pairs, tmp_path):
    config = make_config(
        tiny_llama, pairs, tmp_path, percent_prune=[0.5], stop_after_n_steps=1, save_steps=10
    )
    folders = train(config, variant="p50")
    info = json.loads((folders["p50"] / "model_info.json").read_text())
    pruned = LLMEncoder.from_pretrained(tiny_llama, num_layers=2)
    assert (info["layers_before"], info["layers_after"], info["prune"]) == (4, 2, 0.5)
    assert info["params_after"] == pruned.num_parameters() < info["params_before"]
    assert LLMEncoder.from_pretrained(folders["p50"]).num_layers == 2


def kill_in_step_4(config, variant="full"):
    """Train `variant` of `config` until it is killed in step 4 (after checkpoint-2); return its work folder."""
    from pathlib import Path

    compute_loss = ContrastiveTrainer.compute_loss

    def killed_in_step_4(self, *args, **kwargs):
        if self.state.global_step == 3:
            raise Killed
        return compute_loss(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(ContrastiveTrainer, "compute_loss", killed_in_step_4)
        train(config, variant=variant)
    return Path(config.output_dir) / f"{variant}.partial"


def test_resume_after_a_kill_gives_the_uninterrupted_weights(reference, tiny_llama, pairs, tmp_path, caplog):
    config = make_config(tiny_llama, pairs, tmp_path)
    work = kill_in_step_4(config)
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["checkpoint-2"]
    assert not (tmp_path / "full").exists()
    with caplog.at_level(logging.INFO, logger="l3prune"):
        train(config, variant="full")
    assert f"resuming from {work / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    assert_same_weights(adapter(tmp_path / "full"), adapter(reference))
    assert [r["step"] for r in read_log(tmp_path / "full")] == ["1", "2", "3", "4", "5", "6"]


def test_the_work_folder_records_what_it_is_trained_for(tiny_llama, pairs, tmp_path):
    from l3prune.config import step_settings

    config = make_config(tiny_llama, pairs, tmp_path, percent_prune=[0.5], gradient_accumulation_steps=2)
    work = kill_in_step_4(config, "p50")
    assert (work / "checkpoints" / "checkpoint-2").is_dir()
    record = json.loads((work / "run.json").read_text())
    settings = step_settings(config, "train")
    assert record == {
        "variant": "p50", "prune": 0.5, "layers": 2, "world_size": 1, "global_batch": 8,
        "settings": json.loads(json.dumps(settings)),
    }  # fmt: skip
    assert settings["learning_rate"] == 2e-3 and "logging_steps" not in settings


def test_a_rerun_with_other_settings_sets_the_checkpoints_aside_and_trains_afresh(
    tiny_llama, pairs, tmp_path, caplog
):
    work = kill_in_step_4(make_config(tiny_llama, pairs, tmp_path))
    assert (work / "checkpoints" / "checkpoint-2").is_dir()
    changed = make_config(tiny_llama, pairs, tmp_path, learning_rate=1e-3, lora_dropout=0.0)
    with caplog.at_level(logging.INFO, logger="l3prune"):
        train(changed, variant="full")
    (stale,) = tmp_path.glob("full.partial.stale-*")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", stale.name]
    assert sorted(p.name for p in (stale / "checkpoints").iterdir()) == ["checkpoint-2"]
    (line,) = [r.getMessage() for r in caplog.records if "not resuming" in r.getMessage()]
    assert line == (
        f"variant full: not resuming {work}: it was trained with other settings "
        f"(learning_rate: 0.002 -> 0.001, lora_dropout: 0.1 -> 0.0); moved it to {stale} and training afresh"
    )
    assert "resuming from" not in caplog.text
    # the same weights as a run of the new settings that never saw the old checkpoints
    never_saw_them = make_config(tiny_llama, pairs, tmp_path / "fresh", learning_rate=1e-3, lora_dropout=0.0)
    fresh = train(never_saw_them, variant="full")["full"]
    assert_same_weights(adapter(tmp_path / "full"), adapter(fresh))
    assert [r["step"] for r in read_log(tmp_path / "full")] == ["1", "2", "3", "4", "5", "6"]


def test_a_work_folder_without_a_record_is_set_aside(tiny_llama, pairs, tmp_path, monkeypatch, caplog):
    config = make_config(tiny_llama, pairs, tmp_path)
    work = kill_in_step_4(config)
    (work / "run.json").unlink()  # a work folder without run.json: its settings are unknown
    resumed = []
    real_train = ContrastiveTrainer.train

    def spy(self, resume_from_checkpoint=None, **kwargs):
        resumed.append(resume_from_checkpoint)
        return real_train(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(ContrastiveTrainer, "train", spy)
    with caplog.at_level(logging.INFO, logger="l3prune"):
        train(config, variant="full")
    assert resumed == [None]
    (stale,) = tmp_path.glob("full.partial.stale-*")
    assert f"not resuming {work}: it has no run.json, so its settings are unknown" in caplog.text
    assert (stale / "checkpoints" / "checkpoint-2").is_dir()


def test_claiming_a_work_folder_compares_processes_batch_and_prune_value(tmp_path, caplog):
    from l3prune.training.run_record import claim_work_folder, write_record

    settings = {"learning_rate": 0.1, "seed": 3}
    old = dict(variant="l2", prune=2, layers=2, world_size=2, global_batch=8, settings=settings)
    work = tmp_path / "l2.partial"
    (work / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    write_record(work, old)
    claim_work_folder(work, old)  # the same record: kept as it is
    assert (work / "checkpoints" / "checkpoint-1").is_dir()
    new = {**old, "world_size": 1, "global_batch": 4}
    with caplog.at_level(logging.INFO, logger="l3prune"):
        claim_work_folder(work, new)
    assert not work.exists()
    assert "other settings (global_batch: 8 -> 4, world_size: 2 -> 1)" in caplog.text
    # a folder with no checkpoint holds nothing to continue: removed, not set aside
    write_record(work, {**old, "prune": 3, "layers": 3})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="l3prune"):
        claim_work_folder(work, old)
    assert not work.exists() and len(list(tmp_path.glob("l2.partial.stale-*"))) == 1
    assert "removed" in caplog.text and "(layers: 3 -> 2, prune: 3 -> 2)" in caplog.text


@pytest.mark.parametrize(
    "changed",
    [dict(logging_steps=2, save_steps=3, gradient_checkpointing=True), dict(loss_mini_batch_size=2)],
    ids=["logging-saving-checkpointing", "cached-loss"],
)
def test_changing_only_how_a_run_logs_saves_or_saves_memory_resumes(
    reference, tiny_llama, pairs, tmp_path, caplog, changed
):
    work = kill_in_step_4(make_config(tiny_llama, pairs, tmp_path))
    with caplog.at_level(logging.INFO, logger="l3prune"):
        train(make_config(tiny_llama, pairs, tmp_path, **changed), variant="full")
    assert f"resuming from {work / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    assert "not resuming" not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]
    if "loss_mini_batch_size" not in changed:  # the cached loss draws its dropout masks per mini-batch
        assert_same_weights(adapter(tmp_path / "full"), adapter(reference))


def test_a_half_written_checkpoint_is_never_resumed_from(reference, tiny_llama, pairs, tmp_path, monkeypatch):
    config = make_config(tiny_llama, pairs, tmp_path)
    save_rest = ContrastiveTrainer._save_optimizer_and_scheduler

    def killed_while_saving_4(self, output_dir):
        if self.state.global_step == 4:
            raise Killed  # the adapter of checkpoint 4 is written, its optimizer state is not
        save_rest(self, output_dir)

    monkeypatch.setattr(ContrastiveTrainer, "_save_optimizer_and_scheduler", killed_while_saving_4)
    with pytest.raises(Killed):
        train(config, variant="full")
    checkpoints = tmp_path / "full.partial" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2", "checkpoint-4"]
    assert (checkpoints / "checkpoint-4" / "adapter_model.safetensors").is_file()  # half written: unmarked
    assert [(p / COMPLETE_MARK).is_file() for p in sorted(checkpoints.iterdir())] == [True, False]
    assert last_checkpoint(checkpoints) == str(checkpoints / "checkpoint-2")
    monkeypatch.undo()
    train(config, variant="full")
    assert_same_weights(adapter(tmp_path / "full"), adapter(reference))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_killed_after_the_last_step_finishes_from_the_checkpoint(
    reference, tiny_llama, pairs, tmp_path, monkeypatch
):
    config = make_config(tiny_llama, pairs, tmp_path)

    def killed(*args):
        raise Killed

    monkeypatch.setattr(run_module, "_finish", killed)
    with pytest.raises(Killed):
        train(config, variant="full")
    # checkpoints every 2 of 6 steps; the last two are kept, each a loadable encoder with its optimizer state
    checkpoints = tmp_path / "full.partial" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-4", "checkpoint-6"]
    assert (checkpoints / "checkpoint-6" / "optimizer.pt").is_file()
    assert LLMEncoder.from_pretrained(checkpoints / "checkpoint-4").has_adapter
    monkeypatch.undo()
    monkeypatch.setattr(ContrastiveTrainer, "train", killed)  # no training step may run again
    train(config, variant="full")
    assert_same_weights(adapter(tmp_path / "full"), adapter(reference))
    assert json.loads((tmp_path / "full" / "model_info.json").read_text())["steps"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]


def test_a_config_that_sets_save_total_limit_keeps_that_many(tiny_llama, pairs, tmp_path, monkeypatch):
    def killed(*args):
        raise Killed

    monkeypatch.setattr(run_module, "_finish", killed)
    for limit, kept in ((3, [2, 4, 6]), (None, [2, 4, 6]), (1, [6])):  # None: every checkpoint
        config = make_config(tiny_llama, pairs, tmp_path / str(limit), save_total_limit=limit)
        with pytest.raises(Killed):
            train(config, variant="full")
        checkpoints = tmp_path / str(limit) / "full.partial" / "checkpoints"
        assert sorted(p.name for p in checkpoints.iterdir()) == [f"checkpoint-{n}" for n in kept]


def test_a_stop_step_off_the_save_steps_is_checkpointed_and_finished_from(
    tiny_llama, pairs, tmp_path, monkeypatch
):
    config = make_config(tiny_llama, pairs, tmp_path, stop_after_n_steps=3, save_steps=2)
    work = tmp_path / "full.partial"
    trained = {}
    finish, write_json = run_module._finish, run_module.write_json

    def killed_while_writing_the_final_folder(encoder, *args):
        trained.update({k: v.detach().clone() for k, v in encoder.model.state_dict().items() if "lora" in k})
        monkeypatch.setattr(run_module, "write_json", killed)  # model_info.json, after the encoder is saved
        finish(encoder, *args)

    def killed(*args):
        raise Killed

    monkeypatch.setattr(run_module, "_finish", killed_while_writing_the_final_folder)
    with pytest.raises(Killed):
        train(config, variant="full")
    assert sorted(p.name for p in (work / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]
    # the half-written final folder stays inside the work folder; nothing at the final name
    assert (work / ".final" / "adapter_model.safetensors").is_file()
    assert not (work / ".final" / "model_info.json").exists() and not (tmp_path / "full").exists()
    monkeypatch.setattr(run_module, "_finish", finish)
    monkeypatch.setattr(run_module, "write_json", write_json)

    def must_not_train(*args, **kwargs):
        raise AssertionError("step 3 was trained again")

    monkeypatch.setattr(ContrastiveTrainer, "train", must_not_train)
    folder = train(config, variant="full")["full"]
    assert json.loads((folder / "model_info.json").read_text())["steps"] == 3
    # the finished adapter is the one step 3 trained, as the killed run held it
    restored = LLMEncoder.from_pretrained(folder).model.state_dict()
    assert len(trained) > 0
    assert_same_weights({k: restored[k] for k in trained}, trained, atol=0)


def test_a_finished_variant_is_skipped_and_a_stray_folder_refused(
    reference, tiny_llama, pairs, monkeypatch, tmp_path
):
    def must_not_train(*args, **kwargs):
        raise AssertionError("a finished variant was trained again")

    monkeypatch.setattr(run_module, "train_variant", must_not_train)
    config = make_config(tiny_llama, pairs, reference.parent)
    assert train(config, variant="full") == {"full": reference}
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="stray exists but is not a finished variant"):
        train(config, variant="full", output_dir=tmp_path / "stray")
    with pytest.raises(ValueError, match="no variant 'small'; this config has: full"):
        train(config, variant="small")


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_llama, pairs, tmp_path, monkeypatch):
    real_load_loss = run_module.load_loss

    class NaNAtStep4(torch.nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            self.loss = real_load_loss("HardNegativeNLLLoss", **kwargs)
            self.calls = 0

        def forward(self, *embeddings):
            self.calls += 1
            loss = self.loss(*embeddings)
            return loss * float("nan") if self.calls == 4 else loss

    monkeypatch.setattr(run_module, "load_loss", lambda name, **kwargs: NaNAtStep4(**kwargs))
    checkpoints = tmp_path / "full.partial" / "checkpoints"
    with pytest.raises(
        ValueError,
        match=f"^training loss is nan at step 4; stopped before applying it. Last good checkpoint: {checkpoints / 'checkpoint-2'}\\. ",
    ):
        train(make_config(tiny_llama, pairs, tmp_path), variant="full")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-2"]
    assert all(torch.isfinite(t).all() for t in adapter(checkpoints / "checkpoint-2").values())
    assert not (tmp_path / "full").exists()


def test_gradient_checkpointing_is_switched_on_and_leaves_the_trained_weights_as_they_are(
    tiny_llama, pairs, tmp_path, monkeypatch
):
    """What it saves in memory is measured by bench/train.py (b), not here."""
    enabled = []
    enable = ContrastiveModel.activation_checkpointing_enable

    def spy(self, *args, **kwargs):
        enable(self, *args, **kwargs)
        enabled.append(self.encoder.model.get_base_model().is_activation_checkpointing)

    monkeypatch.setattr(ContrastiveModel, "activation_checkpointing_enable", spy)
    folders = {}
    for on in (False, True):
        config = make_config(
            tiny_llama,
            pairs,
            tmp_path / str(on),
            gradient_checkpointing=on,
            stop_after_n_steps=2,
            lora_dropout=0.0,
        )
        folders[on] = train(config, variant="full")["full"]
    assert enabled == [True]
    assert_same_weights(adapter(folders[True]), adapter(folders[False]), atol=1e-6)


def test_cli_trains_one_variant_into_the_given_folder(tiny_llama, pairs, tmp_path, capsys):
    from l3prune.cli import main

    config = json.loads(json.dumps(make_config(tiny_llama, pairs, tmp_path).training_args))
    path = tmp_path / "config.json"
    keys = dict(
        model_name_or_path=str(tiny_llama), dataset_name="jsonl", dataset_file_path=str(pairs), lora_r=4
    )
    path.write_text(json.dumps({**keys, **config, "percent_prune": [1], "stop_after_n_steps": 1}))
    out = tmp_path / "exactly-here"
    assert main(["train", str(path), "--variant", "l1", "--output-dir", str(out)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"l1\t{out}"  # after the Trainer's log lines
    assert LLMEncoder.from_pretrained(out).num_layers == 1
    path.write_text(json.dumps({**keys, "lora_rank": 4}))
    capsys.readouterr()
    assert main(["train", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(
        f"l3prune: error: {path}: unknown key 'lora_rank'; did you mean 'lora_r'? (accepted: "
    )
    assert (
        error.count("\n") == 1 and "lora_r, " in error and "any transformers TrainingArguments field" in error
    )


def write_cli_config(tiny_llama, pairs, tmp_path, **keys):
    """A training config file for the CLI (make_config's keys with `keys` changed); its path."""
    config = make_config(tiny_llama, pairs, tmp_path / "unused", **keys)
    own = dict(
        model_name_or_path=str(tiny_llama), dataset_name="jsonl", dataset_file_path=str(pairs), lora_r=4,
        stop_after_n_steps=config.stop_after_n_steps,
    )  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**own, **config.training_args}))
    return path


MEMORY_HINT = (
    "out of memory: lower per_device_train_batch_size, set loss_mini_batch_size, turn on gradient_checkpointing "
    "or lower max_seq_length in the training config (l3prune_batch_size, when train runs L3Prune itself)"
)
BUG_HINT = "unexpected, likely a bug in l3prune: please report it with the traceback above"


@pytest.mark.parametrize(
    "error, summary, hint",
    [
        (
            torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB.\nGPU 0 has 39.4 GiB in all"
            ),
            "OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
            MEMORY_HINT,
        ),
        (KeyError("query"), "KeyError: 'query'", BUG_HINT),
        (
            torch.distributed.DistBackendError(
                "NCCL error in: ProcessGroupNCCL.cpp:1, unhandled system error"
            ),
            "DistBackendError: NCCL error in: ProcessGroupNCCL.cpp:1, unhandled system error",
            "a failure between processes (torch.distributed / NCCL): the earliest traceback in the job log "
            "is the process that failed first; check that every process started and can reach the others",
        ),
    ],
    ids=["out-of-memory", "bug", "nccl"],
)
def test_cli_an_unexpected_failure_prints_its_traceback_then_what_to_do(
    tiny_llama, pairs, tmp_path, capsys, monkeypatch, error, summary, hint
):
    from l3prune.cli import main

    def fails_in_training(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(ContrastiveTrainer, "compute_loss", fails_in_training)
    path, out = write_cli_config(tiny_llama, pairs, tmp_path), tmp_path / "out"
    assert main(["train", str(path), "--variant", "full", "--output-dir", str(out)]) == 1
    lines = capsys.readouterr().err.splitlines()
    start = lines.index("Traceback (most recent call last):")  # after the weights' loading bars
    assert any("in fails_in_training" in line for line in lines[start:])  # the whole traceback, to the raise
    assert any(line.endswith(summary) for line in lines[start:-1])  # the traceback's own error line
    assert lines[-1] == (
        f"l3prune: error: l3prune train on variant full of {path} (into {out}) failed ({summary}); {hint}"
    )
    assert not out.exists() and not out.with_name("out.partial").exists()  # nothing to resume from


def test_cli_a_reported_failure_and_a_user_error_stay_one_line(
    tiny_llama, pairs, tmp_path, capsys, monkeypatch
):
    from l3prune.cli import main
    from l3prune.errors import ReportedFailure

    path = write_cli_config(tiny_llama, pairs, tmp_path)
    for error, code in ((ReportedFailure("2 of 41 tasks failed: A, B; rerun to run only the rest"), 2),
                        (FileNotFoundError("data file x.jsonl does not exist"), 2)):  # fmt: skip

        def fails(*args, error=error, **kwargs):
            raise error

        monkeypatch.setattr(run_module, "train", fails)
        assert main(["train", str(path)]) == code
        assert capsys.readouterr().err == f"l3prune: error: {error}\n"


def test_cli_failure_line_names_each_commands_memory_settings():
    from argparse import Namespace

    from l3prune.cli import failure_line

    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
    evaluate = Namespace(command="evaluate", variant="results/m/small/model")
    assert failure_line(evaluate, oom) == (
        "l3prune evaluate on variant results/m/small/model failed (OutOfMemoryError: CUDA out of memory. "
        "Tried to allocate 1 GiB); out of memory: lower --batch-size (or the tasks file's batch_size)"
    )
    layerwise = Namespace(command="layerwise-loss", config="m.json")
    cpu = RuntimeError(
        "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"
    )
    assert failure_line(layerwise, cpu).endswith("; out of memory: lower --batch-size")
    assert failure_line(layerwise, cpu).startswith(
        "l3prune layerwise-loss on m.json failed (RuntimeError: [enforce"
    )
    train_all = Namespace(command="train", config="m.json", variant=None, output_dir=None)
    assert failure_line(train_all, ValueError()).startswith(
        "l3prune train on the variants of m.json failed (ValueError); "
    )


def test_autoprune_runs_l3prune_first_and_trains_its_pick(tiny_llama, pairs, tmp_path):
    from l3prune import l3prune
    from l3prune.dataset.utils import load_dataset
    from l3prune.loss.utils import load_loss

    config = make_config(
        tiny_llama, pairs, tmp_path, autoprune="small", l3prune_batch_size=4, l3prune_num_batches=3,
        stop_after_n_steps=1, save_steps=10,
    )  # fmt: skip
    info = json.loads((train(config, variant="small")["small"] / "model_info.json").read_text())
    dataset = load_dataset("jsonl", file_path=pairs, effective_batch_size=4, seed=3)
    encoder = LLMEncoder.from_pretrained(tiny_llama, max_length=32)
    points = l3prune(
        encoder, dataset, load_loss("HardNegativeNLLLoss", scale=20.0), batch_size=4, num_batches=3
    )
    assert info["prune_points"] == {"small": points.small, "large": points.large, "num_layers": 4}
    assert info["layers_after"] == info["prune"] == points.small
    with pytest.raises(
        ValueError, match="prune points were computed for a 30-layer model, but .* has 4 layers"
    ):
        train(
            config,
            variant="small",
            prune_points={"small": 2, "large": 20, "num_layers": 30},
            output_dir=tmp_path / "x",
        )


def test_full_fine_tuning_without_adapter_saves_and_resumes_all_weights(
    tiny_llama, pairs, tmp_path, monkeypatch
):
    from l3prune.training.trainer import load_checkpoint_weights

    config = make_config(
        tiny_llama, pairs, tmp_path, use_adapter=False, stop_after_n_steps=2, learning_rate=1e-3
    )
    held = {}

    def killed_before_the_final_folder(encoder, *args):
        held.update({k: v.detach().clone() for k, v in encoder.model.state_dict().items()})
        raise Killed

    monkeypatch.setattr(run_module, "_finish", killed_before_the_final_folder)
    with pytest.raises(Killed):
        train(config, variant="full")
    monkeypatch.undo()
    # the checkpoint holds every weight as training left it
    restored = LLMEncoder.from_pretrained(tiny_llama)
    load_checkpoint_weights(restored.model, tmp_path / "full.partial" / "checkpoints" / "checkpoint-2")
    got = restored.model.state_dict()
    assert held.keys() == got.keys()
    assert all(torch.equal(held[k], got[k]) for k in held)
    folder = train(config, variant="full")["full"]  # finished from that checkpoint
    assert not (folder / "adapter_config.json").exists()
    trained = LLMEncoder.from_pretrained(folder)
    info = json.loads((folder / "model_info.json").read_text())
    assert (
        not trained.has_adapter
        and info["trainable_params"] == info["params_after"] == trained.num_parameters()
    )
    want = trained.model.state_dict()
    assert want.keys() == held.keys()
    assert all(torch.equal(want[k], held[k]) for k in want)
    assert not torch.equal(
        want["layers.0.mlp.up_proj.weight"],
        LLMEncoder.from_pretrained(tiny_llama).model.state_dict()["layers.0.mlp.up_proj.weight"],
    )


@pytest.mark.parametrize("option", ["--warmup", "--steps"])
def test_training_benchmark_refuses_a_step_count_it_cannot_time(option):
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "bench" / "train.py"
    result = subprocess.run([sys.executable, str(bench), option, "0"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"train.py: error: argument {option}: must be at least 1, got 0"
