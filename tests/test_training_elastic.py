"""Elastic training (elastic_depths): one forward to the deepest depth gives each depth's embedding
exactly as a model cut to that depth gives it; the loss is the weighted sum over depths; the
gradients are those of the per-depth losses summed by hand; with the cached loss, activation
checkpointing and 2 gloo processes too; resume; the trained folder serves each depth."""

import contextlib
import json
import logging
import re

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_training import adapter, assert_same_weights, kill_in_step_4, make_config, pairs, read_log  # noqa: F401
from test_training_cached import trainable_grads
from test_training_ddp import free_port
from tiny_models import FAMILIES

from l3prune import LLMEncoder
from l3prune.config import parse_config, step_settings
from l3prune.dataset.utils import load_dataset
from l3prune.elastic import resolve_depths
from l3prune.encoder.layers import base_model
from l3prune.loss import HardNegativeNLLLoss
from l3prune.loss.cached import cache_gradients
from l3prune.training.collator import ContrastiveCollator
from l3prune.training.elastic import ElasticLoss
from l3prune.training.lora import add_lora
from l3prune.training.run import train
from l3prune.training.trainer import ContrastiveModel
from l3prune.variants import variant_names

LOSS = HardNegativeNLLLoss(scale=20.0)
QUERIES = ["mountain?", "the leader of the meeting?", "grams", "a marathon day question?"]
POSITIVES = ["the summit", "leader meeting answer text", "average grams", "marathon"]
NEGATIVES = ["protein", "wikipedia search web", "the layer", "a guideline requirement"]


def raw_config(**keys):
    return {"model_name_or_path": "m", "dataset_file_path": "d.jsonl", **keys}


# ---------------------------------------------------------------- the config key


