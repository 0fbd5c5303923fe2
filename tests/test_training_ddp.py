"""Data-parallel training: 2 gloo processes with batch b step exactly like 1 process with batch 2b
(L3Prune included, when train runs it)."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from test_training import adapter, make_config, pairs, read_log  # noqa: F401 -- pairs is a fixture


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(config, path):
    keys = {k: v for k, v in vars(config).items() if k not in ("training_args", "source")}
    path.write_text(json.dumps({**keys, **config.training_args}))
    return path


@pytest.mark.slow
def test_two_processes_train_as_one_with_the_global_batch(tiny_llama, pairs, tmp_path):  # noqa: F811
    # plain SGD without clipping: the update is -lr x gradient, so equal weights mean equal gradients
    common = dict(optim="sgd", max_grad_norm=0.0, learning_rate=0.5, warmup_steps=0, lora_dropout=0.0)
    common.update(stop_after_n_steps=2, save_steps=100, use_cpu=True)
    # the pruned variant L3Prune picks: each process runs it before the process group starts, then all take process 0's
    common.update(autoprune="small", l3prune_batch_size=4, l3prune_num_batches=2)
    single = make_config(tiny_llama, pairs, tmp_path / "single", per_device_train_batch_size=4, **common)
    double = make_config(tiny_llama, pairs, tmp_path / "double", per_device_train_batch_size=2, **common)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    for config, processes in ((single, 1), (double, 2)):
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            f"--master_port={free_port()}", "-m", "l3prune.cli", "train",
            str(write_config(config, tmp_path / f"{processes}.json")), "--variant", "small",
        ]  # fmt: skip
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = tmp_path / "single" / "small", tmp_path / "double" / "small"
    infos = [json.loads((folder / "model_info.json").read_text()) for folder in (one, two)]
    assert infos[0]["prune_points"] == infos[1]["prune_points"] and infos[0]["layers_after"] < 4
    losses = [[float(row["loss"]) for row in read_log(folder)] for folder in (one, two)]
    assert len(losses[0]) == 2
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    a, b = adapter(one), adapter(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(
            b[key], a[key], atol=1e-5, rtol=1e-5, msg=key
        )  # float32 sums in other orders
    assert any(key.endswith("lora_A.weight") for key in a)  # both factors moved (B at step 1, A from step 2)
