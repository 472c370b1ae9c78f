"""`pipeline retrain`, `pipeline run --from-node/--to-node/--only/--reason`: parsing, the
refusals (one line, exit 2, before anything runs), the request recorded in and read back from a
real SQLite ML Metadata store, and what `run_pipeline` does with a partial run and a reason (with
the fake TFX runner of test_app_run: real span folders, run log, run record and MLMD)."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from components.metadata import (
    RunRequest,
    get_run_request,
    latest_run_id,
    link_run_request,
    open_store,
    record_run_request,
)
from pipeline import cli
from pipeline.app.run import run_pipeline
from pipeline.build import NODE_ORDER
from pipeline.config import ConfigError
from runners.partial import PartialRun, check_reusable, select_nodes
from tests.unit import test_app_run as app_run
from tests.unit.test_app_run import FakeTfx, config

# test_app_run's fixtures: a copy of data/penguins with its overlay, and the process's logging
# put back after each run (a run sends it to its log file).
overlay = app_run.overlay
restore_logging = app_run.restore_logging

REPO = Path(__file__).resolve().parents[2]


# --- parsing and refusals -------------------------------------------------------------------

def test_retrain_parses_its_options():
    args = cli._parser().parse_args(
        ["retrain", "--span", "7", "--channel", "stable", "--reason", "drift in span 7",
         "--json", "--config", "x.yaml"])
    assert (args.command, args.span, args.channel, args.reason, args.on, args.json,
            args.config, args.data_root) == (
        "retrain", 7, "stable", "drift in span 7", "local", True, "x.yaml", None)


def test_retrain_on_an_unknown_orchestrator_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli._parser().parse_args(["retrain", "--span", "1", "--on", "nowhere"])
    assert e.value.code == 2
    assert "invalid choice: 'nowhere'" in capsys.readouterr().err


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    return lines[0]


def test_retrain_without_data_is_refused(capsys):
    assert cli.main(["retrain", "--reason", "why"]) == 2
    assert one_error_line(capsys) == (
        "error: retrain needs the data to train on: --span N and/or --data-root DIR")


def test_an_unknown_node_is_refused_with_the_list_of_nodes(capsys):
    assert cli.main(["run", "--from-node", "Trainr"]) == 2
    assert one_error_line(capsys) == (
        f"error: --from-node: unknown node 'Trainr'; the nodes are: {', '.join(NODE_ORDER)}")
    assert cli.main(["run", "--only", "Pusher"]) == 2
    assert "--only: unknown node 'Pusher'" in one_error_line(capsys)


@pytest.mark.parametrize("argv, needle", [
    (["--only", "Trainer", "--from-node", "Trainer"],
     "--only cannot be combined with --from-node or --to-node"),
    (["--from-node", "Evaluator", "--to-node", "Trainer"],
     "--to-node Trainer comes before --from-node Evaluator"),
    (["--from-node", "Evaluator", "--span", "1"],
     f"--span and --data-root choose the data {NODE_ORDER[0]} reads, but a run from "
     "Evaluator reuses the latest run's"),
])
def test_contradicting_partial_run_options_are_refused(capsys, argv, needle):
    assert cli.main(["run", *argv]) == 2
    assert needle in one_error_line(capsys)


def test_from_the_first_node_with_a_span_is_a_run_on_that_span():
    args = cli._parser().parse_args(["run", "--from-node", NODE_ORDER[0], "--span", "1"])
    partial = cli._partial_run(args)
    assert (partial.from_nodes, partial.to_nodes) == ([NODE_ORDER[0]], [])
    assert select_nodes(NODE_ORDER) is None
    only = select_nodes(NODE_ORDER, only="Evaluator")
    assert (only.from_nodes, only.to_nodes) == (["Evaluator"], ["Evaluator"])


def test_the_command_refuses_an_unknown_node_without_starting_tensorflow():
    """As a command (the watched child process): exit 2, one line, and no TensorFlow import."""
    code = ("import sys, runpy; sys.argv = ['pipeline', 'run', '--only', 'Nope']\n"
            "try:\n    runpy.run_module('pipeline.cli', run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert 'tensorflow' not in sys.modules and 'tfx' not in sys.modules\n"
            "    raise\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: --only: unknown node 'Nope'; the nodes are: {', '.join(NODE_ORDER)}"]


def test_retrain_on_an_orchestrator_without_a_runner_says_it_is_not_available(capsys):
    cfg = object()
    request = RunRequest.from_here("retrain", "why", span=3)
    assert cli._trigger_on("nosuchorchestrator", cfg, request, False) == 2
    assert one_error_line(capsys) == (
        "error: --on nosuchorchestrator: not available: no runners/nosuchorchestrator.py")


def test_retrain_on_an_orchestrator_calls_its_runners_trigger(monkeypatch, capsys):
    calls = []
    without = types.ModuleType("runners.fakeorch")
    monkeypatch.setitem(sys.modules, "runners.fakeorch", without)
    assert cli._trigger_on("fakeorch", None, None, True) == 2
    assert json.loads(capsys.readouterr().out)["error"] == (
        "--on fakeorch: not available: runners/fakeorch.py has no "
        "trigger(cfg, request, *, as_json)")
    without.trigger = lambda cfg, request, *, as_json: calls.append((cfg, request, as_json)) or 0
    request = RunRequest.from_here("retrain", "why", span=3, data_root=None)
    assert cli._trigger_on("fakeorch", "cfg", request, False) == 0
    assert calls == [("cfg", request, False)]
    assert request.details == {"span": 3} and request.user and request.host


# --- the request in ML Metadata -------------------------------------------------------------

def sqlite_store(path: Path):
    config = pb.ConnectionConfig()
    config.sqlite.filename_uri = str(path)
    config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    return metadata_store.MetadataStore(config)


def tfx_run_context(store, pipeline_name: str, run_id: str) -> int:
    """The pipeline_run context as TFX registers it: a child of the pipeline's context."""
    run_type = store.put_context_type(pb.ContextType(name="pipeline_run"))
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        pipeline_type = store.put_context_type(pb.ContextType(name="pipeline"))
        [pid] = store.put_contexts([pb.Context(type_id=pipeline_type, name=pipeline_name)])
    else:
        pid = pipeline.id
    [run] = store.put_contexts([pb.Context(type_id=run_type, name=run_id)])
    store.put_parent_contexts([pb.ParentContext(parent_id=pid, child_id=run)])
    return run


