"""Builds the Keras model from feature descriptions (themselves derived from the schema).

Keras 2 (`tf_keras`) on purpose: MultiWorkerMirroredStrategy fails with Keras 3 on this stack
(docs/ARCHITECTURE.md). Every preprocessing step is inside the model, so the SavedModel takes raw
features and no transform graph has to travel with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from components.trainer.features import INT_MISSING, FeatureInfo, LabelInfo

if TYPE_CHECKING:
    from components.trainer.settings import ModelConfig

# Output keys of the serving signatures (the contract clients rely on).
PROBABILITIES = "probabilities"
CLASS_ID = "class_id"
PREDICTION = "prediction"


def skip_autograph_of_tf_keras() -> None:
    """Tells AutoGraph not to convert tf_keras' own code, as it already skips `keras`.

    TensorFlow 2.16 lists `keras` but not `tf_keras` among the packages AutoGraph leaves alone,
    so the first `fit` in a process converts all of tf_keras' training loop: 10-13 s here,
    measured, for any model. tf_keras is written to run as a graph without conversion.
    """
    from tensorflow.python.autograph.core import config

    if not any(getattr(r, "_prefix", None) == "tf_keras" for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (*config.CONVERSION_RULES, config.DoNotConvert("tf_keras"))


def _numeric(keras, tf, inp, info: FeatureInfo, mean: float, var: float):
    x = inp
    if info.kind == "int":
        missing = tf.cast(tf.equal(x, INT_MISSING), tf.float32)
        x = tf.cast(x, tf.float32)
    else:
        # NaN and ±inf alike: an infinite input would make every output NaN.
        missing = tf.cast(tf.logical_not(tf.math.is_finite(x)), tf.float32)
    # Missing values are imputed with the mean (0 after normalisation) and flagged.
    x = tf.where(missing > 0, tf.fill(tf.shape(x), mean), x)
    x = keras.layers.Normalization(mean=mean, variance=var, name=f"norm_{info.name}")(x)
    return [x, missing]


def _categorical(keras, inp, info: FeatureInfo, threshold: int, emb_dim: int, buckets: int):
    if info.kind == "string_hashed":
        ids = keras.layers.Hashing(num_bins=buckets, name=f"hash_{info.name}")(inp)
        size = buckets
    else:
        lookup = keras.layers.IntegerLookup if info.kind == "int_categorical" else (
            keras.layers.StringLookup
        )
        # Unknown and missing values share the out-of-vocabulary index 0.
        vocab = list(info.vocabulary)
        ids = lookup(vocabulary=vocab, num_oov_indices=1, name=f"lookup_{info.name}")(inp)
        size = len(vocab) + 1
    if size <= threshold:
        return [keras.layers.CategoryEncoding(size, "one_hot", name=f"onehot_{info.name}")(ids)]
    emb = keras.layers.Embedding(size, emb_dim, name=f"embed_{info.name}")(ids)
    return [keras.layers.Reshape((emb_dim,), name=f"flat_{info.name}")(emb)]


def build_model(
    features: Sequence[FeatureInfo],
    label: LabelInfo,
    numeric_stats: Mapping[str, tuple[float, float]],
    config: ModelConfig,
    *,
    learning_rate: float,
):
    """A compiled tf_keras functional model on a dict of raw `[batch, 1]` feature tensors.

    Args:
      numeric_stats: feature name -> (mean, variance), for every float and int feature.
      config: the layers (hidden_units) and the encoding of categorical features.
    """
    import tensorflow as tf
    import tf_keras as keras

    skip_autograph_of_tf_keras()
    inputs, parts = {}, []
    for f in features:
        inp = keras.Input(shape=(1,), name=f.name, dtype=f.dtype)
        inputs[f.name] = inp
        if f.kind in ("float", "int"):
            mean, var = numeric_stats.get(f.name, (0.0, 1.0))
            parts += _numeric(keras, tf, inp, f, mean, var)
        else:
            parts += _categorical(keras, inp, f, config.embedding_threshold,
                                  config.embedding_dim, config.hash_buckets)
    x = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    for i, units in enumerate(config.hidden_units):
        x = keras.layers.Dense(units, activation="relu", name=f"dense_{i}")(x)
    if label.task == "multiclass":
        out = keras.layers.Dense(label.num_classes, activation="softmax", name="output")(x)
        loss = keras.losses.SparseCategoricalCrossentropy()
        metrics = ["sparse_categorical_accuracy"]
    elif label.task == "binary":
        out = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
        loss, metrics = keras.losses.BinaryCrossentropy(), ["binary_accuracy"]
    else:
        out = keras.layers.Dense(1, name="output")(x)
        loss, metrics = keras.losses.MeanSquaredError(), ["mean_absolute_error"]
    model = keras.Model(inputs=inputs, outputs=out)
    # XLA is off: for models this size compiling costs ~12 s and saves nothing (measured).
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=loss,
        metrics=metrics,
        jit_compile=False,
    )
    return model


def _outputs(tf, label: LabelInfo, y):
    if label.task == "multiclass":
        return {PROBABILITIES: y, CLASS_ID: tf.argmax(y, axis=-1)}
    if label.task == "binary":
        return {PROBABILITIES: y, CLASS_ID: tf.cast(y[:, 0] > 0.5, tf.int64)}
    return {PREDICTION: y}


def serving_signatures(model, features: Sequence[FeatureInfo], label: LabelInfo) -> dict:
    """`serving_default` on serialized tf.Examples and `predict_raw` on named raw features."""
    import tensorflow as tf

    from components.trainer.input_fn import parse_spec

    spec = parse_spec(features)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples):
        return _outputs(tf, label, model(tf.io.parse_example(examples, spec), training=False))

    raw_spec = {f.name: tf.TensorSpec([None], tf.as_dtype(f.dtype), name=f.name) for f in features}

    @tf.function(input_signature=[raw_spec])
    def serve_raw(raw):
        inputs = {k: tf.expand_dims(v, -1) for k, v in raw.items()}
        return _outputs(tf, label, model(inputs, training=False))

    return {
        "serving_default": serve_examples.get_concrete_function(),
        "predict_raw": serve_raw.get_concrete_function(),
    }


def export_model(model, features, label, export_dir: str) -> None:
    """Saves the SavedModel with both serving signatures."""
    model.save(export_dir, save_format="tf", signatures=serving_signatures(model, features, label))
