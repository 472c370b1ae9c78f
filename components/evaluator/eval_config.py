"""The TFMA EvalConfig, built from the evaluator's settings.

`Threshold` is both a YAML section (`evaluator.thresholds[i]` of the pipeline config) and what
`build_eval_config` reads: one type, its defaults and its valid range written once.
`KNOWN_METRICS` describes the common metric classes without importing TFMA (the key TFMA reports
them under, their range, which way is better, the tasks whose predictions they read), so that
the configuration refuses, when it is loaded, a gate that could never fail or never pass; a class
not in the table is checked when the pipeline is built, by TFMA's own lookup (`metric_name`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import Field, ValidationInfo, field_validator, model_validator

from components.trainer.model import PREDICTION, PROBABILITIES
from components.typed_config import ConfigModel

# Every blessed model was evaluated on at least this many examples of the overall slice: a
# value threshold that always holds for a real evaluation, so that TFMA validates (and can
# bless) even when every configured threshold is a change threshold, dropped without baseline.
MIN_EXAMPLE_COUNT = 1

ALL_TASKS = frozenset({"multiclass", "binary", "regression"})


class EvalConfigError(ValueError):
    """A metric or threshold that TFMA cannot compute; the message names it."""


@dataclass(frozen=True)
class MetricInfo:
    """What a metric class measures, for checks made before TFMA is imported."""

    key: str  # the name TFMA reports it under
    low: float | None  # its range (None: unbounded)
    high: float | None
    higher_is_better: bool | None  # None: neither (a count)
    # The tasks whose labels and predictions it reads as intended (see components.trainer.model:
    # multiclass: softmax probabilities and class ids; binary: one sigmoid probability and 0/1;
    # regression: one value); empty: none of them (it expects one-hot labels).
    tasks: frozenset[str] = ALL_TASKS


def _rate(key: str, tasks: frozenset[str] = ALL_TASKS) -> MetricInfo:
    return MetricInfo(key, 0.0, 1.0, True, tasks)


def _loss(key: str, tasks: frozenset[str] = ALL_TASKS) -> MetricInfo:
    return MetricInfo(key, 0.0, None, False, tasks)


_MULTICLASS = frozenset({"multiclass"})
_BINARY = frozenset({"binary"})
# TFMA's confusion-matrix metrics read a multiclass model one class against the rest.
_CLASSIFICATION = frozenset({"multiclass", "binary"})

# Class name -> what it measures; tests/unit/test_eval_config.py checks the keys against TFMA.
KNOWN_METRICS: dict[str, MetricInfo] = {
    "ExampleCount": MetricInfo("example_count", 0.0, None, None),
    "WeightedExampleCount": MetricInfo("weighted_example_count", 0.0, None, None),
    "SparseCategoricalAccuracy": _rate("sparse_categorical_accuracy", _MULTICLASS),
    "SparseTopKCategoricalAccuracy": _rate("sparse_top_k_categorical_accuracy", _MULTICLASS),
    "SparseCategoricalCrossentropy": _loss("sparse_categorical_crossentropy", _MULTICLASS),
    "CategoricalAccuracy": _rate("categorical_accuracy", frozenset()),
    "TopKCategoricalAccuracy": _rate("top_k_categorical_accuracy", frozenset()),
    "CategoricalCrossentropy": _loss("categorical_crossentropy", frozenset()),
    "BinaryAccuracy": _rate("binary_accuracy", _CLASSIFICATION),
    "BinaryCrossentropy": _loss("binary_crossentropy", _BINARY),
    "AUC": _rate("auc", _CLASSIFICATION),
    "AUCPrecisionRecall": _rate("auc_precision_recall", _CLASSIFICATION),
    "Precision": _rate("precision", _CLASSIFICATION),
    "Recall": _rate("recall", _CLASSIFICATION),
    "Specificity": _rate("specificity", _CLASSIFICATION),
    "F1Score": _rate("f1_score", _CLASSIFICATION),
    "MeanSquaredError": _loss("mean_squared_error"),
    "MeanAbsoluteError": _loss("mean_absolute_error"),
    "RootMeanSquaredError": _loss("root_mean_squared_error", frozenset({"binary", "regression"})),
    "MeanAbsolutePercentageError": _loss("mean_absolute_percentage_error",
                                         frozenset({"regression"})),
}
_BY_KEY = {info.key: info for info in KNOWN_METRICS.values()}


def known_metric(name: str) -> MetricInfo | None:
    """The table's entry for a metric class or reported key (None: not in the table)."""
    return KNOWN_METRICS.get(name) or _BY_KEY.get(name)


