"""A training file rewritten with other examples, its byte size and mtime kept (as `cp -p`,
`rsync -t` or an unpacked archive leave them), through the real `pipeline run`:

- the up-to-date check (what a default re-run asks first) sees a change of its data part;
- with `--full` the run meets TFX's cache, whose own input fingerprint (size, mtime) is the
  same: ImportExampleGen is not cached and imports the new content (the digest of the content
  in its custom_config, pipeline/build.py).

Two pipeline runs: the up-to-date check's data part is computed in-process (no TFX), as
`pipeline run` computes it.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.e2e.conftest import REPO, run_json, write_overlay
from tests.unit.test_up_to_date import rewrite_keeping_size_and_mtime

pytestmark = pytest.mark.e2e


def _statuses(run: dict) -> dict[str, str]:
    return {c["name"]: c["status"] for c in run["components"]}


def _import(run: dict):
    """The run's ImportExampleGen execution and the ids of its output artifacts."""
    from components.metadata import get_output_artifacts, get_run_executions, open_store

    store = open_store(run["metadata"]["uri"])
    execution = get_run_executions(store, "penguin", run["run_id"])["ImportExampleGen"]
    return execution, [a.id for a in get_output_artifacts(store, execution.id)]


def test_a_rewrite_keeping_size_and_mtime_is_seen_by_the_check_and_by_tfx_cache(tmp_path):
    from pipeline.app.up_to_date import input_fingerprint, record_path
    from pipeline.config import load_config

    root = tmp_path / "data"
    shutil.copytree(REPO / "data" / "penguins", root)
    overlay = write_overlay(tmp_path, data={"root": str(root)}, trainer={"train_steps": 50})
    proc, first = run_json("--config", str(overlay))
    assert first["status"] == "succeeded", first.get("error")
    assert first["span"] == 2

    # The data part of the check (its other parts may move with edits elsewhere in the tree;
    # tests/unit/test_up_to_date.py covers the verdict).
    cfg = load_config(config_file=overlay)
    recorded = json.loads(record_path(cfg).read_text())["fingerprint"]["data"]
    assert input_fingerprint(cfg, 2)["data"] == recorded  # nothing changed yet
    train = next((root / "span-2" / "Split-train").glob("*.tfrecord.gz"))
    rewrite_keeping_size_and_mtime(train)
    assert input_fingerprint(cfg, 2)["data"] != recorded

    proc, full = run_json("--config", str(overlay), "--full")
    assert full["status"] == "succeeded", full.get("error")
    assert full["up_to_date_with"] is None
    status = _statuses(full)
    assert status["ImportExampleGen"] == "succeeded", status
    # The new examples go down the pipeline: their statistics are computed again.
    assert status["StatisticsGen"] == "succeeded", status
    execution1, examples1 = _import(first)
    execution2, examples2 = _import(full)
    assert examples2 != examples1
    # TFX's own fingerprint (size, mtime) is the same in both runs: only the digest differs.
    props1, props2 = execution1.custom_properties, execution2.custom_properties
    assert props1["input_fingerprint"] == props2["input_fingerprint"]
    digest = [json.loads(p["custom_config"].string_value)["custom_config"]["value"]
              for p in (props1, props2)]
    assert digest[0] != digest[1] and all(d.startswith("data-sha256:") for d in digest)
