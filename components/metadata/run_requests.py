"""Who asked for a run, and why: one ``RunRequest`` execution per run started from the CLI.

The execution carries the trigger (``run``, ``retrain``), the reason, the user and host who
asked, when, the run id and the run's parameters (span, data root, channel, partial-run nodes)
as properties. It is recorded before the run starts, associated with the pipeline's context
(so a request whose run was refused or crashed is still on record), and linked to the run's
own context (``pipeline_run`` under LocalDagRunner) once the orchestrator has created it.
It is never associated with a run context the orchestrator did not create: TFX's partial run
takes the newest run context as the run to reuse, and an empty one would be chosen. Linking
also sets the run context's custom properties ``reason`` and ``requested_by`` (``user@host``),
the form the Airflow runner records a DAG run's conf in, so that either is read the same way
(``get_run_request``).

What the run was made of (code, configuration, input files: ``RunProvenance``) is recorded on
the same execution when the request carries it (``components.metadata.provenance``), and once
the run is over the metrics of its evaluation (``record_run_metrics``): here, not on TFX's
ModelEvaluation artifact, because TFX's cache key of a node hashes its input artifacts whole,
custom properties included, so a property added to an artifact afterwards re-runs every node
that takes it (measured: the pusher ran again on unchanged inputs).

``ml_metadata`` (no TensorFlow) is imported only inside the functions.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from components.metadata.provenance import (
    DATA_FILES_KEY,
    INT_PROPERTIES,
    STRING_PROPERTIES,
    RunProvenance,
    data_file_of,
    quoted,
    record_data_files,
)

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import Execution

__all__ = [
    "RUN_REQUEST_TYPE",
    "RunRequest",
    "get_run_request",
    "get_run_requests",
    "latest_run_id",
    "link_run_request",
    "record_run_metrics",
    "record_run_request",
]

RUN_REQUEST_TYPE = "RunRequest"
PIPELINE_CONTEXT = "pipeline"
PIPELINE_RUN_CONTEXT = "pipeline_run"
_STRING_PROPERTIES = ("trigger", "reason", "user", "host", "requested_at", "run_id", "details")
# Written once the run is over: {"artifact": ModelEvaluation id, "metrics": {name: value}}.
EVALUATION_PROPERTY = "evaluation_metrics"


@dataclass(frozen=True)
class RunRequest:
    """A request for a run.

    Attributes:
      trigger: the command that asked: ``run`` or ``retrain``.
      reason: why, as given (``--reason``; "" when not given).
      user: who asked (the login name).
      host: the machine asked from.
      details: the run's parameters given on the command line (span, data_root, channel), and
        once recorded the resolved ones and a partial run's nodes.
      requested_at: UTC, ISO 8601 ("" until recorded).
      provenance: the code, configuration and input files of the run (None: not recorded).
      execution_id: the RunRequest execution, once recorded or read (0 before).
      evaluation: the metrics of the run's evaluation, once recorded: {"artifact": the
        ModelEvaluation's id, "metrics": {name: value}} (None: not recorded).
    """

    trigger: str
    reason: str = ""
    user: str = ""
    host: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    requested_at: str = ""
    provenance: RunProvenance | None = field(default=None, compare=False)
    execution_id: int = field(default=0, compare=False)
    evaluation: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def from_here(cls, trigger: str, reason: str = "", **details: Any) -> RunRequest:
        """A request made by this process's user on this host; `details` without None values."""
        return cls(trigger=trigger, reason=reason or "", user=current_user(),
                   host=socket.gethostname(),
                   details={k: v for k, v in details.items() if v is not None})

    def to_json(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "reason": self.reason, "user": self.user,
                "host": self.host, "requested_at": self.requested_at, "details": self.details}


def current_user() -> str:
    """The login name (``getpass.getuser()``, which reads $LOGNAME, $USER, ... then the password
    database); "unknown" when there is none (a container running as an unnamed uid)."""
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001  (KeyError or OSError, by platform)
        return os.environ.get("USER") or "unknown"


def _execution_type_id(store: MetadataStore) -> int:
    from ml_metadata.proto import metadata_store_pb2 as pb

    execution_type = pb.ExecutionType(name=RUN_REQUEST_TYPE)
    for name in (*_STRING_PROPERTIES, *STRING_PROPERTIES, EVALUATION_PROPERTY):
        execution_type.properties[name] = pb.STRING
    for name in INT_PROPERTIES:
        execution_type.properties[name] = pb.INT
    # can_add_fields: this module added the provenance properties to a type that lacked them;
    # can_omit_fields: a later version may add more, which an older one does not name.
    return store.put_execution_type(execution_type, can_add_fields=True, can_omit_fields=True)


