"""The one door to ML Metadata: opening a store and the questions the project asks of it.

- ``store``: ``connection_config`` / ``pipeline_connection_config`` (SQLite file or MySQL) and
  ``open_store``; failures are ``MetadataError`` naming the store. A MySQL server is checked
  first, within seconds (``check_mysql_server``, ``mysql_probe``).
- ``queries``: a run's executions and their states by name, artifacts along events, the
  PushedModels of a version, the Model released as a version, its release operations, the
  watermark of the whole store, its marks and what was created or updated since them.
- ``release_operations``: ``record_operation``, one ``ReleaseOperation`` execution per release
  command.
- ``run_requests``: ``record_run_request`` (who asked for a run, and why) and its queries.
- ``provenance``: what a run was made of (git commit, configuration, input files as
  ``DataFile`` artifacts), recorded with its request.
- ``lineage``: the chain behind a version, tag, run or artifact, and what was derived from a
  span or a file; ``runs``: a pipeline's runs (``list_runs``, ``get_run_detail``).

Imports only ``ml_metadata`` (no TensorFlow), and that lazily.
"""

from components.metadata.lineage import (
    Lineage,
    LineageNotFound,
    derived_from_file,
    derived_from_span,
    lineage_of_artifact,
    lineage_of_run,
    lineage_of_tag,
    lineage_of_version,
)
from components.metadata.provenance import DataFile, RunProvenance
from components.metadata.queries import (
    changed_since,
    custom_property,
    execution_state,
    get_input_artifacts,
    get_models_released_as,
    get_node_executions,
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
    get_run_requests,
    latest_run_id,
    link_run_request,
    record_run_request,
)
from components.metadata.runs import RunDetail, RunSummary, get_run_detail, list_runs
from components.metadata.store import (
    MetadataError,
    MySQLSettings,
    SSLSettings,
    check_mysql_server,
    connection_config,
    describe_store,
    describe_target,
    open_store,
    pipeline_connection_config,
    store_exists,
)

__all__ = [
    "DataFile",
    "Lineage",
    "LineageNotFound",
    "RunDetail",
    "RunProvenance",
    "RunSummary",
    "derived_from_file",
    "derived_from_span",
    "get_node_executions",
    "get_run_detail",
    "get_run_requests",
    "lineage_of_artifact",
    "lineage_of_run",
    "lineage_of_tag",
    "lineage_of_version",
    "list_runs",
    "EXECUTION_TYPE",
    "MetadataError",
    "MySQLSettings",
    "OperationRecord",
    "RecordedOperation",
    "RunRequest",
    "SSLSettings",
    "changed_since",
    "check_mysql_server",
    "connection_config",
    "custom_property",
    "describe_store",
    "describe_target",
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
    "store_exists",
]
