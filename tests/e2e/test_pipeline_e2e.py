"""The real pipeline with LocalDagRunner on data/: what a user would check afterwards."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.e2e.conftest import REPO, run_json, write_overlay

pytestmark = pytest.mark.e2e



def pipeline_nodes(overlay) -> list:
    """The nodes of the pipeline these runs execute, from its one definition, in order."""
    from pipeline.build import build_pipeline
    from pipeline.config import load_config

    return build_pipeline(load_config(config_file=overlay)).components


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    overlay = write_overlay(tmp)
    first_proc, first = run_json("--config", str(overlay))
    assert first_proc.returncode == 0, first.get("error")
    executions_after_first = _execution_count(first)
    # Unchanged data, code and config: the up-to-date check answers without TFX.
    second_proc, second = run_json("--config", str(overlay))
    assert second_proc.returncode == 0, second.get("error")
    second["executions_written"] = _execution_count(first) - executions_after_first
    # --full: through TFX, where every node meets TFX's own cache.
    third_proc, third = run_json("--config", str(overlay), "--full")
    assert third_proc.returncode == 0, third.get("error")
    nodes = pipeline_nodes(overlay)
    # Every node of the definition is reported, and nothing else.
    assert sorted(c["name"] for c in first["components"]) == sorted(n.id for n in nodes)
    # Every node is an execution (no resolver: the baseline is a node like the others).
    NODES[:] = [n.id for n in nodes]
    assert "Trainer" in NODES and "StableBaseline" in NODES and "ServingPusher" in NODES
    return tmp, first, second, third


# The executed nodes, filled from the pipeline definition by `runs`.
NODES: list[str] = []


def _execution_count(run: dict) -> int:
    from components.metadata import open_store

    return len(open_store(run["metadata"]["uri"]).get_executions())


def test_first_run_succeeds_and_pushes_version_1(runs):
    tmp, first, *_ = runs
    assert first["status"] == "succeeded"
    by_name = {c["name"]: c for c in first["components"]}
    for name in NODES:
        assert by_name[name]["status"] == "succeeded", by_name[name]
        assert by_name[name]["cached"] is False
    assert first["pushed"]["version"] == 1
    assert first["pushed"]["path"] == str(tmp / "serving" / "penguin" / "1")
    assert first["pushed"]["new"] is True
    assert first["pushed"]["channel"] == "canary"
    assert re.fullmatch(r"canary-v1-\d{8}", first["pushed"]["tag"]), first["pushed"]
    assert first["validation_failures"] == []
    assert first["metrics"]["sparse_categorical_accuracy"] >= 0.8
    assert first["metrics"]["example_count"] == 65  # span 2's eval split
    assert first["span"] == 2
    assert first["metadata"]["uri"] == str(tmp / "var" / "metadata.sqlite")
    # Nothing is stable yet: the candidate is its own baseline, and the run says so.
    assert first["baseline"]["kind"] == "none" and first["baseline"]["version"] is None
    assert first["baseline"]["line"].startswith("baseline: none (first release")


def test_pushed_version_loads_in_a_fresh_process_and_predicts(runs):
    tmp, first, *_ = runs
    script = f"""
import json
import tensorflow as tf
model = tf.saved_model.load({first["pushed"]["path"]!r})
files = tf.io.gfile.glob({str(REPO / "data/penguins/span-2/Split-eval/*.gz")!r})
records = list(tf.data.TFRecordDataset(files, "GZIP").take(20).as_numpy_iterator())
out = model.signatures["serving_default"](examples=tf.constant(records))
print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    probs = out["probabilities"]
    assert len(probs) == 20 and all(len(p) == 3 for p in probs)
    for p in probs:
        assert abs(sum(p) - 1.0) < 1e-4
        assert all(0.0 <= x <= 1.0 for x in p)
    assert out["class_id"] == [max(range(3), key=p.__getitem__) for p in probs]


def test_mlmd_holds_examples_model_pushedmodel_lineage(runs):
    tmp, first, *_ = runs
    from ml_metadata.proto import metadata_store_pb2

    from components.metadata import get_run_executions, open_store

    store = open_store(first["metadata"]["uri"])
    execs = get_run_executions(store, "penguin", first["run_id"])

    def artifacts(execution, kind):
        events = store.get_events_by_execution_ids([execution.id])
        ids = [e.artifact_id for e in events if e.type == kind]
        return store.get_artifacts_by_id(ids)

    inp, out = metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.OUTPUT
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    pushed = artifacts(execs["ServingPusher"], out)
    assert [type_names[a.type_id] for a in pushed] == ["PushedModel"]
    assert pushed[0].custom_properties["pushed_version"].int_value == 1
    pusher_model = [a for a in artifacts(execs["ServingPusher"], inp)
                    if type_names[a.type_id] == "Model"]
    trainer_model = [a for a in artifacts(execs["Trainer"], out)
                     if type_names[a.type_id] == "Model"]
    assert [a.id for a in pusher_model] == [a.id for a in trainer_model]
    trainer_examples = [a for a in artifacts(execs["Trainer"], inp)
                        if type_names[a.type_id] == "Examples"]
    gen_examples = artifacts(execs["ImportExampleGen"], out)
    assert [a.id for a in trainer_examples] == [a.id for a in gen_examples]
    assert gen_examples[0].custom_properties["span"].int_value == 2


