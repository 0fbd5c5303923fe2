"""The cached (GradCache) contrastive loss: its loss and LoRA gradients are the uncached loss's,
with LoRA dropout on, in one process and in two gloo processes (where DDP synchronises once per
step), and training with it (activation checkpointing, gradient accumulation, bf16 autocast)
ends with the weights of training without it."""

import contextlib

import pytest
import torch
import torch._dynamo  # noqa: F401  -- DistributedDataParallel imports it: once here, not in each test
import torch.distributed as dist
import torch.multiprocessing as mp
from test_training import adapter, assert_same_weights, make_config, pairs, read_log  # noqa: F401
from test_training_ddp import free_port, torchrun, write_config

from l3prune import LLMEncoder
from l3prune.loss import HardNegativeNLLLoss
from l3prune.loss import cached as cached_module
from l3prune.loss.cached import cache_gradients
from l3prune.training.lora import add_lora
from l3prune.training.run import train
from l3prune.training.trainer import ContrastiveModel

# texts of different lengths, so that mini-batches are narrowed to their own width
QUERIES = [
    "mountain?",
    "the leader of the meeting?",
    "grams",
    "a marathon day question?",
    "women",
    "chart data?",
]
POSITIVES = [
    "the summit",
    "leader meeting answer text",
    "average grams",
    "marathon",
    "english women",
    "a chart",
]
NEGATIVES = ["protein", "wikipedia search web", "the layer", "a guideline requirement", "loss", "train data"]
LOSS = HardNegativeNLLLoss(scale=20.0)


def lora_model(path, dropout):
    """The tiny Llama with LoRA (dropout `dropout`) and random B factors, so that A has gradients too."""
    torch.manual_seed(0)
    encoder = LLMEncoder.from_pretrained(path, max_length=32)
    add_lora(encoder, r=4, alpha=8, dropout=dropout)
    for name, weight in encoder.model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(std=0.2)
    return ContrastiveModel(encoder).train()


def columns(encoder, rows, negatives=True):
    texts = {"query": QUERIES, "positive": POSITIVES, "negative": NEGATIVES}
    return {
        name: encoder.tokenize([t for i, t in enumerate(column) if i in rows])
        for name, column in texts.items()
        if negatives or name != "negative"
    }


def embed_with(model):
    return lambda column, features: model(**{column: features})[0]


def trainable_grads(model):
    grads = {
        n.removeprefix("module."): p.grad.clone() for n, p in model.named_parameters() if p.requires_grad
    }
    model.zero_grad()
    return grads


def plain_step(model, batch, seed):
    """Uncached: one forward of the whole batch, one backward."""
    torch.manual_seed(seed)
    loss = LOSS(*model(**batch))
    loss.backward()
    return loss.detach(), trainable_grads(model)


def cached_step(model, batch, seed, size, no_sync=None):
    torch.manual_seed(seed)
    cache = cache_gradients(embed_with(model), batch, LOSS, size)
    cache.backward(embed_with(model), no_sync=no_sync or contextlib.nullcontext)
    return cache.loss, trainable_grads(model)


def minibatch_step(model, batch, seed, size):
    """Uncached, but embedding the rows `size` at a time (each narrowed to its attended tokens) in
    the cached loss's order, so that dropout draws the cached first pass's masks: the reference
    for a cached step whose mini-batches are smaller than the batch."""
    torch.manual_seed(seed)
    reps = []
    for column, features in batch.items():
        parts = []
        for start in range(0, len(features["input_ids"]), size):
            part = {k: v[start : start + size] for k, v in features.items()}
            used = part["attention_mask"].sum(dim=0) > 0
            parts.append(model(**{column: {k: v[:, used] for k, v in part.items()}})[0])
        reps.append(torch.cat(parts))
    loss = LOSS(*reps)
    loss.backward()
    return loss.detach(), trainable_grads(model)


def assert_same(a, b, atol=1e-6):
    torch.testing.assert_close(a[0], b[0], atol=atol, rtol=1e-5)
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        torch.testing.assert_close(a[1][key], b[1][key], atol=atol, rtol=1e-4, msg=key)


ROWS = range(5)


@pytest.mark.parametrize("size", [1, 2, 5, 8])  # 2 does not divide 5; 5 and 8 make one mini-batch
def test_cached_loss_and_lora_gradients_equal_the_uncached_with_dropout(tiny_llama, size):
    model = lora_model(tiny_llama, dropout=0.3)
    batch = columns(model.encoder, ROWS)
    cached = cached_step(model, batch, 7, size)
    if size >= len(ROWS):  # one mini-batch per column: the uncached step's forwards and random draws exactly
        assert_same(cached, plain_step(model, batch, 7))
    else:
        assert_same(cached, minibatch_step(model, batch, 7, size))
    assert any("lora_A" in k and v.abs().sum() > 0 for k, v in cached[1].items())
    # dropout is on: another seed gives other gradients, so equality above is not by chance
    other = plain_step(model, batch, 8)[1]
    assert any(not torch.allclose(other[k], cached[1][k], atol=1e-4) for k in other)


