"""Lineage: which data, code and run made a released version, and what was made of some data.

Forward (``lineage_of_version``, ``lineage_of_tag``, ``lineage_of_run``,
``lineage_of_artifact``): the chain is the run that released the version (or the run asked
for), node by node as LocalDagRunner recorded it: each node's execution, what it took and
what it output. A node TFX found cached in that run output an earlier run's artifact: the
artifact then names the execution that made it (``produced_by``), with its run and time. The
data files are those the run that made the Examples recorded with its request
(``components.metadata.provenance``), an evaluation's metrics those recorded with the request
of a run that used it (``record_run_metrics``; its ``metrics`` property in the answer); the
release operations are those linked to any PushedModel of the versions the run pushed.

Reverse (``derived_from_span``, ``derived_from_file``): every Model trained on the Examples of
that span, or read from that file, and every version it was pushed as.

Every question is a fixed number of batched queries (MLMD filter queries, events by ids),
whatever the number of runs in the store: about 25 for a version's chain. Imports only
``ml_metadata``, lazily.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from components.metadata.provenance import (
    DATA_FILE_TYPE,
    DataFile,
    data_file_of,
    find_data_files,
    quoted,
)
from components.metadata.queries import (
    PIPELINE_RUN_CONTEXT,
    PUSHED_MODEL_TYPE,
    PUSHER_MODEL_INPUT,
    RELEASE_OPERATION_TYPE,
    custom_property,
    execution_state,
    filter_artifacts,
    filter_executions,
    get_node_executions,
    get_pushed_models,
    ids_in,
)
from components.metadata.run_requests import RUN_REQUEST_TYPE, RunRequest, get_run_requests

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import Artifact, Context, Execution

__all__ = [
    "ArtifactInfo",
    "DerivedModel",
    "ExecutionInfo",
    "Lineage",
    "LineageNotFound",
    "derived_from_file",
    "derived_from_span",
    "lineage_of_artifact",
    "lineage_of_run",
    "lineage_of_tag",
    "lineage_of_version",
    "property_values",
]

EXAMPLES_TYPE = "Examples"
MODEL_TYPE = "Model"
EVALUATION_TYPE = "ModelEvaluation"


class LineageNotFound(LookupError):
    """The tag, version, run or artifact asked about is not in the store (the message says
    which)."""


def iso(ms: int) -> str:
    """Milliseconds since the epoch (MLMD's times) as UTC ISO 8601, to the second."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def property_values(item: Any) -> dict[str, Any]:
    """Properties and custom properties of an artifact, execution or context as plain values
    (a struct or proto value as its text)."""
    out: dict[str, Any] = {}
    for props in (item.properties, item.custom_properties):
        for key, value in props.items():
            kind = value.WhichOneof("value")
            if kind in ("int_value", "double_value", "string_value", "bool_value"):
                out[key] = getattr(value, kind)
            elif kind:
                out[key] = str(getattr(value, kind))
    return out


@dataclass
class ExecutionInfo:
    """An execution in a chain: ``node`` and ``run_id`` as TFX's contexts name them ("" when
    none: a release operation, a run request)."""

    id: int
    type: str
    node: str
    run_id: str
    state: str
    started_ms: int
    ended_ms: int
    properties: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "node": self.node, "run_id": self.run_id,
                "state": self.state, "started": iso(self.started_ms),
                "ended": iso(self.ended_ms),
                "seconds": round(max(0, self.ended_ms - self.started_ms) / 1000, 3),
                "properties": self.properties}


@dataclass
class ArtifactInfo:
    """An artifact in a chain; ``produced_by``: the execution that made it (not one that found
    it cached), None when unknown."""

    id: int
    type: str
    uri: str
    created_ms: int
    produced_by: int | None
    properties: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "uri": self.uri,
                "created": iso(self.created_ms), "produced_by": self.produced_by,
                "properties": self.properties}


@dataclass
class Step:
    """One node of the run: its execution, and (key, artifact id) inputs and outputs."""

    node: str
    execution: int
    inputs: list[tuple[str, int]]
    outputs: list[tuple[str, int]]

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "execution": self.execution,
                "inputs": [{"key": k, "artifact": a} for k, a in self.inputs],
                "outputs": [{"key": k, "artifact": a} for k, a in self.outputs]}


