"""The layer contracts (pyproject.toml [tool.importlinter], docs/ARCHITECTURE.md) hold, and they
bite: on a copy of the tree, one forbidden import, even inside a function, breaks the contract
that forbids it and only that one."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("pipeline", "components", "runners")


def lint_imports(cwd: Path) -> tuple[int, str, dict[str, str]]:
    """Runs lint-imports in `cwd`; returns its exit code, its output and each contract's
    verdict ("KEPT" or "BROKEN") by name."""
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    # import-linter 2.6 (the newest beside Airflow 2.9's rich<14) colours even a pipe.
    out = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    # A long contract name wraps: join the lines of the summary before reading it.
    # The rule under the header is as long as the "Analyzed N files" line: any run of dashes.
    summary = " ".join(re.split(r"-{10,}", out.split("Contracts:")[0])[-1].split())
    verdicts = dict((name.strip(), verdict) for name, verdict in
                    re.findall(r"(.+?) (KEPT|BROKEN)", summary))
    return proc.returncode, out, verdicts


def contract_names() -> list[str]:
    import tomli

    with open(REPO / "pyproject.toml", "rb") as f:
        config = tomli.load(f)["tool"]["importlinter"]
    return [c["name"] for c in config["contracts"]]


def test_the_layer_contracts_hold():
    code, out, verdicts = lint_imports(REPO)
    assert code == 0, out
    assert verdicts == {name: "KEPT" for name in contract_names()}, out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The project's packages (Python files only) and its contracts, in a directory of its own:
    lint-imports there reads that copy (it puts the working directory first on sys.path)."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


LAYERS = "Layers: CLI -> application -> runners -> pipeline definition -> config -> components"
NO_PIPELINE = "Components never import the pipeline or a runner"
SERVING = "The serving base path's owner depends on no component that uses it"
METADATA = "ML Metadata's owner depends on no other component"
INSIDE = ("Inside components: pusher -> signature | evaluator | baseline -> trainer -> serving "
          "-> metadata")


@pytest.mark.parametrize("module, imported, broken", [
    ("runners/local.py", "pipeline.app.run", {LAYERS}),
    ("pipeline/app/run.py", "pipeline.cli", {LAYERS}),
    ("pipeline/build.py", "runners.local", {LAYERS}),
    ("pipeline/spans.py", "pipeline.build", {LAYERS}),
    ("pipeline/config.py", "pipeline.spans", {LAYERS}),
    ("pipeline/release_cli.py", "pipeline.cli", set()),  # one layer: the commands
    ("components/data_check/__init__.py", "pipeline.config", {LAYERS, NO_PIPELINE}),
    # Indirectly too: runners.local -> pipeline.build -> components.pusher.
    ("components/trainer/_probe.py", "runners.local", {LAYERS, NO_PIPELINE, INSIDE}),
    ("components/serving/_probe.py", "components.pusher.component", {SERVING, INSIDE}),
    ("components/serving/_probe.py", "components.data_validation", {SERVING}),
    ("components/metadata/_probe.py", "components.serving", {METADATA, INSIDE}),
    ("components/metadata/_probe.py", "components.data_check", {METADATA}),
    ("components/signature/_probe.py", "components.evaluator", {INSIDE}),
])
def test_a_forbidden_import_breaks_its_contract(tree, module, imported, broken):
    path = tree / module
    before = path.read_text() if path.exists() else None
    path.write_text((before or "") + f"\n\ndef later():\n    import {imported}  # lazy, counted\n")
    try:
        code, out, verdicts = lint_imports(tree)
    finally:
        if before is None:
            path.unlink()
        else:
            path.write_text(before)
    assert verdicts == {n: "BROKEN" if n in broken else "KEPT" for n in contract_names()}, out
    assert code == (1 if broken else 0), out