def test_without_the_rng_replay_the_second_pass_draws_other_dropout_masks(tiny_llama, monkeypatch):
    model = lora_model(tiny_llama, dropout=0.3)
    batch = columns(model.encoder, ROWS)
    reference = minibatch_step(model, batch, 7, 2)
    monkeypatch.setattr(cached_module.RngState, "replay", lambda self: contextlib.nullcontext())
    loss, grads = cached_step(model, batch, 7, 2)
    torch.testing.assert_close(loss, reference[0])  # the first pass is unchanged ...
    assert any(
        not torch.allclose(grads[k], reference[1][k], atol=1e-4) for k in grads
    )  # ... the gradients are not


def test_cached_equals_uncached_without_dropout_and_without_negatives(tiny_llama):
    model = lora_model(tiny_llama, dropout=0.0)
    for negatives in (True, False):
        batch = columns(model.encoder, range(6), negatives)
        assert_same(cached_step(model, batch, 0, 4), plain_step(model, batch, 0))


def test_a_mini_batch_narrows_to_its_own_texts_without_changing_them(tiny_llama):
    model = lora_model(tiny_llama, dropout=0.0).eval()
    features = model.encoder.tokenize(["women", "grams", "a leader of the marathon meeting question"])
    parts = cached_module.split_rows(features, 2)
    assert [p["input_ids"].shape for p in parts] == [
        (2, features["attention_mask"][:2].sum(1).max()),
        (1, features["input_ids"].shape[1]),
    ]
    assert parts[0]["input_ids"].shape[1] < features["input_ids"].shape[1]
    with torch.no_grad():
        whole = model.encoder(features)
        torch.testing.assert_close(torch.cat([model.encoder(p) for p in parts]), whole, atol=1e-5, rtol=1e-5)


def test_cached_loss_refusals(tiny_llama):
    model = lora_model(tiny_llama, dropout=0.0)
    batch = columns(model.encoder, range(4))
    with pytest.raises(ValueError, match="loss_mini_batch_size=0: must be a whole number of at least 1"):
        cache_gradients(embed_with(model), batch, LOSS, 0)
    with pytest.raises(ValueError, match="the loss does not use column\\(s\\) negative; give it only"):
        cache_gradients(embed_with(model), batch, lambda q, p, n: LOSS(q, p), 2)


# ---------------------------------------------------------------- two gloo processes

WORLD = 2
ROWS_OF_RANK = (range(0, 3), range(3, 6))  # 3 each: mini-batches of 2 and 1 on both


def count_syncs(counter, bucket):
    """A DDP comm hook: the default all-reduce (mean), counting the buckets reduced."""
    counter["buckets"] += 1
    bucket.buffer().div_(WORLD)
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0])


