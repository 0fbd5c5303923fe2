"""The version of the code a command runs: a digest of every l3prune module it can import.

The workflow gives each step its command's code version as a parameter, so a package change
that can change a step's result reruns that step (and what depends on it), and nothing else:
the modules are found by following the command's own imports (also those inside functions, and
through the packages' lazy exports), and each module counts by its syntax tree without docstrings, so comments, docstrings and formatting
change no version. Light: it reads source files, it imports nothing.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = "l3prune"
ROOT = Path(__file__).resolve().parent


def _module_file(name: str, root: Path) -> Path | None:
    parts = name.split(".")[1:]
    for candidate in (root.joinpath(*parts, "__init__.py"), root.joinpath(*parts).with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _lazy_exports(package: str, root: Path) -> dict[str, str]:
    """A package's `_EXPORTS` (name -> submodule, loaded on first use), or {}."""
    file = _module_file(package, root)
    if file is None or file.name != "__init__.py":
        return {}
    for node in ast.parse(file.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _imported_modules(tree: ast.Module, name: str, is_package: bool, root: Path) -> set[str]:
    """The l3prune modules a module can import: those its import statements name (a lazy export
    by the submodule that defines it), and, where it imports by name (import_module), every
    sibling module its strings name."""
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                base = f"{anchor}.{base}".rstrip(".")
            found.add(base)
            exports = _lazy_exports(base, root)
            for (
                alias
            ) in node.names:  # `from . import x` names a module, `from .pkg import X` maybe a lazy export
                found.add(f"{base}.{exports.get(alias.name, alias.name)}")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "import_module":
            strings = {
                n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            found.update(f"{here}.{value}" for value in strings if value.isidentifier())
    with_parents = {
        ".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 2)
    }  # __init__s run
    return {m for m in with_parents if m == PACKAGE or m.startswith(PACKAGE + ".")}


def _without_docstrings(tree: ast.Module) -> ast.Module:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.cache
def code_version(module: str, root: Path = ROOT) -> str:
    """A digest of `module` (e.g. "l3prune.commands.training") and every l3prune module it can import."""
    todo, trees = [module], {}
    while todo:
        name = todo.pop()
        file = _module_file(name, root)
        if name in trees or file is None:
            continue
        trees[name] = ast.parse(file.read_text(), filename=str(file))
        todo.extend(_imported_modules(trees[name], name, file.name == "__init__.py", root))
    if not trees:
        raise ValueError(f"no module {module} under {root}")
    digest = hashlib.sha256()
    for name in sorted(trees):  # not in discovery order: sets of names iterate in a per-process order
        digest.update(f"{name}\n{ast.dump(_without_docstrings(trees[name]))}\n".encode())
    return digest.hexdigest()[:16]
