"""The committed penguin sample data (data/penguins) and its curated schema (data/schema)."""

from __future__ import annotations

import collections
import gzip
import os

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from google.protobuf import text_format
from tensorflow_data_validation.statistics.stats_impl import generate_statistics_in_memory
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx_bsl.coders import example_coder

from data import make_sample_data as msd

DATA_DIR = os.path.dirname(os.path.abspath(msd.__file__))
SCHEMA_PATH = os.path.join(DATA_DIR, "schema", "schema.pbtxt")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")

# span-1 = years 2007-2008 (224 rows), span-2 = 2007-2009 (all 344 rows).
EXPECTED_COUNTS = {
    (1, "train"): 184,
    (1, "eval"): 40,
    (2, "train"): 279,
    (2, "eval"): 65,
}


def committed_path(span: int, split: str) -> str:
    return msd.split_path(DATA_DIR, span, split)


def read_records(path: str) -> list[bytes]:
    return [r.numpy() for r in tf.data.TFRecordDataset(path, compression_type="GZIP")]


def read_examples(path: str) -> list[tf.train.Example]:
    return [tf.train.Example.FromString(r) for r in read_records(path)]


def load_schema() -> schema_pb2.Schema:
    with open(SCHEMA_PATH) as f:
        return text_format.Parse(f.read(), schema_pb2.Schema())


def anomalies(records: list[bytes], schema: schema_pb2.Schema, environment=None) -> dict:
    batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
    stats = generate_statistics_in_memory(batch)
    result = tfdv.validate_statistics(stats, schema, environment=environment)
    return {name: info.description for name, info in result.anomaly_info.items()}


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> dict:
    return msd.generate(str(tmp_path_factory.mktemp("regenerated")))


@pytest.fixture(scope="module")
def schema() -> schema_pb2.Schema:
    return load_schema()


def test_committed_layout_is_exactly_the_expected_files():
    found = sorted(
        os.path.relpath(os.path.join(d, f), DATA_DIR)
        for d, _, files in os.walk(os.path.join(DATA_DIR, "penguins"))
        for f in files
    )
    expected = sorted(
        os.path.join("penguins", f"span-{span}", f"Split-{split}", msd.FILE_NAME)
        for span, split in EXPECTED_COUNTS
    )
    assert found == expected


@pytest.mark.parametrize("span,split", sorted(EXPECTED_COUNTS))
def test_regeneration_is_byte_for_byte_identical(regenerated, span, split):
    new_path, count = regenerated[(span, split)]
    assert count == EXPECTED_COUNTS[(span, split)]
    with open(new_path, "rb") as new, open(committed_path(span, split), "rb") as old:
        assert new.read() == old.read()


@pytest.mark.parametrize("span,split", sorted(EXPECTED_COUNTS))
def test_example_counts(span, split):
    n = tf.data.TFRecordDataset(committed_path(span, split), "GZIP").reduce(0, lambda c, _: c + 1)
    assert int(n) == EXPECTED_COUNTS[(span, split)]


def test_framing_is_tfrecord_and_gzip_header_has_no_time_or_name(tmp_path):
    assert msd.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    records = read_records(committed_path(1, "eval"))
    reference = tmp_path / "reference.tfrecord"
    with tf.io.TFRecordWriter(str(reference)) as writer:
        for record in records:
            writer.write(record)
    with open(committed_path(1, "eval"), "rb") as f:
        content = f.read()
    assert gzip.decompress(content) == reference.read_bytes() == msd.tfrecord_frame(records)
    assert content[3] == 0  # FLG: no FNAME / FCOMMENT / FEXTRA
    assert content[4:8] == b"\0\0\0\0"  # MTIME = 0


def test_span_2_contains_span_1_and_splits_are_disjoint():
    for split in ("train", "eval"):
        span1 = collections.Counter(read_records(committed_path(1, split)))
        span2 = collections.Counter(read_records(committed_path(2, split)))
        assert not span1 - span2
    train = set(read_records(committed_path(2, "train")))
    assert not train & set(read_records(committed_path(2, "eval")))


