"""`l3prune layerwise-loss` and `l3prune prune-points` as the workflow calls them."""

import json

import pytest

from l3prune.cli import main


@pytest.fixture
def config_file(tiny_llama, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    words = "the model layer text query passage retrieve question answer summit".split()
    pairs.write_text(
        "".join(
            json.dumps(
                {
                    "query": words[i % 10],
                    "positive": " ".join(words[i % 10 :]),
                    "negative": words[(i + 3) % 10],
                }
            )
            + "\n"
            for i in range(16)
        )
    )
    config = tmp_path / "train.json"
    config.write_text(
        json.dumps(
            {
                "model_name_or_path": str(tiny_llama),
                "pooling_mode": "mean",
                "dataset_name": "jsonl",
                "dataset_file_path": str(pairs),
                "torch_dtype": "float32",
                "loss_scale": 35.0,  # neither the config's default (50) nor the loss class's (20)
                "seed": 7,  # not the default 42
            }
        )
    )
    return config


def test_layerwise_loss_then_prune_points(config_file, tiny_llama, tmp_path):
    from l3prune import LLMEncoder
    from l3prune.dataset.utils import load_dataset
    from l3prune.layerwise import layerwise_loss
    from l3prune.loss.utils import load_loss

    loss_json, points_json, plot = tmp_path / "loss.json", tmp_path / "points.json", tmp_path / "curve.png"
    assert (
        main(
            [
                "layerwise-loss",
                str(config_file),
                "--out",
                str(loss_json),
                "--batch-size",
                "4",
                "--num-batches",
                "3",
            ]
        )
        == 0
    )
    curve = json.loads(loss_json.read_text())
    assert curve["num_layers"] == 4 and len(curve["losses"]) == 4
    # the curve is the config's: its pooling, data seed and loss scale
    want = layerwise_loss(
        LLMEncoder.from_pretrained(tiny_llama, pooling_mode="mean", dtype="float32"),
        load_dataset("jsonl", file_path=tmp_path / "pairs.jsonl", effective_batch_size=4, seed=7),
        load_loss("HardNegativeNLLLoss", scale=35.0),
        4,
        3,
    )
    assert curve["losses"] == pytest.approx(want, rel=1e-6)
    assert curve["data"] == {
        "dataset_name": "jsonl",
        "dataset_file_path": curve["data"]["dataset_file_path"],
        "batch_size": 4,
        "num_batches": 3,
        "seed": 7,
    }
    assert curve["settings"]["pooling_mode"] == "mean" and curve["settings"]["loss_scale"] == 35.0
    assert curve["seconds"] > 0

    assert main(["prune-points", str(loss_json), "--out", str(points_json), "--plot", str(plot)]) == 0
    points = json.loads(points_json.read_text())
    losses = curve["losses"]
    assert points["small"] == min((1, 2), key=lambda k: (losses[k - 1], k))
    assert points["large"] == min((3, 4), key=lambda k: (losses[k - 1], k))
    assert points["num_layers"] == 4 and points["losses"] == losses
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir() if ".tmp" in p.name) == []


def test_prune_points_errors_are_one_line(tmp_path, capsys):
    assert main(["prune-points", str(tmp_path / "nope.json"), "--out", str(tmp_path / "p.json")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"l3prune: error: layerwise loss file {tmp_path / 'nope.json'} does not exist (write it with `l3prune layerwise-loss`)"
    )
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"losses": [1.0, "x"]}))
    assert main(["prune-points", str(bad), "--out", str(tmp_path / "p.json")]) == 2
    assert "no 'losses' list of numbers" in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()


def test_layerwise_loss_computes_the_curve_train_picks_its_points_from(config_file, tmp_path, monkeypatch):
    """`l3prune train` (autoprune) and `l3prune layerwise-loss` share their setup: the same curve."""
    from l3prune.config import load_config
    from l3prune.layerwise import run as autoprune

    config_file.write_text(
        json.dumps(json.loads(config_file.read_text()) | {"l3prune_batch_size": 4, "l3prune_num_batches": 3})
    )
    loss_json = tmp_path / "loss.json"
    assert main(["layerwise-loss", str(config_file), "--out", str(loss_json)]) == 0
    curve = json.loads(loss_json.read_text())
    assert (curve["data"]["batch_size"], curve["data"]["num_batches"]) == (
        4,
        3,
    )  # the config's, not 64 and 100
    seen = []
    select = autoprune.select_prune_points
    monkeypatch.setattr(
        autoprune, "select_prune_points", lambda losses: seen.append(losses) or select(losses)
    )
    points = autoprune.find_prune_points(load_config(config_file))
    assert seen == [curve["losses"]]
    small, large = select(curve["losses"])
    assert points == {"small": small, "large": large, "num_layers": 4}


def test_device_names_what_this_machine_has(monkeypatch):
    import torch

    from l3prune.commands.options import torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert [torch_device(d) for d in (None, "cuda", "cuda:1", "cpu")] == ["cuda", "cuda", "cuda:1", "cpu"]
    with pytest.raises(ValueError) as error:
        torch_device("cuda:2")
    assert str(error.value) == (
        "--device cuda:2: this machine has 2 CUDA device(s) (accepted: cpu, cuda, cuda:0, cuda:1)"
    )
    with pytest.raises(ValueError) as error:
        torch_device("mps")
    assert str(error.value) == "--device mps: MPS is not available here (accepted: cpu, cuda, cuda:0, cuda:1)"
