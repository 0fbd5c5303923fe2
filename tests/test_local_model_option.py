"""`--model PATH` of `l3prune layerwise-loss` and `l3prune train`: the workflow's jobs load the
downloaded folder of a config's hub model, offline, instead of asking the hub."""

import json

import pytest

from l3prune.cli import main

HUB_NAME = "org/tiny-llama-not-on-this-machine"


@pytest.fixture
def configs(tiny_llama, tmp_path):
    """The same training config twice: naming a hub model, and naming the local folder."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"query": f"question {i}", "positive": f"answer {i} text", "negative": f"other {i}"})
            + "\n"
            for i in range(8)
        )
    )
    config = dict(
        dataset_name="jsonl",
        dataset_file_path=str(pairs),
        torch_dtype="float32",
        max_seq_length=32,
        per_device_train_batch_size=4,
        lora_r=4,
        stop_after_n_steps=1,
        save_steps=1,
        disable_tqdm=True,
    )
    hub, local = tmp_path / "hub.json", tmp_path / "local.json"
    hub.write_text(json.dumps(dict(config, model_name_or_path=HUB_NAME)))
    local.write_text(json.dumps(dict(config, model_name_or_path=str(tiny_llama))))
    return hub, local


def test_layerwise_loss_loads_the_local_folder_and_names_the_hub_model(
    configs, tiny_llama, tmp_path, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub, local = configs
    options = ["--batch-size", "4", "--num-batches", "2"]
    assert (
        main(
            [
                "layerwise-loss",
                str(hub),
                "--model",
                str(tiny_llama),
                "--out",
                str(tmp_path / "a.json"),
                *options,
            ]
        )
        == 0
    )
    assert main(["layerwise-loss", str(local), "--out", str(tmp_path / "b.json"), *options]) == 0

    via_option, direct = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert via_option["model"] == HUB_NAME and direct["model"] == str(tiny_llama)
    assert via_option["losses"] == direct["losses"] and len(direct["losses"]) == 4


def test_train_loads_the_local_folder_so_the_variant_points_at_it(configs, tiny_llama, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub, _ = configs
    out = tmp_path / "full"
    assert (
        main(["train", str(hub), "--model", str(tiny_llama), "--variant", "full", "--output-dir", str(out)])
        == 0
    )

    # evaluate loads the variant, whose adapter names the base folder: no hub name to resolve
    assert json.loads((out / "l3prune_encoder.json").read_text())["base_model"] == str(tiny_llama)
    assert json.loads((out / "model_info.json").read_text())["base_model"] == str(tiny_llama)


def test_a_missing_model_folder_is_one_line_before_anything_loads(configs, tmp_path, capsys):
    hub, _ = configs
    missing = tmp_path / "models" / HUB_NAME
    for command in (["layerwise-loss", str(hub), "--out", str(tmp_path / "x.json")], ["train", str(hub)]):
        assert main([*command, "--model", str(missing)]) == 2
        assert capsys.readouterr().err == f"l3prune: error: --model {missing}: no such model folder\n"
