"""The seeded synthetic tf.Example generator (data/synthetic.py)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from data import synthetic

FEATURES = ["age", "bucket", "city", "color", "f0", "f1", "f2", "f3", "label"]


def read_records(paths: list[str]) -> list[bytes]:
    out = []
    for path in paths:
        out.extend(r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP"))
    return out


def count_records(paths: list[str]) -> int:
    batched = tf.data.TFRecordDataset(paths, compression_type="GZIP").batch(1024)
    return int(batched.reduce(np.int64(0), lambda n, b: n + tf.size(b, out_type=tf.int64)))


def anomalies(records: list[bytes], schema: schema_pb2.Schema) -> dict:
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    stats = generate_statistics_in_memory(batch)
    result = tfdv.validate_statistics(stats, schema)
    return {name: info.description for name, info in result.anomaly_info.items()}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> list[str]:
    out = tmp_path_factory.mktemp("synthetic")
    return synthetic.write_synthetic(str(out), 5000, n_files=3, seed=7, missing_rate=0.1)


def test_writes_the_asked_count_in_named_shards(written):
    assert [os.path.basename(p) for p in written] == [
        "part-00000-of-00003.tfrecord.gz",
        "part-00001-of-00003.tfrecord.gz",
        "part-00002-of-00003.tfrecord.gz",
    ]
    assert count_records(written) == 5000
    per_file = [count_records([p]) for p in written]
    assert sum(per_file) == 5000 and max(per_file) - min(per_file) <= 1


def test_deterministic_for_a_seed_and_independent_of_sharding(written, tmp_path):
    again = synthetic.write_synthetic(str(tmp_path / "a"), 5000, n_files=1, seed=7)
    assert read_records(again) == read_records(written)
    other = synthetic.write_synthetic(str(tmp_path / "b"), 5000, n_files=1, seed=8)
    assert read_records(other) != read_records(written)


def test_encoding_is_the_deterministic_proto_serialization():
    cols, missing = synthetic.generate_columns(3000, seed=1, missing_rate=0.3, num_classes=3)
    for record in synthetic.encode_examples(cols, missing):
        example = tf.train.Example.FromString(record)
        assert example.SerializeToString(deterministic=True) == record


def test_values_types_and_missing_rate():
    n, rate = 20000, 0.2
    cols, missing = synthetic.generate_columns(n, seed=3, missing_rate=rate)
    examples = [tf.train.Example.FromString(r) for r in synthetic.encode_examples(cols, missing)]
    for name in FEATURES:
        present = [e.features.feature[name] for e in examples if name in e.features.feature]
        if name == "label":
            assert len(present) == n
            labels = [f.int64_list.value[0] for f in present]
            assert set(labels) == {0, 1}
            assert 0.4 < np.mean(labels) < 0.6
            continue
        # Binomial(20000, 0.2): sd 0.0028, so +-0.015 is more than 5 sd.
        assert abs(1 - len(present) / n - rate) < 0.015, name
        kind = present[0].WhichOneof("kind")
        assert kind == {"city": "bytes_list", "color": "bytes_list"}.get(
            name, "float_list" if name.startswith("f") else "int64_list"
        )
        assert all(len(getattr(f, kind).value) == 1 for f in present)
    no_missing = synthetic.encode_examples(*synthetic.generate_columns(500, missing_rate=0.0))
    assert all(
        sorted(tf.train.Example.FromString(r).features.feature) == FEATURES for r in no_missing
    )


def test_label_is_learnable():
    cols, missing = synthetic.generate_columns(20000, seed=5, num_classes=2)
    w = synthetic._concept(2, synthetic.DEFAULT_NUM_FLOATS)
    floats = np.stack([cols[f"f{i}"] for i in range(synthetic.DEFAULT_NUM_FLOATS)], axis=1)
    logits = (
        floats.astype(np.float64) @ w["floats"]
        + w["color"][cols["color"]]
        + w["city"][cols["city"]]
        + w["bucket"][cols["bucket"]]
        + np.outer((cols["age"] - 54.0) / 21.0, w["age"])
    )
    assert (logits.argmax(axis=1) == cols["label"]).mean() > 0.85
    # A single float on its own is informative, too (better than the majority class).
    best_single = max(
        np.mean((cols[f"f{i}"] > 0) == cols["label"]) for i in range(synthetic.DEFAULT_NUM_FLOATS)
    )
    worst_single = min(
        np.mean((cols[f"f{i}"] > 0) == cols["label"]) for i in range(synthetic.DEFAULT_NUM_FLOATS)
    )
    assert max(best_single, 1 - worst_single) > 0.6


@pytest.mark.parametrize("num_classes,missing_rate", [(2, 0.1), (3, 0.0), (4, 0.3)])
def test_schema_validates_generated_data(num_classes, missing_rate):
    cols, missing = synthetic.generate_columns(
        3000, seed=11, missing_rate=missing_rate, num_classes=num_classes
    )
    records = synthetic.encode_examples(cols, missing)
    schema = synthetic.synthetic_schema(num_classes=num_classes, missing_rate=missing_rate)
    assert anomalies(records, schema) == {}


def test_schema_validates_written_files(written):
    assert anomalies(read_records(written), synthetic.synthetic_schema()) == {}


def test_schema_flags_mismatched_data():
    cols, missing = synthetic.generate_columns(3000, seed=2, missing_rate=0.3, num_classes=3)
    found = anomalies(synthetic.encode_examples(cols, missing), synthetic.synthetic_schema(2, 0.05))
    assert "label" in found  # label 2 is outside 0..1
    assert {f"f{i}" for i in range(4)} <= set(found)  # 30% missing > allowed 10%


def test_schema_content():
    schema = synthetic.synthetic_schema(num_classes=3, missing_rate=0.1)
    by_name = {f.name: f for f in schema.feature}
    assert sorted(by_name) == FEATURES
    assert by_name["label"].presence.min_fraction == 1.0
    assert by_name["label"].int_domain.max == 2 and by_name["label"].int_domain.is_categorical
    assert by_name["bucket"].int_domain.is_categorical
    assert not by_name["age"].int_domain.is_categorical
    assert by_name["f0"].presence.min_fraction == pytest.approx(0.8)
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert len(domains["city"]) == 50 and by_name["city"].domain == "city"
    assert domains["color"] == list(synthetic.COLORS)


def test_write_split_layout(tmp_path):
    layout = synthetic.write_split_layout(
        str(tmp_path), 1200, 300, span=3, seed=4, n_files=2, num_classes=3, missing_rate=0.05
    )
    assert layout.span_dir == str(tmp_path / "span-3")
    assert all(p.startswith(str(tmp_path / "span-3" / "Split-train")) for p in layout.train)
    assert all(p.startswith(str(tmp_path / "span-3" / "Split-eval")) for p in layout.eval)
    assert len(layout.train) == len(layout.eval) == 2
    assert count_records(layout.train) == 1200 and count_records(layout.eval) == 300
    train, evaluation = read_records(layout.train), read_records(layout.eval)
    assert not set(train) & set(evaluation)  # different seeds per split
    with open(layout.schema) as f:
        schema = text_format.Parse(f.read(), schema_pb2.Schema())
    assert layout.schema == str(tmp_path / "schema.pbtxt")
    assert schema == synthetic.synthetic_schema(num_classes=3, missing_rate=0.05)
    assert anomalies(train, schema) == {} and anomalies(evaluation, schema) == {}
