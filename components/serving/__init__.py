"""Releases into a TensorFlow Serving model base path: tags, records, models.config, labels,
promote, rollback, traffic split, prune, and their ML Metadata records.

Pure standard library plus protobuf (and ``ml_metadata`` when an operation is recorded): no
TensorFlow, TFX or Beam, so the ``pipeline release`` commands answer at once.
"""

from components.metadata import EXECUTION_TYPE, OperationRecord, record_operation
from components.serving.batching import (
    BATCHING_FILE,
    BatchingParametersError,
    batching_parameters_text,
    parse_batching_parameters,
    write_batching_parameters,
)
from components.serving.errors import InvalidNameError, ReleaseError, ReleaseRefused
from components.serving.labels import LABELS_FILE, LabelState, read_state
from components.serving.models_config import (
    MODELS_CONFIG_FILE,
    ServingState,
    apply_serving_state,
    check_label_rule,
    label_move_steps,
    models_config_text,
    parse_models_config,
    read_models_config,
)
from components.serving.names import (
    Tag,
    make_tag,
    parse_tag,
    validate_channel,
    validate_model_name,
)
from components.serving.operations import (
    ROUTING_FILE,
    Listing,
    OperationResult,
    VersionInfo,
    list_releases,
    promote,
    prune,
    release_version,
    rollback,
    set_traffic,
)
from components.serving.records import RELEASES_DIR, Release, read_releases, record_release
from components.serving.versions import (
    PushError,
    PushResult,
    ServingDir,
    model_content_hash,
)

__all__ = [
    "BATCHING_FILE",
    "EXECUTION_TYPE",
    "LABELS_FILE",
    "MODELS_CONFIG_FILE",
    "RELEASES_DIR",
    "ROUTING_FILE",
    "BatchingParametersError",
    "PushError",
    "PushResult",
    "ServingDir",
    "model_content_hash",
    "InvalidNameError",
    "LabelState",
    "Listing",
    "OperationRecord",
    "OperationResult",
    "Release",
    "ReleaseError",
    "ReleaseRefused",
    "ServingState",
    "Tag",
    "VersionInfo",
    "apply_serving_state",
    "batching_parameters_text",
    "check_label_rule",
    "label_move_steps",
    "list_releases",
    "make_tag",
    "models_config_text",
    "parse_batching_parameters",
    "parse_models_config",
    "parse_tag",
    "promote",
    "prune",
    "read_models_config",
    "read_releases",
    "read_state",
    "record_operation",
    "record_release",
    "release_version",
    "rollback",
    "set_traffic",
    "validate_channel",
    "validate_model_name",
    "write_batching_parameters",
]
