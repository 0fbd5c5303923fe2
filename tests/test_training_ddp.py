"""Data-parallel training: 2 gloo processes with batch b step exactly like 1 process with batch 2b
(L3Prune included, when train runs it), also with a checkpoint every step and a resume after one
process died mid-save."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from test_training import adapter, make_config, pairs, read_log  # noqa: F401 -- pairs is a fixture

from l3prune.training.trainer import COMPLETE_MARK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(processes, config_path, *train_args, program=("-m", "l3prune")):
    """`l3prune train CONFIG ...` (or `program`) in `processes` gloo processes on one thread each."""
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
        f"--master_port={free_port()}", *program, "train", str(config_path), *map(str, train_args),
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


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
    for config, processes in ((single, 1), (double, 2)):
        result = torchrun(
            processes, write_config(config, tmp_path / f"{processes}.json"), "--variant", "small"
        )
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


KILLED_WHILE_SAVING = """
import os, sys
from l3prune import cli
from l3prune.training.trainer import ContrastiveTrainer

save_rng_state = ContrastiveTrainer._save_rng_state


def killed_while_saving_3(self, output_dir):
    if self.state.global_step == 3 and self.args.process_index == 1:
        os._exit(9)  # process 1 dies before its RNG state of checkpoint 3 is written; process 0 has written the rest
    save_rng_state(self, output_dir)


ContrastiveTrainer._save_rng_state = killed_while_saving_3
sys.exit(cli.main())
"""


# lists the work folder's checkpoints and their files as the final folder is about to be written
# (process 0 alone writes it), then writes it: the final folder holds no checkpoints
CHECKPOINTS_AT_FINISH = """
import json, sys
from l3prune import cli
from l3prune.training import run

finish = run._finish


def listing_checkpoints(encoder, work, folder, info):
    listing = {{p.name: sorted(q.name for q in p.iterdir()) for p in (work / "checkpoints").iterdir()}}
    open({out!r}, "w").write(json.dumps(listing))
    finish(encoder, work, folder, info)


run._finish = listing_checkpoints
sys.exit(cli.main())
"""


@pytest.mark.slow
def test_two_processes_checkpoint_every_step_and_resume_after_a_kill(tiny_llama, pairs, tmp_path):  # noqa: F811
    # no use_cpu: on a machine without a GPU, torchrun's processes must still form one gloo job
    common = dict(optim="sgd", max_grad_norm=0.0, learning_rate=0.1, warmup_steps=0, lora_dropout=0.0)
    common.update(stop_after_n_steps=4, save_steps=1)
    single = make_config(tiny_llama, pairs, tmp_path / "unused", per_device_train_batch_size=4, **common)
    double = make_config(tiny_llama, pairs, tmp_path / "unused", per_device_train_batch_size=2, **common)
    killer = tmp_path / "killed_while_saving.py"
    killer.write_text(KILLED_WHILE_SAVING)
    one, two = tmp_path / "one" / "full", tmp_path / "two" / "full"
    single, double = write_config(single, tmp_path / "1.json"), write_config(double, tmp_path / "2.json")
    result = torchrun(1, single, "--variant", "full", "--output-dir", one)
    assert result.returncode == 0, result.stderr[-3000:]
    result = torchrun(2, double, "--variant", "full", "--output-dir", two, program=(str(killer),))
    assert result.returncode != 0
    checkpoints = two.with_name("full.partial") / "checkpoints"
    assert not two.exists()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    staged = sorted(p.name for p in (checkpoints / "checkpoint-3").iterdir())
    assert "rng_state_0.pth" in staged and "rng_state_1.pth" not in staged and COMPLETE_MARK not in staged
    assert all((checkpoints / f"checkpoint-{n}" / COMPLETE_MARK).is_file() for n in (1, 2))
    listing = tmp_path / "checkpoints.json"
    spy = tmp_path / "checkpoints_at_finish.py"
    spy.write_text(CHECKPOINTS_AT_FINISH.format(out=str(listing)))
    result = torchrun(2, double, "--variant", "full", "--output-dir", two, program=(str(spy),))
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {checkpoints / 'checkpoint-2'}" in result.stderr
    assert "variant full: process 1 of 2, global batch 4 (2 per process)" in result.stderr
    assert "variant full: process 2 of 2, global batch 4 (2 per process)" in result.stderr
    checkpoints_at_finish = json.loads(listing.read_text())
    assert sorted(checkpoints_at_finish) == ["checkpoint-3", "checkpoint-4"]  # the last two are kept
    for files in checkpoints_at_finish.values():  # written after the resume, by both processes
        assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(files)
    assert sorted(p.name for p in two.parent.iterdir()) == ["full"]  # no staging or temporary leftovers
    assert json.loads((two / "model_info.json").read_text())["steps"] == 4
    assert [row["step"] for row in read_log(two)] == ["1", "2", "3", "4"]
    losses = [[float(row["loss"]) for row in read_log(folder)] for folder in (one, two)]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    a, b = adapter(one), adapter(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-5, msg=key)
