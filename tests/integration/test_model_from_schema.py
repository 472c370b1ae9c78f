"""The model built from a schema: feature kinds, label checks, training, the exported signatures.

components/trainer/features.py, model.py and run_fn.py, on the penguin schema (multiclass label
`species`) and on the synthetic schema of data/synthetic.py (binary label `label`).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components.trainer.features import (
    INT_MISSING,
    FeatureInfo,
    FeatureSpecError,
    LabelInfo,
    describe_feature,
    load_schema,
    select_features,
)
from components.trainer.model import (
    CLASS_ID,
    PREDICTION,
    PROBABILITIES,
    build_model,
    export_model,
    serving_signatures,
)
from components.trainer.run_fn import train_and_export
from components.trainer.settings import ModelConfig, TrainJob
from data import synthetic
from pipeline.config import load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PENGUIN_SCHEMA = os.path.join(REPO, "data", "schema", "schema.pbtxt")
PENGUIN_SPAN = os.path.join(REPO, "data", "penguins", "span-2")
PENGUIN_TRAIN = os.path.join(PENGUIN_SPAN, "Split-train", "*.gz")
PENGUIN_EVAL = os.path.join(PENGUIN_SPAN, "Split-eval", "*.gz")
MEASUREMENTS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")

pytestmark = pytest.mark.slow

PENGUIN_STEPS = 300
SYNTH_STEPS = 200


# --- helpers ---------------------------------------------------------------------------------


def read_records(pattern: str | list[str]) -> list[bytes]:
    paths = sorted(tf.io.gfile.glob(pattern)) if isinstance(pattern, str) else pattern
    return [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


def int_value(record: bytes, name: str) -> int:
    return tf.train.Example.FromString(record).features.feature[name].int64_list.value[0]


def without(record: bytes, *names: str) -> bytes:
    example = tf.train.Example.FromString(record)
    for name in names:
        if name in example.features.feature:
            del example.features.feature[name]
    return example.SerializeToString()


def raw_columns(records: list[bytes], features) -> dict[str, tf.Tensor]:
    """The examples as named 1-D raw tensors, absent values as the parse defaults."""
    cols: dict[str, list] = {f.name: [] for f in features}
    for record in records:
        feats = tf.train.Example.FromString(record).features.feature
        for f in features:
            if f.name not in feats:
                default = {"float32": float("nan"), "int64": INT_MISSING, "string": b""}
                cols[f.name].append(default[f.dtype])
            elif f.dtype == "float32":
                cols[f.name].append(feats[f.name].float_list.value[0])
            elif f.dtype == "int64":
                cols[f.name].append(feats[f.name].int64_list.value[0])
            else:
                cols[f.name].append(feats[f.name].bytes_list.value[0])
    return {f.name: tf.constant(cols[f.name], dtype=tf.as_dtype(f.dtype)) for f in features}


def serve(loaded, records: list[bytes]) -> dict[str, np.ndarray]:
    out = loaded.signatures["serving_default"](examples=tf.constant(records))
    return {k: v.numpy() for k, v in out.items()}


def settings(**model) -> dict:
    """The profile's model and trainer settings for a TrainJob, `model` keys replaced."""
    cfg = load_config()  # its evaluator and schema are the penguins'; only the model differs
    return {"model": type(cfg.model).model_validate({**cfg.model.model_dump(), **model}),
            "trainer": cfg.trainer}


def feature(name: str, ftype, **fields) -> schema_pb2.Feature:
    f = schema_pb2.Feature(name=name, type=ftype)
    for key, value in fields.items():
        getattr(f, key).CopyFrom(value)
    return f


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def penguin_schema():
    return load_schema(PENGUIN_SCHEMA)


@pytest.fixture(scope="module")
def penguin_features(penguin_schema):
    return select_features(penguin_schema, "species", None, "multiclass")


@pytest.fixture(scope="module")
def penguin_model(tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("penguin") / "model")
    metrics = train_and_export(TrainJob(
        train_files=tf.io.gfile.glob(PENGUIN_TRAIN),
        eval_files=tf.io.gfile.glob(PENGUIN_EVAL),
        schema_path=PENGUIN_SCHEMA,
        serving_model_dir=export_dir,
        train_steps=PENGUIN_STEPS,
        eval_steps=3,
        **settings(),
    ))
    return export_dir, metrics, tf.saved_model.load(export_dir)


