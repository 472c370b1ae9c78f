"""components.metadata against a real ML Metadata store (a SQLite file in tmp_path) laid out as
TFX's LocalDagRunner lays it out: contexts ``pipeline``, ``pipeline_run`` and ``node``
(``<pipeline>.<node>``), a Trainer outputting a Model, an Evaluator blessing it, a pusher taking
``model`` and outputting a PushedModel, and release operations recorded by the project."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ml_metadata.proto import metadata_store_pb2 as pb

from components.metadata import (
    EXECUTION_TYPE,
    MetadataError,
    MySQLSettings,
    OperationRecord,
    SSLSettings,
    connection_config,
    custom_property,
    describe_store,
    execution_state,
    get_input_artifacts,
    get_models_released_as,
    get_output_artifacts,
    get_pushed_models,
    get_release_operations,
    get_run_executions,
    metadata_watermark,
    open_store,
    pipeline_connection_config,
    record_operation,
)

REPO = Path(__file__).resolve().parents[2]
INPUT, OUTPUT = pb.Event.INPUT, pb.Event.OUTPUT
COMPLETE, CACHED, FAILED = pb.Execution.COMPLETE, pb.Execution.CACHED, pb.Execution.FAILED


class Pipeline:
    """Runs of one pipeline recorded as LocalDagRunner records them."""

    def __init__(self, store, name: str, base: Path):
        self.store, self.name, self.base = store, name, base
        self.artifact_types = {
            n: store.put_artifact_type(pb.ArtifactType(name=n))
            for n in ("Model", "ModelBlessing", "PushedModel")
        }
        self.context_types = {
            n: store.put_context_type(pb.ContextType(name=n))
            for n in ("pipeline", "pipeline_run", "node")
        }
        self.context("pipeline", name)

    def context(self, kind: str, name: str) -> int:
        found = self.store.get_context_by_type_and_name(kind, name)
        if found is not None:
            return found.id
        [context_id] = self.store.put_contexts(
            [pb.Context(type_id=self.context_types[kind], name=name)])
        return context_id

    def artifact(self, type_name: str, **props) -> pb.Artifact:
        a = pb.Artifact(type_id=self.artifact_types[type_name], uri=f"/root/{type_name}",
                        state=pb.Artifact.LIVE)
        for key, value in props.items():
            if isinstance(value, int):
                a.custom_properties[key].int_value = value
            else:
                a.custom_properties[key].string_value = str(value)
        [a.id] = self.store.put_artifacts([a])
        return a

    def execute(self, run_id: str, node: str, state, inputs=(), outputs=()) -> int:
        """An execution of ``node`` in ``run_id`` with (key, artifact) inputs and outputs."""
        type_id = self.store.put_execution_type(pb.ExecutionType(name=node))
        [execution_id] = self.store.put_executions(
            [pb.Execution(type_id=type_id, last_known_state=state)])
        events = []
        for kind, pairs in ((INPUT, inputs), (OUTPUT, outputs)):
            for key, artifact in pairs:
                event = pb.Event(artifact_id=artifact.id, execution_id=execution_id, type=kind)
                event.path.steps.add().key = key
                event.path.steps.add().index = 0
                events.append(event)
        self.store.put_events(events)
        contexts = [self.context("pipeline", self.name), self.context("pipeline_run", run_id),
                    self.context("node", f"{self.name}.{node}")]
        self.store.put_attributions_and_associations(
            [], [pb.Association(context_id=c, execution_id=execution_id) for c in contexts])
        return execution_id

    def run(self, run_id: str, version: int, *, state=COMPLETE, model=None) -> SimpleNamespace:
        """Trainer -> Evaluator -> ServingPusher; ``model`` given: the Trainer's cached output."""
        model = model or self.artifact("Model")
        trainer = self.execute(run_id, "Trainer", state, outputs=[("model", model)])
        blessing = self.artifact("ModelBlessing", blessed=1, current_model_id=model.id)
        evaluator = self.execute(run_id, "Evaluator", state, inputs=[("model", model)],
                                 outputs=[("blessing", blessing)])
        pushed = self.artifact("PushedModel", pushed=1, pushed_version=version,
                               pushed_destination=self.base / str(version), tag=f"v{version}",
                               channel="canary", reused_existing_version=0)
        pusher = self.execute(run_id, "ServingPusher", state,
                              inputs=[("model", model), ("model_blessing", blessing)],
                              outputs=[("pushed_model", pushed)])
        return SimpleNamespace(model=model, blessing=blessing, pushed=pushed, trainer=trainer,
                               evaluator=evaluator, pusher=pusher)


