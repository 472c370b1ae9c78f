"""TFX adapter of the validation gate.

No `from __future__ import annotations`: the @component decorator reads real annotations.
"""


import json

from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies

from components.data_validation.anomalies import check_anomalies


@component
def DataValidationGate(anomalies: InputArtifact[ExampleAnomalies]) -> None:  # noqa: N802
    """Fails the run, listing every anomaly, when ExampleValidator found any."""
    splits = json.loads(anomalies.split_names) if anomalies.split_names else ["train", "eval"]
    check_anomalies(anomalies.uri, splits)