@pytest.fixture(scope="module")
def synth_layout(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synthetic"))
    return synthetic.write_split_layout(root, 3000, 1000, span=1, seed=11, n_files=2)


@pytest.fixture(scope="module")
def synth_model(synth_layout, tmp_path_factory):
    export_dir = str(tmp_path_factory.mktemp("synthetic_model") / "model")
    metrics = train_and_export(TrainJob(
        train_files=list(synth_layout.train),
        eval_files=list(synth_layout.eval),
        schema_path=synth_layout.schema,
        serving_model_dir=export_dir,
        train_steps=SYNTH_STEPS,
        eval_steps=10,
        **settings(label="label", task="binary"),
    ))
    return export_dir, metrics, tf.saved_model.load(export_dir)


# --- feature kinds from the schema -----------------------------------------------------------


def test_penguin_feature_kinds(penguin_features):
    features, label = penguin_features
    by_name = {f.name: f for f in features}
    assert set(by_name) == {"island", "sex", "year", *MEASUREMENTS}
    assert by_name["island"] == FeatureInfo(
        "island", "string_vocab", "string", ("Biscoe", "Dream", "Torgersen")
    )
    assert by_name["sex"] == FeatureInfo("sex", "string_vocab", "string", ("female", "male"))
    assert by_name["year"] == FeatureInfo("year", "int_categorical", "int64", (2007, 2008, 2009))
    for name in MEASUREMENTS:
        assert by_name[name] == FeatureInfo(name, "float", "float32")
    assert label == LabelInfo("species", "multiclass", "int64", 3)


def test_synthetic_feature_kinds():
    schema = synthetic.synthetic_schema()
    features, label = select_features(schema, "label", None, "binary")
    by_name = {f.name: f for f in features}
    assert set(by_name) == {"age", "bucket", "city", "color", "f0", "f1", "f2", "f3"}
    # `city` refers to a top-level string_domain of 50 values.
    assert by_name["city"].kind == "string_vocab"
    assert by_name["city"].vocabulary == synthetic.CITIES
    assert by_name["color"].vocabulary == synthetic.COLORS
    # `age` has an int_domain 18..90 (73 values, not categorical): a number.
    assert by_name["age"] == FeatureInfo("age", "int", "int64")
    assert by_name["bucket"] == FeatureInfo("bucket", "int_categorical", "int64",
                                            tuple(range(10)))
    assert by_name["f2"] == FeatureInfo("f2", "float", "float32")
    assert label == LabelInfo("label", "binary", "int64", 2)
    # The same label as multiclass: 2 classes from its int_domain.
    assert select_features(schema, "label", None, "multiclass")[1].num_classes == 2


def test_explicit_feature_list_keeps_its_order(penguin_schema):
    features, _ = select_features(penguin_schema, "species", ["year", "island"], "multiclass")
    assert [f.name for f in features] == ["year", "island"]


def test_describe_feature_edge_cases():
    schema = schema_pb2.Schema()
    small = feature("small", schema_pb2.INT, int_domain=schema_pb2.IntDomain(min=1, max=5))
    assert describe_feature(schema, small) == FeatureInfo(
        "small", "int_categorical", "int64", (1, 2, 3, 4, 5)
    )
    big = feature("big", schema_pb2.INT, int_domain=schema_pb2.IntDomain(min=0, max=32))
    assert describe_feature(schema, big).kind == "int"  # 33 values, not declared categorical
    declared = feature(
        "declared", schema_pb2.INT,
        int_domain=schema_pb2.IntDomain(min=0, max=99, is_categorical=True),
    )
    assert len(describe_feature(schema, declared).vocabulary) == 100
    assert describe_feature(schema, feature("n", schema_pb2.INT)).kind == "int"
    assert describe_feature(schema, feature("w", schema_pb2.BYTES)) == FeatureInfo(
        "w", "string_hashed", "string"
    )
    inline = feature("c", schema_pb2.BYTES, string_domain=schema_pb2.StringDomain(value=["a"]))
    assert describe_feature(schema, inline).vocabulary == ("a",)

    unbounded = feature(
        "u", schema_pb2.INT, int_domain=schema_pb2.IntDomain(min=0, is_categorical=True)
    )
    with pytest.raises(FeatureSpecError, match="'u': categorical int_domain needs min and max"):
        describe_feature(schema, unbounded)
    dangling = schema_pb2.Feature(name="d", type=schema_pb2.BYTES, domain="nowhere")
    with pytest.raises(FeatureSpecError, match="'d': domain 'nowhere' is not in the schema"):
        describe_feature(schema, dangling)
    multi = feature("m", schema_pb2.FLOAT, value_count=schema_pb2.ValueCount(min=1, max=3))
    with pytest.raises(FeatureSpecError, match="'m': value_count max 3 > 1"):
        describe_feature(schema, multi)
    with pytest.raises(FeatureSpecError, match="'s': unsupported type"):
        describe_feature(schema, feature("s", schema_pb2.STRUCT))


# --- label and feature errors ----------------------------------------------------------------


def test_label_not_in_schema_names_the_label(penguin_schema):
    with pytest.raises(FeatureSpecError) as info:
        select_features(penguin_schema, "label", None, "multiclass")
    msg = str(info.value)
    assert msg.startswith("label 'label' is not in the schema")
    assert "species" in msg and "island" in msg  # lists what the schema does hold


def test_multiclass_on_a_string_label_is_refused(penguin_schema):
    with pytest.raises(FeatureSpecError, match="label 'island': multiclass classification needs"):
        select_features(penguin_schema, "island", None, "multiclass")
    with pytest.raises(FeatureSpecError, match="label 'sex': binary classification needs"):
        select_features(penguin_schema, "sex", None, "binary")
    with pytest.raises(FeatureSpecError, match="label 'island': regression needs"):
        select_features(penguin_schema, "island", None, "regression")


def test_multiclass_label_needs_a_zero_based_domain(penguin_schema):
    with pytest.raises(FeatureSpecError, match="label 'year': multiclass needs an int_domain"):
        select_features(penguin_schema, "year", None, "multiclass")


def test_regression_label(penguin_schema):
    features, label = select_features(penguin_schema, "body_mass_g", None, "regression")
    assert label == LabelInfo("body_mass_g", "regression", "float32", None)
    assert "body_mass_g" not in {f.name for f in features}
    assert "species" in {f.name for f in features}


def test_feature_missing_from_schema_is_refused(penguin_schema):
    with pytest.raises(FeatureSpecError, match="feature 'beak_colour' is not in the schema"):
        select_features(penguin_schema, "species", ["island", "beak_colour"], "multiclass")


def test_schema_with_only_the_label_has_no_features():
    schema = schema_pb2.Schema()
    schema.feature.append(
        feature("y", schema_pb2.INT, int_domain=schema_pb2.IntDomain(min=0, max=1))
    )
    with pytest.raises(FeatureSpecError, match="no input features"):
        select_features(schema, "y", None, "binary")


def test_load_schema_errors_name_the_file(tmp_path):
    missing = str(tmp_path / "absent.pbtxt")
    with pytest.raises(FeatureSpecError, match=f"^{missing}: cannot read the schema"):
        load_schema(missing)
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("feature { name: 'x' type: NOT_A_TYPE }\n")
    with pytest.raises(FeatureSpecError, match=f"^{bad}: not a valid schema"):
        load_schema(str(bad))


# --- the model, built and served without training --------------------------------------------


def test_built_model_takes_raw_features_and_encodes_by_kind():
    features, label = select_features(synthetic.synthetic_schema(), "label", None, "binary")
    model = build_model(
        features, label, {"age": (54.0, 400.0)},
        ModelConfig(hidden_units=[4], embedding_threshold=20, embedding_dim=3),
        learning_rate=0.01,
    )
    assert {i.name: i.dtype for i in model.inputs} == {
        "age": tf.int64, "bucket": tf.int64, "city": tf.string, "color": tf.string,
        "f0": tf.float32, "f1": tf.float32, "f2": tf.float32, "f3": tf.float32,
    }
    names = {layer.name for layer in model.layers}
    # 50 cities + OOV > threshold 20: an embedding; 5 colours + OOV: one-hot.
    assert {"embed_city", "onehot_color", "onehot_bucket", "norm_age", "norm_f0"} <= names
    assert "onehot_city" not in names
    assert model.get_layer("embed_city").output_shape == (None, 1, 3)
    assert model.output_shape == (None, 1)
    assert model.loss.__class__.__name__ == "BinaryCrossentropy"


def test_regression_and_hashed_features_serve_predictions():
    features = [
        FeatureInfo("word", "string_hashed", "string"),
        FeatureInfo("x", "float", "float32"),
    ]
    label = LabelInfo("y", "regression", "float32", None)
    model = build_model(features, label, {"x": (2.0, 4.0)},
                        ModelConfig(hidden_units=[3], hash_buckets=7), learning_rate=0.01)
    assert model.get_layer("hash_word").num_bins == 7
    sigs = serving_signatures(model, features, label)
    assert set(sigs) == {"serving_default", "predict_raw"}
    raw = sigs["predict_raw"](
        word=tf.constant([b"never-seen", b"", b"x"]),
        x=tf.constant([1.0, float("nan"), 3.0]),
    )
    assert set(raw) == {PREDICTION}
    assert raw[PREDICTION].shape == (3, 1)
    assert np.isfinite(raw[PREDICTION].numpy()).all()
    examples = [
        tf.train.Example(features=tf.train.Features(feature={
            "word": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"never-seen"])),
            "x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0])),
        })).SerializeToString(),
        tf.train.Example().SerializeToString(),
    ]
    served = sigs["serving_default"](examples=tf.constant(examples))
    np.testing.assert_allclose(
        served[PREDICTION].numpy(), raw[PREDICTION].numpy()[:2], rtol=1e-5, atol=1e-6
    )


