"""A pipeline's runs as ML Metadata holds them: ``list_runs`` and ``get_run_detail``.

A run is a ``pipeline_run`` context (LocalDagRunner's layout, which the project's Airflow DAG
keeps), a child of its pipeline's context. Its status comes from its executions' states: any
failed or canceled, ``failed``; any still new or running, ``running``; else ``succeeded``. A
run killed from outside leaves a running execution behind and stays ``running``. What it
pushed, the span it read, who asked for it and why, and its metrics (recorded with its
request, ``record_run_metrics``, else on the PushedModel) are read in a few batched
queries per page of runs. Imports only ``ml_metadata``, lazily.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.metadata.lineage import iso
from components.metadata.provenance import quoted
from components.metadata.queries import (
    PIPELINE_RUN_CONTEXT,
    PUSHED_MODEL_TYPE,
    custom_property,
    execution_state,
    filter_artifacts,
    get_node_executions,
    ids_in,
)
from components.metadata.run_requests import (
    PIPELINE_CONTEXT,
    RUN_REQUEST_TYPE,
    RunRequest,
    get_run_requests,
)

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import Context, Execution

__all__ = ["ComponentState", "RunDetail", "RunSummary", "get_run_detail", "list_runs"]

EVALUATION_TYPE = "ModelEvaluation"
BLESSING_TYPE = "ModelBlessing"
EXAMPLES_TYPE = "Examples"


@dataclass
class RunSummary:
    """One run: ``status`` succeeded | failed | running; ``pushed``: the version it pushed
    (``new``: False when it re-reported or reused one), None when none."""

    run_id: str
    started_ms: int
    ended_ms: int
    status: str
    executions: int
    cached: int
    span: int | None
    pushed: dict[str, Any] | None
    request: RunRequest | None

    def to_json(self) -> dict[str, Any]:
        request = None
        if self.request is not None:
            request = self.request.to_json()
            provenance = self.request.provenance
            if provenance is not None:
                request.update(git_commit=provenance.git_commit, git_dirty=provenance.git_dirty,
                               config_sha256=provenance.config_sha256,
                               orchestrator=provenance.orchestrator,
                               orchestrator_run_id=provenance.orchestrator_run_id)
        return {"run_id": self.run_id, "started": iso(self.started_ms),
                "ended": iso(self.ended_ms),
                "seconds": round(max(0, self.ended_ms - self.started_ms) / 1000, 1),
                "status": self.status, "executions": self.executions, "cached": self.cached,
                "span": self.span, "pushed": self.pushed,
                "request": request}


@dataclass
class ComponentState:
    """A node's execution in a run."""

    node: str
    execution: int
    state: str
    started_ms: int
    ended_ms: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.node, "execution": self.execution, "status": self.state,
                "cached": self.state == "cached", "started": iso(self.started_ms),
                "ended": iso(self.ended_ms),
                "seconds": round(max(0, self.ended_ms - self.started_ms) / 1000, 2)}


@dataclass
class RunDetail:
    """``runs show``: the summary, each node, the metrics and the verdicts."""

    summary: RunSummary
    components: list[ComponentState]
    metrics: dict[str, float] = field(default_factory=dict)
    blessed: bool | None = None
    signature_blessed: bool | None = None
    signature_reasons: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = self.summary.to_json()
        provenance = self.summary.request.provenance if self.summary.request else None
        out.update(components=[c.to_json() for c in self.components], metrics=self.metrics,
                   blessed=self.blessed, signature_blessed=self.signature_blessed,
                   signature_reasons=self.signature_reasons,
                   provenance=provenance.to_json() if provenance else None)
        return out


def list_runs(store: MetadataStore, pipeline_name: str, limit: int = 20) -> list[RunSummary]:
    """The newest ``limit`` runs of ``pipeline_name``, newest first."""
    return _summaries(store, _runs_of(store, pipeline_name, limit))


