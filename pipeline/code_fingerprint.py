"""Fingerprints of the code a pipeline node runs, so that a code change re-runs that node.

TFX caches a node on its inputs and exec properties; a custom component's executor is named by
its module path, not by its code, so an edited component would come back cached. Each node the
project's code runs gets `code_fingerprint(package)` as an exec property (the Trainer in its
`custom_config`): a digest of

- every Python file of the node's own package (it may start some of them as processes, e.g.
  `python -m components.trainer.worker`, which no import shows), and
- every project module those files import, transitively, lazy imports inside functions
  included, with the `__init__.py` of each package on the way (Python runs them on import).

Pure standard library (the source is parsed, never imported): the CLI computes it cheaply.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Top-level packages of the project: imports of anything else are libraries.
PROJECT_PACKAGES = ("components", "pipeline", "runners")


def _module_file(module: str, root: Path) -> Path | None:
    """The file defining `module` (`a.b` -> a/b.py or a/b/__init__.py), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _files_run_by_import(module: str, root: Path) -> list[Path]:
    """What `import module` executes: each enclosing package's __init__.py, then the module."""
    parts = module.split(".")
    files = []
    for i in range(1, len(parts) + 1):
        path = _module_file(".".join(parts[:i]), root)
        if path is not None:
            files.append(path)
    return files


def _imported_modules(path: Path) -> frozenset[str]:
    """Project modules named by the import statements of `path` (anywhere in it)."""
    st = path.stat()
    return _parse_imports(path, st.st_mtime_ns, st.st_size)


@cache
def _parse_imports(path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    """`_imported_modules`, parsed once per version of the file (the key holds its stat)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from a.b import c`: c is a name of a.b or its submodule a.b.c.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PROJECT_PACKAGES)
    return frozenset(found)


def code_files(package: str, root: Path = REPO_ROOT) -> list[Path]:
    """The files `package`'s code runs: its own files and the project modules they import.

    Args:
      package: a dotted package name under `root`, e.g. "components.pusher".
      root: the directory holding the project's top-level packages.

    Raises:
      ValueError: `package` is not a package under `root`.
    """
    folder = root.joinpath(*package.split("."))
    if not (folder / "__init__.py").is_file():
        raise ValueError(f"{package} is not a package under {root}")
    seen: set[Path] = set()
    todo = sorted(folder.rglob("*.py")) + _files_run_by_import(package, root)
    while todo:
        path = todo.pop()
        if path in seen or "__pycache__" in path.parts:
            continue
        seen.add(path)
        for module in _imported_modules(path):
            todo.extend(_files_run_by_import(module, root))
    return sorted(seen)


def code_fingerprint(package: str, root: Path = REPO_ROOT) -> str:
    """16 hex digits of sha256 over the names and contents of `code_files(package)`."""
    h = hashlib.sha256()
    for path in code_files(package, root):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]
