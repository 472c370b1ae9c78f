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

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore

__all__ = [
    "RUN_REQUEST_TYPE",
    "RunRequest",
    "get_run_request",
    "latest_run_id",
    "link_run_request",
    "record_run_request",
]

RUN_REQUEST_TYPE = "RunRequest"
PIPELINE_CONTEXT = "pipeline"
PIPELINE_RUN_CONTEXT = "pipeline_run"
_STRING_PROPERTIES = ("trigger", "reason", "user", "host", "requested_at", "run_id", "details")


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
    """

    trigger: str
    reason: str = ""
    user: str = ""
    host: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    requested_at: str = ""

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
    for name in _STRING_PROPERTIES:
        execution_type.properties[name] = pb.STRING
    # can_add_fields: a later version of this module may add properties to the type.
    return store.put_execution_type(execution_type, can_add_fields=True)


def _context(store: MetadataStore, type_name: str, name: str, create: bool):
    """The context `name` of type `type_name`; created (with a type of no properties, as TFX
    registers it) when `create`, else None when absent."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    context = store.get_context_by_type_and_name(type_name, name)
    if context is not None or not create:
        return context
    try:
        type_id = store.get_context_type(type_name).id
    except Exception:  # noqa: BLE001  (NotFoundError: a store no pipeline ran on yet)
        type_id = store.put_context_type(pb.ContextType(name=type_name))
    [context_id] = store.put_contexts([pb.Context(type_id=type_id, name=name)])
    return store.get_contexts_by_id([context_id])[0]


def record_run_request(store: MetadataStore, pipeline_name: str, run_id: str,
                       request: RunRequest) -> int:
    """Records `request` for run `run_id` of `pipeline_name`, associated with the pipeline's
    context (created if this is its first run), and returns the execution's id.

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
    [execution_id] = store.put_executions([execution])
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


def get_run_request(store: MetadataStore, run_id: str,
                    run_context_type: str = PIPELINE_RUN_CONTEXT) -> RunRequest | None:
    """The request recorded for run `run_id` (the newest, should there be several); else the
    run context's ``reason`` and ``requested_by`` (trigger ""); None when neither was recorded
    (a run started otherwise, or before requests were recorded)."""
    import ml_metadata as mlmd

    try:
        executions = store.get_executions(list_options=mlmd.ListOptions(filter_query=(
            f"type = '{RUN_REQUEST_TYPE}' AND "
            f"properties.run_id.string_value = '{_quoted(run_id)}'")))
    except mlmd.errors.NotFoundError:  # no request ever recorded in this store
        executions = []
    if not executions:
        return _request_on_context(store, run_id, run_context_type)
    newest = max(executions, key=lambda e: e.id)
    values = {k: newest.properties[k].string_value for k in _STRING_PROPERTIES}
    return RunRequest(trigger=values["trigger"], reason=values["reason"], user=values["user"],
                      host=values["host"], requested_at=values["requested_at"],
                      details=json.loads(values["details"] or "{}"))


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


def _quoted(value: str) -> str:
    """`value` inside a single-quoted MLMD filter string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