def get_run_detail(store: MetadataStore, pipeline_name: str, run_id: str) -> RunDetail | None:
    """Run ``run_id`` in detail; None when there is no such run."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    if run is None:
        return None
    [summary] = _summaries(store, [run])
    nodes = get_node_executions(store, pipeline_name, [run.id]).get(run.id, {})
    components = sorted(
        (ComponentState(node, e.id, execution_state(e), e.create_time_since_epoch,
                        e.last_update_time_since_epoch) for node, e in nodes.items()),
        key=lambda c: c.execution)
    detail = RunDetail(summary, components)
    ids = [c.execution for c in components]
    events = store.get_events_by_execution_ids(ids) if ids else []
    outputs = sorted({e.artifact_id for e in events if e.type == pb.Event.OUTPUT})
    artifacts = filter_artifacts(store, (
        f"id IN {ids_in(outputs)} AND type IN ('{EVALUATION_TYPE}', '{BLESSING_TYPE}', "
        f"'{PUSHED_MODEL_TYPE}')")) if outputs else []
    evaluation = summary.request.evaluation if summary.request else None
    if evaluation:
        detail.metrics = evaluation.get("metrics", {})
    for a in sorted(artifacts, key=lambda a: a.id):
        if a.type == EVALUATION_TYPE and custom_property(a, "metrics") and not detail.metrics:
            detail.metrics = json.loads(custom_property(a, "metrics"))
        elif a.type == BLESSING_TYPE and custom_property(a, "signature_blessed") is not None:
            detail.signature_blessed = custom_property(a, "signature_blessed") == 1
            detail.signature_reasons = json.loads(custom_property(a, "reasons") or "[]")
        elif a.type == BLESSING_TYPE and custom_property(a, "blessed") is not None:
            detail.blessed = custom_property(a, "blessed") == 1
    if not detail.metrics:  # recorded by the pusher when it pushed
        for a in artifacts:
            if a.type == PUSHED_MODEL_TYPE and custom_property(a, "metrics"):
                detail.metrics = json.loads(custom_property(a, "metrics"))
    return detail


def _runs_of(store: MetadataStore, pipeline_name: str, limit: int) -> list[Context]:
    """The pipeline's newest ``limit`` run contexts, newest first: children of its context
    (any run context in a store written before TFX linked runs to their pipeline)."""
    from ml_metadata import ListOptions, OrderByField

    if store.get_context_by_type_and_name(PIPELINE_CONTEXT, pipeline_name) is None:
        return []
    newest = {"order_by": OrderByField.CREATE_TIME, "is_asc": False, "limit": limit}
    try:
        runs = store.get_contexts(list_options=ListOptions(filter_query=(
            f"type = '{PIPELINE_RUN_CONTEXT}' AND parent_contexts_a.type = "
            f"'{PIPELINE_CONTEXT}' AND parent_contexts_a.name = '{quoted(pipeline_name)}'"),
            **newest))
        if not runs:
            runs = store.get_contexts(list_options=ListOptions(
                filter_query=f"type = '{PIPELINE_RUN_CONTEXT}'", **newest))
    except Exception:  # noqa: BLE001  (NotFoundError: no run yet)
        return []
    return sorted(runs, key=lambda c: (c.create_time_since_epoch, c.id), reverse=True)


def _summaries(store: MetadataStore, runs: list[Context]) -> list[RunSummary]:
    """A summary per run, in order: one query per run for its executions, then three batched
    ones (events, artifacts, requests) for all of them."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not runs:
        return []
    executions: dict[int, list[Execution]] = {
        run.id: [e for e in store.get_executions_by_context(run.id)
                 if e.type != RUN_REQUEST_TYPE]
        for run in runs}
    run_of = {e.id: run_id for run_id, es in executions.items() for e in es}
    state_of = {e.id: execution_state(e) for es in executions.values() for e in es}
    events = store.get_events_by_execution_ids(list(run_of)) if run_of else []
    outputs: dict[int, list[int]] = {}  # artifact -> the executions (of these runs) output it
    for e in events:
        if e.type == pb.Event.OUTPUT:
            outputs.setdefault(e.artifact_id, []).append(e.execution_id)
    artifacts = filter_artifacts(store, (
        f"id IN {ids_in(sorted(outputs))} AND type IN ('{PUSHED_MODEL_TYPE}', "
        f"'{EXAMPLES_TYPE}')")) if outputs else []
    span: dict[int, int] = {}
    pushed: dict[int, dict[str, Any]] = {}
    for a in sorted(artifacts, key=lambda a: a.id):
        for execution in outputs[a.id]:
            run_id = run_of[execution]
            if a.type == EXAMPLES_TYPE and custom_property(a, "span") is not None:
                span[run_id] = int(custom_property(a, "span"))
            elif a.type == PUSHED_MODEL_TYPE and custom_property(a, "pushed") == 1:
                pushed[run_id] = {
                    "version": custom_property(a, "pushed_version"),
                    "tag": custom_property(a, "tag") or "",
                    "path": custom_property(a, "pushed_destination") or "",
                    "new": not custom_property(a, "reused_existing_version")
                    and state_of[execution] == "succeeded",
                    "artifact": a.id,
                }
    requests = get_run_requests(store, [run.name for run in runs])
    out = []
    for run in runs:
        es = executions[run.id]
        states = [state_of[e.id] for e in es]
        if any(s in ("failed", "canceled") for s in states):
            status = "failed"
        elif any(s in ("new", "running", "unknown") for s in states):
            status = "running"
        else:
            status = "succeeded"
        started = min([e.create_time_since_epoch for e in es], default=run.create_time_since_epoch)
        ended = max([e.last_update_time_since_epoch for e in es],
                    default=run.last_update_time_since_epoch)
        request = requests.get(run.name)
        if request is None and "requested_by" in run.custom_properties:
            user, _, host = run.custom_properties["requested_by"].string_value.partition("@")
            reason = (run.custom_properties["reason"].string_value
                      if "reason" in run.custom_properties else "")
            request = RunRequest(trigger="", reason=reason, user=user, host=host)
        out.append(RunSummary(
            run_id=run.name, started_ms=started, ended_ms=ended, status=status,
            executions=len(es), cached=states.count("cached"), span=span.get(run.id),
            pushed=pushed.get(run.id), request=request))
    return out
