"""Two pipelines at the same time against one MariaDB database (scripts/setup_mariadb.sh, over
TLS): two pipeline names, then the same one twice, each run with its own work_dir and base
path. Both complete, and the database holds each run's records once: nothing lost, nothing
duplicated, nothing that belongs to no run.

Each test starts both runs on a database of its own, still empty: the two processes create
ML Metadata's tables and register its types at the same moment, the worst case."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, write_overlay

pytestmark = pytest.mark.e2e


def _overlay(mariadb, database: str, tmp: Path, pipeline_name: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return write_overlay(tmp, pipeline_name=pipeline_name,
                         metadata=mariadb.overlay(database))


def _run_together(*overlays: Path) -> list[dict]:
    """`pipeline run --json` once per overlay, all started before any is waited for."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--json",
                               "--config", str(o)], cwd=REPO, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for o in overlays]
    outputs = [proc.communicate(timeout=1200) for proc in procs]  # all ended, whatever fails
    results = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        try:
            result = json.loads(out)
        except json.JSONDecodeError:
            pytest.fail(f"stdout is not one JSON object:\n{out}\n{err[-3000:]}")
        assert proc.returncode == 0, (result.get("error"), err[-3000:])
        results.append(result)
    return results


def _assert_each_run_recorded_once(store, runs: list[tuple[str, dict]]) -> None:
    """`runs`: (pipeline name, `pipeline run --json` result) of every run the database holds."""
    from components.metadata import execution_state, get_output_artifacts, get_run_executions

    all_executions = {e.id: e for e in store.get_executions()}
    seen: set[int] = set()
    produced: Counter[int] = Counter()
    for pipeline, result in runs:
        assert result["status"] == "succeeded"
        nodes = get_run_executions(store, pipeline, result["run_id"])
        names = [c["name"] for c in result["components"]]
        # One execution per node of the pipeline, each done.
        assert sorted(nodes) == sorted(names)
        assert all(execution_state(e) in ("succeeded", "cached") for e in nodes.values())
        # The run's context holds those and its request, nothing else.
        run = store.get_context_by_type_and_name("pipeline_run", result["run_id"])
        in_run = {e.id: e for e in store.get_executions_by_context(run.id)}
        node_ids = {e.id for e in nodes.values()}
        assert sorted(e.type for i, e in in_run.items() if i not in node_ids) == ["RunRequest"]
        assert not seen & set(in_run), "an execution is in two runs"
        seen |= set(in_run)
        for e in nodes.values():
            outputs = get_output_artifacts(store, e.id)
            if execution_state(e) == "succeeded":
                produced.update(a.id for a in outputs)
                assert outputs or e.type.endswith("DataValidationGate"), e.type
    # Every execution belongs to one of the runs; no artifact was produced twice.
    assert seen == set(all_executions)
    assert [a for a, n in produced.items() if n > 1] == []
    # One pipeline context per name, one node context per node, one context per run.
    names = {p for p, _ in runs}
    contexts = Counter((c.type, c.name) for c in store.get_contexts())
    assert sorted(n for (t, n) in contexts if t == "pipeline") == sorted(names)
    assert sorted(n for (t, n) in contexts if t == "pipeline_run") == sorted(
        r["run_id"] for _, r in runs)
    assert sorted(n for (t, n) in contexts if t == "node") == sorted(
        f"{p}.{c['name']}" for p in names for c in runs[0][1]["components"])
    # The input files recorded once each (path, size, content, span).
    files = Counter((a.uri, a.properties["size"].int_value,
                     a.properties["sha256"].string_value, a.properties["span"].int_value)
                    for a in store.get_artifacts_by_type("DataFile"))
    assert [f for f, n in files.items() if n > 1] == []
    # Each type once.
    for kind in (store.get_execution_types(), store.get_artifact_types(),
                 store.get_context_types()):
        assert [n for n, k in Counter(t.name for t in kind).items() if k > 1] == []


@pytest.mark.timeout(1800)
def test_two_pipelines_at_once_on_one_database(mariadb, mariadb_database, tmp_path):
    from components.metadata import open_store

    a = _overlay(mariadb, mariadb_database, tmp_path / "a", "penguin_a")
    b = _overlay(mariadb, mariadb_database, tmp_path / "b", "penguin_b")
    first, second = _run_together(a, b)
    for result in (first, second):
        assert result["pushed"]["version"] == 1 and result["pushed"]["new"] is True
    store = open_store(mariadb.settings(mariadb_database))
    _assert_each_run_recorded_once(store, [("penguin_a", first), ("penguin_b", second)])
    assert len(store.get_artifacts_by_type("PushedModel")) == 2


@pytest.mark.timeout(1800)
def test_the_same_pipeline_twice_at_once(mariadb, mariadb_database, tmp_path):
    """Each run with its own work_dir (pipeline root) and base path; TFX's cache is shared
    through ML Metadata, so the later node may reuse the earlier one's output: cached."""
    from components.metadata import open_store

    one = _overlay(mariadb, mariadb_database, tmp_path / "one", "penguin")
    two = _overlay(mariadb, mariadb_database, tmp_path / "two", "penguin")
    first, second = _run_together(one, two)
    assert first["run_id"] != second["run_id"]
    for result, tmp in ((first, tmp_path / "one"), (second, tmp_path / "two")):
        # Each base path gets its version 1 (pushed, or copied by a cached pusher's rerun).
        assert result["pushed"]["version"] == 1
        assert (tmp / "serving" / "penguin" / "1").is_dir()
    store = open_store(mariadb.settings(mariadb_database))
    _assert_each_run_recorded_once(store, [("penguin", first), ("penguin", second)])
