"""Reading ExampleValidator's anomalies and turning them into one clear message."""

from __future__ import annotations

import os


class AnomaliesFoundError(RuntimeError):
    """The data does not match the curated schema; the message lists every anomaly."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"data validation failed with {len(problems)} anomal"
            f"{'y' if len(problems) == 1 else 'ies'}: " + "; ".join(problems)
        )


def describe_anomalies(split: str, anomalies) -> list[str]:
    """One line per anomaly of an `anomalies_pb2.Anomalies`, naming the split and feature."""
    problems = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
        reasons = [r.description or r.short_description for r in info.reason]
        text = "; ".join(reasons) or info.description or info.short_description
        problems.append(f"split {split!r}, feature {feature!r}: {text}")
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


def check_anomalies(anomalies_uri: str, splits: list[str]) -> None:
    """Raises AnomaliesFoundError listing the anomalies of every split, if there are any."""
    problems = []
    for split in splits:
        problems += describe_anomalies(split, read_split_anomalies(anomalies_uri, split))
    if problems:
        raise AnomaliesFoundError(problems)