def test_a_request_is_recorded_linked_to_its_run_and_read_back(tmp_path):
    store = sqlite_store(tmp_path / "metadata.sqlite")
    request = RunRequest(trigger="retrain", reason="drift in span 7: it's time", user="ada",
                         host="lab-1", details={"span": 7, "data_root": "/data"})
    execution_id = record_run_request(store, "penguin", "run-1", request)
    # Before the run's context exists: on record, with the pipeline, and no run context made.
    assert store.get_context_by_type_and_name("pipeline_run", "run-1") is None
    assert [c.name for c in store.get_contexts_by_execution(execution_id)] == ["penguin"]
    got = get_run_request(store, "run-1")
    assert (got.trigger, got.reason, got.user, got.host, got.details) == (
        "retrain", "drift in span 7: it's time", "ada", "lab-1",
        {"span": 7, "data_root": "/data"})
    assert got.requested_at.endswith("+00:00")
    assert link_run_request(store, execution_id, "run-1") is False
    run = tfx_run_context(store, "penguin", "run-1")
    assert link_run_request(store, execution_id, "run-1") is True
    assert [e.id for e in store.get_executions_by_context(run)] == [execution_id]
    [context] = store.get_contexts_by_id([run])
    assert context.custom_properties["reason"].string_value == "drift in span 7: it's time"
    assert context.custom_properties["requested_by"].string_value == "ada@lab-1"
    assert get_run_request(store, "run-2") is None
    assert get_run_request(sqlite_store(tmp_path / "empty.sqlite"), "run-1") is None