def _pushed_nothing(tmp, first, run):
    assert run["pushed"] == {**first["pushed"], "new": False}
    base = tmp / "serving" / "penguin"
    assert sorted(p.name for p in base.iterdir() if p.name.isdigit()) == ["1"]
    assert sorted(p.name for p in (base / ".releases").iterdir()) == ["1.json"]


def test_second_run_is_up_to_date_reuses_everything_and_pushes_nothing(runs):
    tmp, first, second, _ = runs
    assert second["run_id"] != first["run_id"]
    assert second["status"] == "succeeded"
    assert second["up_to_date_with"] == first["run_id"]
    by_name = {c["name"]: c for c in second["components"]}
    for name in NODES:
        assert by_name[name]["cached"] is True, by_name[name]
    assert second["metrics"] == first["metrics"]
    assert second["baseline"] == first["baseline"]
    _pushed_nothing(tmp, first, second)
    # TFX was not started: no execution was written, and the log says why.
    assert second["executions_written"] == 0
    log = open(second["log_file"]).read()
    assert f"up to date with run {first['run_id']}" in log
    assert "Component ImportExampleGen is running" not in log


def test_full_run_is_fully_cached_by_tfx_and_pushes_nothing(runs):
    tmp, first, _, third = runs
    assert third["up_to_date_with"] is None
    by_name = {c["name"]: c for c in third["components"]}
    for name in NODES:
        assert by_name[name]["cached"] is True, by_name[name]
    from components.metadata import execution_state, get_run_executions, open_store

    execs = get_run_executions(open_store(third["metadata"]["uri"]), "penguin", third["run_id"])
    assert {name: execution_state(execs[name]) for name in NODES} == {
        name: "cached" for name in NODES}
    assert third["baseline"] == first["baseline"]  # the same artifact, from the cache
    _pushed_nothing(tmp, first, third)


def test_release_record_models_config_labels_and_contract(runs):
    tmp, first, *_ = runs
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = tmp / "serving" / "penguin"
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse((base / "models.config").read_text(), config)
    [model] = config.model_config_list.config
    assert model.name == "penguin" and model.base_path == str(base)
    assert model.model_platform == "tensorflow"
    assert list(model.model_version_policy.specific.versions) == [1]
    assert dict(model.version_labels) == {"canary": 1}
    assert json.loads((base / "labels.json").read_text())["labels"] == {"canary": 1}

    record = json.loads((base / ".releases" / "1.json").read_text())
    assert record["tag"] == first["pushed"]["tag"]
    # The tag's date is the release's UTC date.
    assert record["tag"][-8:] == record["pushed_at"][:10].replace("-", "")
    assert record["pushed_at"].endswith("+00:00")
    assert record["version"] == 1 and record["channel"] == "canary"
    assert record["model_name"] == "penguin" and record["blessed"] is True
    assert record["spans"] == [2]
    assert record["metrics"]["sparse_categorical_accuracy"] == first["metrics"][
        "sparse_categorical_accuracy"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", record["git_commit"])
    assert set(record["mlmd_ids"]) == {"model", "model_blessing", "signature_verdict",
                                       "evaluation", "examples"}

    # The first release keeps its contract in the base path.
    contract = json.loads((base / "contract.json").read_text())
    assert contract["version"] == 1
    assert sorted(contract["contract"]["signatures"]) == ["predict_raw", "serving_default"]


def test_signature_verdict_and_pushed_model_properties_in_mlmd(runs):
    tmp, first, *_ = runs
    from ml_metadata.proto import metadata_store_pb2

    from components.metadata import get_output_artifacts, get_run_executions, open_store

    store = open_store(first["metadata"]["uri"])
    execs = get_run_executions(store, "penguin", first["run_id"])

    def props(artifact):
        return {k: getattr(v, v.WhichOneof("value")) for k, v in
                artifact.custom_properties.items()}

    [verdict] = get_output_artifacts(store, execs["SignatureValidator"].id)
    assert props(verdict)["blessed"] == 1 and props(verdict)["signature_blessed"] == 1
    assert json.loads(props(verdict)["reasons"]) == []
    report = json.loads(open(f"{verdict.uri}/report.json").read())
    assert report["candidate"]["problems"] == []
    assert report["load_seconds"] > 0 and 0 < report["p50_ms"] <= report["p99_ms"]
    assert report["candidate"]["sample_size"] == 64

    [pushed] = get_output_artifacts(store, execs["ServingPusher"].id)
    p = props(pushed)
    assert p["pushed"] == 1 and p["pushed_version"] == 1 and p["tag"] == first["pushed"]["tag"]
    assert p["channel"] == "canary" and p["reused_existing_version"] == 0
    assert p["pushed_destination"] == first["pushed"]["path"]
    assert json.loads(p["mlmd_ids"])["signature_verdict"] == verdict.id
    # The pusher consumed the verdict: no verdict, no push.
    events = store.get_events_by_execution_ids([execs["ServingPusher"].id])
    assert verdict.id in {e.artifact_id for e in events
                          if e.type == metadata_store_pb2.Event.INPUT}