@dataclass
class Lineage:
    """The chain of one run (see the module docstring); ``focus``: the artifacts the question
    named (the PushedModel of a version, an artifact asked by id)."""

    pipeline: str
    run_id: str
    steps: list[Step]
    executions: dict[int, ExecutionInfo]
    artifacts: dict[int, ArtifactInfo]
    request: RunRequest | None
    data_files: tuple[DataFile, ...] = ()
    data_recorded_by: str = ""
    releases: list[dict[str, Any]] = field(default_factory=list)
    pushed: list[int] = field(default_factory=list)
    other_pushes: list[dict[str, Any]] = field(default_factory=list)
    focus: list[int] = field(default_factory=list)

    def artifacts_of_type(self, type_name: str) -> list[ArtifactInfo]:
        return [a for a in self.artifacts.values() if a.type == type_name]

    def to_json(self) -> dict[str, Any]:
        request = None
        if self.request is not None:
            request = {**self.request.to_json(), "execution_id": self.request.execution_id,
                       "provenance": (self.request.provenance.to_json()
                                      if self.request.provenance else None)}
        spans = sorted({a.properties["span"] for a in self.artifacts_of_type(EXAMPLES_TYPE)
                        if "span" in a.properties})
        return {
            "pipeline": self.pipeline, "run_id": self.run_id, "request": request,
            "data": {"spans": spans, "files": [f.to_json() for f in self.data_files],
                     "recorded_by_run": self.data_recorded_by},
            "steps": [s.to_json() for s in self.steps],
            "executions": [self.executions[i].to_json() for i in sorted(self.executions)],
            "artifacts": [self.artifacts[i].to_json() for i in sorted(self.artifacts)],
            "pushed": self.pushed, "other_pushes": self.other_pushes,
            "releases": self.releases, "focus": self.focus,
        }


# --- forward -------------------------------------------------------------------------------


def lineage_of_tag(store: MetadataStore, pipeline_name: str, tag: str) -> Lineage:
    """The chain of the version released with tag ``tag``.

    Raises:
      LineageNotFound: no PushedModel carries that tag.
    """
    pushed = [a for a in filter_artifacts(store, (
        f"type = '{PUSHED_MODEL_TYPE}' AND custom_properties.tag.string_value = "
        f"'{quoted(tag)}'")) if custom_property(a, "pushed") == 1]
    if not pushed:
        raise LineageNotFound(f"no version was released with tag {tag!r}")
    first = min(pushed, key=lambda a: a.id)
    version = int(custom_property(first, "pushed_version"))
    return lineage_of_version(store, pipeline_name, _base_of(first, version), version)


def lineage_of_version(store: MetadataStore, pipeline_name: str,
                       base_path: str | os.PathLike[str], version: int) -> Lineage:
    """The chain of ``version`` of ``base_path``: of the run that first pushed it (a later push
    of identical content reuses the version; those are ``other_pushes``).

    Raises:
      LineageNotFound: no PushedModel of that version is recorded.
    """
    pushed = [a for a in get_pushed_models(store, base_path, version)
              if custom_property(a, "pushed") == 1]
    if not pushed:
        raise LineageNotFound(f"version {version} of {os.path.abspath(base_path)} was not "
                              "pushed by any run recorded in this store")
    first = min(pushed, key=lambda a: (custom_property(a, "reused_existing_version") or 0, a.id))
    pushers = _producers(store, [a.id for a in pushed], complete_only=False)
    run = _run_of_execution(store, pushers[first.id].id) if first.id in pushers else None
    if run is None:
        raise LineageNotFound(f"version {version}: the run that pushed it is not recorded")
    lineage = lineage_of_run(store, pipeline_name, run, focus=[first.id])
    for a in pushed:
        if a.id == first.id or a.id not in pushers:
            continue
        other = _run_of_execution(store, pushers[a.id].id)
        lineage.other_pushes.append({
            "artifact": a.id, "execution": pushers[a.id].id,
            "run_id": other.name if other is not None else "",
            "reused_existing_version": bool(custom_property(a, "reused_existing_version")),
            "time": iso(pushers[a.id].last_update_time_since_epoch)})
    return lineage


