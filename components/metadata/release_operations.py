"""Release operations in ML Metadata: one ``ReleaseOperation`` execution per operation.

Each execution carries the operation, tag, version, actor, reason and timestamp as properties,
and is linked by an INPUT event to the ``PushedModel`` artifacts of the version(s) it acted on,
found by their custom properties ``pushed_version`` and ``pushed_destination`` (the version
directory, as the pusher records it). With no such artifact (a version pushed outside the
pipeline, or another store) the execution is recorded without the link. When the store holds
the pipeline's context (type ``pipeline``, the pipeline's name) the execution is associated
with it, so it shows in the pipeline's lineage next to the runs that produced the model.

``ml_metadata`` (about 0.35 s to import, no TensorFlow) is imported only when recording.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXECUTION_TYPE",
    "MetadataError",
    "OperationRecord",
    "RecordedOperation",
    "find_pushed_models",
    "open_store",
    "record_operation",
]

EXECUTION_TYPE = "ReleaseOperation"
PUSHED_MODEL_TYPE = "PushedModel"
PIPELINE_CONTEXT_TYPE = "pipeline"


@dataclass(frozen=True)
class OperationRecord:
    """What an operation did, for ML Metadata.

    Attributes:
        operation: ``promote``, ``rollback``, ``traffic``, ``prune``.
        model_name: the model of the base path.
        base_path: absolute base path.
        tag: the tag of ``version`` ("" when it has none).
        version: the version acted on (0 when none, e.g. a prune that removed nothing).
        actor: who ran it (``getpass.getuser()``).
        reason: why, as given by the operator ("" when not given).
        timestamp: UTC, ISO 8601.
        linked_versions: versions whose PushedModel artifacts the execution is linked to.
        details: operation-specific values (labels after, percent, removed versions), as JSON.
    """

    operation: str
    model_name: str
    base_path: str
    tag: str
    version: int
    actor: str
    reason: str
    timestamp: str
    linked_versions: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedOperation:
    """Ids of what ``record_operation`` wrote: the execution and the artifacts linked."""

    execution_id: int
    linked_artifact_ids: tuple[int, ...]
    context_id: int | None


class MetadataError(RuntimeError):
    """ML Metadata cannot be opened or written; the message names the store."""


_STRING_PROPERTIES = (
    "operation", "model_name", "base_path", "tag", "actor", "reason", "timestamp", "details",
)


def open_store(metadata_path: str) -> Any:
    """A ``MetadataStore`` on the SQLite file ``metadata_path``, created if missing.

    Raises:
        MetadataError: the store cannot be opened (naming the file).
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    sqlite = metadata_store_pb2.SqliteMetadataSourceConfig
    config.sqlite.connection_mode = sqlite.READWRITE_OPENCREATE
    try:
        os.makedirs(os.path.dirname(os.path.abspath(metadata_path)), exist_ok=True)
        return metadata_store.MetadataStore(config)
    except Exception as e:  # MLMD raises its own error types and RuntimeError from C++
        raise MetadataError(f"cannot open ML Metadata store {metadata_path}: {e}") from e


def find_pushed_models(store: Any, base_path: str, version: int) -> list[Any]:
    """The PushedModel artifacts of ``version`` of ``base_path``, oldest first.

    An artifact matches when its ``pushed_version`` is ``version`` and its
    ``pushed_destination`` is that version's directory (or the base path itself).
    """
    import ml_metadata as mlmd

    base_path = os.path.normpath(os.path.abspath(base_path))
    try:
        candidates = store.get_artifacts(
            list_options=mlmd.ListOptions(
                filter_query=(
                    f"type = '{PUSHED_MODEL_TYPE}' AND "
                    f"custom_properties.pushed_version.int_value = {int(version)}"
                )
            )
        )
    except mlmd.errors.NotFoundError:
        return []
    matches = []
    for artifact in candidates:
        destination = artifact.custom_properties.get("pushed_destination")
        if destination is None or not destination.string_value:
            continue
        dest = os.path.normpath(os.path.abspath(destination.string_value))
        if dest in (base_path, os.path.join(base_path, str(version))):
            matches.append(artifact)
    return sorted(matches, key=lambda a: a.id)


def _execution_type_id(store: Any) -> int:
    from ml_metadata.proto import metadata_store_pb2

    execution_type = metadata_store_pb2.ExecutionType(name=EXECUTION_TYPE)
    for name in _STRING_PROPERTIES:
        execution_type.properties[name] = metadata_store_pb2.STRING
    execution_type.properties["version"] = metadata_store_pb2.INT
    # can_add_fields: a later release of this module may add properties to the type.
    return store.put_execution_type(execution_type, can_add_fields=True)


def record_operation(
    metadata_path: str, record: OperationRecord, pipeline_name: str | None = None
) -> RecordedOperation:
    """Record ``record`` as a ``ReleaseOperation`` execution in the store at ``metadata_path``.

    Args:
        metadata_path: SQLite file of the ML Metadata store (created if missing).
        record: the operation.
        pipeline_name: associate the execution with this pipeline's context, if the store has it.

    Returns:
        The ids written.

    Raises:
        MetadataError: the store cannot be opened or written (naming the file).
    """
    from ml_metadata.proto import metadata_store_pb2

    store = open_store(metadata_path)
    try:
        execution = metadata_store_pb2.Execution(
            type_id=_execution_type_id(store),
            last_known_state=metadata_store_pb2.Execution.COMPLETE,
        )
        values = {
            "operation": record.operation,
            "model_name": record.model_name,
            "base_path": record.base_path,
            "tag": record.tag,
            "actor": record.actor,
            "reason": record.reason,
            "timestamp": record.timestamp,
            "details": json.dumps(record.details, sort_keys=True),
        }
        for name, value in values.items():
            execution.properties[name].string_value = value
        execution.properties["version"].int_value = record.version
        [execution_id] = store.put_executions([execution])

        artifacts = [
            artifact
            for version in dict.fromkeys(record.linked_versions)
            for artifact in find_pushed_models(store, record.base_path, version)
        ]
        if artifacts:
            store.put_events(
                [
                    metadata_store_pb2.Event(
                        artifact_id=a.id,
                        execution_id=execution_id,
                        type=metadata_store_pb2.Event.INPUT,
                    )
                    for a in artifacts
                ]
            )
        context_id = None
        if pipeline_name:
            context = store.get_context_by_type_and_name(PIPELINE_CONTEXT_TYPE, pipeline_name)
            if context is not None:
                context_id = context.id
                store.put_attributions_and_associations(
                    [], [metadata_store_pb2.Association(context_id=context_id,
                                                        execution_id=execution_id)]
                )
    except MetadataError:
        raise
    except Exception as e:  # MLMD's errors, SQLite's
        raise MetadataError(f"cannot record {record.operation} in {metadata_path}: {e}") from e
    return RecordedOperation(execution_id, tuple(a.id for a in artifacts), context_id)