@pytest.fixture
def path(tmp_path) -> str:
    return str(tmp_path / "var" / "metadata.sqlite")


@pytest.fixture
def penguin(tmp_path, path) -> Pipeline:
    return Pipeline(open_store(path, create=True), "penguin", tmp_path / "serving")


def promote(path: str, base: Path, version: int, *linked: int) -> int:
    record = OperationRecord(
        operation="promote", model_name="penguin", base_path=str(base), tag=f"v{version}",
        version=version, actor="ops", reason="good canary", timestamp="2026-01-01T00:00:00+00:00",
        linked_versions=linked or (version,),
    )
    return record_operation(path, record, "penguin").execution_id


# --- states by name --------------------------------------------------------------------------


def test_every_mlmd_state_has_a_project_word():
    words = {name: execution_state(pb.Execution(last_known_state=value))
             for name, value in pb.Execution.State.items()}
    assert words == {
        "UNKNOWN": "unknown", "NEW": "new", "RUNNING": "running", "COMPLETE": "succeeded",
        "FAILED": "failed", "CACHED": "cached", "CANCELED": "canceled",
    }
    # A state a later MLMD may add.
    assert execution_state(SimpleNamespace(last_known_state=99)) == "unknown"


def test_run_executions_by_node_with_states_by_name(penguin, path, tmp_path):
    first = penguin.run("run-1", 1)
    penguin.run("run-2", 1, state=CACHED, model=first.model)
    penguin.execute("run-3", "Trainer", FAILED)
    # Another pipeline with the same node ids in the same store.
    Pipeline(penguin.store, "other", tmp_path / "x").run("run-4", 1)

    store = open_store(path)
    run1 = get_run_executions(store, "penguin", "run-1")
    assert {n: (e.id, execution_state(e)) for n, e in run1.items()} == {
        "Trainer": (first.trainer, "succeeded"), "Evaluator": (first.evaluator, "succeeded"),
        "ServingPusher": (first.pusher, "succeeded"),
    }
    run2 = get_run_executions(store, "penguin", "run-2")
    assert {n: execution_state(e) for n, e in run2.items()} == {
        "Trainer": "cached", "Evaluator": "cached", "ServingPusher": "cached"}
    assert {n: execution_state(e) for n, e in
            get_run_executions(store, "penguin", "run-3").items()} == {"Trainer": "failed"}
    assert get_run_executions(store, "penguin", "run-4") == {}
    assert set(get_run_executions(store, "other", "run-4")) == {
        "Trainer", "Evaluator", "ServingPusher"}
    assert get_run_executions(store, "penguin", "no-such-run") == {}


def test_artifacts_along_events_by_key(penguin):
    run = penguin.run("run-1", 1)
    store = penguin.store
    assert [a.id for a in get_output_artifacts(store, run.trainer)] == [run.model.id]
    assert [a.id for a in get_input_artifacts(store, run.pusher)] == [
        run.model.id, run.blessing.id]
    assert [a.id for a in get_input_artifacts(store, run.pusher, "model_blessing")] == [
        run.blessing.id]
    assert get_input_artifacts(store, run.pusher, "nope") == []
    [pushed] = get_output_artifacts(store, run.pusher, "pushed_model")
    assert (custom_property(pushed, "pushed_version"), custom_property(pushed, "tag")) == (1, "v1")
    assert custom_property(pushed, "absent") is None


# --- versions, models, release operations ----------------------------------------------------


def test_pushed_models_of_a_version_of_this_base_path(penguin, tmp_path):
    base = tmp_path / "serving"
    first = penguin.run("run-1", 1)
    second = penguin.run("run-2", 2)
    again = penguin.run("run-3", 1)  # identical content: version 1 reused
    Pipeline(penguin.store, "other", tmp_path / "elsewhere").run("run-4", 1)
    at_base = penguin.artifact("PushedModel", pushed_version=1, pushed_destination=base)

    assert [a.id for a in get_pushed_models(penguin.store, base, 1)] == [
        first.pushed.id, again.pushed.id, at_base.id]
    assert [a.id for a in get_pushed_models(penguin.store, str(base) + "/", 2)] == [
        second.pushed.id]
    assert get_pushed_models(penguin.store, base, 3) == []