def test_elastic_depths_parse_with_weights_and_make_one_variant():
    config = parse_config(raw_config(elastic_depths=["small", {"depth": 0.5, "weight": 2}, 3, "full"]))
    assert config.elastic_depths == [
        {"depth": "small", "weight": 1.0},
        {"depth": 0.5, "weight": 2.0},
        {"depth": 3, "weight": 1.0},
        {"depth": "full", "weight": 1.0},
    ]
    assert variant_names(config) == ["full", "elastic"]
    assert variant_names(parse_config(raw_config())) == ["full"]
    assert variant_names(parse_config(raw_config(elastic_depths=[]))) == ["full"]  # [] is the default: none
    # it changes what the elastic variant learns: a training setting, so a change never resumes
    assert step_settings(config, "train")["elastic_depths"] == config.elastic_depths
    depths = resolve_depths(config.elastic_depths, 8, {"small": 2, "large": 6, "num_layers": 8})
    assert [(d.name, d.layers, d.weight) for d in depths] == [
        ("small", 2, 1.0), ("l3", 3, 1.0), ("p50", 4, 2.0), ("full", 8, 1.0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value, message",
    [
        (
            ["tiny"],
            'key \'elastic_depths[0]\': \'tiny\' is not a depth; give "small", "large", "full", a fraction',
        ),
        ([2, 1.5], "key 'elastic_depths[1]': 1.5 is not a depth"),
        ([{"weight": 1}], "key 'elastic_depths[0]': {'weight': 1} needs key 'depth' and at most 'weight'"),
        ([{"depth": 2, "w": 1}], "needs key 'depth' and at most 'weight'"),
        ([{"depth": "full", "weight": 0}], "key 'elastic_depths[0]': weight 0 is not a number above 0"),
        (["full", 2, "full"], "key 'elastic_depths' lists full more than once"),
        ("full", "key 'elastic_depths': 'full' is not of type 'array'"),
        ({"elastic_depths": ["full"], "elastic_distillation": 0.5}, "key 'elastic_distillation' needs"),
        ({"elastic_depths": [2, "full"], "elastic_distillation": -1}, "key 'elastic_distillation': -1 is less"),
    ],
)
def test_bad_elastic_depths_are_one_line_errors(value, message):
    keys = value if isinstance(value, dict) else {"elastic_depths": value}
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        parse_config(raw_config(**keys), source="c.json")
    assert str(error.value).startswith("c.json: ") and "\n" not in str(error.value)


def test_named_depths_need_the_prune_points_and_fit_the_model():
    config = parse_config(raw_config(elastic_depths=["small", "full"]))
    with pytest.raises(ValueError, match="elastic depth 'small' needs L3Prune's prune points"):
        resolve_depths(config.elastic_depths, 4)
    with pytest.raises(ValueError, match="invalid prune value 9 for a model with 4 layers"):
        resolve_depths(parse_config(raw_config(elastic_depths=[9])).elastic_depths, 4)


# ---------------------------------------------------------------- the invariant at initialisation


def lora_encoder(path, num_layers=None, seed=0):
    """A tiny model with LoRA whose B factors are random, so the adapter changes every embedding."""
    torch.manual_seed(seed)
    encoder = LLMEncoder.from_pretrained(path, num_layers=num_layers, max_length=32)
    add_lora(encoder, r=4, alpha=8, dropout=0.0)
    for name, weight in encoder.model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(std=0.2)
    return encoder.eval()


def batch(encoder, rows=range(4)):
    texts = {"query": QUERIES, "positive": POSITIVES, "negative": NEGATIVES}
    return {name: encoder.tokenize([column[i] for i in rows]) for name, column in texts.items()}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_elastic_loss_at_each_depth_is_the_loss_of_the_model_cut_there(tiny_model_dir, family):
    path = tiny_model_dir(family)
    depths = [1, 2, 3]  # the deepest (3 of 4) is a cut model too: no depth is the base model's own output
    elastic = lora_encoder(path, num_layers=3)
    loss = ElasticLoss(LOSS, [1.0, 0.5, 2.0])
    with torch.no_grad():
        total = loss(*ContrastiveModel(elastic, depths)(**batch(elastic)))
    assert len(loss.last) == 3
    state = elastic.model.state_dict()
    for k, elastic_loss in zip(depths, loss.last, strict=True):
        cut = LLMEncoder.from_pretrained(path, num_layers=k, max_length=32)
        add_lora(cut, r=4, alpha=8, dropout=0.0)
        own = cut.model.state_dict()
        assert own.keys() <= state.keys()
        cut.model.load_state_dict({key: state[key] for key in own})  # the same adapter, first k layers
        with torch.no_grad():
            want = LOSS(*ContrastiveModel(cut.eval())(**batch(cut)))
        torch.testing.assert_close(elastic_loss, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(total, loss.last[0] + 0.5 * loss.last[1] + 2.0 * loss.last[2])
    # the depths differ: equal losses above are not one depth's loss three times
    assert len({round(v.item(), 4) for v in loss.last}) == 3


# ---------------------------------------------------------------- the distillation term


def kl_by_hand(teacher_q, teacher_d, student_q, student_d, scale):
    """Mean over queries of sum_j p_j log(p_j / s_j), p and s each query's softmax over the documents."""

    def softmax(q, d):
        q, d = (torch.nn.functional.normalize(x.double(), dim=-1) for x in (q, d))
        logits = scale * q @ d.T
        return logits.exp() / logits.exp().sum(dim=-1, keepdim=True)

    p, s = softmax(teacher_q, teacher_d), softmax(student_q, student_d)
    return (p * (p.log() - s.log())).sum(dim=-1).mean()


def test_the_distillation_term_pulls_each_shallower_depths_ranking_to_the_deepests():
    torch.manual_seed(0)
    q, pos, neg = (torch.randn(4, 3, 8, requires_grad=True) for _ in range(3))
    loss = ElasticLoss(LOSS, [1.0, 0.5, 2.0], distillation=0.3)
    total = loss(q, pos, neg)
    documents = torch.cat([pos, neg])
    kls = [kl_by_hand(q[:, 2], documents[:, 2], q[:, i], documents[:, i], LOSS.scale) for i in (0, 1)]
    contrastive = sum(w * LOSS(q[:, i], pos[:, i], neg[:, i]) for i, w in enumerate([1.0, 0.5, 2.0]))
    torch.testing.assert_close(loss.last_distillation.double(), kls[0] + kls[1])
    torch.testing.assert_close(total.double(), contrastive.double() + 0.3 * (kls[0] + kls[1]))
    # the deepest depth is the teacher: the term moves only the shallower depths
    q.grad = None
    ElasticLoss(LOSS, [0.0, 0.0, 0.0], distillation=1.0)(q, pos, neg).backward()
    assert q.grad[:, 2].abs().max() == 0 and q.grad[:, :2].abs().max() > 0
    # a shallower depth that ranks as the deepest does is not pulled at all
    assert loss.last_distillation > 1e-3
    same = ElasticLoss(LOSS, [1.0, 1.0], distillation=1.0)
    same(*(torch.stack([column[:, 2]] * 2, dim=1).detach() for column in (q, pos, neg)))
    assert abs(same.last_distillation.item()) < 1e-6
    with pytest.raises(ValueError, match="needs a loss with a scores\\(\\) method"):
        ElasticLoss(torch.nn.MSELoss(), [1.0, 1.0], distillation=1.0)


def test_without_distillation_the_loss_is_the_weighted_sum_alone():
    torch.manual_seed(1)
    columns = [torch.randn(4, 2, 8) for _ in range(3)]
    plain, zero = ElasticLoss(LOSS, [1.0, 2.0]), ElasticLoss(LOSS, [1.0, 2.0], distillation=0.0)
    torch.testing.assert_close(plain(*columns), zero(*columns), atol=0, rtol=0)
    assert zero.last_distillation is None


def test_the_deepest_depth_of_a_full_model_is_its_own_output(tiny_llama):
    encoder = lora_encoder(tiny_llama)
    features = batch(encoder)["query"]
    with torch.no_grad():
        stacked = encoder.pooled_at_depths(features, [2, 4])
        torch.testing.assert_close(stacked[:, 1], encoder(features), atol=0, rtol=0)
    with pytest.raises(ValueError, match="depth 5 is not a layer count from 1 to 4"):
        encoder.pooled_at_depths(features, [2, 5])


# ---------------------------------------------------------------- one step, by hand

SGD = dict(
    optim="sgd", max_grad_norm=0.0, learning_rate=0.5, warmup_steps=0, lora_dropout=0.0, save_steps=100
)


def first_batch(encoder, data, size=4, seed=3):
    dataset = load_dataset("jsonl", file_path=data, effective_batch_size=size, seed=seed)
    return ContrastiveCollator(encoder.tokenize)([dataset[i] for i in range(size)])


def embeddings_of_layers(encoder, columns, k):
    """(queries, positives, negatives) of the encoder run through its first k layers only (the same
    weights), the final norm applied by the model itself: a k-layer model, without hidden states."""
    body = base_model(encoder.model)
    layers = body.layers
    body.layers = torch.nn.ModuleList(list(layers)[:k])
    try:
        return [encoder(features) for features in columns.values()]
    finally:
        body.layers = layers


def loss_of_layers(encoder, columns, k):
    return LOSS(*embeddings_of_layers(encoder, columns, k))


@pytest.mark.parametrize("distillation", [0.0, 0.5])
def test_one_step_moves_the_shared_lora_weights_by_the_summed_per_depth_gradients(
    tiny_llama,
    pairs,  # noqa: F811
    tmp_path,
    distillation,
):
    from transformers import set_seed

    weights = {1: 1.0, 2: 0.25, 4: 2.0}
    depths = [1, {"depth": 2, "weight": 0.25}, {"depth": "full", "weight": 2.0}]
    config = make_config(
        tiny_llama, pairs, tmp_path, elastic_depths=depths, elastic_distillation=distillation,
        stop_after_n_steps=1, **SGD,
    )  # fmt: skip
    folder = train(config, variant="elastic")["elastic"]
    # the run's initial adapter, its first batch, the three losses summed by hand
    set_seed(3)
    encoder = LLMEncoder.from_pretrained(tiny_llama, max_length=32)
    encoder.model.config.use_cache = False
    add_lora(encoder, r=4, alpha=8, dropout=0.0)
    encoder.train()
    columns = first_batch(encoder, pairs)
    total = sum(w * loss_of_layers(encoder, columns, k) for k, w in weights.items())
    if distillation:
        with torch.no_grad():
            teacher_q, *teacher_documents = embeddings_of_layers(encoder, columns, 4)
        for k in (1, 2):
            q, *documents = embeddings_of_layers(encoder, columns, k)
            kl = kl_by_hand(teacher_q, torch.cat(teacher_documents), q, torch.cat(documents), LOSS.scale)
            total = total + distillation * kl.float()
    total.backward()
    logged = float(read_log(folder)[0]["loss"])
    assert logged == pytest.approx(total.item(), rel=1e-5)
    trained = adapter(folder)
    want = {}
    for name, p in encoder.model.named_parameters():
        if p.requires_grad:
            key = name.replace(".default", "")
            want[key] = (p - 0.5 * p.grad).detach()
    assert_same_weights(trained, want, atol=1e-5)  # float32 sums in another order
    moved = [k for k in want if "lora_B" in k and (want[k] != 0).any()]
    assert any(".layers.0." in k for k in moved) and any(".layers.3." in k for k in moved)
    # the full depth alone gives other weights: every depth's loss reached the update
    encoder.zero_grad()
    loss_of_layers(encoder, columns, 4).backward()
    assert any(not torch.allclose(trained[k], (p - 0.5 * p.grad).detach(), atol=1e-4)
               for k, p in ((n.replace(".default", ""), p) for n, p in encoder.model.named_parameters() if p.requires_grad))  # fmt: skip


def test_the_elastic_run_keeps_the_deepest_layers_and_records_its_depths(tiny_llama, pairs, tmp_path):  # noqa: F811
    config = make_config(tiny_llama, pairs, tmp_path, elastic_depths=[1, 0.25], stop_after_n_steps=2)
    folder = train(config)["elastic"]
    info = json.loads((folder / "model_info.json").read_text())
    depths = [{"name": "l1", "layers": 1, "weight": 1.0}, {"name": "p25", "layers": 3, "weight": 1.0}]
    sizes = [LLMEncoder.from_pretrained(tiny_llama, num_layers=k).num_parameters() for k in (1, 3)]
    assert info["elastic_depths"] == [d | {"params": n} for d, n in zip(depths, sizes, strict=True)]
    assert info["params_after"] == sizes[1]
    assert (info["layers_after"], info["prune"], info["steps"]) == (3, 3, 2)
    assert info["train_seconds"] > 0 and info["resumed_from_step"] == 0
    settings = json.loads((folder / "l3prune_encoder.json").read_text())
    assert settings["elastic_depths"] == depths and settings["num_layers"] == 3
    assert LLMEncoder.from_pretrained(folder).num_layers == 3
    assert (tmp_path / "full" / "model_info.json").is_file()  # the config's other variant, trained apart
    assert json.loads((tmp_path / "full" / "model_info.json").read_text())["elastic_depths"] is None


# ---------------------------------------------------------------- memory settings, resume


@pytest.mark.parametrize(
    "memory", [{"loss_mini_batch_size": 3, "gradient_checkpointing": True}, {"gradient_checkpointing": True}]
)
def test_the_cached_loss_and_checkpointing_train_the_elastic_weights_unchanged(
    tiny_llama,
    pairs,  # noqa: F811
    tmp_path,
    memory,
):
    common = dict(SGD, learning_rate=0.1, stop_after_n_steps=3, elastic_depths=[1, 3])
    folders = []
    for name, extra in (("plain", {}), ("memory", memory)):
        config = make_config(tiny_llama, pairs, tmp_path / name, **common, **extra)
        folders.append(train(config, variant="elastic")["elastic"])
    losses = [[float(row["loss"]) for row in read_log(folder)] for folder in folders]
    assert len(losses[0]) == 3 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert_same_weights(adapter(folders[0]), adapter(folders[1]), atol=1e-5)


def test_an_elastic_run_resumes_to_the_uninterrupted_weights(tiny_llama, pairs, tmp_path, caplog):  # noqa: F811
    keys = dict(elastic_depths=[2, "full"], percent_prune=[])
    reference = train(make_config(tiny_llama, pairs, tmp_path / "ref", **keys), variant="elastic")["elastic"]
    config = make_config(tiny_llama, pairs, tmp_path / "run", **keys)
    work = kill_in_step_4(config, "elastic")
    record = json.loads((work / "run.json").read_text())
    assert record["depths"] == [
        {"name": "l2", "layers": 2, "weight": 1.0},
        {"name": "full", "layers": 4, "weight": 1.0},
    ]
    with caplog.at_level(logging.INFO, logger="l3prune"):
        train(config, variant="elastic")
    assert f"resuming from {work / 'checkpoints' / 'checkpoint-2'}" in caplog.text
    folder = tmp_path / "run" / "elastic"
    assert_same_weights(adapter(folder), adapter(reference))
    assert [r["step"] for r in read_log(folder)] == ["1", "2", "3", "4", "5", "6"]
    assert json.loads((folder / "model_info.json").read_text())["resumed_from_step"] == 2
    # other depths are another run: its checkpoints are set aside, not continued
    other = make_config(tiny_llama, pairs, tmp_path / "run2", elastic_depths=[1, "full"])
    kill_in_step_4(other, "elastic")
    changed = make_config(
        tiny_llama, pairs, tmp_path / "run2", elastic_depths=[3, "full"], stop_after_n_steps=2
    )
    with caplog.at_level(logging.WARNING, logger="l3prune"):
        train(changed, variant="elastic")
    assert "not resuming" in caplog.text and "elastic_depths" in caplog.text


# ---------------------------------------------------------------- each depth from the trained folder


def hand_pooled(encoder, features, k):
    """Depth k of a full-depth encoder, from its hidden states: state k through the final norm,
    except the last, which transformers has normed already."""
    with torch.no_grad():
        out = encoder.model(**{key: features[key] for key in ("input_ids", "attention_mask", "position_ids")},
                            output_hidden_states=True)  # fmt: skip
        states = out.hidden_states
        hidden = states[k] if k == len(states) - 1 else encoder.final_norm(states[k])
        return encoder.pool(hidden, features)


@pytest.fixture(scope="module")
def elastic_folder(tiny_llama, pairs, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("elastic")
    config = make_config(
        tiny_llama, pairs, out, elastic_depths=[1, 3, "full"], stop_after_n_steps=4, learning_rate=2e-2
    )
    return train(config, variant="elastic")["elastic"]


def test_each_trained_depth_loads_as_the_full_models_hidden_state_there(elastic_folder, caplog):
    full = LLMEncoder.from_pretrained(elastic_folder).eval()
    assert full.num_layers == 4
    texts = QUERIES + POSITIVES
    features = full.tokenize(texts)
    per_depth = []
    with caplog.at_level(logging.WARNING, logger="l3prune"):
        for k in (1, 3, 4):
            loaded = LLMEncoder.from_pretrained(elastic_folder, num_layers=k)
            assert loaded.num_layers == k
            got = loaded.encode(texts)
            torch.testing.assert_close(got, hand_pooled(full, features, k), atol=1e-5, rtol=1e-5)
            per_depth.append(got)
            pruned = LLMEncoder.from_pretrained(elastic_folder)
            pruned.prune(k)
            torch.testing.assert_close(pruned.encode(texts), got, atol=1e-6, rtol=0)
    assert "not for" not in caplog.text  # trained depths: no warning
    assert not torch.allclose(per_depth[0], per_depth[1], atol=1e-3)
    # the trained adapter is in use: the base model cut to 3 layers gives other embeddings
    base = LLMEncoder.from_pretrained(full.base_model_name_or_path, num_layers=3)
    assert not torch.allclose(base.encode(texts), per_depth[1], atol=1e-4)


def test_an_untrained_depth_works_and_says_so_once(elastic_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="l3prune"):
        two = LLMEncoder.from_pretrained(elastic_folder, num_layers=2)
        LLMEncoder.from_pretrained(elastic_folder, num_layers=2)
        full = LLMEncoder.from_pretrained(elastic_folder)
        full.prune(2)
    warned = [r.getMessage() for r in caplog.records if "not for 2" in r.getMessage()]
    assert warned == [
        f"{elastic_folder} was trained for 1, 3, 4 layers (elastic depths l1, l3, full), not for 2: "
        "its embeddings there were never trained"
    ]
    features = two.tokenize(QUERIES)
    with torch.no_grad():
        torch.testing.assert_close(two(features), hand_pooled(full, features, 2), atol=1e-5, rtol=1e-5)


def test_a_pruned_copy_keeps_the_depths_it_still_has(elastic_folder, tmp_path):
    encoder = LLMEncoder.from_pretrained(elastic_folder)
    encoder.prune(3)
    encoder.save(tmp_path / "three")
    settings = json.loads((tmp_path / "three" / "l3prune_encoder.json").read_text())
    assert [d["name"] for d in settings["elastic_depths"]] == ["l1", "l3"]


# ---------------------------------------------------------------- two gloo processes

WORLD = 2
ROWS_OF_RANK = (range(0, 2), range(2, 4))
DEPTHS = [1, 2, 4]
WEIGHTS = [1.0, 0.5, 2.0]


def elastic_loss():
    """The weighted sum and the distillation term: both gather the global batch."""
    return ElasticLoss(LOSS, WEIGHTS, distillation=0.5)


def elastic_steps(model, columns, loss):
    """(loss, gradients) of a plain step and of a cached step (mini-batches of 1)."""
    value = loss(*model(**columns))
    value.backward()
    plain = (value.detach(), trainable_grads(model))
    embed = lambda column, features: model(**{column: features})[0]  # noqa: E731
    cache = cache_gradients(embed, columns, loss, 1)
    cache.backward(embed, no_sync=getattr(model, "no_sync", contextlib.nullcontext))
    return plain, (cache.loss, trainable_grads(model))


def ddp_worker(rank, port, path, out_dir):
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        encoder = lora_encoder(path)
        ddp = DistributedDataParallel(ContrastiveModel(encoder, DEPTHS))
        plain, cached = elastic_steps(ddp, batch(encoder, ROWS_OF_RANK[rank]), elastic_loss())
        torch.save({"plain": plain, "cached": cached}, out_dir / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def assert_same_step(a, b, atol=1e-5):
    torch.testing.assert_close(a[0], b[0], atol=atol, rtol=1e-5)
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        torch.testing.assert_close(a[1][key], b[1][key], atol=atol, rtol=1e-4, msg=key)


def test_two_processes_compute_the_elastic_loss_and_gradients_of_the_global_batch(tiny_llama, tmp_path):
    mp.start_processes(
        ddp_worker, args=(free_port(), tiny_llama, tmp_path), nprocs=WORLD, start_method="spawn"
    )
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    encoder = lora_encoder(tiny_llama)
    whole_plain, whole_cached = elastic_steps(
        ContrastiveModel(encoder, DEPTHS), batch(encoder), elastic_loss()
    )
    assert_same_step(whole_cached, whole_plain)
    for result in results:
        # every depth's in-batch and hard negatives of both processes
        assert_same_step(result["plain"], whole_plain)
        assert_same_step(result["cached"], whole_plain)
    # a process alone (half the batch) has another loss: the gather is at work
    half_plain, _ = elastic_steps(
        ContrastiveModel(encoder, DEPTHS), batch(encoder, ROWS_OF_RANK[0]), elastic_loss()
    )
    assert abs(half_plain[0] - whole_plain[0]) > 1e-3


# ---------------------------------------------------------------- evaluating one depth


def test_evaluate_scores_an_elastic_depth_by_name(elastic_folder, tiny_llama, tmp_path, capsys):
    from test_evaluation import sts_file

    from l3prune.cli import main

    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(f"local_tasks:\n  - {{name: S, type: STS, path: {sts_file(tmp_path)}}}\n")
    out = tmp_path / "elastic@l3" / "mteb.json"
    command = ["evaluate", str(elastic_folder), "--tasks", str(tasks), "--batch-size", "2"]
    assert main([*command, "--out", str(out), "--elastic-depth", "l3"]) == 0
    summary = json.loads(out.read_text())
    assert (summary["model"], summary["num_layers"]) == (f"l3prune/{tiny_llama.name}-elastic@l3", 3)
    full = tmp_path / "full.json"
    assert main([*command, "--out", str(full), "--elastic-depth", "full"]) == 0
    assert json.loads(full.read_text())["num_layers"] == 4
    assert (
        json.loads(full.read_text())["revision"] != summary["revision"]
    )  # never each other's cached results
    capsys.readouterr()
    for extra, message in (
        (
            ["--elastic-depth", "l2"],
            f"{elastic_folder} was trained for elastic depths l1, l3, full, not 'l2'",
        ),
        (["--elastic-depth", "l3", "--num-layers", "3"], "give --num-layers or --elastic-depth, not both"),
    ):
        assert main([*command, "--out", str(tmp_path / "x.json"), *extra]) == 2
        assert capsys.readouterr().err.strip() == f"l3prune: error: {message}"
    plain = tmp_path / "plain"
    LLMEncoder.from_pretrained(tiny_llama).save(plain)
    assert main(["evaluate", str(plain), "--tasks", str(tasks), "--out", str(tmp_path / "y.json"), "--elastic-depth", "full"]) == 2  # fmt: skip
    assert (
        "is not an elastic model: its l3prune_encoder.json records no elastic_depths"
        in capsys.readouterr().err
    )
