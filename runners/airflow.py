"""The Airflow runner: `build_pipeline(cfg)` as an Airflow DAG, one task per pipeline node.

Not TFX's `AirflowDagRunner`, for three measured reasons: it builds the pipeline when Airflow
parses the DAG file (a TensorFlow import, ~20 s of every parse, which Airflow's scheduler repeats
every 30 s and times out at 30 s); its runtime parameters can only be strings inside component
properties (the span is a RangeConfig proto); and it records ML Metadata in TFX's older layout
(`run` / `component_run` contexts), which every question the project asks of a run would have
to read twice, and under which the baseline resolver saw every Trainer model as the candidate.

Here the DAG file holds only plain data (`dag_spec`): the configuration with absolute paths, the
node graph, the schedule and retries. Parsing it imports Airflow and this module, never
TensorFlow. Each task, when it runs, builds the pipeline for its DAG run's conf, compiles it and
runs its one node with TFX's portable launcher, as `LocalDagRunner` runs each node in turn, under
the DAG run's id: ML Metadata gets the same `pipeline` / `pipeline_run` / `node` contexts as a
local run, so the reports, `pipeline release` and the baseline read Airflow runs as local ones.
The nodes share state only through ML Metadata and the pipeline root, so each task may run in
its own process (any executor) and a retried task runs its node again.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pipeline.config import ConfigError, PipelineConfig

# What a DAG run's conf may hold (`airflow dags trigger -c '{...}'`), and the type of each.
CONF_KEYS: dict[str, type] = {
    "span": int,  # the span to read (default: the latest)
    "data_root": str,  # an absolute folder of span-N/ folders (default: the compiled one)
    "channel": str,  # the release channel (default: the compiled pusher.channel)
    "reason": str,  # why this run was asked for: recorded with the run in ML Metadata
    "requested_by": str,  # who asked, as user@host: recorded beside the reason
}
# Configuration keys holding a path: made absolute when the DAG is compiled (a worker's working
# directory is not the one the DAG was compiled in).
_PATH_KEYS = (("work_dir",), ("pipeline_root",), ("metadata_path",), ("data", "root"),
              ("data", "schema"), ("pusher", "base_path"), ("metadata", "password_file"),
              ("metadata", "socket"), ("metadata", "tls", "ca"), ("metadata", "tls", "cert"),
              ("metadata", "tls", "key"))


class ConfError(ValueError):
    """A DAG run's conf the pipeline cannot take; the message names the key."""


def default_dag_id(cfg: PipelineConfig) -> str:
    return cfg.airflow.dag_id or cfg.pipeline_name


def portable_config(cfg: PipelineConfig) -> dict[str, Any]:
    """`cfg` as plain data, every path made absolute against this process's directory. (A
    MySQL store's password is not in it: only the name of its variable or file.)"""
    from pipeline.config import config_to_dict

    data = config_to_dict(cfg)
    for keys in _PATH_KEYS:
        section = data
        for key in keys[:-1]:
            section = section.get(key) or {}
        if section.get(keys[-1]) is not None:
            section[keys[-1]] = os.path.abspath(section[keys[-1]])
    return data


def node_graph(cfg: PipelineConfig) -> dict[str, list[str]]:
    """Node id -> the ids of the nodes it waits for, in run order (builds the pipeline: TFX)."""
    from components.tf_process import defer_tfx_components_init, prepare_tf_process

    prepare_tf_process()
    defer_tfx_components_init()
    from tfx.dsl.compiler import compiler

    from pipeline.build import build_pipeline

    ir = compiler.Compiler().compile(build_pipeline(cfg))
    return {n.pipeline_node.node_info.id: sorted(n.pipeline_node.upstream_nodes)
            for n in ir.nodes}