def test_feature_values_and_missing_values():
    all_examples = []
    for span, split in EXPECTED_COUNTS:
        examples = read_examples(committed_path(span, split))
        for e in examples:
            f = e.features.feature
            assert set(f) <= {"species", "island", "sex", "year", *MEASUREMENTS}
            assert list(f["species"].int64_list.value) in ([0], [1], [2])
            assert len(f["island"].bytes_list.value) == 1
            assert list(f["year"].int64_list.value)[0] in msd.SPANS[span]
            if "sex" in f:
                assert list(f["sex"].bytes_list.value) in ([b"female"], [b"male"])
            for name in MEASUREMENTS:
                if name in f:
                    assert len(f[name].float_list.value) == 1
        if span == 2:
            all_examples.extend(examples)
    assert len(all_examples) == 344
    species = collections.Counter(
        e.features.feature["species"].int64_list.value[0] for e in all_examples
    )
    assert species == {0: 152, 1: 68, 2: 124}
    assert sum("sex" not in e.features.feature for e in all_examples) == 11
    no_measurements = [
        e for e in all_examples if not any(m in e.features.feature for m in MEASUREMENTS)
    ]
    assert len(no_measurements) == 2
    # Absent, not sentinels: no measurement is NaN or <= 0.
    for e in all_examples:
        for name in MEASUREMENTS:
            if name in e.features.feature:
                assert e.features.feature[name].float_list.value[0] > 0


def test_schema_parses_and_covers_every_feature(schema):
    assert {f.name for f in schema.feature} == {"species", "island", "sex", "year", *MEASUREMENTS}
    assert {d.name: list(d.value) for d in schema.string_domain} == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male"],
    }


@pytest.mark.parametrize("span,split", sorted(EXPECTED_COUNTS))
def test_schema_validates_committed_data(schema, span, split):
    assert anomalies(read_records(committed_path(span, split)), schema) == {}


def test_schema_validates_statistics_from_tfrecord(schema):
    """The Beam path (as StatisticsGen computes statistics) agrees."""
    stats = tfdv.generate_statistics_from_tfrecord(committed_path(2, "train"))
    assert not tfdv.validate_statistics(stats, schema).anomaly_info


def _modify_first(records: list[bytes], change) -> list[bytes]:
    example = tf.train.Example.FromString(records[0])
    change(example.features.feature)
    return [example.SerializeToString(deterministic=True), *records[1:]]


def _mass_as_bytes(records: list[bytes]) -> list[bytes]:
    out = []
    for record in records:
        example = tf.train.Example.FromString(record)
        f = example.features.feature
        if "body_mass_g" in f:
            value = f["body_mass_g"].float_list.value[0]
            del f["body_mass_g"]
            f["body_mass_g"].bytes_list.value.append(str(value).encode())
        out.append(example.SerializeToString(deterministic=True))
    return out


def _set(name: str, kind: str, value):
    def change(f):
        getattr(f[name], kind).value[:] = [value]

    return change


@pytest.mark.parametrize(
    "corrupt,feature",
    [
        (_mass_as_bytes, "body_mass_g"),
        (lambda rs: _modify_first(rs, lambda f: f.pop("species")), "species"),
        (lambda rs: _modify_first(rs, _set("species", "int64_list", 3)), "species"),
        (lambda rs: _modify_first(rs, _set("island", "bytes_list", b"Anvers")), "island"),
        (lambda rs: _modify_first(rs, _set("body_mass_g", "float_list", 12000.0)), "body_mass_g"),
        (lambda rs: _modify_first(rs, _set("year", "int64_list", 2010)), "year"),
    ],
    ids=["mass-as-bytes", "species-missing", "species-3", "new-island", "mass-high", "year-2010"],
)
def test_schema_flags_wrong_data(schema, corrupt, feature):
    records = read_records(committed_path(1, "eval"))
    found = anomalies(corrupt(records), schema)
    assert feature in found, found


def test_label_is_only_required_in_training(schema):
    records = read_records(committed_path(1, "eval"))
    serving = []
    for record in records:
        example = tf.train.Example.FromString(record)
        del example.features.feature["species"]
        serving.append(example.SerializeToString())
    assert anomalies(serving, schema, environment="SERVING") == {}
    assert "species" in anomalies(serving, schema)
    assert "species" in anomalies(records, schema, environment="SERVING")