def test_export_model_writes_both_signatures(tmp_path, penguin_features):
    features, label = penguin_features
    model = build_model(features, label, {}, ModelConfig(hidden_units=[2]), learning_rate=0.01)
    export_model(model, features, label, str(tmp_path / "m"))
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    assert set(loaded.signatures) == {"serving_default", "predict_raw"}
    sig = loaded.signatures["serving_default"]
    (spec,) = sig.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.shape.as_list() == [None]
    assert set(sig.structured_outputs) == {PROBABILITIES, CLASS_ID}
    raw_inputs = loaded.signatures["predict_raw"].structured_input_signature[1]
    assert {k: v.dtype for k, v in raw_inputs.items()} == {
        f.name: tf.as_dtype(f.dtype) for f in features
    }


# --- trained for real: penguins (multiclass) ---------------------------------------------------


def test_penguin_training_returns_eval_metrics(penguin_model):
    export_dir, metrics, _ = penguin_model
    assert {"loss", "sparse_categorical_accuracy", "val_loss",
            "val_sparse_categorical_accuracy"} <= set(metrics)
    assert metrics["val_sparse_categorical_accuracy"] > 0.85
    assert os.path.isfile(os.path.join(export_dir, "saved_model.pb"))


def test_penguin_serving_default_gives_class_probabilities(penguin_model):
    _, _, loaded = penguin_model
    records = read_records(PENGUIN_EVAL)
    assert len(records) == 65
    out = serve(loaded, records)
    assert set(out) == {PROBABILITIES, CLASS_ID}
    probs, class_id = out[PROBABILITIES], out[CLASS_ID]
    assert probs.shape == (65, 3)
    assert ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert class_id.shape == (65,) and class_id.dtype == np.int64
    assert set(class_id.tolist()) <= {0, 1, 2}
    np.testing.assert_array_equal(class_id, probs.argmax(axis=1))


