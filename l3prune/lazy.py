"""Package exports that load on first use, so that `import l3prune.<light module>` (the command
line, the Snakemake workflow's planning) does not pay seconds for torch and transformers."""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """A module `__getattr__` for `package` that imports `exports[name]` (a submodule, relative to
    `package`) when `name` is first looked up."""

    def __getattr__(name: str):
        if name in exports:
            return getattr(import_module(f".{exports[name]}", package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
