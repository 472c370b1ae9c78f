"""Reading ExampleValidator's anomalies and turning them into one clear message."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from components.data_validation.non_finite import non_finite_findings


class AnomaliesFoundError(RuntimeError):
    """The data does not match the curated schema; the message lists every anomaly."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"data validation failed with {len(problems)} anomal"
            f"{'y' if len(problems) == 1 else 'ies'}: " + "; ".join(problems)
        )


def describe_anomalies(
    split: str, anomalies, more: Mapping[str, str] | None = None
) -> list[str]:
    """One line per anomalous feature of an `anomalies_pb2.Anomalies`, naming the split.

    `more`: feature -> a finding of the gate's own (non_finite.py), joined to that feature's
    line, so that a feature is named once per split.
    """
    texts = {}
    for feature, info in anomalies.anomaly_info.items():
        reasons = [r.description or r.short_description for r in info.reason]
        texts[feature] = "; ".join(reasons) or info.description or info.short_description
    for feature, text in (more or {}).items():
        texts[feature] = f"{texts[feature]}; {text}" if feature in texts else text
    problems = [f"split {split!r}, feature {f!r}: {text}" for f, text in sorted(texts.items())]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        text = "; ".join(r.description for r in info.reason) or info.description
        problems.append(f"split {split!r}, dataset: {text}")
    return problems


def read_split_anomalies(anomalies_uri: str, split: str):
    """The `Anomalies` proto ExampleValidator wrote for one split (`Split-<name>/SchemaDiff.pb`)."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    path = os.path.join(anomalies_uri, f"Split-{split}", "SchemaDiff.pb")
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(tf.io.gfile.GFile(path, "rb").read())
    return anomalies


def check_anomalies(
    anomalies_uri: str,
    splits: list[str],
    statistics: Callable[[str], object] | None = None,
    schema=None,
) -> None:
    """Raises AnomaliesFoundError listing the anomalies of every split, if there are any.

    Args:
      statistics: split -> that split's `DatasetFeatureStatistics`; with `schema`, NaN and
        ±inf count as missing for the schema's presence rule (non_finite.py).
      schema: the `schema_pb2.Schema` ExampleValidator checked the statistics against.
    """
    problems = []
    for split in splits:
        more = (
            non_finite_findings(statistics(split), schema)
            if statistics is not None and schema is not None else None
        )
        problems += describe_anomalies(split, read_split_anomalies(anomalies_uri, split), more)
    if problems:
        raise AnomaliesFoundError(problems)
