"""Subcommands of `l3prune`, one module per area; each imports only argparse at module level."""
