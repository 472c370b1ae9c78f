"""The baseline on the local runner: after a promote, a retrain on another span (`--span 1`) is
evaluated against the stable version, never without a baseline; and a re-run stays cached."""

from __future__ import annotations

import os

import pytest

from tests.e2e.conftest import run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    overlay = write_overlay(tmp)
    proc, first = run_json("--config", str(overlay))  # span 2, the latest
    assert proc.returncode == 0, first.get("error")
    promote = run_cli("release", "promote", "canary", "--config", str(overlay),
                      "--reason", "e2e", timeout=120)
    assert promote.returncode == 0, promote.stderr
    proc, retrain = run_json("--config", str(overlay), "--span", "1")
    # Released (0) or refused by the thresholds against the stable version (3).
    assert proc.returncode in (0, 3) and retrain["status"] == "succeeded", retrain.get("error")
    proc, again = run_json("--config", str(overlay), "--span", "1", "--full")
    assert proc.returncode in (0, 3), again.get("error")
    return tmp, first, retrain, again


def _store_and_execs(run):
    from components.metadata import get_run_executions, open_store

    store = open_store(run["metadata"]["uri"])
    return store, get_run_executions(store, "penguin", run["run_id"])


def _inputs(store, execution, key):
    from ml_metadata.proto import metadata_store_pb2

    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == metadata_store_pb2.Event.INPUT and e.path.steps[0].key == key]
    return store.get_artifacts_by_id(ids)


def test_a_retrain_on_another_span_is_compared_with_the_stable_version(runs):
    from ml_metadata.proto import metadata_store_pb2

    from components.metadata import custom_property

    tmp, first, retrain, _ = runs
    assert retrain["span"] == 1 and first["span"] == 2
    store, first_execs = _store_and_execs(first)
    [stable_model] = [e.artifact_id for e in store.get_events_by_execution_ids(
        [first_execs["Trainer"].id]) if e.type == metadata_store_pb2.Event.OUTPUT
        and e.path.steps[0].key == "model"]
    assert retrain["baseline"]["kind"] == "stable"
    assert retrain["baseline"]["version"] == 1
    assert retrain["baseline"]["model_id"] == stable_model
    assert retrain["baseline"]["line"] == (
        f"baseline: stable version 1 ({first['pushed']['tag']})")

    _, execs = _store_and_execs(retrain)
    [baseline] = _inputs(store, execs["Evaluator"], "baseline_model")
    assert custom_property(baseline, "baseline_version") == 1
    assert custom_property(baseline, "released_model_id") == stable_model
    # The files the Evaluator loaded are the served version's.
    served = tmp / "serving" / "penguin" / "1" / "saved_model.pb"
    assert os.path.samefile(os.path.join(baseline.uri, "Format-Serving", "saved_model.pb"),
                            served)
    # The validator's cache is tied to the same baseline.
    assert [a.id for a in _inputs(store, execs["SignatureValidator"], "baseline_model")] == [
        baseline.id]


def test_the_evaluator_did_compare_with_the_baseline(runs):
    import tensorflow_model_analysis as tfma

    from components.metadata import custom_property, get_output_artifacts

    _, _, retrain, _ = runs
    store, execs = _store_and_execs(retrain)
    [baseline] = _inputs(store, execs["Evaluator"], "baseline_model")
    outputs = get_output_artifacts(store, execs["Evaluator"].id)
    [blessing] = [a for a in outputs if custom_property(a, "blessed") is not None]
    # TFX's Evaluator records the baseline only when it had one (has_baseline).
    assert custom_property(blessing, "baseline_model_id") == baseline.id
    [evaluation] = [a for a in outputs if a.id != blessing.id]
    diffs = [kv.key.name for m in tfma.load_metrics(evaluation.uri)
             for kv in m.metric_keys_and_values if kv.key.is_diff]
    assert "sparse_categorical_accuracy" in diffs


def test_an_unchanged_rerun_is_fully_cached_with_the_same_baseline(runs):
    _, _, retrain, again = runs
    assert {c["name"]: c["status"] for c in again["components"]} == {
        c["name"]: "cached" for c in again["components"]}
    assert again["baseline"] == retrain["baseline"]
