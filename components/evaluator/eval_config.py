"""The TFMA EvalConfig, built from the evaluator's settings.

`Threshold` is both a YAML section (`evaluator.thresholds[i]` of the pipeline config) and what
`build_eval_config` reads: one type, its defaults written once.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.trainer.model import PREDICTION, PROBABILITIES
from components.typed_config import ConfigModel


class EvalConfigError(ValueError):
    """A metric or threshold that TFMA cannot compute; the message names it."""


class Threshold(ConfigModel):
    # A metric class (as in evaluator.metrics) or the key it is reported under.
    metric: str = "sparse_categorical_accuracy"
    # The candidate is blessed only if metric >= lower_bound (or <= upper_bound) ...
    lower_bound: float | None = 0.6
    upper_bound: float | None = None
    # ... and, when a baseline exists, it is no worse than the baseline by more than this
    # (absolute).
    max_regression: float | None = 0.0
    higher_is_better: bool = True


def metric_name(class_name: str) -> str:
    """The key under which TFMA reports a metric class (e.g. SparseCategoricalAccuracy).

    Like TFMA's MetricConfig, the class is looked up among TFMA's metrics, then Keras'.
    """
    import tf_keras
    from tensorflow_model_analysis import metrics as tfma_metrics

    for module in (tfma_metrics, tf_keras.metrics):
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            return cls().name
    raise EvalConfigError(f"unknown metric class {class_name!r} (not in TFMA nor Keras)")


def build_eval_config(
    label_key: str,
    task: str,
    metrics: Sequence[str],
    slices: Sequence[Sequence[str]],
    thresholds: Sequence[Threshold],
):
    """A `tfma.EvalConfig` for the model's `serving_default` signature.

    Each threshold names a metric by its class (as in `metrics`) or by its reported key.

    Raises:
      EvalConfigError: a metric class TFMA lacks, or a threshold on a metric not computed.
    """
    import tensorflow_model_analysis as tfma

    names = {cls: metric_name(cls) for cls in metrics}
    by_key = {**{n: c for c, n in names.items()}, **{c: c for c in names}}
    per_metric: dict[str, tfma.MetricThreshold] = {}
    for t in thresholds:
        if t.metric not in by_key:
            raise EvalConfigError(
                f"threshold on {t.metric!r}, which is not among the metrics computed "
                f"({', '.join(f'{c} ({n})' for c, n in names.items())})"
            )
        th = tfma.MetricThreshold()
        if t.lower_bound is not None or t.upper_bound is not None:
            th.value_threshold.CopyFrom(tfma.GenericValueThreshold())
            if t.lower_bound is not None:
                th.value_threshold.lower_bound.value = t.lower_bound
            if t.upper_bound is not None:
                th.value_threshold.upper_bound.value = t.upper_bound
        if t.max_regression is not None:
            direction = (
                tfma.MetricDirection.HIGHER_IS_BETTER if t.higher_is_better
                else tfma.MetricDirection.LOWER_IS_BETTER
            )
            # TFMA's absolute change is candidate - baseline; a tiny epsilon keeps "equal" good.
            bound = -t.max_regression - 1e-10 if t.higher_is_better else t.max_regression + 1e-10
            th.change_threshold.CopyFrom(
                tfma.GenericChangeThreshold(direction=direction, absolute={"value": bound})
            )
        per_metric[by_key[t.metric]] = th
    metric_configs = [
        tfma.MetricConfig(class_name=cls, threshold=per_metric.get(cls)) for cls in metrics
    ]
    prediction_key = PREDICTION if task == "regression" else PROBABILITIES
    return tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(
                signature_name="serving_default",
                label_key=label_key,
                prediction_key=prediction_key,
            )
        ],
        slicing_specs=[tfma.SlicingSpec()]
        + [tfma.SlicingSpec(feature_keys=list(keys)) for keys in slices],
        metrics_specs=[tfma.MetricsSpec(metrics=metric_configs)],
    )
