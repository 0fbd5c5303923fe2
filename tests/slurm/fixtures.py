"""The `slurm_cluster` fixture; a test module gets it with `pytest_plugins = ["slurm.fixtures"]`."""

import os

import pytest

from slurm.cluster import SlurmCluster, missing_requirement


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster for the whole session, stopped at its end even after failures.

    Skipped where SLURM is not installed, except in CI (CI=true), where .ci/install-slurm installs
    it and a skip would hide a broken install.
    """
    reason = missing_requirement()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"no SLURM cluster in CI: {reason}")
        pytest.skip(f"no SLURM cluster: {reason}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
