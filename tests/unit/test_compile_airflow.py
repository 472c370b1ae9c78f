"""`pipeline compile airflow` and the Airflow runner, without running a pipeline: the DAG file,
the DAG Airflow makes of it (a real Airflow parse in a fresh process), the conf a DAG run may
carry, the `airflow` configuration section, and run queries on TFX's older context layout.
The end-to-end run under Airflow is tests/e2e/test_airflow_e2e.py."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config
from runners.airflow import (
    ConfError,
    check_conf,
    config_for_run,
    portable_config,
    render_dag_file,
)

REPO = Path(__file__).resolve().parents[2]

NODES = {"ImportExampleGen": [], "StatisticsGen": ["ImportExampleGen"],
         "Trainer": ["ImportExampleGen", "StatisticsGen"]}


def _spec(**airflow) -> dict:
    cfg = load_config(overrides={"airflow": airflow} if airflow else None)
    a = cfg.airflow
    return {"dag_id": "penguin", "profile": "local", "schedule": a.schedule,
            "start_date": a.start_date, "retries": a.retries,
            "retry_delay_seconds": a.retry_delay_seconds, "nodes": NODES,
            "config": portable_config(cfg)}


def _read_dag(tmp_path: Path, spec: dict) -> dict:
    """What Airflow's own parser makes of the DAG file for `spec`, in a fresh process."""
    pytest.importorskip("airflow", reason="the airflow dependency group is not installed")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "penguin.py").write_text(render_dag_file(spec, ["test"]))
    script = """
import json, sys
from airflow.models import DagBag
bag = DagBag(sys.argv[1], include_examples=False)
dag = bag.dags.get("penguin")
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
    "tasks": {t.task_id: sorted(t.upstream_task_ids) for t in dag.tasks} if dag else None,
    "catchup": dag and dag.catchup, "max_active_runs": dag and dag.max_active_runs,
    "retries": dag and sorted({t.retries for t in dag.tasks}),
    "retry_delay": dag and sorted({t.retry_delay.total_seconds() for t in dag.tasks}),
    "schedule": dag and dag.schedule_interval, "start": dag and dag.start_date.isoformat(),
    "tf": "tensorflow" in sys.modules}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW__CORE__LOAD_EXAMPLES="False")
    proc = subprocess.run([sys.executable, "-c", script, str(dags)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_dag_file_is_python_holding_the_spec_as_literals():
    spec = _spec()
    text = render_dag_file(spec, ["pipeline/profiles/local.yaml"])
    tree = ast.parse(text)
    [assign] = [n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "SPEC"]
    assert ast.literal_eval(assign.value) == spec
    # Airflow's safe mode skips files that do not mention both words.
    assert "airflow" in text.lower() and "dag" in text.lower()


def test_airflow_parses_the_dag_with_the_profiles_schedule_and_retries(tmp_path):
    spec = _spec(schedule="0 3 * * *", retries=4, retry_delay_seconds=90,
                 start_date="2025-02-03")
    dag = _read_dag(tmp_path, spec)
    assert dag["errors"] == {}
    assert dag["tasks"] == NODES
    assert dag["catchup"] is False and dag["max_active_runs"] == 1
    assert dag["retries"] == [4] and dag["retry_delay"] == [90.0]
    assert dag["schedule"] == "0 3 * * *"
    assert dag["start"] == "2025-02-03T00:00:00+00:00"
    assert dag["tf"] is False  # parsing never imports TensorFlow


def test_compiled_paths_are_absolute_whatever_the_workers_directory(tmp_path, monkeypatch):
    config = portable_config(load_config())
    for value in (config["work_dir"], config["data"]["root"], config["data"]["schema"],
                  config["pusher"]["base_path"]):
        assert os.path.isabs(value), value
    assert config["data"]["root"] == str(REPO / "data" / "penguins")
    monkeypatch.chdir(tmp_path)  # a worker elsewhere: the schema is still found
    cfg = config_for_run("local", config, {})
    assert cfg.data.schema == str(REPO / "data" / "schema" / "schema.pbtxt")


def test_conf_sets_span_data_root_and_channel():
    config = portable_config(load_config())
    cfg = config_for_run("local", config, {"span": 1, "data_root": "/data/x",
                                           "channel": "stable", "reason": "retrain"})
    assert (cfg.data.span, cfg.data.root, cfg.pusher.channel) == (1, "/data/x", "stable")
    # The compiled configuration itself is left as it was.
    assert config["data"]["span"] is None and config["pusher"]["channel"] == "canary"


@pytest.mark.parametrize("conf, message", [
    ({"spam": 1}, "spam: unknown key; expected one of: span, data_root"),
    ({"span": "7"}, "span: expected an integer, got '7'"),
    ({"span": True}, "span: expected an integer, got True"),
    ({"span": -1}, "span: expected an integer >= 0, got -1"),
    ({"data_root": "data/penguins"}, "data_root: 'data/penguins': give an absolute path"),
    ({"reason": 3}, "reason: expected a string, got 3"),
])
def test_a_conf_the_pipeline_cannot_take_is_refused_naming_the_key(conf, message):
    with pytest.raises(ConfError) as e:
        check_conf(conf)
    assert str(e.value).startswith(message)


def test_a_channel_from_conf_is_checked_like_the_configs():
    with pytest.raises(ConfigError, match="pusher.channel"):
        config_for_run("local", portable_config(load_config()), {"channel": "Not Valid!"})


@pytest.mark.parametrize("airflow, message", [
    ({"retries": -1}, "airflow.retries: expected an integer >= 0, got -1"),
    ({"retries": 11}, "airflow.retries: expected an integer <= 10, got 11"),
    ({"retry_delay_seconds": -5}, "airflow.retry_delay_seconds: expected an integer >= 0"),
    ({"dag_id": "my dag"}, "airflow.dag_id: use at most 200 letters, digits"),
    ({"start_date": "June 1"}, "airflow.start_date: expected a date as YYYY-MM-DD"),
    ({"schedul": "@daily"}, "airflow.schedul: unknown key (did you mean 'schedule'?)"),
])
def test_airflow_section_refuses_values_out_of_range(airflow, message):
    with pytest.raises(ConfigError) as e:
        load_config(overrides={"airflow": airflow})
    assert message in str(e.value)


def test_cli_refuses_a_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("airflow: {retries: -1}\n")
    out = tmp_path / "dags" / "x.py"
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "compile", "airflow", "--config", str(bad),
         "--output", str(out)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}: airflow.retries: expected an integer >= 0, got -1"]
    assert not out.exists()


# --- run queries on TFX's older layout (its own AirflowDagRunner) ------------------------------


def test_run_executions_are_found_in_tfxs_older_run_and_component_run_contexts(tmp_path):
    from ml_metadata.proto import metadata_store_pb2 as pb

    from components.metadata import execution_state, get_run_executions, open_store

    store = open_store(str(tmp_path / "m.sqlite"), create=True)
    assert get_run_executions(store, "penguin", "manual__1") == {}  # nothing recorded yet
    run_type = store.put_context_type(pb.ContextType(name="run"))
    node_type = store.put_context_type(pb.ContextType(name="component_run"))
    exec_type = store.put_execution_type(pb.ExecutionType(name="Trainer"))
    [run] = store.put_contexts([pb.Context(type_id=run_type, name="penguin.manual__1")])
    nodes = store.put_contexts([
        pb.Context(type_id=node_type, name=f"penguin.manual__1.{n}")
        for n in ("ImportExampleGen", "Trainer")] + [
        pb.Context(type_id=node_type, name="penguin.manual__2.Trainer")])
    states = [pb.Execution.COMPLETE, pb.Execution.FAILED, pb.Execution.COMPLETE,
              pb.Execution.CACHED]
    ids = store.put_executions([pb.Execution(type_id=exec_type, last_known_state=s)
                                for s in states])
    # ImportExampleGen once; Trainer failed, then retried; another run's Trainer cached.
    links = [(ids[0], nodes[0]), (ids[1], nodes[1]), (ids[2], nodes[1]), (ids[3], nodes[2])]
    store.put_attributions_and_associations([], [
        pb.Association(execution_id=e, context_id=c) for e, c in links] + [
        pb.Association(execution_id=e, context_id=run) for e in ids[:3]])

    found = get_run_executions(store, "penguin", "manual__1")
    assert {n: (e.id, execution_state(e)) for n, e in found.items()} == {
        "ImportExampleGen": (ids[0], "succeeded"), "Trainer": (ids[2], "succeeded")}
    assert get_run_executions(store, "penguin", "manual__3") == {}
    assert get_run_executions(store, "other", "manual__1") == {}