def dag_spec(cfg: PipelineConfig, profile: str, dag_id: str | None = None) -> dict[str, Any]:
    """All the DAG file holds: plain JSON data (see `airflow_dag`); `profile` is the profile
    `cfg` was loaded from, under which the tasks load the compiled configuration again."""
    a = cfg.airflow
    return {
        "dag_id": dag_id or default_dag_id(cfg),
        "profile": profile,
        "schedule": a.schedule,
        "start_date": a.start_date,
        "retries": a.retries,
        "retry_delay_seconds": a.retry_delay_seconds,
        "nodes": node_graph(cfg),
        "config": portable_config(cfg),
    }


def render_dag_file(spec: dict[str, Any], sources: list[str]) -> str:
    """The text of the DAG file for `spec` (`sources`: where its configuration came from)."""
    import pprint

    body = pprint.pformat(spec, sort_dicts=False, width=100)  # Python literals: None, True
    origin = "\n".join(f"#   {s}" for s in sources) or "#   (defaults)"
    return (
        f'"""Airflow DAG {spec["dag_id"]!r}: the TFX pipeline {spec["config"]["pipeline_name"]!r}, '
        "one task per node.\n\n"
        "Written by `pipeline compile airflow`; compile again rather than edit. Runtime\n"
        "parameters come from the DAG run's conf: "
        f"{', '.join(CONF_KEYS)}.\n"
        '"""\n'
        "# Configuration compiled from:\n"
        f"{origin}\n"
        "from runners.airflow import airflow_dag\n\n"
        f"SPEC = {body}\n\n"
        "dag = airflow_dag(SPEC)\n"
    )