def test_a_run_context_with_the_airflow_runners_properties_reads_as_a_request(tmp_path):
    store = sqlite_store(tmp_path / "metadata.sqlite")
    run = tfx_run_context(store, "penguin", "manual__2024")
    [context] = store.get_contexts_by_id([run])
    context.custom_properties["reason"].string_value = "new span"
    context.custom_properties["requested_by"].string_value = "ada@lab-1"
    store.put_contexts([context])
    got = get_run_request(store, "manual__2024")
    assert (got.reason, got.user, got.host) == ("new span", "ada", "lab-1")


def test_the_latest_run_is_the_newest_other_run_of_the_pipeline(tmp_path):
    store = sqlite_store(tmp_path / "metadata.sqlite")
    assert latest_run_id(store, "penguin") is None
    record_run_request(store, "penguin", "refused", RunRequest(trigger="run"))
    assert latest_run_id(store, "penguin") is None  # a request alone is not a run
    tfx_run_context(store, "penguin", "a")
    tfx_run_context(store, "penguin", "b")
    tfx_run_context(store, "other", "c")
    assert latest_run_id(store, "penguin") == "b"
    assert latest_run_id(store, "penguin", exclude="b") == "a"
    assert latest_run_id(store, "nosuchpipeline") is None


def test_a_partial_run_with_no_earlier_run_or_a_failed_node_is_refused(tmp_path):
    store = sqlite_store(tmp_path / "metadata.sqlite")
    partial = PartialRun(from_nodes=["Evaluator"], ran=["Evaluator"], reused=["Trainer"])
    with pytest.raises(ConfigError, match=(
            r"^cannot start from Evaluator: no earlier run of pipeline 'penguin' in here "
            r"whose outputs it could reuse; run the whole pipeline first \(pipeline run\)$")):
        check_reusable(store, "penguin", "new", partial, ["Trainer"], "here")
    with pytest.raises(ConfigError, match="no earlier run"):
        check_reusable(None, "penguin", "new", partial, ["Trainer"], "here")
    run = tfx_run_context(store, "penguin", "old")
    node_type = store.put_context_type(pb.ContextType(name="node"))
    [node] = store.put_contexts([pb.Context(type_id=node_type, name="penguin.Trainer")])
    [failed] = store.put_executions([pb.Execution(
        type_id=store.put_execution_type(pb.ExecutionType(name="Trainer")),
        last_known_state=pb.Execution.FAILED)])
    store.put_attributions_and_associations([], [
        pb.Association(context_id=c, execution_id=failed) for c in (run, node)])
    with pytest.raises(ConfigError, match=(
            r"^cannot start from Evaluator: the latest run, old, has no successful Trainer to "
            r"reuse; start from Trainer or earlier")):
        check_reusable(store, "penguin", "new", partial, ["Trainer"], "here")
    assert partial.base_run == "old"
    failed_execution = store.get_executions_by_id([failed])[0]
    failed_execution.last_known_state = pb.Execution.COMPLETE
    store.put_executions([failed_execution])
    check_reusable(store, "penguin", "new", partial, ["Trainer"], "here")
    nothing_reused = PartialRun(to_nodes=["Trainer"], ran=["Trainer"])
    check_reusable(None, "penguin", "new", nothing_reused, [], "here")
    assert nothing_reused.base_run is None


# --- run_pipeline with a partial run and with a reason --------------------------------------