def _context(store: MetadataStore, type_name: str, name: str, create: bool):
    """The context `name` of type `type_name`; created (with a type of no properties, as TFX
    registers it) when `create`, else None when absent."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    context = store.get_context_by_type_and_name(type_name, name)
    if context is not None or not create:
        return context
    from ml_metadata import errors

    try:
        type_id = store.get_context_type(type_name).id
    except Exception:  # noqa: BLE001  (NotFoundError: a store no pipeline ran on yet)
        type_id = store.put_context_type(pb.ContextType(name=type_name))
    try:
        [context_id] = store.put_contexts([pb.Context(type_id=type_id, name=name)])
    except errors.AlreadyExistsError:  # another run (process) created it a moment ago
        return store.get_context_by_type_and_name(type_name, name)
    return store.get_contexts_by_id([context_id])[0]


def record_run_request(store: MetadataStore, pipeline_name: str, run_id: str,
                       request: RunRequest) -> int:
    """Records `request` for run `run_id` of `pipeline_name`, associated with the pipeline's
    context (created if this is its first run), with its provenance (properties, and its input
    files as ``DataFile`` artifacts) when it has one; returns the execution's id.

    Raises:
      Exception: what MLMD raised (the caller decides whether a run goes on without it).
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    at = request.requested_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    values = {**request.to_json(), "requested_at": at, "run_id": run_id,
              "details": json.dumps(request.details, sort_keys=True)}
    execution = pb.Execution(type_id=_execution_type_id(store),
                             last_known_state=pb.Execution.COMPLETE)
    for name in _STRING_PROPERTIES:
        execution.properties[name].string_value = str(values[name])
    provenance = request.provenance
    if provenance is not None:
        for name, value in provenance.properties().items():
            if isinstance(value, int):
                execution.properties[name].int_value = value
            else:
                execution.properties[name].string_value = value
    [execution_id] = store.put_executions([execution])
    if provenance is not None:
        record_data_files(store, execution_id, provenance.data_files, provenance.span)
    pipeline = _context(store, PIPELINE_CONTEXT, pipeline_name, create=True)
    store.put_attributions_and_associations(
        [], [pb.Association(context_id=pipeline.id, execution_id=execution_id)])
    return execution_id


