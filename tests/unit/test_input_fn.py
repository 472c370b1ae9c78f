"""The trainer's tf.data input (components/trainer/input_fn.py) on real GZIP TFRecords."""

from __future__ import annotations

import collections
import math
import os

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from components.trainer.features import (  # noqa: E402
    INT_MISSING,
    FeatureInfo,
    LabelInfo,
    load_schema,
    select_features,
)
from components.trainer.input_fn import (  # noqa: E402
    list_files,
    make_dataset,
    numeric_stats,
    parse_spec,
)
from data import synthetic  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PENGUIN_SCHEMA = os.path.join(REPO, "data", "schema", "schema.pbtxt")
PENGUIN_TRAIN = os.path.join(REPO, "data", "penguins", "span-2", "Split-train", "*.gz")
PENGUIN_EVAL = os.path.join(REPO, "data", "penguins", "span-2", "Split-eval", "*.gz")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
GZIP = tf.io.TFRecordOptions(compression_type="GZIP")


# --- helpers: read the files independently of input_fn ----------------------------------------


def read_examples(pattern_or_paths) -> list[tf.train.Example]:
    paths = (
        sorted(tf.io.gfile.glob(pattern_or_paths))
        if isinstance(pattern_or_paths, str)
        else list(pattern_or_paths)
    )
    out = []
    for path in paths:
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            out.append(tf.train.Example.FromString(record.numpy()))
    return out


def value_of(example: tf.train.Example, info: FeatureInfo):
    """The feature's single value in the example, or the parse default meaning "missing"."""
    feature = example.features.feature.get(info.name)
    if info.dtype == "float32":
        return feature.float_list.value[0] if feature is not None else float("nan")
    if info.dtype == "int64":
        return feature.int64_list.value[0] if feature is not None else INT_MISSING
    return feature.bytes_list.value[0] if feature is not None else b""


def expected_rows(examples, features, label) -> list[tuple]:
    return [
        (*(value_of(e, f) for f in features), e.features.feature[label.name].int64_list.value[0])
        for e in examples
    ]


def dataset_rows(ds, features, label) -> list[tuple]:
    """Rows from a (features, label) dataset, as plain Python values, in dataset order."""
    rows = []
    for x, y in ds.as_numpy_iterator():
        cols = [x[f.name][:, 0].tolist() for f in features]
        cols.append(y[:, 0].tolist())
        rows.extend(zip(*cols, strict=True))
    return rows