def test_the_model_behind_a_pushed_version(penguin, tmp_path):
    base = tmp_path / "serving"
    first = penguin.run("run-1", 1)
    second = penguin.run("run-2", 2)
    third = penguin.run("run-3", 1)  # another model, same content, pushed as version 1 again

    assert [m.id for m in get_models_released_as(penguin.store, base, 2)] == [second.model.id]
    assert [m.id for m in get_models_released_as(penguin.store, base, 1)] == [
        first.model.id, third.model.id]
    # The blessing is also a pusher input, but not its `model`.
    assert first.blessing.id not in {m.id for m in get_models_released_as(penguin.store, base, 1)}
    assert get_models_released_as(penguin.store, base, 9) == []
    assert get_models_released_as(penguin.store, tmp_path / "elsewhere", 1) == []


def test_release_operations_of_a_version(penguin, path, tmp_path):
    base = tmp_path / "serving"
    assert get_release_operations(penguin.store, base, 1) == []  # no PushedModel yet
    run = penguin.run("run-1", 1)
    penguin.run("run-2", 2)
    assert get_release_operations(penguin.store, base, 1) == []  # no ReleaseOperation type yet

    promoted = promote(path, base, 1)
    promote(path, base, 2)
    rolled = promote(path, base, 7, 1)  # acted on 7, linked to version 1's PushedModel

    store = open_store(path)
    ops = get_release_operations(store, base, 1)
    assert [e.id for e in ops] == [promoted, rolled]
    assert ops[0].properties["operation"].string_value == "promote"
    assert ops[0].properties["reason"].string_value == "good canary"
    assert [t.name for t in store.get_execution_types_by_id([ops[0].type_id])] == [EXECUTION_TYPE]
    # The pusher that output the PushedModel is not a release operation.
    assert run.pusher not in {e.id for e in ops}
    assert len(get_release_operations(store, base, 2)) == 1
    assert get_release_operations(store, base, 7) == []  # never pushed through this store
    [context] = store.get_contexts_by_execution(promoted)
    assert context.name == "penguin"


# --- watermark -------------------------------------------------------------------------------


def test_watermark_moves_when_anything_is_added_or_updated(penguin, path, tmp_path):
    store = penguin.store
    marks = [metadata_watermark(store)]

    def moved() -> bool:
        marks.append(metadata_watermark(store))
        return marks[-1] != marks[-2]

    assert not moved()
    run = penguin.run("run-1", 1)
    assert moved()
    penguin.artifact("Model")
    assert moved()
    penguin.context("pipeline_run", "run-2")
    assert moved()
    promote(path, tmp_path / "serving", 1)  # another process, through the file
    assert moved()
    [execution] = store.get_executions_by_id([run.trainer])
    execution.last_known_state = FAILED
    store.put_executions([execution])
    assert moved()
    assert metadata_watermark(open_store(path)) == marks[-1]


def test_watermark_of_an_empty_store_is_stable(path):
    store = open_store(path, create=True)
    assert metadata_watermark(store) == metadata_watermark(store)
    assert len(metadata_watermark(store)) == 20


# --- opening stores --------------------------------------------------------------------------


def test_sqlite_configs_and_open_modes(tmp_path):
    path = tmp_path / "deep" / "dir" / "metadata.sqlite"
    mode = pb.SqliteMetadataSourceConfig
    must_exist = connection_config(path)
    assert must_exist.sqlite.filename_uri == str(path)
    assert must_exist.sqlite.connection_mode == mode.READWRITE
    assert connection_config(path, create=True).sqlite.connection_mode == (
        mode.READWRITE_OPENCREATE)

    with pytest.raises(MetadataError, match=f"cannot open ML Metadata store {path}"):
        open_store(path)
    assert not path.exists()  # a reader never creates a store

    for_tfx = pipeline_connection_config(path)
    assert for_tfx == connection_config(path, create=True)
    assert path.parent.is_dir()  # TFX's own helper makes the directory too
    open_store(str(path), create=True).put_context_type(pb.ContextType(name="pipeline"))
    assert path.is_file()
    assert [t.name for t in open_store(path).get_context_types()] == ["pipeline"]
    assert [t.name for t in open_store(connection_config(path)).get_context_types()] == [
        "pipeline"]