def test_penguin_model_is_accurate_on_eval(penguin_model):
    _, _, loaded = penguin_model
    records = read_records(PENGUIN_EVAL)
    labels = np.array([int_value(r, "species") for r in records])
    predicted = serve(loaded, records)[CLASS_ID]
    accuracy = float((predicted == labels).mean())
    # Chance is 1/3 (the majority class ~0.45); 300 steps reach ~0.98 with the fixed seed.
    assert accuracy > 0.9, accuracy
    # Every species is recognised at least once.
    assert set(predicted[labels == predicted].tolist()) == {0, 1, 2}


def test_penguin_missing_and_unknown_values_give_finite_outputs(penguin_model):
    _, _, loaded = penguin_model
    records = read_records(PENGUIN_EVAL)[:6]
    unknown = tf.train.Example.FromString(records[0])
    unknown.features.feature["island"].bytes_list.value[:] = [b"Atlantis"]
    unknown.features.feature["year"].int64_list.value[:] = [2031]
    damaged = [
        without(records[0], "bill_length_mm"),
        without(records[1], "island", "year"),
        without(records[2], "sex"),
        without(records[3], *MEASUREMENTS),
        without(records[4], "species"),  # serving requests carry no label
        tf.train.Example().SerializeToString(),  # nothing at all
        unknown.SerializeToString(),
    ]
    out = serve(loaded, damaged)
    probs = out[PROBABILITIES]
    assert probs.shape == (7, 3)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    # Removing the label changes nothing: it is not an input.
    np.testing.assert_allclose(probs[4], serve(loaded, [records[4]])[PROBABILITIES][0],
                               rtol=1e-6)