def link_run_request(store: MetadataStore, execution_id: int, run_id: str,
                     run_context_type: str = PIPELINE_RUN_CONTEXT) -> bool:
    """Associates request `execution_id` with run `run_id`'s context if the orchestrator
    created it, and sets the context's ``reason`` and ``requested_by``; False when there is no
    such context (the run never started)."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    run = _context(store, run_context_type, run_id, create=False)
    if run is None:
        return False
    store.put_attributions_and_associations(
        [], [pb.Association(context_id=run.id, execution_id=execution_id)])
    [execution] = store.get_executions_by_id([execution_id])
    props = execution.properties
    run.custom_properties["reason"].string_value = props["reason"].string_value
    run.custom_properties["requested_by"].string_value = (
        f"{props['user'].string_value}@{props['host'].string_value}")
    store.put_contexts([run])
    return True


def record_run_metrics(store: MetadataStore, run_id: str, evaluation_id: int,
                       metrics: dict[str, float]) -> bool:
    """Records the metrics of run `run_id`'s evaluation (ModelEvaluation `evaluation_id`) on
    its request (the newest); False when no request was recorded for that run."""
    import ml_metadata as mlmd

    try:
        executions = store.get_executions(list_options=mlmd.ListOptions(filter_query=(
            f"type = '{RUN_REQUEST_TYPE}' AND "
            f"properties.run_id.string_value = '{quoted(run_id)}'")))
    except mlmd.errors.NotFoundError:
        return False
    if not executions:
        return False
    _execution_type_id(store)  # a type registered before it had the property gets it
    execution = max(executions, key=lambda e: e.id)
    execution.properties[EVALUATION_PROPERTY].string_value = json.dumps(
        {"artifact": int(evaluation_id), "metrics": metrics}, sort_keys=True)
    store.put_executions([execution])
    return True


def get_run_request(store: MetadataStore, run_id: str,
                    run_context_type: str = PIPELINE_RUN_CONTEXT) -> RunRequest | None:
    """The request recorded for run `run_id` (the newest, should there be several), with its
    provenance when recorded; else the run context's ``reason`` and ``requested_by`` (trigger
    ""); None when neither was recorded (a run started otherwise, or before requests were
    recorded)."""
    found = get_run_requests(store, [run_id])
    if run_id in found:
        return found[run_id]
    return _request_on_context(store, run_id, run_context_type)


def get_run_requests(store: MetadataStore, run_ids: list[str]) -> dict[str, RunRequest]:
    """Run id -> the request recorded for it (the newest), with provenance and data files, in
    three queries whatever the number of runs; runs without a recorded request are absent."""
    import ml_metadata as mlmd

    if not run_ids:
        return {}
    wanted = ", ".join(f"'{quoted(r)}'" for r in dict.fromkeys(run_ids))
    try:
        executions = store.get_executions(list_options=mlmd.ListOptions(filter_query=(
            f"type = '{RUN_REQUEST_TYPE}' AND properties.run_id.string_value IN ({wanted})")))
    except mlmd.errors.NotFoundError:  # no request ever recorded in this store
        return {}
    newest: dict[str, Execution] = {}
    for e in sorted(executions, key=lambda e: e.id):
        newest[e.properties["run_id"].string_value] = e
    files = _data_files_of(store, [e.id for e in newest.values()])
    return {run_id: _request_of(e, files.get(e.id, ())) for run_id, e in newest.items()}


def _data_files_of(store: MetadataStore, execution_ids: list[int]) -> dict[int, tuple]:
    """Execution id -> its DataFile inputs (``DataFile``), in event order."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not execution_ids:
        return {}
    events = [e for e in store.get_events_by_execution_ids(execution_ids)
              if e.type == pb.Event.INPUT and e.path.steps
              and e.path.steps[0].key == DATA_FILES_KEY]
    if not events:
        return {}
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({e.artifact_id
                                                                    for e in events}))}
    out: dict[int, list] = {}
    for e in sorted(events, key=lambda e: (e.execution_id, e.path.steps[-1].index)):
        if e.artifact_id in artifacts:
            out.setdefault(e.execution_id, []).append(data_file_of(artifacts[e.artifact_id]))
    return {k: tuple(v) for k, v in out.items()}


def _request_of(execution: Execution, data_files: tuple) -> RunRequest:
    values = {k: execution.properties[k].string_value if k in execution.properties else ""
              for k in _STRING_PROPERTIES}
    return RunRequest(trigger=values["trigger"], reason=values["reason"], user=values["user"],
                      host=values["host"], requested_at=values["requested_at"],
                      details=json.loads(values["details"] or "{}"),
                      provenance=RunProvenance.from_execution(execution, data_files),
                      execution_id=execution.id, evaluation=_evaluation_of(execution))


def _evaluation_of(execution: Execution) -> dict[str, Any] | None:
    value = (execution.properties[EVALUATION_PROPERTY].string_value
             if EVALUATION_PROPERTY in execution.properties else "")
    return json.loads(value) if value else None


def _request_on_context(store: MetadataStore, run_id: str, run_context_type: str
                        ) -> RunRequest | None:
    run = _context(store, run_context_type, run_id, create=False)
    if run is None or "requested_by" not in run.custom_properties:
        return None
    values = {k: run.custom_properties[k].string_value if k in run.custom_properties else ""
              for k in ("reason", "requested_by")}
    user, _, host = values["requested_by"].partition("@")
    return RunRequest(trigger="", reason=values["reason"], user=user, host=host)


def latest_run_id(store: MetadataStore, pipeline_name: str, exclude: str = "") -> str | None:
    """The newest run of `pipeline_name` other than `exclude`, as TFX's partial run chooses the
    run whose outputs it reuses: the newest ``pipeline_run`` context (by creation time) among
    the pipeline context's children, or among all of them in a store written before TFX linked
    runs to their pipeline. None when there is none."""
    pipeline = _context(store, PIPELINE_CONTEXT, pipeline_name, create=False)
    if pipeline is None:
        return None
    try:
        run_type = store.get_context_type(PIPELINE_RUN_CONTEXT)
    except Exception:  # noqa: BLE001  (NotFoundError: no run yet)
        return None
    children = store.get_children_contexts_by_context(pipeline.id)
    runs = ([c for c in children if c.type_id == run_type.id] if children
            else store.get_contexts_by_type(PIPELINE_RUN_CONTEXT))
    runs = [c for c in runs if c.name != exclude]
    if not runs:
        return None
    return max(runs, key=lambda c: (c.create_time_since_epoch, c.id)).name

