"""TFX adapter of the validation gate.

No `from __future__ import annotations`: the @component decorator reads real annotations.
"""


import json

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies

from components.data_validation.anomalies import check_anomalies


@component
def DataValidationGate(  # noqa: N802
    anomalies: InputArtifact[ExampleAnomalies], code_fingerprint: Parameter[str] = ""
) -> None:
    """Fails the run, listing every anomaly, when ExampleValidator found any.

    `code_fingerprint` is not read: it re-runs the gate when its code changes.
    """
    splits = json.loads(anomalies.split_names) if anomalies.split_names else ["train", "eval"]
    check_anomalies(anomalies.uri, splits)
