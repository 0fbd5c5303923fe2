"""The tiny-model workflow on a real SLURM cluster (tests/slurm), with the repository's `slurm` profile.

Every job goes through sbatch (SLURM's own records say so), the GPU steps get a fake GPU, the
results equal a local run's, and a training job cancelled mid-way resumes from its checkpoint.
The working folder, tiny model, data, tasks and config are the local end-to-end test's.
"""

import csv
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from slurm.cluster import wait_until
from test_workflow_e2e import (  # noqa: F401  (workdir: a fixture, used below)
    REPO,
    assert_trained_by_two_processes,
    set_train_job,
    snakemake,
    workdir,
)

pytest_plugins = ["slurm.fixtures"]

GPU_STEPS = ("layerwise_loss", "train", "evaluate")
VARIANTS = ("full", "small", "large")
# The plugin checks job states 1 s after a submission, then 10 s more at each check that finds
# no job finished; its default first wait is 40 s.
SLURM_ARGS = ("--profile", str(REPO / "slurm"), "--slurm-init-seconds-before-status-checks", "1")


@pytest.fixture
def gpu_workdir(workdir):  # noqa: F811
    """The end-to-end test's working folder, with each GPU step asking for one GPU (and no untrained
    baselines: the end-to-end test covers them; here every job is one more SLURM round trip)."""
    config = yaml.safe_load((workdir / "tiny.yaml").read_text())
    config["models"]["tiny"]["untrained_baselines"] = False
    for step in GPU_STEPS:
        config["models"]["tiny"]["resources"][step]["gpu"] = 1
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(config))
    return workdir


def slurm_jobs(cluster, folder) -> list[dict[str, str]]:
    """SLURM's records of the jobs that ended in `folder`, in the order they ended.

    The plugin comments each job `rule_<rule>_wildcards_<values>`.
    """
    records = [cluster.job(job_id) for job_id in cluster.finished_jobs()]
    return [record for record in records if record["WorkDir"] == str(folder)]


def summary_without_timings(folder) -> list[dict[str, str]]:
    with (folder / "results/tiny/summary.csv").open(newline="") as file:
        return [
            {key: value for key, value in row.items() if key not in ("encode_seconds", "train_seconds")}
            for row in csv.DictReader(file)
        ]


def scores(folder, variant) -> dict:
    """What mteb.json says of a variant's quality (its timings and revision hash differ between runs)."""
    mteb = json.loads((folder / f"results/tiny/{variant}/mteb.json").read_text())
    tasks = {name: (task["main_score"], task["scores"]) for name, task in mteb["tasks"].items()}
    return {key: mteb[key] for key in ("average", "num_layers", "num_parameters", "embedding_dim")} | tasks


@pytest.mark.slow
def test_every_job_goes_through_sbatch_and_the_results_equal_a_local_run(
    slurm_cluster, gpu_workdir, tmp_path
):
    local = shutil.copytree(gpu_workdir, tmp_path / "local", symlinks=True)
    # the local run fills the time the SLURM run spends waiting between its status checks
    with ThreadPoolExecutor(1) as pool:
        on_slurm = pool.submit(snakemake, gpu_workdir, *SLURM_ARGS)
        local_run = snakemake(local)
        on_slurm = on_slurm.result()
    assert local_run.returncode == 0, local_run.stderr[-3000:]
    assert on_slurm.returncode == 0, on_slurm.stderr[-3000:]

    # Snakemake ran only the target rule `all` itself; SLURM ran the rest, each job once, on the node
    assert re.findall(r"^localrule (\w+):", on_slurm.stdout + on_slurm.stderr, re.MULTILINE) == ["all"]
    jobs = slurm_jobs(slurm_cluster, gpu_workdir)
    expected = [
        "rule_layerwise_loss_wildcards_tiny",
        "rule_prune_points_wildcards_tiny",
        "rule_report_wildcards_tiny",
    ]
    expected += [
        f"rule_{rule}_wildcards_tiny_{variant}" for rule in ("train", "evaluate") for variant in VARIANTS
    ]
    assert sorted(job["Comment"] for job in jobs) == sorted(expected)
    submissions = slurm_cluster.controller_log.read_text()
    for job in jobs:
        assert (job["JobState"], job["NodeList"]) == ("COMPLETED", slurm_cluster.host), job["Comment"]
        assert f"_slurm_rpc_submit_batch_job: JobId={job['JobId']} " in submissions
        gpu_step = job["Comment"].split("_wildcards_")[0].removeprefix("rule_") in GPU_STEPS
        assert job.get("TresPerJob") == ("gres:gpu:1" if gpu_step else None), job["Comment"]

    assert (gpu_workdir / "results/tiny/prune_points.json").read_text() == (
        local / "results/tiny/prune_points.json"
    ).read_text()
    assert summary_without_timings(gpu_workdir) == summary_without_timings(local)
    for variant in VARIANTS:
        assert scores(gpu_workdir, variant) == scores(local, variant)
        adapter = f"results/tiny/{variant}/model/adapter_model.safetensors"
        assert (gpu_workdir / adapter).read_bytes() == (local / adapter).read_bytes()


