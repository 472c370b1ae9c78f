"""Real `pipeline run`s: an edit that changes the outcome runs again what it affects, and a
change made by someone else during a run is not absorbed into "up to date".

- The curated schema (a copy in tmp; the repository's file is never edited), edited in place so
  that the data violates it, stops the run at the gate naming the feature; reverted, the first
  import and everything after it come back from TFX's cache.
- A `pipeline release promote` while a run trains: the next run goes through TFX.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e

EDITED_FEATURE = "bill_length_mm"
ORIGINAL_RANGE = "float_domain { min: 25.0 max: 70.0 }"
# The sample data's bill lengths reach 59.6 mm.
TIGHTENED_RANGE = "float_domain { min: 25.0 max: 40.0 }"


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """A first successful run (version 1 released as canary) with its own copy of the schema."""
    tmp = tmp_path_factory.mktemp("reruns")
    schema = tmp / "schema.pbtxt"
    shutil.copy(REPO / "data" / "schema" / "schema.pbtxt", schema)
    assert schema.read_text().count(ORIGINAL_RANGE) == 1
    overlay = write_overlay(tmp, data={"schema": str(schema)})
    proc, run = run_json("--config", str(overlay))
    assert proc.returncode == 0, run.get("error")
    assert run["pushed"]["version"] == 1
    return tmp, overlay, schema, run


def _store(run: dict):
    from components.metadata import open_store

    return open_store(run["metadata"]["uri"])


def _outputs(run: dict, node: str) -> list[int]:
    from components.metadata import get_output_artifacts, get_run_executions

    store = _store(run)
    execution = get_run_executions(store, "penguin", run["run_id"])[node]
    return [a.id for a in get_output_artifacts(store, execution.id)]


def _statuses(run: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in run["components"]}


def test_schema_edited_in_place_stops_at_the_gate_and_a_revert_reuses_the_first_import(first):
    tmp, overlay, schema, run1 = first
    original = schema.read_text()
    schema.write_text(original.replace(ORIGINAL_RANGE, TIGHTENED_RANGE))
    try:
        proc, edited = run_json("--config", str(overlay))
    finally:
        schema.write_text(original)
    assert proc.returncode != 0 and edited["status"] == "failed"
    assert edited["error"].startswith("DataValidationGate: "), edited["error"]
    assert f"feature '{EDITED_FEATURE}'" in edited["error"], edited["error"]
    status = _statuses(edited)
    # The new content was imported and validated, not taken from the cache; nothing trained.
    assert status["ImportSchemaGen"] == "succeeded" and status["ExampleValidator"] == "succeeded"
    assert status["Trainer"] == "not run"

    # Reverted (a new mtime, the first content): through TFX, where every node is cached and
    # the schema artifact is the first run's.
    proc, reverted = run_json("--config", str(overlay))
    assert proc.returncode == 0, reverted.get("error")
    assert reverted["up_to_date_with"] is None
    assert _statuses(reverted) == {n: "cached" for n in _statuses(reverted)}
    assert _outputs(reverted, "ImportSchemaGen") == _outputs(run1, "ImportSchemaGen")
    assert _outputs(reverted, "Trainer") == _outputs(run1, "Trainer")
    assert reverted["pushed"] == {**run1["pushed"], "new": False}


def _wait_for_line(logs: Path, before: set[str], line: str, proc: subprocess.Popen,
                   timeout: float = 600) -> Path:
    """The new run log (not in `before`) once it holds `line`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the run ended first: {proc.stdout.read()[-2000:]}"
        for path in logs.glob("*.log"):
            if path.name not in before and line in path.read_text(errors="replace"):
                return path
        time.sleep(0.2)
    pytest.fail(f"no {line!r} in a new log under {logs}")


def test_a_promote_while_a_run_trains_is_not_absorbed_into_up_to_date(first):
    tmp, _, schema, run1 = first
    # Another config (longer training): this run trains again, a first release exists.
    overlay = write_overlay(tmp, data={"schema": str(schema)}, trainer={"train_steps": 3000})
    logs = tmp / "var" / "logs"
    before = {p.name for p in logs.glob("*.log")}
    stderr = open(tmp / "promote-run.stderr", "w")  # noqa: SIM115  (closed below)
    run = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--json", "--config", str(overlay)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )
    try:
        log = _wait_for_line(logs, before, "Component Trainer is running", run)
        promote = run_cli("release", "promote", "canary", "--config", str(overlay),
                          "--reason", "promoted during a run")
        assert promote.returncode == 0, promote.stderr
        # The promote landed while the Trainer was still running.
        assert "Component Trainer is finished" not in log.read_text()
        out, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
        stderr.close()
    second = json.loads(out)
    # Completed: released (0), or refused by the gates against the promoted baseline (3); this
    # test is about what the up-to-date check makes of the promote, not about the model.
    assert run.returncode in (0, 3) and second["status"] == "succeeded", second.get("error")
    assert _statuses(second)["Trainer"] == "succeeded"

    # Nothing changed since but the promote, which the second run did not see whole.
    proc, third = run_json("--config", str(overlay))
    assert proc.returncode in (0, 3) and third["status"] == "succeeded", third.get("error")
    assert third["up_to_date_with"] is None
    assert "running through TFX: no earlier successful run" in Path(third["log_file"]).read_text()
    text = log.read_text()
    assert f"run {second['run_id']} not recorded as up to date" in text
    assert "promote of version 1" in text
