"""The questions the project asks of ML Metadata, named like MLMD's own API (``get_...``).

How TFX's LocalDagRunner lays a run out, which these queries rely on:
- contexts of type ``pipeline`` (the pipeline's name), ``pipeline_run`` (the run id) and
  ``node`` (``<pipeline>.<node id>``); each execution is associated with its run and node
  (the project's Airflow DAG runs each node the same way). TFX's older launchers (its own
  ``AirflowDagRunner``, ``BeamDagRunner``) use ``run`` (``<pipeline>.<run id>``) and
  ``component_run`` (``<pipeline>.<run id>.<node id>``) instead: ``get_run_executions`` reads
  both;
- events link executions to artifacts, INPUT or OUTPUT, the first path step being the key of
  the component's input or output (``model``, ``pushed_model``, ...);
- the pusher's ``PushedModel`` carries custom properties ``pushed_version`` and
  ``pushed_destination`` (the version directory).

Execution states are read by their names in ``metadata_store_pb2.Execution.State``.
``ml_metadata`` is imported only inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import Artifact, Execution

__all__ = [
    "EXECUTION_STATES",
    "changed_since",
    "custom_property",
    "execution_state",
    "get_input_artifacts",
    "get_models_released_as",
    "get_node_executions",
    "get_output_artifacts",
    "get_pushed_models",
    "get_release_operations",
    "get_run_executions",
    "metadata_marks",
    "metadata_watermark",
]

# MLMD's state name -> the project's word (what reports and the CLI show).
EXECUTION_STATES = {
    "UNKNOWN": "unknown",
    "NEW": "new",
    "RUNNING": "running",
    "COMPLETE": "succeeded",
    "FAILED": "failed",
    "CACHED": "cached",
    "CANCELED": "canceled",
}
PIPELINE_RUN_CONTEXT = "pipeline_run"
NODE_CONTEXT = "node"
# TFX's older layout (tfx.orchestration.metadata): run and node-in-run contexts.
LEGACY_RUN_CONTEXT = "run"
LEGACY_COMPONENT_RUN_CONTEXT = "component_run"
PUSHED_MODEL_TYPE = "PushedModel"
# The pusher's input key for the model it pushes.
PUSHER_MODEL_INPUT = "model"
RELEASE_OPERATION_TYPE = "ReleaseOperation"


def execution_state(execution: Execution) -> str:
    """The execution's ``last_known_state`` in the project's words ("succeeded", "cached", ...);
    "unknown" for a state this module does not know."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    try:
        name = pb.Execution.State.Name(execution.last_known_state)
    except ValueError:  # a state added by a later MLMD
        return "unknown"
    return EXECUTION_STATES.get(name, "unknown")


def custom_property(artifact: Artifact | Execution, key: str) -> Any:
    """The value of custom property ``key`` (int, str, float, ...), or None when absent."""
    if key not in artifact.custom_properties:
        return None
    value = artifact.custom_properties[key]
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def get_run_executions(store: MetadataStore, pipeline_name: str, run_id: str
                       ) -> dict[str, Execution]:
    """Node id -> the execution of that node in run ``run_id`` of ``pipeline_name`` (the
    newest, should a node have several); {} for an unknown run."""
    run = store.get_context_by_type_and_name(PIPELINE_RUN_CONTEXT, run_id)
    if run is None:
        return _legacy_run_executions(store, pipeline_name, run_id)
    return get_node_executions(store, pipeline_name, [run.id]).get(run.id, {})


def get_node_executions(store: MetadataStore, pipeline_name: str, run_context_ids: list[int]
                        ) -> dict[int, dict[str, Execution]]:
    """Run context id -> node id -> the newest execution of that node in that run, for runs of
    ``pipeline_name`` laid out by LocalDagRunner: per run, its executions, then each one's
    contexts (indexed lookups), whatever the number of runs in the store."""
    prefix = f"{pipeline_name}."
    out: dict[int, dict[str, Execution]] = {}
    for run_id in run_context_ids:
        nodes: dict[str, Execution] = {}
        for execution in sorted(store.get_executions_by_context(run_id), key=lambda e: e.id):
            node = next((c.name[len(prefix):] for c in store.get_contexts_by_execution(
                execution.id) if c.type == NODE_CONTEXT and c.name.startswith(prefix)), None)
            if node is not None:
                nodes[node] = execution
        out[run_id] = nodes
    return out


