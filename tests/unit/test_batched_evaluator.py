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