def task_problem(class_name: str, task: str) -> str | None:
    """Why a known metric class would measure the wrong thing on a `task` model, or None."""
    info = KNOWN_METRICS.get(class_name)
    if info is None or task in info.tasks:
        return None
    if not info.tasks:
        return (f"{class_name} expects one-hot labels, but the labels here are class ids "
                f"(use Sparse{class_name})")
    return (f"{class_name} does not measure a {task} model (model.task): it reads the "
            f"predictions of {' or '.join(sorted(info.tasks))} models")


class Threshold(ConfigModel):
    # A metric class (as in evaluator.metrics) or the key it is reported under.
    metric: str = Field(default="sparse_categorical_accuracy", min_length=1)
    # The candidate is blessed only if metric >= lower_bound (or <= upper_bound) ...
    lower_bound: float | None = 0.6
    upper_bound: float | None = None
    # ... and, when a baseline exists, it is no worse than the baseline by more than this
    # (absolute). Without a baseline (the first release) only the bounds decide.
    max_regression: float | None = Field(default=0.0, ge=0)
    # The direction of max_regression.
    higher_is_better: bool = True

    @field_validator("lower_bound")
    @classmethod
    def _lower_bound_can_fail_and_pass(cls, value: float | None, info: ValidationInfo):
        m = known_metric(info.data.get("metric", ""))
        if value is None or m is None:
            return value
        if m.low is not None and value <= m.low:
            raise ValueError(f"{value:g} lets every model pass: {m.key} is never below "
                             f"{m.low:g}; raise it, or set null")
        if m.high is not None and value > m.high:
            raise ValueError(f"{value:g} can never be reached: {m.key} is at most {m.high:g}")
        return value

    @field_validator("upper_bound")
    @classmethod
    def _upper_bound_can_fail_and_pass(cls, value: float | None, info: ValidationInfo):
        if value is None:
            return value
        lower = info.data.get("lower_bound")
        if lower is not None and value < lower:
            raise ValueError(f"{value:g} < lower_bound {lower:g}: no model can pass")
        m = known_metric(info.data.get("metric", ""))
        if m is not None and m.high is not None and value >= m.high:
            raise ValueError(f"{value:g} lets every model pass: {m.key} is never above "
                             f"{m.high:g}; lower it, or set null")
        if m is not None and m.low is not None and value < m.low:
            raise ValueError(f"{value:g} can never be met: {m.key} is never below {m.low:g}")
        return value

    @field_validator("max_regression")
    @classmethod
    def _regression_can_fail(cls, value: float | None, info: ValidationInfo):
        m = known_metric(info.data.get("metric", ""))
        if value is None or m is None or m.low is None or m.high is None:
            return value
        if value >= m.high - m.low:
            raise ValueError(f"{value:g} lets every regression pass: {m.key} cannot move by "
                             f"more than {m.high - m.low:g}; lower it, or set null")
        return value

    @field_validator("higher_is_better")
    @classmethod
    def _direction_of_the_metric(cls, value: bool, info: ValidationInfo):
        m = known_metric(info.data.get("metric", ""))
        if m is None or m.higher_is_better is None or info.data.get("max_regression") is None:
            return value
        if value != m.higher_is_better:
            better = "higher" if m.higher_is_better else "lower"
            raise ValueError(f"{str(value).lower()}, but a {better} {m.key} is better: "
                             "max_regression would refuse improvements and pass regressions")
        return value

    @model_validator(mode="after")
    def _measures_something(self) -> Threshold:
        if self.lower_bound is None and self.upper_bound is None and self.max_regression is None:
            raise ValueError("set lower_bound, upper_bound or max_regression")
        return self