def _legacy_run_executions(store: MetadataStore, pipeline_name: str, run_id: str
                           ) -> dict[str, Execution]:
    """`get_run_executions` for a run laid out by TFX's older launchers: the executions of each
    ``component_run`` context ``<pipeline>.<run id>.<node id>``."""
    prefix = f"{pipeline_name}.{run_id}."
    if store.get_context_by_type_and_name(LEGACY_RUN_CONTEXT, prefix[:-1]) is None:
        return {}
    out: dict[str, Execution] = {}
    for context in store.get_contexts_by_type(LEGACY_COMPONENT_RUN_CONTEXT):
        if context.name.startswith(prefix):
            executions = store.get_executions_by_context(context.id)
            if executions:
                out[context.name[len(prefix):]] = max(executions, key=lambda e: e.id)
    return out


def get_output_artifacts(store: MetadataStore, execution_id: int, key: str | None = None
                         ) -> list[Artifact]:
    """The artifacts ``execution_id`` output (under output ``key`` if given), by id."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    return _linked_artifacts(store, [execution_id], pb.Event.OUTPUT, key)


def get_input_artifacts(store: MetadataStore, execution_id: int, key: str | None = None
                        ) -> list[Artifact]:
    """The artifacts ``execution_id`` took as input (under input ``key`` if given), by id."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    return _linked_artifacts(store, [execution_id], pb.Event.INPUT, key)


def get_pushed_models(store: MetadataStore, base_path: str | os.PathLike[str], version: int
                      ) -> list[Artifact]:
    """The PushedModel artifacts of ``version`` of ``base_path``, oldest first.

    An artifact matches when its ``pushed_version`` is ``version`` and its
    ``pushed_destination`` is that version's directory (or the base path itself).
    """
    import ml_metadata as mlmd

    base = os.path.normpath(os.path.abspath(base_path))
    try:
        candidates = store.get_artifacts(list_options=mlmd.ListOptions(filter_query=(
            f"type = '{PUSHED_MODEL_TYPE}' AND "
            f"custom_properties.pushed_version.int_value = {int(version)}"
        )))
    except mlmd.errors.NotFoundError:  # no PushedModel type yet
        return []
    matches = []
    for artifact in candidates:
        destination = custom_property(artifact, "pushed_destination")
        if not destination:
            continue
        if os.path.normpath(os.path.abspath(destination)) in (
                base, os.path.join(base, str(version))):
            matches.append(artifact)
    return sorted(matches, key=lambda a: a.id)


def get_models_released_as(store: MetadataStore, base_path: str | os.PathLike[str],
                           version: int) -> list[Artifact]:
    """The Model artifacts whose push produced ``version`` of ``base_path``, by id: from each
    PushedModel to the execution that output it, to that execution's input ``model``.
    Several when identical models were pushed as one (reused) version."""
    from ml_metadata.proto import metadata_store_pb2 as pb

    pushed = get_pushed_models(store, base_path, version)
    pushers = _executions_linked(store, pushed, pb.Event.OUTPUT)
    return _linked_artifacts(store, pushers, pb.Event.INPUT, PUSHER_MODEL_INPUT)


def _executions_linked(store: MetadataStore, artifacts: list[Artifact], event_type: int
                       ) -> list[int]:
    """Ids of the executions with an event of ``event_type`` on any of ``artifacts``, sorted."""
    if not artifacts:
        return []
    events = store.get_events_by_artifact_ids([a.id for a in artifacts])
    return sorted({e.execution_id for e in events if e.type == event_type})


def get_release_operations(store: MetadataStore, base_path: str | os.PathLike[str],
                           version: int) -> list[Execution]:
    """The ``ReleaseOperation`` executions linked (INPUT events) to the PushedModels of
    ``version`` of ``base_path``, oldest first. An operation on a version this store never saw
    pushed has no link, so it is not among them."""
    import ml_metadata as mlmd
    from ml_metadata.proto import metadata_store_pb2 as pb

    ids = _executions_linked(store, get_pushed_models(store, base_path, version), pb.Event.INPUT)
    if not ids:
        return []
    try:
        release_type = store.get_execution_type(RELEASE_OPERATION_TYPE)
    except mlmd.errors.NotFoundError:  # nothing was ever released through this store
        return []
    executions = store.get_executions_by_id(ids)
    return sorted((e for e in executions if e.type_id == release_type.id), key=lambda e: e.id)


