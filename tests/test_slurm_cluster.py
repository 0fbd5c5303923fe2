"""The localhost SLURM cluster the workflow tests run on: jobs run, fake GPUs are granted, records kept."""

import subprocess

import pytest
from slurm.cluster import MARK, SlurmCluster, wait_until

pytest_plugins = ["slurm.fixtures"]


def test_batch_job_runs_on_the_node_with_the_fake_gpus_it_asked_for(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    job_id = slurm_cluster.sbatch(
        "--gpus=2", "--output", str(out), "--wrap", "echo $SLURM_JOB_ID $CUDA_VISIBLE_DEVICES"
    )

    job = slurm_cluster.wait_for_job(job_id)
    assert (job["JobState"], job["TresPerJob"], job["NodeList"]) == (
        "COMPLETED",
        "gres:gpu:2",
        slurm_cluster.host,
    )
    assert out.read_text().split() == [job_id, "0,1"]
    assert f"_slurm_rpc_submit_batch_job: JobId={job_id} " in slurm_cluster.controller_log.read_text()
    wait_until(lambda: job_id in slurm_cluster.finished_jobs(), 10, f"job {job_id} not in the completion log")
    assert slurm_cluster.finished_jobs()[job_id]["JobState"] == "COMPLETED"


def test_cancelled_job_is_recorded_as_cancelled(slurm_cluster, tmp_path):
    job_id = slurm_cluster.sbatch("--output", str(tmp_path / "job.out"), "--wrap", "sleep 60")
    wait_until(lambda: slurm_cluster.job(job_id)["JobState"] == "RUNNING", 30, f"job {job_id} never ran")

    subprocess.run(["scancel", job_id], check=True)

    assert slurm_cluster.wait_for_job(job_id)["JobState"] == "CANCELLED"
    wait_until(lambda: job_id in slurm_cluster.finished_jobs(), 10, f"job {job_id} not in the completion log")
    assert slurm_cluster.finished_jobs()[job_id]["JobState"] == "CANCELLED"


def test_more_gpus_than_the_node_has_are_refused_at_submission(slurm_cluster):
    with pytest.raises(subprocess.CalledProcessError) as failure:
        slurm_cluster.sbatch("--gpus=3", "--wrap", "true")
    assert "Requested node configuration is not available" in failure.value.stderr


def test_a_config_the_harness_did_not_write_is_never_replaced(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "slurm.conf").write_text("ClusterName=production\n")
    cluster = SlurmCluster(tmp_path / "cluster", config_dir=config_dir)

    with pytest.raises(
        RuntimeError, match=f"^{config_dir}/slurm.conf exists and was not written by the test harness"
    ):
        cluster.check_config_dir_is_free()


def test_a_stale_config_is_replaced_but_a_running_clusters_is_not(tmp_path):
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    old_root = tmp_path / "old"
    old_root.mkdir()
    (config_dir / "slurm.conf").write_text(f"{MARK} {old_root}\n")
    cluster = SlurmCluster(tmp_path / "cluster", config_dir=config_dir)
    cluster.check_config_dir_is_free()  # its daemons are gone: a crashed run's leftover

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (old_root / "slurmctld.pid").write_text(f"{sleeper.pid}\n")
        with pytest.raises(
            RuntimeError, match=f"another test cluster \\(state in {old_root}\\) is still running"
        ):
            cluster.check_config_dir_is_free()
    finally:
        sleeper.kill()
        sleeper.wait()
