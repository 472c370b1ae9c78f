"""Partial runs and `pipeline retrain` on the real pipeline (LocalDagRunner, data/): a refused
partial run with nothing to reuse, a retrain on span 1 with a reason, read back from ML
Metadata, and a run from the Evaluator on top of it."""

from __future__ import annotations

import getpass
import json
import time

import pytest

from pipeline.build import NODE_ORDER
from tests.e2e.conftest import run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e

REASON = "span 1 relabelled: retrain on it"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A refused partial run, a retrain on span 1 (not the latest, 2) and a run from the
    Evaluator on top of it: three CLI calls, two of which run the pipeline."""
    tmp = tmp_path_factory.mktemp("partial")
    overlay = str(write_overlay(tmp, trainer={"train_steps": 100}))
    seconds = {}
    start = time.monotonic()
    refused = run_cli("run", "--config", overlay, "--from-node", "Evaluator")
    seconds["refused"] = time.monotonic() - start
    start = time.monotonic()
    proc = run_cli("retrain", "--json", "--config", overlay, "--span", "1", "--reason", REASON)
    retrain = json.loads(proc.stdout)
    assert proc.returncode == 0, retrain.get("error")
    seconds["retrain"] = time.monotonic() - start
    start = time.monotonic()
    proc, partial = run_json("--config", overlay, "--from-node", "Evaluator")
    assert proc.returncode == 0, partial.get("error")
    seconds["partial"] = time.monotonic() - start
    print(f"wall time: {json.dumps({k: round(v, 1) for k, v in seconds.items()})}")
    return refused, retrain, partial


def store_of(run: dict):
    from components.metadata import open_store

    return open_store(run["metadata"]["uri"])


def test_a_partial_run_with_no_earlier_run_is_refused_in_one_line(runs):
    refused, *_ = runs
    assert refused.returncode == 2, refused.stderr[-2000:]
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, refused.stderr[-2000:]
    assert errors[0].startswith(
        "error: cannot start from Evaluator: no earlier run of pipeline 'penguin' in ")
    assert errors[0].endswith(
        " whose outputs it could reuse; run the whole pipeline first (pipeline run)")


def test_from_the_evaluator_only_the_nodes_after_the_trainer_execute(runs):
    _, base, partial = runs
    trainer = NODE_ORDER.index("Trainer")
    assert partial["status"] == "succeeded" and partial["up_to_date_with"] is None
    assert partial["span"] == 1  # the span the reused run read, not the latest one (2)
    # The baseline is chosen again with the Evaluator (the stable version may have moved).
    assert partial["partial"] == {
        "from_nodes": ["Evaluator"], "to_nodes": [], "ran": NODE_ORDER[trainer + 1:],
        "reused": NODE_ORDER[:trainer + 1], "skipped": [], "base_run": base["run_id"]}
    statuses = {c["name"]: c["status"] for c in partial["components"]}
    assert statuses == {**{n: "reused" for n in NODE_ORDER[:trainer + 1]},
                        **{n: "succeeded" for n in NODE_ORDER[trainer + 1:]}}

    from components.metadata import execution_state, get_output_artifacts, get_run_executions

    store = store_of(base)
    before = get_run_executions(store, "penguin", base["run_id"])
    after = get_run_executions(store, "penguin", partial["run_id"])
    executed = {n for n, e in after.items() if execution_state(e) == "succeeded"}
    assert {"Evaluator", "SignatureValidator", "ServingPusher"} <= executed
    assert executed <= set(NODE_ORDER[trainer + 1:])
    for node in NODE_ORDER[:trainer + 1]:  # the base run's outputs, as they were
        assert execution_state(after[node]) == "cached"
        assert ({a.id for a in get_output_artifacts(store, after[node].id)}
                == {a.id for a in get_output_artifacts(store, before[node].id)}), node
    # The same model again: the version already serving.
    assert partial["pushed"]["version"] == base["pushed"]["version"] == 1
    assert partial["pushed"]["new"] is False


def test_retrain_trains_on_the_span_asked_and_records_who_asked_and_why(runs):
    _, retrain, partial = runs
    assert retrain["status"] == "succeeded"
    assert retrain["span"] == 1 and retrain["partial"] is None
    assert retrain["up_to_date_with"] is None
    statuses = {c["name"]: c["status"] for c in retrain["components"]}
    assert statuses["Trainer"] == "succeeded"
    assert retrain["request"]["reason"] == REASON
    assert retrain["request"]["trigger"] == "retrain"

    from components.metadata import (
        custom_property,
        get_output_artifacts,
        get_run_executions,
        get_run_request,
    )

    store = store_of(retrain)
    request = get_run_request(store, retrain["run_id"])
    assert (request.trigger, request.reason, request.user) == ("retrain", REASON,
                                                               getpass.getuser())
    assert request.details["span"] == 1
    run = store.get_context_by_type_and_name("pipeline_run", retrain["run_id"])
    assert run.custom_properties["reason"].string_value == REASON
    executions = get_run_executions(store, "penguin", retrain["run_id"])
    [examples] = get_output_artifacts(store, executions[NODE_ORDER[0]].id, "examples")
    assert custom_property(examples, "span") == 1
    # The partial run was asked for with no reason; the refused one left no run behind (the
    # partial run reused the retrain's outputs).
    request = get_run_request(store, partial["run_id"])
    assert (request.trigger, request.reason, request.details["from_nodes"]) == (
        "run", "", ["Evaluator"])
