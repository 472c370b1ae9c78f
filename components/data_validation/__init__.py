"""The validation gate: anomalies found by ExampleValidator, and NaN or ±inf values that break
the schema's presence rule once counted as missing (non_finite.py), stop the run before training."""

from components.data_validation.anomalies import (
    AnomaliesFoundError,
    describe_anomalies,
    read_split_anomalies,
)

__all__ = ["AnomaliesFoundError", "describe_anomalies", "read_split_anomalies"]
