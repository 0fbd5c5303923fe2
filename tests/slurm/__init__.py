"""Test harness: a real one-node SLURM cluster on localhost (cluster.py) and its pytest fixture (fixtures.py)."""
