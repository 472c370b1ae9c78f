"""The real pipeline against a stable version: the Evaluator's baseline is the stable model, a
breaking signature change is blocked with its reasons, and released once a reason is given."""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.conftest import run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e

NO_ISLAND = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
             "year"]
REASON = "island is no longer collected"
ISLAND_REMOVED = "predict_raw: input 'island' string[None] removed"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sig")
    overlay = write_overlay(tmp)
    first_proc, first = run_json("--config", str(overlay))
    assert first_proc.returncode == 0, first.get("error")
    promote = run_cli("release", "promote", "canary", "--config", str(overlay),
                      "--reason", "e2e", timeout=120)
    assert promote.returncode == 0, promote.stderr
    first["_after_promote"] = _up_to_date_verdict(overlay)

    # The same data and config, but a model without `island`: its predict_raw loses an input.
    changed = write_overlay(tmp, model={"features": NO_ISLAND}, evaluator={"slices": []})
    blocked_proc, blocked = run_json("--config", str(changed))
    # The run completed; the gate refused the model: exit 3 (README, "Exit codes").
    assert blocked_proc.returncode == 3, blocked.get("error")
    base = tmp / "serving" / "penguin"
    blocked["_versions_after"] = sorted(p.name for p in base.iterdir() if p.name.isdigit())

    allowed_overlay = write_overlay(tmp, model={"features": NO_ISLAND},
                                    evaluator={"slices": []},
                                    validation={"allow_breaking_change": {"reason": REASON}})
    allowed_proc, allowed = run_json("--config", str(allowed_overlay))
    assert allowed_proc.returncode == 0, allowed.get("error")
    return tmp, first, blocked, allowed


def _up_to_date_verdict(overlay):
    from components.metadata import open_store
    from pipeline.app.up_to_date import check, input_fingerprint
    from pipeline.config import load_config

    cfg = load_config("local", overlay)
    return check(cfg, input_fingerprint(cfg, 2), open_store(cfg.resolved_metadata_path))


def test_a_release_operation_sends_the_next_run_through_tfx(runs):
    # Promoting changes the baseline the Evaluator and the signature check compare with.
    _, first, _, _ = runs
    verdict = first["_after_promote"]
    assert not verdict.up_to_date
    assert "metadata" in verdict.reason and "serving" in verdict.reason, verdict.reason


def _store_and_execs(result):
    from components.metadata import get_run_executions, open_store

    store = open_store(result["metadata"]["uri"])
    return store, get_run_executions(store, "penguin", result["run_id"])


def _artifact_ids(store, execution, kind, key=None):
    return {e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
            if e.type == kind and (key is None or e.path.steps[0].key == key)}


def test_breaking_change_is_blocked_and_the_reasons_are_shown(runs):
    tmp, first, blocked, _ = runs
    assert blocked["status"] == "succeeded"
    assert blocked["pushed"] is None
    assert blocked["blessed"] is False
    assert blocked["validation_failures"] == [
        f"signature: breaking change against the contract: {ISLAND_REMOVED}",
        f"signature: breaking change against stable version 1: {ISLAND_REMOVED}",
    ]
    assert blocked["_versions_after"] == ["1"]


def test_evaluator_baseline_is_the_stable_model(runs):
    from ml_metadata.proto import metadata_store_pb2

    from components.metadata import custom_property

    _, first, blocked, _ = runs
    store, first_execs = _store_and_execs(first)
    out, inp = metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.INPUT
    [stable_model] = _artifact_ids(store, first_execs["Trainer"], out, "model")
    _, execs = _store_and_execs(blocked)
    # The baseline node's Model: the files of stable version 1, and the Model released as it.
    [baseline_id] = _artifact_ids(store, execs["Evaluator"], inp, "baseline_model")
    [baseline] = store.get_artifacts_by_id([baseline_id])
    assert custom_property(baseline, "baseline_kind") == "stable"
    assert custom_property(baseline, "baseline_version") == 1
    assert custom_property(baseline, "released_model_id") == stable_model
    assert blocked["baseline"]["version"] == 1 and blocked["baseline"]["model_id"] == stable_model
    # The validator's cache is tied to the same baseline.
    assert _artifact_ids(store, execs["SignatureValidator"], inp, "baseline_model") == {
        baseline_id}


def test_allowed_breaking_change_is_released_with_its_reason(runs):
    tmp, _, _, allowed = runs
    assert allowed["pushed"]["version"] == 2 and allowed["pushed"]["new"] is True
    assert re.fullmatch(r"canary-v2-\d{8}", allowed["pushed"]["tag"])
    assert allowed["validation_failures"] == []
    base = tmp / "serving" / "penguin"
    labels = json.loads((base / "labels.json").read_text())["labels"]
    assert labels == {"stable": 1, "canary": 2}
    contract = json.loads((base / "contract.json").read_text())
    assert contract["version"] == 2 and contract["reason"] == REASON
    assert "island" not in contract["contract"]["signatures"]["predict_raw"]["inputs"]
    record = json.loads((base / ".releases" / "2.json").read_text())
    assert record["notes"] == {"breaking_change_reason": REASON}

    store, execs = _store_and_execs(allowed)
    from components.metadata import get_output_artifacts

    [verdict] = get_output_artifacts(store, execs["SignatureValidator"].id)
    report = json.loads(open(f"{verdict.uri}/report.json").read())
    assert report["allowed_breaking_change"]["reason"] == REASON
    [pushed] = get_output_artifacts(store, execs["ServingPusher"].id)
    assert pushed.custom_properties["breaking_change_reason"].string_value == REASON