def test_a_connection_config_is_used_as_given():
    config = pb.ConnectionConfig()
    config.fake_database.SetInParent()
    store = open_store(config)
    store.put_context_type(pb.ContextType(name="node"))
    assert [t.name for t in store.get_context_types()] == ["node"]


def test_mysql_config_fields():
    settings = MySQLSettings(
        host="db.internal", port=3307, database="mlmd", user="tfx", password="s3cret",
        ssl=SSLSettings(ca="/etc/ca.pem", cert="/etc/c.pem", key="/etc/k.pem",
                        verify_server_cert=True),
    )
    assert "s3cret" not in repr(settings)
    config = connection_config(settings, create=True)
    expected = pb.ConnectionConfig()
    m = expected.mysql
    m.host, m.port, m.database, m.user, m.password = "db.internal", 3307, "mlmd", "tfx", "s3cret"
    m.ssl_options.ca, m.ssl_options.cert, m.ssl_options.key = (
        "/etc/ca.pem", "/etc/c.pem", "/etc/k.pem")
    # MLMD's own check is left off (it fails every connection: components/metadata/store.py);
    # the project's probe checks the certificate instead.
    assert not m.ssl_options.verify_server_cert
    assert config == expected
    assert pipeline_connection_config(settings) == expected
    # Readers must find the database; they never create it.
    assert connection_config(settings).mysql.skip_db_creation is True
    assert not config.mysql.HasField("skip_db_creation")

    by_socket = connection_config(MySQLSettings(host="localhost", database="mlmd", user="tfx",
                                                socket="/run/mysqld.sock"))
    assert (by_socket.mysql.socket, by_socket.mysql.port) == ("/run/mysqld.sock", 3306)
    assert not by_socket.mysql.HasField("ssl_options")
    assert describe_store(config) == "mysql://tfx@db.internal:3307/mlmd"
    assert describe_store(by_socket) == "mysql://tfx@socket /run/mysqld.sock/mlmd"


def test_mysql_open_error_names_the_store_without_the_password():
    import socket

    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = MySQLSettings(host="127.0.0.1", port=port, database="mlmd", user="tfx",
                             password="s3cret")
    with pytest.raises(MetadataError) as caught:
        open_store(settings)
    message = str(caught.value)
    assert f"mysql://tfx@127.0.0.1:{port}/mlmd" in message
    assert "s3cret" not in message


def test_importing_the_package_loads_neither_ml_metadata_nor_tensorflow():
    code = (
        "import sys, components.metadata; "
        "heavy = {'ml_metadata', 'tensorflow', 'tfx'} & set(sys.modules); "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- the run report reads states by name -----------------------------------------------------


def _report(path: str, run_id: str):
    from pipeline.app.report import collect_report
    from pipeline.app.run_result import RunResult

    cfg = SimpleNamespace(metadata_target=path, pipeline_name="penguin")
    result = RunResult(run_id=run_id, status="succeeded")
    collect_report(cfg, result, {"Trainer": 1.5})
    return result


def test_report_of_a_run_and_of_its_cached_repeat(penguin, path, tmp_path):
    first = penguin.run("run-1", 1)
    penguin.run("run-2", 1, state=CACHED, model=first.model)

    new = _report(path, "run-1")
    states = {c.name: (c.status, c.cached) for c in new.components}
    assert states["Trainer"] == ("succeeded", False)
    assert states["ServingPusher"] == ("succeeded", False)
    assert states["ImportExampleGen"] == ("not run", False)
    assert new.pushed == {"version": 1, "path": str(tmp_path / "serving" / "1"), "tag": "v1",
                          "channel": "canary", "new": True}
    assert new.blessed is True

    cached = _report(path, "run-2")
    assert {c.name: c.status for c in cached.components if c.cached} == {
        "Trainer": "cached", "Evaluator": "cached", "ServingPusher": "cached"}
    assert cached.pushed["new"] is False  # a cached pusher pushed nothing new


def test_report_without_a_store_lists_the_nodes_that_ran(tmp_path):
    result = _report(str(tmp_path / "missing.sqlite"), "run-1")
    assert not (tmp_path / "missing.sqlite").exists()
    assert [(c.name, c.status) for c in result.components][:1] == [("Trainer", "succeeded")]
    assert result.pushed is None
