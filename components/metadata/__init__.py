"""The one door to ML Metadata: opening a store and the questions the project asks of it.

- ``store``: ``connection_config`` / ``pipeline_connection_config`` (SQLite file or MySQL) and
  ``open_store``; failures are ``MetadataError`` naming the store.
- ``queries``: a run's executions and their states by name, artifacts along events, the
  PushedModels of a version, the Model released as a version, its release operations, the
  watermark of the whole store, its marks and what was created or updated since them.
- ``release_operations``: ``record_operation``, one ``ReleaseOperation`` execution per release
  command.
- ``run_requests``: ``record_run_request`` (who asked for a run, and why) and its queries.

Imports only ``ml_metadata`` (no TensorFlow), and that lazily.
"""

from components.metadata.queries import (
    changed_since,
    custom_property,
    execution_state,
    get_input_artifacts,
    get_models_released_as,
    get_output_artifacts,
    get_pushed_models,
    get_release_operations,
    get_run_executions,
    metadata_marks,
    metadata_watermark,
)
from components.metadata.release_operations import (
    EXECUTION_TYPE,
    OperationRecord,
    RecordedOperation,
    record_operation,
)
from components.metadata.run_requests import (
    RunRequest,
    get_run_request,
    latest_run_id,
    link_run_request,
    record_run_request,
)
from components.metadata.store import (
    MetadataError,
    MySQLSettings,
    SSLSettings,
    connection_config,
    describe_store,
    open_store,
    pipeline_connection_config,
)

__all__ = [
    "EXECUTION_TYPE",
    "MetadataError",
    "MySQLSettings",
    "OperationRecord",
    "RecordedOperation",
    "RunRequest",
    "SSLSettings",
    "changed_since",
    "connection_config",
    "custom_property",
    "describe_store",
    "execution_state",
    "get_input_artifacts",
    "get_models_released_as",
    "get_output_artifacts",
    "get_pushed_models",
    "get_release_operations",
    "get_run_request",
    "get_run_executions",
    "latest_run_id",
    "link_run_request",
    "metadata_marks",
    "metadata_watermark",
    "open_store",
    "pipeline_connection_config",
    "record_operation",
    "record_run_request",
]