def worker(rank, port, path, out_dir):
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = lora_model(path, dropout=0.3)
        # find_unused_parameters=True: what the Trainer gives a ContrastiveModel
        ddp = DistributedDataParallel(model, find_unused_parameters=True)
        counter = {"buckets": 0}
        ddp.register_comm_hook(counter, count_syncs)
        batch = columns(model.encoder, ROWS_OF_RANK[rank])
        results = {}
        # dropout on: against the mini-batch reference on the module, its gradients averaged as DDP does
        results["cached"] = cached_step(ddp, batch, 10 + rank, 2, no_sync=ddp.no_sync)
        results["cached_syncs"] = counter.pop("buckets")
        loss, grads = minibatch_step(model, batch, 10 + rank, 2)
        for grad in grads.values():
            dist.all_reduce(grad)
            grad /= WORLD
        results["reference"] = (loss, grads)
        counter["buckets"] = 0
        plain_step(ddp, batch, 10 + rank)
        results["plain_syncs"] = counter["buckets"]
        # dropout off: against one process with the whole global batch (done by the test)
        model.eval()
        results["no_dropout"] = cached_step(ddp, batch, 0, 2, no_sync=ddp.no_sync)
        torch.save(results, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_processes_cached_equal_one_process_on_the_global_batch_and_sync_once(tiny_llama, tmp_path):
    mp.start_processes(worker, args=(free_port(), tiny_llama, tmp_path), nprocs=WORLD, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    model = lora_model(tiny_llama, dropout=0.3).eval()
    whole = plain_step(model, columns(model.encoder, range(6)), 0)
    for result in results:
        assert_same(result["cached"], result["reference"], atol=1e-5)
        assert result["cached_syncs"] == result["plain_syncs"] >= 1  # 6 mini-batches, one synchronisation
        assert_same(
            result["no_dropout"], whole, atol=1e-5
        )  # every in-batch and hard negative of both processes
    assert_same(results[0]["cached"], results[1]["cached"], atol=1e-6)  # averaged gradients, the global loss


# ---------------------------------------------------------------- training


@pytest.mark.parametrize(
    "uncached, cached",
    [
        ({}, {"loss_mini_batch_size": 3, "gradient_checkpointing": True}),  # 3 does not divide 4
        ({"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}, {"loss_mini_batch_size": 1}),
    ],
    ids=["checkpointing", "accumulation"],
)
def test_training_with_the_cached_loss_ends_with_the_weights_of_training_without(
    tiny_llama, pairs, tmp_path, monkeypatch, uncached, cached  # noqa: F811
):  # fmt: skip
    from l3prune.training import trainer as trainer_module

    cached_steps = []
    monkeypatch.setattr(
        trainer_module, "cache_gradients", lambda *a: cached_steps.append(a[3]) or cache_gradients(*a)
    )
    # plain SGD without clipping: the update is -lr x gradient, so equal weights mean equal gradients
    common = dict(optim="sgd", max_grad_norm=0.0, learning_rate=0.1, warmup_steps=0, lora_dropout=0.0)
    common.update(stop_after_n_steps=3, save_steps=100, use_cpu=True, **uncached)
    folders = []
    for name, extra in (("uncached", {}), ("cached", cached)):
        config = make_config(tiny_llama, pairs, tmp_path / name, **common, **extra)
        folders.append(train(config, variant="full")["full"])
    # every micro-batch of the cached run went through the cache, none of the uncached run's
    assert cached_steps == [cached["loss_mini_batch_size"]] * 3 * common.get("gradient_accumulation_steps", 1)
    losses = [[float(row["loss"]) for row in read_log(folder)] for folder in folders]
    assert len(losses[0]) == 3 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert_same_weights(adapter(folders[0]), adapter(folders[1]), atol=1e-5)
    assert adapter(folders[0]).keys() and any(
        (w != 0).any() for k, w in adapter(folders[1]).items() if "lora_B" in k
    )  # trained


def test_the_cached_step_embeds_under_the_trainers_bf16_autocast(tiny_llama, pairs, tmp_path):  # noqa: F811
    from transformers import TrainingArguments

    from l3prune.dataset.utils import load_dataset
    from l3prune.training.trainer import ContrastiveTrainer

    losses = {}
    for size in (None, 2):
        torch.manual_seed(0)
        encoder = LLMEncoder.from_pretrained(tiny_llama, max_length=32)
        add_lora(encoder, r=4, alpha=8, dropout=0.0)
        dtypes = []
        layer = encoder.model.base_model.model.layers[0].self_attn.q_proj
        layer.register_forward_hook(lambda module, args, out, dtypes=dtypes: dtypes.append(out.dtype))
        args = TrainingArguments(
            output_dir=str(tmp_path / str(size)), per_device_train_batch_size=4, max_steps=1, bf16=True,
            use_cpu=True, train_sampling_strategy="sequential", remove_unused_columns=False,
            save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=1,
        )  # fmt: skip
        dataset = load_dataset("jsonl", file_path=pairs, effective_batch_size=4)
        trainer = ContrastiveTrainer(encoder, LOSS, args, dataset, loss_mini_batch_size=size)
        losses[size] = trainer.train().training_loss
        # 3 columns: one forward each uncached; 2 mini-batches each, embedded twice, cached
        assert dtypes == [torch.bfloat16] * (3 if size is None else 12)
    assert losses[2] == pytest.approx(losses[None], rel=2e-2)  # bf16 rounds differently in other shapes


def test_the_trainer_refuses_a_mini_batch_size_below_one(tiny_llama, tmp_path):
    from transformers import TrainingArguments

    from l3prune.training.trainer import ContrastiveTrainer

    encoder = LLMEncoder.from_pretrained(tiny_llama)
    args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy="sequential", report_to="none")
    with pytest.raises(
        ValueError, match="loss_mini_batch_size=0: must be a whole number of at least 1, or null"
    ):
        ContrastiveTrainer(encoder, LOSS, args, [], loss_mini_batch_size=0)


def test_the_trainer_refuses_data_read_out_of_order(tmp_path):
    from transformers import TrainingArguments

    from l3prune.training.trainer import ContrastiveTrainer

    args = TrainingArguments(output_dir=str(tmp_path), train_sampling_strategy="random", report_to="none")
    with pytest.raises(ValueError, match="train_sampling_strategy must be 'sequential' .* got 'random'$"):
        ContrastiveTrainer(None, LOSS, args, [])


@pytest.mark.slow
def test_two_training_processes_with_the_cached_loss_train_as_one_without(tiny_llama, pairs, tmp_path):  # noqa: F811
    common = dict(optim="sgd", max_grad_norm=0.0, learning_rate=0.1, warmup_steps=0, lora_dropout=0.0)
    common.update(stop_after_n_steps=2, save_steps=100, use_cpu=True)
    single = make_config(tiny_llama, pairs, tmp_path / "single", per_device_train_batch_size=4, **common)
    double = make_config(
        tiny_llama, pairs, tmp_path / "double", per_device_train_batch_size=2, loss_mini_batch_size=1,
        gradient_checkpointing=True, **common,
    )  # fmt: skip
    for config, processes in ((single, 1), (double, 2)):
        result = torchrun(
            processes, write_config(config, tmp_path / f"{processes}.json"), "--variant", "full"
        )
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = tmp_path / "single" / "full", tmp_path / "double" / "full"
    losses = [[float(row["loss"]) for row in read_log(folder)] for folder in (one, two)]
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert_same_weights(adapter(one), adapter(two), atol=1e-5)