def test_penguin_predict_raw_equals_serving_default(penguin_model, penguin_features):
    _, _, loaded = penguin_model
    features, _ = penguin_features
    records = read_records(PENGUIN_EVAL)[:20]
    records += [without(records[0], "body_mass_g", "sex", "year")]
    by_example = serve(loaded, records)
    raw = loaded.signatures["predict_raw"](**raw_columns(records, features))
    np.testing.assert_allclose(raw[PROBABILITIES].numpy(), by_example[PROBABILITIES],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(raw[CLASS_ID].numpy(), by_example[CLASS_ID])
    # Different examples get different answers: the inputs are really used.
    assert np.ptp(by_example[PROBABILITIES], axis=0).max() > 0.5


# --- trained for real: synthetic (binary, hashed/int/missing features) --------------------------


def test_synthetic_binary_model_serves_probabilities(synth_model, synth_layout):
    _, metrics, loaded = synth_model
    assert {"binary_accuracy", "val_binary_accuracy"} <= set(metrics)
    records = read_records(synth_layout.eval)
    assert len(records) == 1000
    out = serve(loaded, records)
    probs, class_id = out[PROBABILITIES], out[CLASS_ID]
    assert probs.shape == (1000, 1)
    assert np.isfinite(probs).all() and ((probs >= 0) & (probs <= 1)).all()
    np.testing.assert_array_equal(class_id, (probs[:, 0] > 0.5).astype(np.int64))
    labels = np.array([int_value(r, "label") for r in records])
    accuracy = float((class_id == labels).mean())
    # Classes are near balanced (chance ~0.5); the Bayes-optimal accuracy is about 0.88.
    majority = max(labels.mean(), 1 - labels.mean())
    assert majority < 0.6
    assert accuracy > 0.8, accuracy


def test_synthetic_examples_with_missing_features_are_served(synth_model, synth_layout):
    _, _, loaded = synth_model
    records = read_records(synth_layout.eval)
    incomplete = [
        r for r in records
        if len(tf.train.Example.FromString(r).features.feature) < 9
    ]
    # 10% missing per feature: most examples lack something, and that is what they look like.
    assert len(incomplete) > 300
    stripped = [without(records[0], "city", "age", "bucket", "f0"),
                without(records[1], "color", "f1", "f2", "f3")]
    out = serve(loaded, incomplete[:50] + stripped)
    assert out[PROBABILITIES].shape == (52, 1)
    assert np.isfinite(out[PROBABILITIES]).all()


def test_synthetic_predict_raw_equals_serving_default(synth_model, synth_layout):
    _, _, loaded = synth_model
    features, _ = select_features(load_schema(synth_layout.schema), "label", None, "binary")
    records = read_records(synth_layout.eval)[:200]
    raw_inputs = raw_columns(records, features)
    # The raw columns hold missing values (NaN / INT_MISSING / "").
    assert np.isnan(raw_inputs["f0"].numpy()).any()
    assert (raw_inputs["age"].numpy() == INT_MISSING).any()
    assert (raw_inputs["city"].numpy() == b"").any()
    raw = loaded.signatures["predict_raw"](**raw_inputs)
    by_example = serve(loaded, records)
    np.testing.assert_allclose(raw[PROBABILITIES].numpy(), by_example[PROBABILITIES],
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(raw[CLASS_ID].numpy(), by_example[CLASS_ID])


def test_binary_task_refuses_a_label_with_more_than_two_values(penguin_schema):
    with pytest.raises(FeatureSpecError, match=r"'species': binary needs values 0 and 1.*0\.\.2"):
        select_features(penguin_schema, "species", None, "binary")