class FakePartialTfx(FakeTfx):
    """FakeTfx that also takes `partial=`: the nodes before the first selected one are
    reused (CACHED executions of this run, as TFX's snapshot records them), the others run."""

    def __call__(self, cfg, run_id: str, *, partial: PartialRun | None = None) -> None:
        if partial is None:
            return super().__call__(cfg, run_id)
        names = list(self.nodes)
        start = names.index(partial.from_nodes[0])
        partial.ran, partial.reused = names[start:], names[:start]
        partial.skipped = [n for n in NODE_ORDER if n not in names]
        partial.base_run = self.calls[-1]
        whole = self.nodes
        self.nodes = {n: "CACHED" if n in partial.reused else s for n, s in whole.items()}
        try:
            super().__call__(cfg, run_id)
        finally:
            self.nodes = whole


def record_file(cfg) -> dict:
    return json.loads((Path(cfg.resolved_pipeline_root) / "last_run.json").read_text())


def test_a_partial_run_goes_through_tfx_and_is_never_the_run_to_be_up_to_date_with(overlay):
    cfg = config(overlay)
    runner = FakePartialTfx({"ImportExampleGen": "COMPLETE", "Trainer": "COMPLETE",
                             "Evaluator": "COMPLETE"})
    first = run_pipeline(cfg, runner)
    assert record_file(cfg)["run_id"] == first.run_id
    # Nothing changed: a whole run would be up to date; a partial one is not short-circuited.
    partial = PartialRun(from_nodes=["Evaluator"])
    second = run_pipeline(cfg, runner, partial=partial)
    assert second.status == "succeeded" and second.up_to_date_with is None
    assert second.partial == {"from_nodes": ["Evaluator"], "to_nodes": [], "ran": ["Evaluator"],
                              "reused": ["ImportExampleGen", "Trainer"],
                              "skipped": [n for n in NODE_ORDER if n not in (
                                  "ImportExampleGen", "Trainer", "Evaluator")],
                              "base_run": first.run_id}
    statuses = {c.name: (c.status, c.cached) for c in second.components}
    assert statuses["ImportExampleGen"] == statuses["Trainer"] == ("reused", True)
    assert statuses["Evaluator"] == ("succeeded", False)
    assert statuses["ServingPusher"] == ("not run", False)
    assert second.to_json()["partial"]["ran"] == ["Evaluator"]
    # The record is still the whole run's; and it no longer matches ML Metadata, so the next
    # whole run goes through TFX.
    assert record_file(cfg)["run_id"] == first.run_id
    third = run_pipeline(cfg, runner)
    assert third.up_to_date_with is None
    assert runner.calls[-1] == third.run_id


def test_a_reason_sends_an_up_to_date_run_through_tfx_and_is_recorded_with_it(overlay):
    cfg = config(overlay)
    runner = FakeTfx({"ImportExampleGen": "COMPLETE", "Trainer": "COMPLETE"})
    first = run_pipeline(cfg, runner, request=RunRequest.from_here("run"))
    request = RunRequest(trigger="run", reason="check after the TF upgrade", user="ada",
                         host="lab-1")
    second = run_pipeline(cfg, runner, request=request)
    assert runner.calls == [first.run_id, second.run_id] and second.up_to_date_with is None
    assert second.request["reason"] == "check after the TF upgrade"
    assert second.to_json()["request"]["user"] == "ada"
    store = open_store(cfg.resolved_metadata_path)
    got = get_run_request(store, second.run_id)
    assert (got.trigger, got.reason, got.user, got.details["span"]) == (
        "run", "check after the TF upgrade", "ada", 2)
    run = store.get_context_by_type_and_name("pipeline_run", second.run_id)
    assert got.requested_at and any(
        e.type == "RunRequest" for e in store.get_executions_by_context(run.id))
    assert get_run_request(store, first.run_id).reason == ""
    # The recorded request is the run's own: the run is still one to be up to date with.
    assert record_file(cfg)["run_id"] == second.run_id
    third = run_pipeline(cfg, runner, request=RunRequest.from_here("run"))
    assert third.up_to_date_with == second.run_id
    assert get_run_request(store, third.run_id) is None  # no run, nothing recorded
