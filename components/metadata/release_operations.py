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
from typing import TYPE_CHECKING, Any

from components.metadata.queries import RELEASE_OPERATION_TYPE, get_pushed_models
from components.metadata.store import (
    MetadataError,
    connection_config,
    describe_store,
    open_store,
    redact,
)

if TYPE_CHECKING:
    from ml_metadata.proto.metadata_store_pb2 import ConnectionConfig

    from components.metadata.store import MySQLSettings

__all__ = [
    "EXECUTION_TYPE",
    "OperationRecord",
    "RecordedOperation",
    "record_operation",
]

EXECUTION_TYPE = RELEASE_OPERATION_TYPE
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


_STRING_PROPERTIES = (
    "operation", "model_name", "base_path", "tag", "actor", "reason", "timestamp", "details",
)


def _execution_type_id(store: Any) -> int:
    from ml_metadata.proto import metadata_store_pb2

    execution_type = metadata_store_pb2.ExecutionType(name=EXECUTION_TYPE)
    for name in _STRING_PROPERTIES:
        execution_type.properties[name] = metadata_store_pb2.STRING
    execution_type.properties["version"] = metadata_store_pb2.INT
    # can_add_fields: a later release of this module may add properties to the type.
    return store.put_execution_type(execution_type, can_add_fields=True)


def record_operation(
    metadata_path: str | os.PathLike[str] | MySQLSettings | ConnectionConfig,
    record: OperationRecord,
    pipeline_name: str | None = None,
) -> RecordedOperation:
    """Record ``record`` as a ``ReleaseOperation`` execution in the store at ``metadata_path``.

    Args:
        metadata_path: the ML Metadata store: a SQLite file (created if missing), MySQL
            settings or a connection config (see ``components.metadata.store``).
        record: the operation.
        pipeline_name: associate the execution with this pipeline's context, if the store has it.

    Returns:
        The ids written.

    Raises:
        MetadataError: the store cannot be opened or written (naming it).
    """
    from ml_metadata.proto import metadata_store_pb2

    config = (metadata_path if isinstance(metadata_path, metadata_store_pb2.ConnectionConfig)
              else connection_config(metadata_path, create=True))
    store = open_store(metadata_path, create=True)  # MySQL: the server is checked first
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
            for artifact in get_pushed_models(store, record.base_path, version)
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
    except Exception as e:  # MLMD's errors, SQLite's
        raise MetadataError(
            f"cannot record {record.operation} in {describe_store(config)}: "
            f"{redact(str(e), config)}"
        ) from e
    return RecordedOperation(execution_id, tuple(a.id for a in artifacts), context_id)
