"""The JSON training config: the seed's keys, TrainingArguments fields, errors, and the variants."""

import json
from pathlib import Path

import pytest

from l3prune.config import TrainConfig, load_config, parse_config
from l3prune.variants import load_prune_points, variant_name, variant_names, variant_value, variants

CONFIGS = Path(__file__).parent.parent / "config" / "training"
PAPER = {  # base model, steps, whether the original wraps its inputs in the user turn
    "MetaLlama3": ("meta-llama/Meta-Llama-3-8B-Instruct", 1000, True),
    "Mistral": ("mistralai/Mistral-7B-Instruct-v0.2", 1000, True),
    "Qwen2": ("Qwen/Qwen2-7B-Instruct", 200, True),
    "Phi3": ("microsoft/Phi-3-mini-4k-instruct", 1000, False),
}
BASE = {"model_name_or_path": "m", "dataset_file_path": "d"}
POINTS = {"small": 7, "large": 20, "num_layers": 32}

# every key the seed's README and training script name, with a non-default value
SEED_CONFIG = {
    "model_name_or_path": "meta-llama/Meta-Llama-3-8B-Instruct",
    "pooling_mode": "mean",
    "max_seq_length": 256,
    "torch_dtype": "bfloat16",
    "attn_implementation": "sdpa",
    "dataset_name": "Wiki1M",
    "dataset_file_path": "cache/wiki1m_for_simcse.txt",
    "learning_rate": 0.0003,
    "num_train_epochs": 2,
    "warmup_steps": 100,
    "per_device_train_batch_size": 32,
    "per_device_eval_batch_size": 32,
    "gradient_accumulation_steps": 2,
    "gradient_checkpointing": True,
    "seed": 7,
    "use_adapter": False,
    "lora_r": 4,
    "lora_dropout": 0.1,
    "loss_scale": 20.0,
    "stop_after_n_steps": 50,
    "percent_prune": [25, 0.5],
    "autoprune": "all",
    "output_dir": "output/x",
    "save_steps": 20,
    "logging_steps": 5,
    "remove_unused_columns": False,
    "do_train": True,
    "disable_tqdm": False,
    "overwrite_output_dir": True,
    "bf16": True,
}


