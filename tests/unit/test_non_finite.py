"""NaN and ±inf count as missing: in the validation gate (on real TFDV statistics of real
tf.Examples) and in the trainer (normalisation and imputation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory
from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2
from tfx_bsl.coders import example_coder

from components.data_validation.anomalies import AnomaliesFoundError, check_anomalies
from components.data_validation.non_finite import count_non_finite, non_finite_findings
from components.trainer.features import FeatureInfo, LabelInfo
from components.trainer.input_fn import numeric_stats
from components.trainer.model import build_model
from components.trainer.settings import ModelConfig

NAN, INF = float("nan"), float("inf")
ABSENT = None

SCHEMA = """
feature { name: "species" type: INT presence { min_fraction: 1.0 min_count: 1 } }
feature {
  name: "body_mass_g" type: FLOAT
  presence { min_fraction: 0.9 min_count: 1 }
  value_count { min: 1 max: 1 }
}
"""


def schema_of(text: str = SCHEMA) -> schema_pb2.Schema:
    return text_format.Parse(text, schema_pb2.Schema())


def example(value, name: str = "body_mass_g") -> bytes:
    ex = tf.train.Example()
    ex.features.feature["species"].int64_list.value.append(1)
    if value is not ABSENT:
        ex.features.feature[name].float_list.value.append(value)
    return ex.SerializeToString()


def values(**counts) -> list:
    """`finite=70, nan=30` -> 70 finite values (4000.0, 4001.0, ...) then 30 NaN, etc."""
    special = {"nan": NAN, "inf": INF, "neg_inf": -INF, "absent": ABSENT}
    out = [4000.0 + i for i in range(counts.pop("finite", 0))]
    for kind, n in counts.items():
        out += [special[kind]] * n
    return out


def statistics(vals, name: str = "body_mass_g"):
    """TFDV's statistics of one split of these values, as StatisticsGen computes them."""
    records = [example(v, name) for v in vals]
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    return generate_statistics_in_memory(batch).datasets[0]


def gate(tmp_path, split_stats: dict, schema=None):
    """Runs the gate as the pipeline does: ExampleValidator's anomalies (TFDV's validation of
    the same statistics, written where ExampleValidator writes them), the statistics, the
    schema. Returns the error message, or None when the gate lets the run go on."""
    schema = schema or schema_of()
    tmp_path.mkdir(exist_ok=True)
    for split, stats in split_stats.items():
        split_list = statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats])
        anomalies = tfdv.validate_statistics(split_list, schema)
        (tmp_path / f"Split-{split}").mkdir(exist_ok=True)
        (tmp_path / f"Split-{split}" / "SchemaDiff.pb").write_bytes(anomalies.SerializeToString())
    try:
        check_anomalies(str(tmp_path), list(split_stats), split_stats.__getitem__, schema)
    except AnomaliesFoundError as e:
        return str(e)
    return None


# --- counting, from real statistics ---------------------------------------------------------


@pytest.mark.parametrize(
    "counts",
    [
        {"finite": 70, "nan": 30},
        {"finite": 95, "inf": 5},
        {"finite": 90, "neg_inf": 10},
        {"finite": 60, "nan": 10, "inf": 7, "neg_inf": 3, "absent": 20},
        {"nan": 12},
        {"inf": 4, "neg_inf": 4},
        {"finite": 50, "absent": 50},
    ],
)
def test_counts_are_exact(counts):
    vals = values(**counts)
    stats = statistics(vals)
    found = count_non_finite(
        stats, next(f for f in stats.features if f.path.step == ["body_mass_g"])
    )
    assert (found.nan, found.infinite, found.absent, found.examples) == (
        counts.get("nan", 0), counts.get("inf", 0) + counts.get("neg_inf", 0),
        counts.get("absent", 0), len(vals),
    )
    assert found.finite == counts.get("finite", 0)


def test_counts_are_exact_through_beam_over_several_files(tmp_path):
    # StatisticsGen merges partial statistics across bundles; the -inf count comes from the
    # merged quantiles sketch, the +inf and NaN counts from exact counters.
    rng = np.random.default_rng(7)
    vals = rng.normal(4000.0, 500.0, size=30_000)
    where = rng.permutation(vals.size)
    vals[where[:3]], vals[where[3:10]], vals[where[10:21]] = -INF, INF, NAN
    for k, part in enumerate(np.array_split(vals, 3)):
        with tf.io.TFRecordWriter(str(tmp_path / f"part-{k}.tfrecord")) as w:
            for v in part:
                w.write(example(float(v)))
    stats = tfdv.generate_statistics_from_tfrecord(str(tmp_path / "part-*.tfrecord"))
    dataset = stats.datasets[0]
    found = count_non_finite(
        dataset, next(f for f in dataset.features if f.path.step == ["body_mass_g"])
    )
    assert (found.nan, found.infinite, found.absent, found.examples) == (11, 10, 0, 30_000)


# --- the gate's message ----------------------------------------------------------------------