def merge_thresholds(
    thresholds: Sequence[Threshold], key_of: Callable[[str], str]
) -> dict[str, Threshold]:
    """One threshold per metric (`key_of(t.metric)`), the strictest of those configured.

    TFMA holds one threshold per metric, and a second one used to replace the first: every
    configured threshold must hold, so the bounds are merged (the highest lower bound, the lowest
    upper bound, the smallest max_regression).

    Raises:
      EvalConfigError: ``thresholds[i]: ...``, thresholds on one metric that contradict each
        other (no model could pass, or opposite directions of max_regression).
    """
    merged: dict[str, Threshold] = {}
    first: dict[str, int] = {}
    for i, t in enumerate(thresholds):
        key = key_of(t.metric)
        prev = merged.get(key)
        if prev is None:
            merged[key], first[key] = t, i
            continue
        at = f"thresholds[{i}]: with thresholds[{first[key]}] on {key}"
        regressions = [x for x in (prev, t) if x.max_regression is not None]
        if len({x.higher_is_better for x in regressions}) > 1:
            raise EvalConfigError(f"{at}: higher_is_better differs; max_regression has one "
                                  "direction")

        def strictest(pick, *values):
            values = [v for v in values if v is not None]
            return pick(values) if values else None

        lower = strictest(max, prev.lower_bound, t.lower_bound)
        upper = strictest(min, prev.upper_bound, t.upper_bound)
        if lower is not None and upper is not None and lower > upper:
            raise EvalConfigError(f"{at}: together they need >= {lower:g} and <= {upper:g}: "
                                  "no model can pass")
        merged[key] = Threshold.model_construct(
            metric=prev.metric, lower_bound=lower, upper_bound=upper,
            max_regression=strictest(min, prev.max_regression, t.max_regression),
            higher_is_better=(regressions[0] if regressions else t).higher_is_better,
        )
    return merged


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


def _metric_threshold(tfma, t: Threshold):
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
    return th


def build_eval_config(
    label_key: str,
    task: str,
    metrics: Sequence[str],
    slices: Sequence[Sequence[str]],
    thresholds: Sequence[Threshold],
):
    """A `tfma.EvalConfig` for the model's `serving_default` signature.

    Each threshold names a metric by its class (as in `metrics`) or by its reported key; the
    thresholds on one metric all hold (`merge_thresholds`). ExampleCount is always computed, and
    the overall slice must count at least MIN_EXAMPLE_COUNT examples: a value threshold that
    TFX keeps without a baseline, so validation always runs (with change thresholds only, TFX
    would drop them all on a first release and never bless) and an empty eval split fails.

    Raises:
      EvalConfigError: a metric class TFMA lacks, a threshold on a metric not computed, or
        thresholds on one metric that contradict each other.
    """
    import tensorflow_model_analysis as tfma

    names = {cls: metric_name(cls) for cls in metrics}
    by_key = {**{n: c for c, n in names.items()}, **{c: c for c in names}}
    for t in thresholds:
        if t.metric not in by_key:
            raise EvalConfigError(
                f"threshold on {t.metric!r}, which is not among the metrics computed "
                f"({', '.join(f'{c} ({n})' for c, n in names.items())})"
            )
    per_metric = merge_thresholds(thresholds, by_key.__getitem__)
    metric_configs = [
        tfma.MetricConfig(
            class_name=cls,
            threshold=_metric_threshold(tfma, per_metric[cls]) if cls in per_metric else None,
        )
        for cls in metrics
    ]
    counted = next((c for c in metric_configs if c.class_name == "ExampleCount"), None)
    if counted is None:
        counted = tfma.MetricConfig(class_name="ExampleCount")
        metric_configs.append(counted)
    counted.per_slice_thresholds.append(tfma.PerSliceMetricThreshold(
        slicing_specs=[tfma.SlicingSpec()],
        threshold=tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
            lower_bound={"value": MIN_EXAMPLE_COUNT})),
    ))
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
        # Not the model's compiled Keras metrics (its loss): TFMA loads the model once more
        # per Keras metric combiner (12 loads, ~11 s) and evaluates them one example at a
        # time, and nothing gates on them; the configured metrics are what is reported.
        options=tfma.Options(include_default_metrics={"value": False}),
    )