def write(tmp_path, data, name="c.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_every_seed_key_is_read(tmp_path):
    config = load_config(write(tmp_path, SEED_CONFIG))
    own = {
        k: getattr(config, k)
        for k in SEED_CONFIG
        if k in TrainConfig.__dataclass_fields__ and k != "training_args"
    }
    assert own == {k: SEED_CONFIG[k] for k in own}
    assert set(own) == {
        "model_name_or_path", "pooling_mode", "max_seq_length", "torch_dtype", "attn_implementation",
        "dataset_name", "dataset_file_path", "use_adapter", "lora_r", "lora_dropout", "loss_scale",
        "stop_after_n_steps", "percent_prune", "autoprune",
    }  # fmt: skip
    trainer_keys = set(SEED_CONFIG) - set(own) - {"overwrite_output_dir"}
    assert config.training_args == {k: SEED_CONFIG[k] for k in trainer_keys}
    assert config.seed == 7 and config.output_dir == "output/x"
    assert config.lora_scaling_alpha == 8  # 2 x lora_r by default
    assert config.source == str(tmp_path / "c.json")


def test_defaults_are_the_seeds():
    config = parse_config(BASE)
    assert (config.pooling_mode, config.max_seq_length, config.dataset_name) == ("weighted_mean", 512, "E5")
    assert (config.use_adapter, config.lora_r, config.lora_dropout, config.loss_scale) == (
        True,
        8,
        0.05,
        50.0,
    )
    assert (config.stop_after_n_steps, config.percent_prune, config.autoprune) == (None, [], None)
    assert config.seed == 42 and config.training_args == {}


def test_any_training_arguments_field_is_accepted():
    config = parse_config(
        {**BASE, "lr_scheduler_type": "cosine", "max_grad_norm": 0.5, "save_total_limit": 2}
    )
    assert config.training_args == {
        "lr_scheduler_type": "cosine",
        "max_grad_norm": 0.5,
        "save_total_limit": 2,
    }


@pytest.mark.parametrize("name", PAPER)
def test_paper_configs_parse_and_resolve(name):
    config = load_config(CONFIGS / f"{name}.json")
    model, stop, wrap = PAPER[name]
    assert config.model_name_or_path == model
    assert (config.lora_r, config.lora_scaling_alpha, config.lora_dropout) == (16, 32, 0.05)
    assert config.stop_after_n_steps == stop and config.autoprune == "small+large"
    assert (config.max_seq_length, config.torch_dtype, config.pooling_mode) == (
        512,
        "bfloat16",
        "weighted_mean",
    )
    assert (config.use_chat_template, config.skip_instruction, config.doc_max_length) == (wrap, True, 400)
    assert config.encoder_kwargs()["use_chat_template"] is wrap
    args = config.training_args
    assert (args["learning_rate"], args["warmup_steps"], args["per_device_train_batch_size"]) == (
        2e-4,
        300,
        64,
    )
    assert (args["bf16"], args["gradient_checkpointing"], args["save_steps"]) == (True, True, 200)
    assert variant_names(config) == ["full", "small", "large"]
    assert variants(config, POINTS) == {"full": None, "small": 7, "large": 20}


def test_demo_config_resolves():
    config = load_config(CONFIGS / "demo.json")
    assert config.model_name_or_path == "resources/demo/model" and config.dataset_name == "jsonl"
    assert variant_names(config) == ["full", "small", "large", "elastic"]
    assert {k: v for k, v in variants(config, {"small": 5, "large": 20, "num_layers": 30}).items() if k != "elastic"} == {
        "full": None,
        "small": 5,
        "large": 20,
    }


@pytest.mark.parametrize(
    "autoprune, names",
    [
        (None, ["full", "p25", "l8"]),
        ("small", ["full", "small"]),
        ("large", ["full", "large"]),
        ("small+large", ["full", "small", "large"]),
        ("all", ["full", "p25", "l8", "small", "large"]),
    ],
)
def test_autoprune_replaces_or_adds_to_percent_prune(autoprune, names):
    config = parse_config({**BASE, "percent_prune": [0.25, 8], "autoprune": autoprune})
    assert variant_names(config) == names
    values = {"full": None, "p25": 0.25, "l8": 8, "small": 7, "large": 20}
    assert variants(config, POINTS) == {name: values[name] for name in names}


def test_variant_names_of_prune_values():
    assert [variant_name(v) for v in (0.25, 0.5, 0.125, 8, 1)] == ["p25", "p50", "p12.5", "l8", "l1"]
    config = parse_config({**BASE, "percent_prune": [8.0, 0.3]})
    assert config.percent_prune == [8, 0.3] and variant_names(config) == ["full", "l8", "p30"]


def test_small_and_large_need_prune_points_but_others_do_not():
    config = parse_config({**BASE, "percent_prune": [0.25], "autoprune": "all"})
    assert variant_value(config, "full") is None and variant_value(config, "p25") == 0.25
    with pytest.raises(
        ValueError, match="variant 'small' \\(autoprune 'all'\\) needs L3Prune's prune points"
    ):
        variant_value(config, "small")
    with pytest.raises(ValueError, match="autoprune 'all'\\) needs L3Prune's prune points"):
        variants(config)
    with pytest.raises(
        ValueError, match=r"<config>: no variant 'p50'; this config has: full, p25, small, large"
    ):
        variant_value(config, "p50", POINTS)


def test_unknown_key_names_the_key_and_the_closest_valid_one(tmp_path):
    path = write(tmp_path, {**BASE, "lora_rank": 16})
    with pytest.raises(ValueError, match=f"^{path}: unknown key 'lora_rank'; did you mean 'lora_r'\\?"):
        load_config(path)
    with pytest.raises(ValueError, match="unknown key 'learning_rat'; did you mean 'learning_rate'\\?"):
        parse_config({**BASE, "learning_rat": 1e-4})
    with pytest.raises(ValueError, match="unknown key 'zzzzzz' \\(accepted: the seed's keys"):
        parse_config({**BASE, "zzzzzz": 1})


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"lora_r": "16"}, "key 'lora_r': '16' is not of type 'integer'"),
        ({"lora_r": 0}, "key 'lora_r': 0 is less than the minimum of 1"),
        ({"use_adapter": 1}, "key 'use_adapter': 1 is not of type 'boolean'"),
        ({"autoprune": "smal"}, "key 'autoprune': 'smal' is not one of"),
        ({"pooling_mode": "max"}, "key 'pooling_mode': 'max' is not one of"),
        (
            {"dataset_name": "MSMARCO"},
            "key 'dataset_name': 'MSMARCO' is not one of \\['E5', 'Wiki1M', 'jsonl'\\]",
        ),
        ({"percent_prune": 0.25}, "key 'percent_prune': 0.25 is not of type 'array'"),
        (
            {"percent_prune": [1.5]},
            "key 'percent_prune': 1.5 is neither a fraction in \\(0, 1\\) to drop nor a whole layer count",
        ),
        ({"percent_prune": [0]}, "key 'percent_prune\\[0\\]': 0 is less than or equal to the minimum of 0"),
        ({"percent_prune": [0.25, 0.25]}, "key 'percent_prune' asks for p25 more than once"),
    ],
)
def test_bad_values_name_the_key(extra, message):
    with pytest.raises(ValueError, match=f"^<config>: {message}"):
        parse_config({**BASE, **extra})


