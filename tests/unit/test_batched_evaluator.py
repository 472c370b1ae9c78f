"""Where the batched Evaluator (components/evaluator/batched.py) must not go: a model with
several predictions per example goes to stock TFMA, and a NaN prediction fails as loudly as
stock TFMA fails. Its values against stock TFMA: tests/e2e/test_batched_evaluator_e2e.py."""

from __future__ import annotations

import numpy as np
import pytest


def _saved_model(path, width: int | None) -> str:
    """A SavedModel whose serving_default maps serialized examples to `probabilities` of
    shape (batch, width), or (batch,) when width is None."""
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            n = tf.shape(examples)[0]
            shape = [n] if width is None else [n, width]
            return {"probabilities": tf.fill(shape, 0.5)}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    return str(path)


def _shared(path: str, eval_config):
    import tensorflow_model_analysis as tfma

    return tfma.default_eval_shared_model(eval_saved_model_path=path, eval_config=eval_config)


def _config():
    from components.evaluator.eval_config import Threshold, build_eval_config

    return build_eval_config(label_key="label", task="binary",
                             metrics=["ExampleCount", "BinaryAccuracy", "AUC"], slices=[],
                             thresholds=[Threshold(metric="binary_accuracy", lower_bound=0.5)])


@pytest.mark.parametrize("width, batched", [(None, True), (1, True), (3, False)])
def test_only_one_prediction_per_example_is_batched(tmp_path, width, batched):
    from components.evaluator import batched as module

    config = _config()
    shared = _shared(_saved_model(tmp_path / "m", width), config)
    assert module.one_prediction_per_example(shared, config) is batched
    found = module.batched_extractors_and_evaluators(config, shared)
    assert (found is not None) is batched


def test_a_model_without_the_prediction_key_goes_to_stock_tfma(tmp_path):
    from components.evaluator import batched as module

    config = _config()
    config.model_specs[0].prediction_key = "logits"
    shared = _shared(_saved_model(tmp_path / "m", 1), config)
    assert module.one_prediction_per_example(shared, config) is False


@pytest.mark.parametrize("where", ["predictions", "labels"])
def test_a_nan_fails_the_evaluation(where):
    from tensorflow_model_analysis import constants

    from components.evaluator import batched as module

    spec = _config().model_specs[0]
    values = {"labels": np.array([1.0, 0.0, 1.0]), "predictions": np.array([0.9, 0.2, 0.7])}
    values[where][1] = np.nan
    extract = {constants.LABELS_KEY: values["labels"],
               constants.PREDICTIONS_KEY: values["predictions"]}
    with pytest.raises(ValueError, match="NaN or infinite"):
        module._Model(extract, spec, 1)
    values[where][1] = 0.0
    model = module._Model(extract, spec, 1)
    assert model.preds.tolist() == values["predictions"].tolist()


def test_a_label_outside_zero_one_fails_as_in_tfma():
    """AUC's histogram and BinaryAccuracy's matrices read fractional labels: TFMA raises on a
    label outside [0, 1], and so does the batched path."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.evaluators import metrics_plots_and_validations_evaluator as mpv
    from tensorflow_model_analysis.metrics import metric_specs

    from components.evaluator import batched as module

    config = _config()
    config = tfma.EvalConfig(model_specs=config.model_specs, metrics_specs=config.metrics_specs,
                             slicing_specs=config.slicing_specs, options=config.options)
    computations = mpv._filter_and_separate_computations(metric_specs.to_computations(
        list(config.metrics_specs), eval_config=config)).non_derived_computations
    extract = {constants.LABELS_KEY: np.array([1.0, 2.0]),
               constants.PREDICTIONS_KEY: np.array([0.9, 0.2])}
    models = {"": module._Model(extract, config.model_specs[0], 1)}
    idx = np.arange(2)
    raised = 0
    for computation in computations:
        try:
            module._vectorized(computation.combiner, idx, models)
        except ValueError as e:
            assert "within [0, 1]" in str(e)
            raised += 1
    assert raised >= 2  # the histogram and the confusion matrix


def test_feature_values_per_row_from_every_batched_form():
    import tensorflow as tf
    import tensorflow_model_analysis as tfma

    from components.evaluator.batched import _row_values

    assert _row_values(None, 2) == [None, None]
    assert _row_values(np.array([b"a", b"b"]), 2) == [(b"a",), (b"b",)]
    assert _row_values(np.array([[1, 2], [3, 4]]), 2) == [(1, 2), (3, 4)]
    ragged = tfma.types.VarLenTensorValue.from_dense_rows(
        [np.array([b"x"]), np.array([], dtype=object), np.array([b"y", b"z"])])
    assert _row_values(ragged, 3) == [(b"x",), (), (b"y", b"z")]
    sparse = tf.compat.v1.SparseTensorValue(indices=np.array([[0, 0], [2, 0], [2, 1]]),
                                            values=np.array([5, 6, 7]), dense_shape=[3, 2])
    assert _row_values(sparse, 3) == [(5,), (), (6, 7)]


def test_a_multiclass_model_with_keras_metrics_only_is_batched(tmp_path):
    from components.evaluator import batched as module
    from components.evaluator.eval_config import Threshold, build_eval_config

    config = build_eval_config(
        label_key="species", task="multiclass",
        metrics=["ExampleCount", "SparseCategoricalAccuracy"], slices=[],
        thresholds=[Threshold(metric="sparse_categorical_accuracy", lower_bound=0.5)])
    assert module.supported(config)
    shared = _shared(_saved_model(tmp_path / "m", 3), config)
    assert module.batched_extractors_and_evaluators(config, shared) is not None