def lineage_of_artifact(store: MetadataStore, pipeline_name: str, artifact_id: int
                        ) -> Lineage:
    """The chain of the run that made artifact ``artifact_id`` (for a pushed PushedModel, the
    chain of its version).

    Raises:
      LineageNotFound: no such artifact, or nothing recorded made it (a DataFile: ask what was
        derived from it instead).
    """
    found = store.get_artifacts_by_id([int(artifact_id)])
    if not found:
        raise LineageNotFound(f"no artifact {artifact_id} in this store")
    artifact = found[0]
    if artifact.type == PUSHED_MODEL_TYPE and custom_property(artifact, "pushed") == 1:
        version = int(custom_property(artifact, "pushed_version"))
        return lineage_of_version(store, pipeline_name, _base_of(artifact, version), version)
    producer = _producers(store, [artifact.id], complete_only=False).get(artifact.id)
    run = _run_of_execution(store, producer.id) if producer is not None else None
    if run is None:
        hint = " (a data file: use --data)" if artifact.type == DATA_FILE_TYPE else ""
        raise LineageNotFound(f"artifact {artifact_id} ({artifact.type}) was not made by a "
                              f"run recorded in this store{hint}")
    return lineage_of_run(store, pipeline_name, run, focus=[artifact.id])


def lineage_of_run(store: MetadataStore, pipeline_name: str, run: Context | str,
                   focus: list[int] | None = None) -> Lineage:
    """The chain of run ``run`` (its ``pipeline_run`` context, or its name).

    Raises:
      LineageNotFound: no such run.
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    if isinstance(run, str):
        name = run
        run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, name)
        if run is None:
            raise LineageNotFound(f"no run {name!r} in this store")
    by_node = get_node_executions(store, pipeline_name, [run.id]).get(run.id, {})
    steps_executions = sorted(by_node.items(), key=lambda kv: kv[1].id)
    node_of = {e.id: node for node, e in steps_executions}
    events = store.get_events_by_execution_ids(list(node_of)) if node_of else []
    steps = {e.id: Step(node, e.id, [], []) for node, e in steps_executions}
    for event in sorted(events, key=lambda ev: (ev.execution_id, _event_key(ev))):
        step = steps[event.execution_id]
        pair = (_event_key(event), event.artifact_id)
        if event.type == pb.Event.OUTPUT:
            step.outputs.append(pair)
        elif event.type == pb.Event.INPUT:
            step.inputs.append(pair)
    artifacts = {a.id: a for a in store.get_artifacts_by_id(
        sorted({ev.artifact_id for ev in events}))} if events else {}

    # Who made each artifact: the run's own step when it ran (COMPLETE), else an earlier run's.
    executions: dict[int, ExecutionInfo] = {
        e.id: _execution_info(e, node, run.name) for node, e in steps_executions}
    made_here = {aid: s.execution for s in steps.values() for _, aid in s.outputs
                 if executions[s.execution].state == "succeeded"}
    elsewhere = [aid for aid in artifacts if aid not in made_here]
    producers = _producers(store, elsewhere, complete_only=True)
    for execution in producers.values():
        if execution.id not in executions:
            contexts = store.get_contexts_by_execution(execution.id)
            executions[execution.id] = _execution_info(
                execution, _node_name(contexts, pipeline_name), _run_name(contexts))
    produced_by = {**{aid: e.id for aid, e in producers.items()}, **made_here}
    infos = {aid: ArtifactInfo(a.id, a.type, a.uri, a.create_time_since_epoch,
                               produced_by.get(aid), property_values(a))
             for aid, a in artifacts.items()}

    # Who asked for the run, and the files its Examples were read from (recorded with the
    # request of the run that made them).
    examples = [a for a in infos.values() if a.type == EXAMPLES_TYPE]
    data_runs = [executions[a.produced_by].run_id for a in examples
                 if a.produced_by in executions and executions[a.produced_by].run_id]
    evaluations = [a for a in infos.values() if a.type == EVALUATION_TYPE]
    evaluation_runs = [executions[a.produced_by].run_id for a in evaluations
                       if a.produced_by in executions and executions[a.produced_by].run_id]
    requests = get_run_requests(store, [run.name, *data_runs, *evaluation_runs])
    _add_recorded_metrics(evaluations, requests.values())
    data_files: tuple[DataFile, ...] = ()
    recorded_by = ""
    for run_id in [*data_runs, run.name]:
        request = requests.get(run_id)
        if request is not None and request.provenance and request.provenance.data_files:
            data_files, recorded_by = request.provenance.data_files, run_id
            break

    pushed = [a.id for a in artifacts.values()
              if a.type == PUSHED_MODEL_TYPE and custom_property(a, "pushed") == 1]
    return Lineage(
        pipeline=pipeline_name, run_id=run.name,
        steps=[steps[e.id] for _, e in steps_executions], executions=executions,
        artifacts=infos, request=requests.get(run.name), data_files=data_files,
        data_recorded_by=recorded_by, releases=_releases(store, [artifacts[i] for i in pushed]),
        pushed=pushed, focus=list(focus or []),
    )


def _add_recorded_metrics(evaluations: list[ArtifactInfo], requests: Any) -> None:
    """Sets each evaluation's ``metrics`` property (JSON) from the run request that recorded
    them (`record_run_metrics`), unless the artifact has its own."""
    recorded = {r.evaluation["artifact"]: r.evaluation["metrics"] for r in requests
                if r.evaluation and "artifact" in r.evaluation}
    for a in evaluations:
        if "metrics" not in a.properties and a.id in recorded:
            a.properties["metrics"] = json.dumps(recorded[a.id], sort_keys=True)


def _releases(store: MetadataStore, pushed: list[Artifact]) -> list[dict[str, Any]]:
    """The release operations linked to any PushedModel of the versions ``pushed`` released,
    oldest first."""
    versions = {(int(custom_property(a, "pushed_version")),
                 _base_of(a, int(custom_property(a, "pushed_version")))) for a in pushed}
    linked = {a.id for a in pushed}
    for version, base in versions:
        linked |= {a.id for a in get_pushed_models(store, base, version)}
    if not linked:
        return []
    operations = filter_executions(store, (
        f"type = '{RELEASE_OPERATION_TYPE}' AND events_0.artifact_id IN {ids_in(sorted(linked))}"
    ))
    out = []
    for e in sorted(operations, key=lambda e: e.id):
        p = property_values(e)
        out.append({
            "execution": e.id, "operation": p.get("operation", ""),
            "version": p.get("version"), "tag": p.get("tag", ""), "actor": p.get("actor", ""),
            "reason": p.get("reason", ""), "time": p.get("timestamp") or iso(
                e.create_time_since_epoch),
            "base_path": p.get("base_path", ""),
            "details": json.loads(p["details"]) if p.get("details") else {},
        })
    return out


# --- reverse -------------------------------------------------------------------------------


@dataclass
class DerivedModel:
    """A Model trained on the data asked about, and the versions it was pushed as."""

    model: int
    trained_by: int
    run_id: str
    trained_at: str
    spans: list[int]
    pushed: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "trained_by": self.trained_by, "run_id": self.run_id,
                "trained_at": self.trained_at, "spans": self.spans, "pushed": self.pushed}


def derived_from_span(store: MetadataStore, pipeline_name: str, span: int
                      ) -> tuple[list[int], list[DerivedModel]]:
    """The Examples of span ``span`` of ``pipeline_name`` (ids), and the Models trained on them.

    Raises:
      LineageNotFound: no Examples of that span are recorded.
    """
    examples = filter_artifacts(store, (
        f"type = '{EXAMPLES_TYPE}' AND custom_properties.span.int_value = {int(span)} AND "
        f"contexts_a.type = 'pipeline' AND contexts_a.name = '{quoted(pipeline_name)}'"))
    if not examples:
        raise LineageNotFound(f"no Examples of span {span} recorded for pipeline "
                              f"{pipeline_name!r}")
    ids = sorted(a.id for a in examples)
    return ids, _models_trained_on(store, ids)


def derived_from_file(store: MetadataStore, pipeline_name: str, *, sha256: str | None = None,
                      path: str | None = None, name: str | None = None
                      ) -> tuple[list[DataFile], list[str], list[int], list[DerivedModel]]:
    """The recorded files matching (by content digest, absolute path or name relative to the
    data root), the runs that read them, the Examples those runs made or reused, and the
    Models trained on those.

    Raises:
      LineageNotFound: no run recorded reading such a file.
    """
    files = find_data_files(store, sha256=sha256, path=path, name=name)
    what = sha256 and f"content sha256 {sha256[:16]}..." or path or name
    if not files:
        raise LineageNotFound(f"no run recorded reading a file with {what} (runs record "
                              "their input files since lineage was added)")
    requests = filter_executions(store, (
        f"type = '{RUN_REQUEST_TYPE}' AND events_0.artifact_id IN "
        f"{ids_in(a.id for a in files)}"))
    runs = sorted({r.properties["run_id"].string_value for r in requests})
    examples: list[Artifact] = []
    if runs:
        names = ", ".join(f"'{quoted(r)}'" for r in runs)
        examples = filter_artifacts(store, (
            f"type = '{EXAMPLES_TYPE}' AND contexts_a.type = '{PIPELINE_RUN_CONTEXT}' AND "
            f"contexts_a.name IN ({names})"))
    ids = sorted(a.id for a in examples)
    return [data_file_of(a) for a in files], runs, ids, _models_trained_on(store, ids)


def _models_trained_on(store: MetadataStore, examples: list[int]) -> list[DerivedModel]:
    """The Models output by executions that ran (not cached) on ``examples``, by id, each with
    the PushedModels (pushed) an execution output from it as input ``model``."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not examples:
        return []
    trainers = filter_executions(store, (
        f"events_0.artifact_id IN {ids_in(examples)} AND events_0.type = INPUT AND "
        "last_known_state = COMPLETE"))
    if not trainers:
        return []
    by_id = {e.id: e for e in trainers}
    events = store.get_events_by_execution_ids(list(by_id))
    out_ids = {ev.artifact_id for ev in events if ev.type == pb.Event.OUTPUT}
    in_examples = {}
    for ev in events:
        if ev.type == pb.Event.INPUT and ev.artifact_id in examples:
            in_examples.setdefault(ev.execution_id, set()).add(ev.artifact_id)
    models = {a.id: a for a in filter_artifacts(store, (
        f"type = '{MODEL_TYPE}' AND id IN {ids_in(sorted(out_ids))}"))}
    if not models:
        return []
    trained_by = {ev.artifact_id: ev.execution_id for ev in events
                  if ev.type == pb.Event.OUTPUT and ev.artifact_id in models}
    example_spans = {a.id: custom_property(a, "span") for a in store.get_artifacts_by_id(examples)}

    # Every execution that took a model as its input `model` and output a PushedModel.
    users = filter_executions(store, (
        f"events_0.artifact_id IN {ids_in(sorted(models))} AND events_0.type = INPUT"))
    user_events = store.get_events_by_execution_ids([e.id for e in users]) if users else []
    model_of: dict[int, int] = {}
    outputs: dict[int, list[int]] = {}
    for ev in user_events:
        if (ev.type == pb.Event.INPUT and ev.artifact_id in models
                and _event_key(ev) == PUSHER_MODEL_INPUT):
            model_of[ev.execution_id] = ev.artifact_id
        elif ev.type == pb.Event.OUTPUT:
            outputs.setdefault(ev.execution_id, []).append(ev.artifact_id)
    candidate_ids = sorted({a for e, ids in outputs.items() if e in model_of for a in ids})
    pushed_models = [a for a in filter_artifacts(store, (
        f"type = '{PUSHED_MODEL_TYPE}' AND id IN {ids_in(candidate_ids)}"))
        if custom_property(a, "pushed") == 1] if candidate_ids else []
    pushes: dict[int, list[dict[str, Any]]] = {}
    seen: set[tuple[int, str, int]] = set()
    producer_of = {a: e for e, ids in outputs.items() for a in ids}
    for a in sorted(pushed_models, key=lambda a: a.id):
        model = model_of[producer_of[a.id]]
        version = int(custom_property(a, "pushed_version"))
        base = _base_of(a, version)
        if (model, base, version) in seen:  # a cached pusher re-reports the same push
            continue
        seen.add((model, base, version))
        pushes.setdefault(model, []).append({
            "version": version, "tag": custom_property(a, "tag") or "", "base_path": base,
            "pushed_at": custom_property(a, "pushed_at") or "", "artifact": a.id,
            "reused_existing_version": bool(custom_property(a, "reused_existing_version")),
        })
    result = []
    for model_id in sorted(models):
        trainer = by_id[trained_by[model_id]]
        run = _run_of_execution(store, trainer.id)
        result.append(DerivedModel(
            model=model_id, trained_by=trainer.id, run_id=run.name if run is not None else "",
            trained_at=iso(trainer.last_update_time_since_epoch),
            spans=sorted({example_spans[x] for x in in_examples.get(trainer.id, ())
                          if example_spans.get(x) is not None}),
            pushed=pushes.get(model_id, [])))
    return result