def test_missing_key_and_broken_json(tmp_path):
    with pytest.raises(ValueError, match="^<config>: 'dataset_file_path' is missing \\(a required key\\)$"):
        parse_config({"model_name_or_path": "m"})
    path = write(tmp_path, '{\n  "model_name_or_path": "m",\n  "lora_r": ,\n}')
    with pytest.raises(ValueError, match=f"^{path}:3:13: not valid JSON"):
        load_config(path)
    with pytest.raises(ValueError, match="a training config is a JSON object of keys, not a list"):
        parse_config([1, 2])
    with pytest.raises(FileNotFoundError, match="training config .*nope.json does not exist"):
        load_config(tmp_path / "nope.json")


def test_prune_points_file(tmp_path):
    path = write(tmp_path, {**POINTS, "losses": [1.0] * 32, "model": "m"}, "points.json")
    assert load_prune_points(path) == {**POINTS, "losses": [1.0] * 32, "model": "m"}
    path = write(tmp_path, {"small": 7, "num_layers": 32}, "bad.json")
    with pytest.raises(ValueError, match=f"^{path}: 'large' must be a positive layer count, got None$"):
        load_prune_points(path)
    path = write(tmp_path, {"small": 9, "large": 40, "num_layers": 32}, "bad2.json")
    with pytest.raises(
        ValueError, match="need small <= large <= num_layers, got small=9, large=40, num_layers=32"
    ):
        load_prune_points(path)


def test_remote_code_is_off_unless_the_config_opts_in():
    from l3prune.config import parse_config

    base = {"model_name_or_path": "m", "dataset_file_path": "d"}
    assert "trust_remote_code" not in parse_config(base).encoder_kwargs()  # the encoder's default: off
    assert parse_config(dict(base, trust_remote_code=True)).encoder_kwargs()["trust_remote_code"] is True


@pytest.mark.parametrize(
    "change, layerwise_changes, train_changes",
    [
        ({"logging_steps": 7, "save_steps": 3, "disable_tqdm": True, "output_dir": "elsewhere"}, False, False),
        ({"gradient_checkpointing": False, "loss_mini_batch_size": 8}, False, False),  # same gradients
        ({"autoprune": "small", "l3prune_num_batches": 3}, True, False),  # points reach training as layers
        ({"learning_rate": 0.001}, False, True),
        ({"lora_r": 8}, False, True),
        ({"pooling_mode": "eos_token"}, True, True),
        ({"seed": 1}, True, True),
        ({"use_chat_template": True}, True, True),
    ],
)
def test_step_settings_change_only_with_the_keys_that_change_the_step(change, layerwise_changes, train_changes):
    from l3prune.config import step_settings

    before = parse_config({**SEED_CONFIG, "autoprune": "small+large"})
    after = parse_config({**SEED_CONFIG, "autoprune": "small+large", **change})
    for step, changes in (("layerwise", layerwise_changes), ("train", train_changes)):
        assert (step_settings(before, step) != step_settings(after, step)) == changes, step
    assert step_settings(before, "train")["stop_after_n_steps"] == 50  # seed keys, defaults filled in
    assert step_settings(before, "train")["doc_max_length"] == 400


def test_reading_a_config_imports_neither_torch_nor_transformers_once_cached(tmp_path):
    """The workflow reads every model's config at each planning and in every cluster job."""
    import subprocess
    import sys

    code = (
        "import sys; from l3prune.config import load_config; from l3prune.variants import variant_names; "
        f"print(variant_names(load_config({str(CONFIGS / 'MetaLlama3.json')!r}))); "
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True) for _ in range(2)]
    assert [run.stdout.splitlines()[0] for run in runs] == ["['full', 'small', 'large']"] * 2
    assert runs[1].stdout.splitlines()[1] == "False False", runs[1].stderr
    assert list((tmp_path / "l3prune").glob("training-arguments-*.json"))
