"""Two gloo processes on CPU, each with part of the batch, against one process with all of it.

The processes are forked: they inherit the imports, which would take seconds each to redo
(DistributedDataParallel imports torch._dynamo, so that is imported here once).
"""

import gc
import socket

import torch
import torch._dynamo  # noqa: F401
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from l3prune.loss import HardNegativeNLLLoss

WORLD = 2
# (rows on rank 0, rows on rank 1, with hard negatives)
CASES = [(3, 3, True), (3, 3, False), (4, 2, True)]


def inputs(rows: int, seed: int) -> dict[str, torch.Tensor]:
    """Raw features of the queries, positives and negatives that the model turns into reps."""
    g = torch.Generator().manual_seed(seed)
    return {
        kind: torch.randn(rows, 5, generator=g, dtype=torch.float64)
        for kind in ("query", "positive", "negative")
    }


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(5, 4, dtype=torch.float64)


def run_step(model, features, with_negatives):
    """One forward (a single pass, as DDP wants) and backward; -> loss, grads of features and weights."""
    features = {kind: x.clone().requires_grad_() for kind, x in features.items()}
    kinds = ["query", "positive"] + (["negative"] if with_negatives else [])
    reps = model(torch.cat([features[kind] for kind in kinds])).split([len(features[kind]) for kind in kinds])
    loss = HardNegativeNLLLoss(scale=20.0)(*reps)
    model.zero_grad()
    loss.backward()
    return (
        loss.detach(),
        {kind: features[kind].grad for kind in kinds},
        [p.grad.clone() for p in model.parameters()],
    )


def worker(rank, port, out_dir):
    torch.set_num_threads(1)  # two ranks share the cores
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        model = DistributedDataParallel(make_model())
        results = [
            run_step(model, inputs(rows[rank], seed=10 * case + rank), with_negatives)
            for case, (*rows, with_negatives) in enumerate(CASES)
        ]
        torch.save(results, out_dir / f"rank{rank}.pt")
        # DDP's reducer holds the process group: freed after the group it would tear gloo down from a
        # finalizer while a gloo thread waits for the GIL (a hang at exit), so it goes first
        del model, results
        gc.collect()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gathered_loss_and_ddp_gradients_equal_one_process_on_the_whole_batch(tmp_path):
    # spawn, not fork: a fork of a process that has run many tests (threads, locks held) can hang
    mp.start_processes(worker, args=(free_port(), tmp_path), nprocs=WORLD, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    model = make_model()
    for case, (*rows, with_negatives) in enumerate(CASES):
        parts = [inputs(rows[rank], seed=10 * case + rank) for rank in range(WORLD)]
        whole = {kind: torch.cat([part[kind] for part in parts]) for kind in parts[0]}
        loss, feature_grads, weight_grads = run_step(model, whole, with_negatives)
        for rank in range(WORLD):
            rank_loss, rank_feature_grads, rank_weight_grads = results[rank][case]
            torch.testing.assert_close(rank_loss, loss, rtol=1e-12, atol=0)
            # a process's own rows get the sum over processes of the (identical) global loss's gradient
            own = slice(sum(rows[:rank]), sum(rows[: rank + 1]))
            for kind, grad in rank_feature_grads.items():
                torch.testing.assert_close(grad / WORLD, feature_grads[kind][own], rtol=1e-10, atol=1e-12)
            # and after DDP's average the weights' gradient is that of one process on the whole batch
            for got, expected in zip(rank_weight_grads, weight_grads, strict=True):
                torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