# --- helpers -------------------------------------------------------------------------------


def _event_key(event: Any) -> str:
    steps = event.path.steps
    return steps[0].key if steps and steps[0].HasField("key") else ""


def _producers(store: MetadataStore, artifact_ids: list[int], *, complete_only: bool
               ) -> dict[int, Execution]:
    """Artifact id -> the execution that output it: the oldest that ran (COMPLETE), or with
    ``complete_only`` False, failing that the oldest that output it at all. Two queries."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    if not artifact_ids:
        return {}
    query = f"events_0.artifact_id IN {ids_in(sorted(artifact_ids))} AND events_0.type = OUTPUT"
    executions = filter_executions(store, query + " AND last_known_state = COMPLETE")
    if not complete_only and len(executions) < len(artifact_ids):
        executions += filter_executions(store, query + " AND last_known_state != COMPLETE")
    if not executions:
        return {}
    by_id = {e.id: e for e in executions}
    wanted = set(artifact_ids)
    out: dict[int, Execution] = {}
    ranked = sorted(by_id.values(),
                    key=lambda e: (execution_state(e) != "succeeded", e.id))
    rank = {e.id: i for i, e in enumerate(ranked)}
    for ev in store.get_events_by_execution_ids(list(by_id)):
        if ev.type != pb.Event.OUTPUT or ev.artifact_id not in wanted:
            continue
        best = out.get(ev.artifact_id)
        if best is None or rank[ev.execution_id] < rank[best.id]:
            out[ev.artifact_id] = by_id[ev.execution_id]
    return out


def _run_of_execution(store: MetadataStore, execution_id: int) -> Context | None:
    for context in store.get_contexts_by_execution(execution_id):
        if context.type == PIPELINE_RUN_CONTEXT:
            return context
    return None


def _run_name(contexts: list[Context]) -> str:
    return next((c.name for c in contexts if c.type == PIPELINE_RUN_CONTEXT), "")


def _node_name(contexts: list[Context], pipeline_name: str) -> str:
    prefix = f"{pipeline_name}."
    return next((c.name[len(prefix):] for c in contexts
                 if c.type == "node" and c.name.startswith(prefix)), "")


def _execution_info(execution: Execution, node: str, run_id: str) -> ExecutionInfo:
    return ExecutionInfo(
        id=execution.id, type=execution.type, node=node, run_id=run_id,
        state=execution_state(execution), started_ms=execution.create_time_since_epoch,
        ended_ms=execution.last_update_time_since_epoch, properties=property_values(execution))


def _base_of(pushed_model: Artifact, version: int) -> str:
    """The base path a PushedModel was pushed into: its destination's parent when the
    destination is the version's directory."""
    destination = os.path.normpath(custom_property(pushed_model, "pushed_destination") or "")
    if os.path.basename(destination) == str(version):
        return os.path.dirname(destination)
    return destination