def read_dag_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The spec a compiled DAG file holds, read without running the file (no Airflow)."""
    import ast

    with open(path) as f:
        tree = ast.parse(f.read(), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "SPEC"):
            return ast.literal_eval(node.value)
    raise ConfError(f"{path}: no SPEC: not a DAG file written by `pipeline compile airflow`")


def dag_run_config(path: str | os.PathLike[str], conf: dict[str, Any] | None = None
                   ) -> PipelineConfig:
    """The configuration a DAG run of the compiled DAG file at `path` runs with, for `conf`."""
    spec = read_dag_spec(path)
    return config_for_run(spec["profile"], spec["config"], conf or {})


# --- what Airflow runs: at parse time, then at task time --------------------------------------


def airflow_dag(spec: dict[str, Any]):
    """The DAG of `spec` (imports Airflow, not TensorFlow): a task per node with its upstream
    nodes as dependencies, no catch-up, one active run, the profile's retries."""
    import functools
    from datetime import datetime, timedelta, timezone

    from airflow import DAG
    from airflow.operators.python import PythonOperator

    with DAG(
        dag_id=spec["dag_id"],
        schedule=spec["schedule"],
        start_date=datetime.fromisoformat(spec["start_date"]).replace(tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args={
            "retries": spec["retries"],
            "retry_delay": timedelta(seconds=spec["retry_delay_seconds"]),
        },
        tags=["tfx", spec["config"]["pipeline_name"]],
        doc_md=f"TFX pipeline `{spec['config']['pipeline_name']}`; conf keys: "
        + ", ".join(f"`{k}`" for k in CONF_KEYS),
    ) as dag:
        tasks = {
            node: PythonOperator(
                task_id=node,
                python_callable=functools.partial(
                    _run_task, spec["profile"], spec["config"], node),
            )
            for node in spec["nodes"]
        }
        for node, upstream in spec["nodes"].items():
            for up in upstream:
                tasks[up] >> tasks[node]
    return dag


def _run_task(profile: str, config: dict[str, Any], node_id: str, **context: Any) -> None:
    """A task: runs `node_id` for the task's DAG run. A conf or configuration the pipeline
    cannot take fails the task without retries (a retry would fail the same way)."""
    from airflow.exceptions import AirflowFailException

    dag_run = context["dag_run"]
    conf = dict(dag_run.conf or {})
    try:
        cfg = config_for_run(profile, config, conf)
    except (ConfError, ConfigError) as e:
        raise AirflowFailException(f"dag_run.conf: {e}") from None
    request = {
        "trigger": f"airflow {dag_run.run_type}",  # scheduled, manual, ...
        "reason": conf.get("reason", ""),
        "requested_by": conf.get("requested_by", "airflow"),
        "details": {k: v for k, v in conf.items() if k not in ("reason", "requested_by")},
    }
    run_node(cfg, node_id, dag_run.run_id, request)


def check_conf(conf: dict[str, Any]) -> None:
    """Raises ConfError for a key outside CONF_KEYS or a value of the wrong type."""
    for key, value in conf.items():
        if key not in CONF_KEYS:
            raise ConfError(f"{key}: unknown key; expected one of: {', '.join(CONF_KEYS)}")
        kind = CONF_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfError(f"{key}: expected {'an integer' if kind is int else 'a string'}, "
                            f"got {value!r}")
    if "span" in conf and conf["span"] < 0:
        raise ConfError(f"span: expected an integer >= 0, got {conf['span']}")
    if "data_root" in conf and not os.path.isabs(conf["data_root"]):
        raise ConfError(f"data_root: {conf['data_root']!r}: give an absolute path (a worker's "
                        "working directory is not yours)")


def config_for_run(profile: str, config: dict[str, Any], conf: dict[str, Any]
                   ) -> PipelineConfig:
    """The compiled configuration (loaded from `profile`) with the DAG run's conf on top.

    Raises:
      ConfError, ConfigError: naming the key.
    """
    from pipeline.config import check_against_schema, load_config

    check_conf(conf)
    overrides = json.loads(json.dumps(config))  # a deep copy
    if "span" in conf:
        overrides["data"]["span"] = conf["span"]
    if "data_root" in conf:
        overrides["data"]["root"] = conf["data_root"]
    if "channel" in conf:
        overrides["pusher"]["channel"] = conf["channel"]
    # The profile's own relative paths mean nothing here; the compiled ones are absolute.
    cfg = load_config(profile, overrides=overrides, check_schema=False)
    check_against_schema(cfg)
    return cfg


def run_node(cfg: PipelineConfig, node_id: str, run_id: str,
             request: dict[str, Any] | None = None) -> None:
    """Builds the pipeline for `cfg` and runs its node `node_id` as part of run `run_id` (MLMD's
    pipeline_run context), then records `request` with the run (`record_request`).

    Raises:
      KeyError: no such node.
      Exception: what the node raised.
    """
    from components.tf_process import defer_tfx_components_init, prepare_tf_process

    prepare_tf_process()
    defer_tfx_components_init()  # before the first TFX import
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration import metadata
    from tfx.orchestration.local import runner_utils
    from tfx.orchestration.portable import launcher, runtime_parameter_utils

    from components.metadata import pipeline_connection_config
    from pipeline.build import beam_args, build_pipeline
    from runners.beam_package import skip_tfx_package_for_local_beam

    skip_tfx_package_for_local_beam()
    connection = pipeline_connection_config(cfg.metadata_target)
    ir = compiler.Compiler().compile(build_pipeline(
        cfg, metadata_connection_config=connection, beam_pipeline_args=beam_args(cfg)))
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
    nodes = {n.pipeline_node.node_info.id: n.pipeline_node for n in ir.nodes}
    if node_id not in nodes:
        raise KeyError(f"{node_id}: no such node in pipeline {cfg.pipeline_name} "
                       f"(nodes: {', '.join(nodes)})")
    deployment = runner_utils.extract_local_deployment_config(ir)
    launcher.Launcher(
        pipeline_node=nodes[node_id],
        mlmd_connection=metadata.Metadata(connection),
        pipeline_info=ir.pipeline_info,
        pipeline_runtime_spec=ir.runtime_spec,
        executor_spec=runner_utils.extract_executor_spec(deployment, node_id),
        custom_driver_spec=runner_utils.extract_custom_driver_spec(deployment, node_id),
    ).launch()
    if request:
        record_request(cfg, run_id, request)


def record_request(cfg: PipelineConfig, run_id: str, request: dict[str, Any]) -> None:
    """Records who asked for run `run_id` and why (`request`: trigger, reason, requested_by
    as ``user@host``, details) as a RunRequest linked to the run, with the run's provenance
    (`pipeline.provenance`), which also sets the run context's ``reason`` and ``requested_by``
    (components/metadata/run_requests.py). Once: the first task to end writes it."""
    from components.metadata import open_store
    from components.metadata.run_requests import (
        RunRequest,
        get_run_request,
        link_run_request,
        record_run_request,
    )
    from pipeline.provenance import run_provenance

    store = open_store(cfg.metadata_target)
    if get_run_request(store, run_id) is not None:
        return
    user, _, host = request.get("requested_by", "airflow").partition("@")
    execution_id = record_run_request(store, cfg.pipeline_name, run_id, RunRequest(
        trigger=request.get("trigger", "airflow"), reason=request.get("reason", ""),
        user=user, host=host, details=request.get("details", {}),
        # The code, configuration and input files, with Airflow's id of the DAG run.
        provenance=run_provenance(cfg, orchestrator="airflow", orchestrator_run_id=run_id)))
    link_run_request(store, execution_id, run_id)


def trigger_conf(request) -> dict[str, Any]:
    """The DAG run conf of a `pipeline retrain --on airflow` request (`CONF_KEYS`)."""
    conf: dict[str, Any] = {}
    details = request.details
    if details.get("span") is not None:
        conf["span"] = int(details["span"])
    if details.get("data_root"):
        conf["data_root"] = os.path.abspath(details["data_root"])
    if details.get("channel"):
        conf["channel"] = details["channel"]
    if request.reason:
        conf["reason"] = request.reason
    conf["requested_by"] = f"{request.user}@{request.host}"
    check_conf(conf)
    return conf


def trigger(cfg: PipelineConfig, request, *, as_json: bool) -> int:
    """`pipeline retrain --on airflow`: `airflow dags trigger <dag id> -c <conf>` on the
    Airflow installation this environment's `airflow` command reaches (AIRFLOW_HOME), then how
    to follow the run. The scheduler runs it; the DAG must be deployed (docs/OPERATIONS.md)."""
    import shutil
    import subprocess
    import sys

    dag_id = default_dag_id(cfg)
    conf = trigger_conf(request)
    airflow = shutil.which("airflow") or os.path.join(os.path.dirname(sys.executable), "airflow")
    cmd = [airflow, "dags", "trigger", dag_id, "-c", json.dumps(conf), "-o", "json"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return _trigger_failed(f"airflow dags trigger {dag_id}: {e}", as_json)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit {proc.returncode}"
        return _trigger_failed(f"airflow dags trigger {dag_id}: {why}", as_json)
    try:  # the JSON table is the last line; Airflow's log lines come before it on stdout
        run_id = cli_json(proc.stdout)[0]["dag_run_id"]
    except (ValueError, LookupError, TypeError):
        run_id = ""
    follow = f"airflow dags list-runs -d {dag_id}"
    if run_id:
        follow = f"airflow tasks states-for-dag-run {dag_id} {run_id}"
    if as_json:
        print(json.dumps({"status": "triggered", "on": "airflow", "dag_id": dag_id,
                          "dag_run_id": run_id, "conf": conf, "follow": follow}))
    else:
        print(f"triggered DAG {dag_id} run {run_id or '(id not reported)'} with {json.dumps(conf)}")
        print(f"follow it: {follow}")
    return 0


def _trigger_failed(message: str, as_json: bool) -> int:
    import sys

    if as_json:
        print(json.dumps({"status": "failed", "error": message}))
    else:
        print(f"error: {message}", file=sys.stderr)
    return 1


def cli_json(stdout: str) -> Any:
    """The JSON an `airflow ... -o json` command printed, after its log lines on stdout."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(("[{", "[]", "{")):
            return json.loads(line)
    raise ValueError("no JSON in the airflow command's output")