def same_value(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return a == b


def same_rows(got: list[tuple], want: list[tuple]) -> bool:
    return len(got) == len(want) and all(
        len(g) == len(w) and all(same_value(a, b) for a, b in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )


def row_key(row: tuple) -> tuple:
    """Hashable, NaN-safe identity of a row (for multiset comparisons)."""
    return tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in row)


def write_examples(path, rows: list[dict]) -> str:
    """GZIP TFRecords of hand-made tf.Examples: {name: value}; float/int/bytes by type."""
    with tf.io.TFRecordWriter(str(path), GZIP) as writer:
        for row in rows:
            feats = {}
            for name, v in row.items():
                if isinstance(v, float):
                    feats[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
                elif isinstance(v, int):
                    feats[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))
                else:
                    feats[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
            example = tf.train.Example(features=tf.train.Features(feature=feats))
            writer.write(example.SerializeToString())
    return str(path)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguin_spec():
    return select_features(load_schema(PENGUIN_SCHEMA), "species", None, "multiclass")


@pytest.fixture(scope="module")
def synth_spec():
    return select_features(synthetic.synthetic_schema(), "label", None, "binary")


SYNTH_N = 1000
SYNTH_SEED = 3


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    four = synthetic.write_synthetic(str(root / "four"), SYNTH_N, n_files=4, seed=SYNTH_SEED)
    one = synthetic.write_synthetic(str(root / "one"), SYNTH_N, n_files=1, seed=SYNTH_SEED)
    dense = synthetic.write_synthetic(
        str(root / "dense"), 600, n_files=1, seed=SYNTH_SEED + 1, missing_rate=0.0
    )
    return {"root": root, "four": four, "one": one, "dense": dense}


# --- parse_spec / list_files ---------------------------------------------------------------


def test_parse_spec_defaults_mean_missing_and_label_has_none(penguin_spec):
    features, label = penguin_spec
    spec = parse_spec(features, label)
    assert set(spec) == {f.name for f in features} | {"species"}
    assert spec["bill_length_mm"].dtype == tf.float32
    assert math.isnan(spec["bill_length_mm"].default_value[0])
    assert spec["year"].dtype == tf.int64
    assert spec["year"].default_value == [INT_MISSING]
    assert spec["island"].dtype == tf.string
    assert spec["island"].default_value == [b""]
    assert spec["species"].dtype == tf.int64
    assert spec["species"].default_value is None
    assert all(s.shape == [1] for s in spec.values())
    # A regression label is float; without a label there is no label key.
    regression = LabelInfo("body_mass_g", "regression", "float32", None)
    assert parse_spec(features[:1], regression)["body_mass_g"].dtype == tf.float32
    assert set(parse_spec(features)) == {f.name for f in features}


def test_list_files_sorts_and_deduplicates(synth_dir):
    four = synth_dir["four"]
    root = os.path.dirname(four[0])
    got = list_files([os.path.join(root, "part-0000[23]*"), os.path.join(root, "*.gz")])
    assert got == sorted(four)


def test_pattern_matching_nothing_names_the_pattern(tmp_path, penguin_spec):
    features, label = penguin_spec
    pattern = str(tmp_path / "nowhere" / "*.tfrecord.gz")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_files([pattern])
    with pytest.raises(FileNotFoundError) as info:
        make_dataset([pattern], features, label, 8, training=False)
    assert pattern in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        numeric_stats([pattern], features, 100)


# --- one evaluation pass -------------------------------------------------------------------


@pytest.mark.parametrize("pattern", [PENGUIN_TRAIN, PENGUIN_EVAL])
def test_eval_pass_yields_every_penguin_record_with_its_values(penguin_spec, pattern):
    features, label = penguin_spec
    want = expected_rows(read_examples(pattern), features, label)
    assert len(want) in (279, 65)
    got = dataset_rows(make_dataset([pattern], features, label, 32, training=False), features,
                       label)
    # One file, no shuffling: the same records in file order.
    assert same_rows(got, want)
    assert sorted(r[-1] for r in got) == sorted(r[-1] for r in want)
    assert {r[-1] for r in got} == {0, 1, 2}


def test_penguin_missing_values_come_out_as_defaults(penguin_spec):
    features, label = penguin_spec
    got = dataset_rows(
        make_dataset([PENGUIN_TRAIN, PENGUIN_EVAL], features, label, 64, training=False),
        features, label,
    )
    names = [f.name for f in features]
    sex = [r[names.index("sex")] for r in got]
    # The sample data lacks sex for some penguins (absent feature, not a sentinel).
    assert b"" in sex
    assert set(sex) == {b"", b"female", b"male"}
    assert {r[names.index("island")] for r in got} == {b"Biscoe", b"Dream", b"Torgersen"}
    assert {r[names.index("year")] for r in got} == {2007, 2008, 2009}


def test_batch_shapes_are_batch_by_one(penguin_spec):
    features, label = penguin_spec
    ds = make_dataset([PENGUIN_TRAIN], features, label, 50, training=False)
    sizes = []
    for x, y in ds:
        assert set(x) == {f.name for f in features}  # the label is not among the inputs
        n = int(y.shape[0])
        sizes.append(n)
        assert y.shape == (n, 1) and y.dtype == tf.int64
        for f in features:
            assert x[f.name].shape == (n, 1)
            assert x[f.name].dtype == tf.as_dtype(f.dtype)
    assert sizes == [50, 50, 50, 50, 50, 29]


def test_synthetic_eval_pass_matches_the_generated_columns(synth_spec, synth_dir):
    features, label = synth_spec
    cols, missing = synthetic.generate_columns(SYNTH_N, SYNTH_SEED)
    got = dataset_rows(
        make_dataset(synth_dir["one"], features, label, 128, training=False), features, label
    )
    assert len(got) == SYNTH_N
    names = [f.name for f in features]

    def column(name):
        return [r[names.index(name)] if name != "label" else r[-1] for r in got]

    assert column("label") == cols["label"].tolist()
    for name in ("f0", "f3"):
        values = np.asarray(column(name), dtype=np.float32)
        assert np.array_equal(np.isnan(values), missing[name])
        assert missing[name].sum() > 50  # 10% missing: the NaN path is exercised
        np.testing.assert_array_equal(values[~missing[name]], cols[name][~missing[name]])
    for name in ("age", "bucket"):
        values = np.asarray(column(name))
        assert np.array_equal(values == INT_MISSING, missing[name])
        np.testing.assert_array_equal(values[~missing[name]], cols[name][~missing[name]])
    for name, table in (("color", synthetic.COLORS), ("city", synthetic.CITIES)):
        pairs = zip(cols[name], missing[name], strict=True)
        want = [b"" if m else table[i].encode() for i, m in pairs]
        assert column(name) == want


def test_eval_pass_over_several_files_reads_each_record_once(synth_spec, synth_dir):
    features, label = synth_spec
    want = expected_rows(read_examples(synth_dir["four"]), features, label)
    assert len(want) == SYNTH_N
    ds = make_dataset(synth_dir["four"], features, label, 64, training=False)
    got = dataset_rows(ds, features, label)
    assert collections.Counter(map(row_key, got)) == collections.Counter(map(row_key, want))
    # Deterministic: a second pass gives the same order.
    assert [row_key(r) for r in dataset_rows(ds, features, label)] == [row_key(r) for r in got]


# --- sharding ------------------------------------------------------------------------------


def test_file_sharding_gives_disjoint_whole_files(synth_spec, synth_dir):
    features, label = synth_spec
    paths = synth_dir["four"]
    per_file = [
        collections.Counter(map(row_key, expected_rows(read_examples([p]), features, label)))
        for p in paths
    ]
    owner = {}
    for i, counter in enumerate(per_file):
        for key in counter:
            owner.setdefault(key, set()).add(i)
    shards = []
    for index in range(2):
        ds = make_dataset(paths, features, label, 32, training=False, num_shards=2,
                          shard_index=index)
        shards.append(collections.Counter(map(row_key, dataset_rows(ds, features, label))))
    files_of = [set().union(*(owner[k] for k in shard)) for shard in shards]
    assert files_of[0].isdisjoint(files_of[1])
    assert files_of[0] | files_of[1] == {0, 1, 2, 3}
    assert len(files_of[0]) == len(files_of[1]) == 2
    for shard, files in zip(shards, files_of, strict=True):
        # A shard holds its files entirely.
        assert shard == sum((per_file[i] for i in files), collections.Counter())
    assert shards[0] + shards[1] == sum(per_file, collections.Counter())


def test_record_sharding_of_one_file_is_disjoint_and_complete(synth_spec, synth_dir):
    features, label = synth_spec
    want = expected_rows(read_examples(synth_dir["dense"]), features, label)
    keys = [row_key(r) for r in want]
    assert len(set(keys)) == len(keys) == 600  # no missing values: every row is unique
    shards = []
    for index in range(2):
        ds = make_dataset(synth_dir["dense"], features, label, 32, training=False,
                          num_shards=2, shard_index=index)
        shards.append([row_key(r) for r in dataset_rows(ds, features, label)])
    assert set(shards[0]).isdisjoint(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(keys)
    assert len(shards[0]) == len(shards[1]) == 300


def test_more_shards_than_files_shards_records_in_every_file(synth_spec, synth_dir):
    features, label = synth_spec
    paths = synth_dir["four"][:2]
    total = collections.Counter(
        map(row_key, expected_rows(read_examples(paths), features, label))
    )
    seen = collections.Counter()
    for index in range(3):
        ds = make_dataset(paths, features, label, 32, training=False, num_shards=3,
                          shard_index=index)
        rows = dataset_rows(ds, features, label)
        assert 0 < len(rows) < sum(total.values())
        seen.update(map(row_key, rows))
    assert seen == total


# --- training ------------------------------------------------------------------------------


def test_training_repeats_and_shuffles(penguin_spec):
    features, label = penguin_spec
    file_rows = expected_rows(read_examples(PENGUIN_EVAL), features, label)
    n = len(file_rows)  # 65
    ds = make_dataset([PENGUIN_EVAL], features, label, 32, training=True, seed=1)
    batches = list(ds.take(12).as_numpy_iterator())
    assert len(batches) == 12  # more batches than one pass holds: it repeats
    sizes = [int(y.shape[0]) for _, y in batches]
    # Full batches across pass boundaries: the repeat comes before the rebatching.
    assert sizes == [32] * 12
    rows = []
    for x, y in batches:
        cols = [x[f.name][:, 0].tolist() for f in features] + [y[:, 0].tolist()]
        rows.extend(zip(*cols, strict=True))
    epoch = rows[:n]
    # The first n rows are exactly one pass over the file, shuffled.
    assert collections.Counter(map(row_key, epoch)) == collections.Counter(
        map(row_key, file_rows)
    )
    assert [row_key(r) for r in epoch] != [row_key(r) for r in file_rows]


def test_training_without_shuffle_buffer_keeps_file_order_per_pass(penguin_spec):
    features, label = penguin_spec
    file_labels = [r[-1] for r in expected_rows(read_examples(PENGUIN_EVAL), features, label)]
    ds = make_dataset([PENGUIN_EVAL], features, label, 13, training=True, shuffle_buffer=0)
    labels = [int(v) for _, y in ds.take(10).as_numpy_iterator() for v in y[:, 0]]
    assert labels == file_labels + file_labels  # 65 = 5 batches of 13, twice


# --- the label has no default --------------------------------------------------------------


def test_example_without_label_fails_iteration(tmp_path, penguin_spec):
    features, label = penguin_spec
    row = {"island": b"Dream", "year": 2008, "bill_length_mm": 40.0, "species": 1}
    unlabeled = {k: v for k, v in row.items() if k != "species"}
    path = write_examples(tmp_path / "part.tfrecord.gz", [row, unlabeled, row])
    ds = make_dataset([path], features, label, 8, training=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="species"):
        list(ds.as_numpy_iterator())
    # With the label everywhere the same file shape parses, and absent features are defaults.
    ok = write_examples(tmp_path / "ok.tfrecord.gz", [row, row])
    (x, y), = list(make_dataset([ok], features, label, 8, training=False).as_numpy_iterator())
    assert y[:, 0].tolist() == [1, 1]
    assert x["island"][:, 0].tolist() == [b"Dream", b"Dream"]
    assert np.isnan(x["body_mass_g"]).all() and x["sex"][:, 0].tolist() == [b"", b""]
    assert x["bill_length_mm"][:, 0].tolist() == [40.0, 40.0]


# --- numeric_stats -------------------------------------------------------------------------


def test_numeric_stats_match_numpy_ignoring_missing(synth_spec, synth_dir):
    features, _ = synth_spec
    stats = numeric_stats(synth_dir["four"], features, 100_000)
    # Only numeric features: float and int, not the categorical int `bucket`.
    assert set(stats) == {"f0", "f1", "f2", "f3", "age"}
    cols, missing = synthetic.generate_columns(SYNTH_N, SYNTH_SEED)
    for name in stats:
        present = cols[name][~missing[name]].astype(np.float64)
        assert len(present) < SYNTH_N  # missing values were there to ignore
        mean, var = stats[name]
        assert mean == pytest.approx(present.mean(), rel=1e-9, abs=1e-12)
        assert var == pytest.approx(present.var(), rel=1e-9)
    assert stats["age"][0] == pytest.approx(54, abs=3)  # ages 18..90, never the sentinel


def test_numeric_stats_of_penguins_match_numpy(penguin_spec):
    features, label = penguin_spec
    stats = numeric_stats([PENGUIN_TRAIN], features, 100_000)
    assert set(stats) == set(MEASUREMENTS)
    examples = read_examples(PENGUIN_TRAIN)
    for f in features:
        if f.name not in MEASUREMENTS:
            continue
        values = np.array([value_of(e, f) for e in examples], dtype=np.float64)
        present = values[~np.isnan(values)]
        assert stats[f.name][0] == pytest.approx(present.mean(), rel=1e-6)
        assert stats[f.name][1] == pytest.approx(present.var(), rel=1e-6)
    assert 4000 < stats["body_mass_g"][0] < 4400


def test_numeric_stats_read_at_most_max_examples(synth_spec, synth_dir):
    features, _ = synth_spec
    cols, missing = synthetic.generate_columns(SYNTH_N, SYNTH_SEED)
    stats = numeric_stats(synth_dir["one"], features, 100)
    present = cols["f1"][:100][~missing["f1"][:100]].astype(np.float64)
    assert stats["f1"][0] == pytest.approx(present.mean(), rel=1e-9)
    assert stats["f1"][1] == pytest.approx(present.var(), rel=1e-9)
    full = cols["f1"][~missing["f1"]].astype(np.float64)
    assert stats["f1"][0] != pytest.approx(full.mean(), rel=1e-6)


def test_numeric_stats_fall_back_for_absent_and_constant_features(tmp_path):
    features = [
        FeatureInfo("always_missing", "float", "float32"),
        FeatureInfo("constant", "int", "int64"),
        FeatureInfo("word", "string_hashed", "string"),
    ]
    path = write_examples(tmp_path / "x.tfrecord.gz", [{"constant": 7}, {"constant": 7}, {}])
    stats = numeric_stats([path], features, 10)
    # No value: mean 0, variance 1; zero variance becomes 1 so normalisation cannot divide by 0.
    assert stats == {"always_missing": (0.0, 1.0), "constant": (7.0, 1.0)}
    assert numeric_stats([path], features[2:], 10) == {}