_KINDS = ("executions", "artifacts", "contexts")


def _newest(store: MetadataStore) -> dict[str, tuple[Any, Any]]:
    """Per kind (``_KINDS``): (the item with the newest id, the item updated last), None for
    none. The six queries both ``metadata_watermark`` and ``metadata_marks`` are made of."""
    from ml_metadata.metadata_store import ListOptions, OrderByField

    newest = {}
    for kind in _KINDS:
        get = getattr(store, f"get_{kind}")
        by_id, by_update = (
            next(iter(get(list_options=ListOptions(limit=1, order_by=order, is_asc=False))),
                 None)
            for order in (OrderByField.ID, OrderByField.UPDATE_TIME)
        )
        newest[kind] = (by_id, by_update)
    return newest


def metadata_watermark(store: MetadataStore) -> str:
    """A digest of the newest id and the newest update of executions, artifacts and contexts:
    it changes when any of them is added or updated."""
    marks = [
        [item.id, item.last_update_time_since_epoch] if item is not None else None
        for pair in _newest(store).values() for item in pair
    ]
    # Same digest as the run records written before this module owned it (up_to_date._sha).
    return hashlib.sha256(json.dumps(marks, sort_keys=True).encode()).hexdigest()[:20]


def metadata_marks(store: MetadataStore) -> dict[str, list[int]]:
    """Per kind (executions, artifacts, contexts): [newest id, newest update time in ms], [0, 0]
    for none; what ``changed_since`` compares with."""
    return {
        kind: [by_id.id if by_id is not None else 0,
               by_update.last_update_time_since_epoch if by_update is not None else 0]
        for kind, (by_id, by_update) in _newest(store).items()
    }


def changed_since(store: MetadataStore, marks: dict[str, list[int]]) -> dict[str, list]:
    """Per kind, the executions, artifacts and contexts created (id beyond the mark) or updated
    (later than the newest update of the mark; the store's clock, in ms) since ``marks``."""
    from ml_metadata.metadata_store import ListOptions

    changed = {}
    for kind in _KINDS:
        newest_id, newest_update = marks[kind]
        query = f"id > {int(newest_id)} OR last_update_time_since_epoch > {int(newest_update)}"
        changed[kind] = getattr(store, f"get_{kind}")(
            list_options=ListOptions(filter_query=query))
    return changed


def filter_executions(store: MetadataStore, filter_query: str) -> list[Execution]:
    """``get_executions`` with an MLMD filter query; [] when a type it names was never
    registered in this store."""
    import ml_metadata as mlmd

    try:
        return store.get_executions(list_options=mlmd.ListOptions(filter_query=filter_query))
    except mlmd.errors.NotFoundError:
        return []


def filter_artifacts(store: MetadataStore, filter_query: str) -> list[Artifact]:
    """``get_artifacts`` with an MLMD filter query; [] when a type it names was never
    registered in this store."""
    import ml_metadata as mlmd

    try:
        return store.get_artifacts(list_options=mlmd.ListOptions(filter_query=filter_query))
    except mlmd.errors.NotFoundError:
        return []


def ids_in(ids) -> str:
    """``(1, 2, 3)`` for a filter query's ``IN``; ``(-1)`` for none (matches nothing)."""
    return "(" + (", ".join(str(int(i)) for i in ids) or "-1") + ")"


def _linked_artifacts(store: MetadataStore, execution_ids: list[int], kind: int,
                      key: str | None) -> list[Artifact]:
    """Artifacts linked to ``execution_ids`` by events of type ``kind`` (and first path step
    ``key``, if given), by id."""
    if not execution_ids:
        return []
    ids = sorted({
        e.artifact_id for e in store.get_events_by_execution_ids(execution_ids)
        if e.type == kind and (key is None or (e.path.steps and e.path.steps[0].key == key))
    })
    return sorted(store.get_artifacts_by_id(ids), key=lambda a: a.id) if ids else []
