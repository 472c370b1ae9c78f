"""The one door to ML Metadata: opening a store and the questions the project asks of it.

Imports only ``ml_metadata`` (no TensorFlow), and that lazily.
"""

from components.metadata.release_operations import (
    EXECUTION_TYPE,
    MetadataError,
    OperationRecord,
    RecordedOperation,
    find_pushed_models,
    open_store,
    record_operation,
)

__all__ = [
    "EXECUTION_TYPE",
    "MetadataError",
    "OperationRecord",
    "RecordedOperation",
    "find_pushed_models",
    "open_store",
    "record_operation",
]