@pytest.mark.slow
def test_a_training_job_cancelled_mid_way_resumes_from_its_checkpoint(slurm_cluster, gpu_workdir):
    steps = 40  # 5 epochs of 8 batches (32 pairs, 4 a batch): long enough to be cancelled mid-way
    config = json.loads((gpu_workdir / "train.json").read_text())
    config.update(num_train_epochs=5, stop_after_n_steps=steps, save_steps=4, logging_steps=1)
    (gpu_workdir / "train.json").write_text(json.dumps(config))
    model = gpu_workdir / "results/tiny/full/model"
    checkpoints = gpu_workdir / "results/tiny/full/model.partial/checkpoints"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(snakemake, gpu_workdir, *SLURM_ARGS, "results/tiny/full/model")
        wait_until(lambda: (checkpoints / "checkpoint-4").is_dir(), 300, "no checkpoint was written")
        (job_id,) = subprocess.run(
            ["squeue", "-h", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        subprocess.run(["scancel", job_id], check=True)
        first = first.result()
    slurm_cluster.wait_for_idle_node()  # the job's processes have ended

    assert slurm_cluster.job(job_id)["JobState"] == "CANCELLED"
    assert slurm_cluster.job(job_id)["Comment"] == "rule_train_wildcards_tiny_full"
    assert first.returncode != 0
    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in first.stdout + first.stderr
    assert not model.exists()  # nothing that looks finished
    kept = sorted(checkpoints.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert kept and int(kept[-1].name.split("-")[1]) < steps

    second = snakemake(gpu_workdir, *SLURM_ARGS, "results/tiny/full/model")
    assert second.returncode == 0, second.stderr[-3000:]

    assert (
        f"variant full: resuming from {kept[-1].relative_to(gpu_workdir)}"
        in (gpu_workdir / "logs/tiny/full/train.log").read_text()
    )
    with (model / "training_log.csv").open(newline="") as file:
        assert [int(row["step"]) for row in csv.DictReader(file)] == list(range(1, steps + 1))
    assert json.loads((model / "model_info.json").read_text())["steps"] == steps
    jobs = [(job["Comment"], job["JobState"]) for job in slurm_jobs(slurm_cluster, gpu_workdir)]
    assert jobs == [
        ("rule_train_wildcards_tiny_full", "CANCELLED"),
        ("rule_train_wildcards_tiny_full", "COMPLETED"),
    ]


@pytest.mark.slow
def test_a_training_job_with_two_gpus_runs_two_processes_in_one_slurm_job(slurm_cluster, workdir):  # noqa: F811
    set_train_job(workdir, gpu=2)  # the node's two fake GPUs: 2 processes, on its CPUs
    run = snakemake(workdir, *SLURM_ARGS, "results/tiny/full/model")
    assert run.returncode == 0, run.stderr[-3000:]

    (job,) = slurm_jobs(slurm_cluster, workdir)
    assert (job["Comment"], job["JobState"], job["TresPerJob"]) == (
        "rule_train_wildcards_tiny_full", "COMPLETED", "gres:gpu:2",
    )  # fmt: skip
    assert_trained_by_two_processes(workdir)
