"""TFX adapter of the validation gate.

No `from __future__ import annotations`: the @component decorator reads real annotations.
"""


import json

from tfx.dsl.component.experimental.annotations import InputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import ExampleAnomalies, ExampleStatistics, Schema

from components.data_validation.anomalies import check_anomalies


@component
def DataValidationGate(  # noqa: N802
    anomalies: InputArtifact[ExampleAnomalies],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    code_fingerprint: Parameter[str] = "",
) -> None:
    """Fails the run, listing every anomaly, when ExampleValidator found any, or when NaN and
    infinite values, counted as missing, break the schema's presence rule.

    `code_fingerprint` is not read: it re-runs the gate when its code changes.
    """
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import artifact_utils
    from tfx.utils import io_utils

    splits = json.loads(anomalies.split_names) if anomalies.split_names else ["train", "eval"]
    curated = io_utils.SchemaReader().read(
        io_utils.get_only_uri_in_dir(artifact_utils.get_single_uri([schema]))
    )

    def split_statistics(split: str):
        return stats_artifact_utils.load_statistics(statistics, split).proto().datasets[0]

    check_anomalies(anomalies.uri, splits, split_statistics, curated)
