"""The validation gate: anomalies found by ExampleValidator stop the run before training."""

from components.data_validation.anomalies import (
    AnomaliesFoundError,
    describe_anomalies,
    read_split_anomalies,
)

__all__ = ["AnomaliesFoundError", "describe_anomalies", "read_split_anomalies"]