def test_30_percent_nan_is_refused_like_30_percent_absent(tmp_path):
    nan = gate(tmp_path / "nan", {"train": statistics(values(finite=70, nan=30))})
    assert nan == (
        "data validation failed with 1 anomaly: split 'train', feature 'body_mass_g': only 70% "
        "of examples have a finite value, the schema's presence.min_fraction requires at least "
        "90% (30 NaN, 0 infinite, 0 absent of 100); NaN and infinite values count as missing"
    )
    absent = gate(tmp_path / "absent", {"train": statistics(values(finite=70, absent=30))})
    assert absent is not None and "split 'train', feature 'body_mass_g'" in absent


def test_infinities_count_as_missing_and_each_split_is_named(tmp_path):
    message = gate(tmp_path, {
        "train": statistics(values(finite=95, nan=5)),  # 95%: passes
        "eval": statistics(values(finite=80, inf=6, neg_inf=4, absent=10)),
    })
    assert message is not None
    assert message.startswith("data validation failed with 1 anomaly: split 'eval', "
                              "feature 'body_mass_g': only 80% of examples have a finite value")
    assert "(0 NaN, 10 infinite, 10 absent of 100)" in message
    assert "'train'" not in message


def test_few_non_finite_values_pass(tmp_path):
    assert gate(tmp_path, {"train": statistics(values(finite=92, nan=3, inf=2, neg_inf=1,
                                                       absent=2))}) is None


def test_percent_is_rounded_down_next_to_the_bound(tmp_path):
    message = gate(tmp_path, {"train": statistics(values(finite=8999, nan=1001))})
    assert "only 89.9% of examples have a finite value" in message


def test_min_count_alone(tmp_path):
    schema = schema_of("""
        feature { name: "species" type: INT }
        feature { name: "body_mass_g" type: FLOAT presence { min_count: 1 } }
    """)
    message = gate(tmp_path, {"train": statistics(values(nan=3, inf=2, absent=5))}, schema)
    assert message == (
        "data validation failed with 1 anomaly: split 'train', feature 'body_mass_g': only 0 "
        "examples have a finite value, the schema's presence.min_count requires at least 1 "
        "(3 NaN, 2 infinite, 5 absent of 10); NaN and infinite values count as missing"
    )


def test_a_feature_with_tfdv_anomalies_too_is_one_line(tmp_path):
    # With a float_domain, TFDV refuses ±inf as out of range; the presence finding joins it.
    schema = schema_of(SCHEMA.replace("value_count", "float_domain { min: 2500 max: 6500 } "
                                                     "value_count"))
    message = gate(tmp_path, {"train": statistics(values(finite=80, inf=20))}, schema)
    assert message.startswith("data validation failed with 1 anomaly: split 'train', "
                              "feature 'body_mass_g': ")
    assert "inf>6500" in message and "only 80% of examples have a finite value" in message


def test_schema_refuses_non_finite_values_outright_per_feature(tmp_path):
    # No config key: the curated schema's float_domain says it, and TFDV checks it.
    schema = schema_of(SCHEMA.replace(
        "value_count", "float_domain { disallow_nan: true disallow_inf: true } value_count"))
    message = gate(tmp_path, {"train": statistics(values(finite=99, neg_inf=1))}, schema)
    assert message == ("data validation failed with 1 anomaly: split 'train', feature "
                       "'body_mass_g': Float feature has Inf values.")


def test_features_without_presence_or_not_float_are_not_checked():
    schema = schema_of("""
        feature { name: "species" type: INT presence { min_fraction: 1.0 } }
        feature { name: "body_mass_g" type: FLOAT }
    """)
    assert non_finite_findings(statistics(values(nan=10)), schema) == {}


# --- the trainer: non-finite values are missing ------------------------------------------------


def write_examples(path, vals) -> str:
    with tf.io.TFRecordWriter(str(path), "GZIP") as w:
        for v in vals:
            w.write(example(v))
    return str(path)


def test_normalisation_ignores_infinite_values(tmp_path):
    vals = [4000.0, 4200.0, INF, -INF, NAN, ABSENT, 4400.0]
    path = write_examples(tmp_path / "x.tfrecord.gz", vals)
    stats = numeric_stats([path], [FeatureInfo("body_mass_g", "float", "float32")], 100)
    mean, var = stats["body_mass_g"]
    assert mean == pytest.approx(4200.0) and var == pytest.approx(np.var([4000, 4200, 4400]))


def test_model_imputes_infinite_values_like_missing_ones():
    features = [FeatureInfo("body_mass_g", "float", "float32")]
    label = LabelInfo("species", "multiclass", "int64", 3)
    model = build_model(features, label, {"body_mass_g": (4200.0, 640000.0)},
                        ModelConfig(hidden_units=[4]), learning_rate=0.01)
    out = model({"body_mass_g": tf.constant([[4200.0], [NAN], [INF], [-INF], [5000.0]])}).numpy()
    assert np.isfinite(out).all(), out
    # NaN, +inf and -inf are all "missing": the same imputed input, the same output.
    np.testing.assert_allclose(out[2], out[1], rtol=1e-6)
    np.testing.assert_allclose(out[3], out[1], rtol=1e-6)
    assert not math.isclose(float(out[4][0]), float(out[1][0]), rel_tol=1e-9)
