"""The one-pass layerwise loss and the prune-point rule."""

import json

import pytest
import torch
from tiny_models import FAMILIES

from l3prune import LLMEncoder, l3prune
from l3prune.dataset.utils import load_dataset
from l3prune.layerwise import layerwise_loss, select_prune_points
from l3prune.loss.utils import load_loss

WORDS = "the model layer text query document passage retrieve question answer summit protein mountain".split()


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    with path.open("w") as f:
        for i in range(24):
            words = [WORDS[(i * 5 + j * 3) % len(WORDS)] for j in range(3 + i % 5)]
            f.write(
                json.dumps(
                    {
                        "query": " ".join(words[:3]),
                        "positive": " ".join(words),
                        "negative": " ".join(reversed(words)),
                        "instruction": "Retrieve semantically similar text",
                    }
                )
                + "\n"
            )
    return path


def reference_loss(path, k, dataset, loss_fn, batch_size, num_batches):
    """The loss of a separately built k-layer model, batch by batch."""
    cut = LLMEncoder.from_pretrained(path, num_layers=k, pooling_mode="weighted_mean")
    total = 0.0
    with torch.no_grad():
        for b in range(num_batches):
            samples = [dataset[i] for i in range(b * batch_size, (b + 1) * batch_size)]
            reps = [cut(cut.tokenize(list(column))) for column in zip(*samples, strict=True)]
            total += loss_fn(*reps).item()
    return total / num_batches


@pytest.mark.parametrize("family", FAMILIES)
def test_layerwise_loss_equals_separately_pruned_models(tiny_model_dir, pairs_file, family):
    path = tiny_model_dir(family)
    dataset = load_dataset("jsonl", file_path=pairs_file, effective_batch_size=8, seed=3)
    loss_fn = load_loss("HardNegativeNLLLoss", scale=20.0)
    encoder = LLMEncoder.from_pretrained(path, pooling_mode="weighted_mean")
    curve = layerwise_loss(encoder, dataset, loss_fn, batch_size=8, num_batches=3)
    assert len(curve) == 4
    want = [reference_loss(path, k, dataset, loss_fn, 8, 3) for k in range(1, 5)]
    assert curve == pytest.approx(want, abs=1e-5, rel=1e-5)


def test_l3prune_returns_small_large_and_keeps_curve(tiny_llama, pairs_file):
    dataset = load_dataset("jsonl", file_path=pairs_file, effective_batch_size=8, seed=3)
    encoder = LLMEncoder.from_pretrained(tiny_llama, pooling_mode="weighted_mean")
    loss_fn = load_loss("HardNegativeNLLLoss")
    points = l3prune(encoder, dataset, loss_fn, batch_size=4, num_batches=5)
    small_p, large_p = points
    losses = points.losses
    # the curve is that of separately built k-layer models on the same batches
    want = [reference_loss(tiny_llama, k, dataset, loss_fn, 4, 5) for k in range(1, 5)]
    assert losses == pytest.approx(want, abs=1e-5, rel=1e-5)
    # the rule, by hand: the lowest loss among 1..2 layers, and among 3..4
    assert small_p == min((1, 2), key=lambda k: losses[k - 1])
    assert large_p == min((3, 4), key=lambda k: losses[k - 1])
    assert points.num_layers == 4
    again = l3prune(
        encoder,
        load_dataset("jsonl", file_path=pairs_file, effective_batch_size=8, seed=3),
        load_loss("HardNegativeNLLLoss"),
        batch_size=4,
        num_batches=5,
    )
    assert again.losses == points.losses  # deterministic for a seed


def test_a_batch_mixing_samples_with_and_without_hard_negatives_is_refused(tiny_llama, tmp_path):
    rows = [
        {"query": f"q {i}", "positive": f"p {i}", **({"negative": f"n {i}"} if i % 2 else {})}
        for i in range(4)
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = load_dataset("jsonl", file_path=path, effective_batch_size=4)
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    with pytest.raises(ValueError, match="^a batch mixes 2 samples with a hard negative and 2 without"):
        layerwise_loss(encoder, dataset, load_loss("HardNegativeNLLLoss"), batch_size=4, num_batches=1)


def test_batch_size_must_fit_the_dataset_blocks(tiny_llama, pairs_file):
    dataset = load_dataset("jsonl", file_path=pairs_file, effective_batch_size=8)
    encoder = LLMEncoder.from_pretrained(tiny_llama)
    with pytest.raises(ValueError, match="batch_size=3 does not divide the dataset's blocks of 8 samples"):
        layerwise_loss(encoder, dataset, load_loss("HardNegativeNLLLoss"), batch_size=3)


@pytest.mark.parametrize(
    ("losses", "want"),
    [
        ([5, 4, 3, 2], (2, 4)),  # minima at the right boundaries of both halves
        ([1, 2, 3, 4], (1, 3)),  # minima at the left boundaries
        ([3, 1, 1, 2, 0.5, 0.5], (2, 5)),  # ties go to the shallower count
        ([2, 2, 2, 2, 2], (1, 3)),  # odd N: m = 2, large searches 3..5; all tied
        ([9, 1, 8, 7, 0.1], (2, 5)),
        ([1.0, 0.5], (1, 2)),
    ],
)
def test_select_prune_points(losses, want):
    assert select_prune_points(losses) == want


def test_select_prune_points_needs_two_layers():
    with pytest.raises(ValueError, match="at least 2 layers"):
        select_prune_points([1.0])
