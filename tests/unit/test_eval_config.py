"""components/evaluator/eval_config.py: the EvalConfig TFMA validates with, checked by TFMA itself.

Each verdict here is TFMA's: the EvalConfig goes through the defaults TFX's Evaluator applies
(`update_eval_config_with_defaults`, with or without a baseline) and `validate_metrics` judges
metric values against it, as the Evaluator does after computing them.
"""

from __future__ import annotations

import pytest

tfma = pytest.importorskip("tensorflow_model_analysis")

from tensorflow_model_analysis.evaluators import metrics_validator  # noqa: E402

from components.evaluator.eval_config import (  # noqa: E402
    KNOWN_METRICS,
    EvalConfigError,
    Threshold,
    build_eval_config,
    merge_thresholds,
    metric_name,
)

ACCURACY = "sparse_categorical_accuracy"


def eval_config(*thresholds: Threshold, metrics=("ExampleCount", "SparseCategoricalAccuracy")):
    return build_eval_config("species", "multiclass", list(metrics), [["island"]],
                             list(thresholds))


def as_evaluated(config, has_baseline: bool):
    """The EvalConfig as TFX's Evaluator rewrites it (rubber_stamp: always, in TFX 1.16)."""
    return tfma.utils.update_eval_config_with_defaults(
        config, has_baseline=has_baseline, rubber_stamp=True)


def thresholds_of(config) -> dict[tuple[str, bool], list]:
    """(metric name, is a change threshold) -> the thresholds TFMA will check."""
    found = tfma.metrics.metric_thresholds_from_metrics_specs(config.metrics_specs,
                                                              eval_config=config)
    return {(key.name, key.is_diff): [t for _, t in specs] for key, specs in found.items()
            if key.model_name != "baseline"}


def verdict(config, values: dict[str, float], slice_key=()) -> bool:
    """TFMA's validation of `values` (metric name -> value) on one slice, without baseline."""
    evaluated = as_evaluated(config, has_baseline=False)
    found = tfma.metrics.metric_thresholds_from_metrics_specs(evaluated.metrics_specs,
                                                              eval_config=evaluated)
    metrics = {key: values[key.name] for key in found if key.name in values}
    return metrics_validator.validate_metrics((slice_key, metrics), evaluated).validation_ok


# --- every configured threshold holds ---------------------------------------------------------


def test_two_lower_bounds_on_one_metric_keep_the_strictest():
    # The old build kept the last threshold of a metric: 0.5, so a 0.969 model was pushed.
    config = eval_config(Threshold(metric=ACCURACY, lower_bound=0.99),
                         Threshold(metric="SparseCategoricalAccuracy", lower_bound=0.5))
    (bound,) = thresholds_of(as_evaluated(config, False))[(ACCURACY, False)]
    assert bound.lower_bound.value == 0.99
    assert not verdict(config, {ACCURACY: 0.969, "example_count": 68})
    assert verdict(config, {ACCURACY: 0.995, "example_count": 68})


def test_bounds_and_regressions_of_several_thresholds_merge_into_the_strictest():
    merged = merge_thresholds([
        Threshold(metric=ACCURACY, lower_bound=0.7, max_regression=0.05),
        Threshold(metric=ACCURACY, lower_bound=0.8, upper_bound=0.999, max_regression=0.01),
        Threshold(metric=ACCURACY, lower_bound=0.6, max_regression=None),
    ], str)
    t = merged[ACCURACY]
    assert (t.lower_bound, t.upper_bound, t.max_regression) == (0.8, 0.999, 0.01)
    config = eval_config(Threshold(metric=ACCURACY, lower_bound=0.7, max_regression=0.05),
                         Threshold(metric=ACCURACY, lower_bound=0.6, max_regression=0.01))
    (change,) = thresholds_of(as_evaluated(config, True))[(ACCURACY, True)]
    assert change.absolute.value == pytest.approx(-0.01)


@pytest.mark.parametrize("thresholds, problem", [
    ([Threshold(metric=ACCURACY, lower_bound=0.9), Threshold(metric=ACCURACY, lower_bound=None,
                                                             upper_bound=0.8)],
     "thresholds[1]: with thresholds[0] on sparse_categorical_accuracy: together they need "
     ">= 0.9 and <= 0.8: no model can pass"),
    ([Threshold(metric="mean_label", lower_bound=None, max_regression=0.1),
      Threshold(metric="mean_label", lower_bound=None, max_regression=0.1,
                higher_is_better=False)],
     "thresholds[1]: with thresholds[0] on mean_label: higher_is_better differs"),
])
def test_thresholds_that_contradict_each_other_are_refused(thresholds, problem):
    with pytest.raises(EvalConfigError) as info:
        merge_thresholds(thresholds, str)
    assert str(info.value).startswith(problem)


# --- a first release is decided on the value thresholds ----------------------------------------


def test_a_regression_only_threshold_still_validates_without_a_baseline():
    # TFX drops change thresholds without a baseline; with nothing left it never validated, so
    # nothing was ever blessed (the run said "not pushed, because: - True").
    only_regression = Threshold(metric=ACCURACY, lower_bound=None, max_regression=0.01)
    config = eval_config(only_regression)
    first = thresholds_of(as_evaluated(config, has_baseline=False))
    assert list(first) == [("example_count", False)]  # TFX's run_validation: non-empty
    (count,) = first[("example_count", False)]
    assert count.lower_bound.value == 1
    assert verdict(config, {"example_count": 68, ACCURACY: 0.5})
    later = thresholds_of(as_evaluated(config, has_baseline=True))
    assert set(later) == {("example_count", False), (ACCURACY, True)}


def test_example_count_is_computed_and_checked_on_the_overall_slice_even_if_not_listed():
    config = eval_config(Threshold(), metrics=["SparseCategoricalAccuracy"])
    (spec,) = config.metrics_specs
    assert [m.class_name for m in spec.metrics] == ["SparseCategoricalAccuracy", "ExampleCount"]
    count = spec.metrics[1].per_slice_thresholds[0]
    assert list(count.slicing_specs) == [tfma.SlicingSpec()]  # the overall slice only
    # A slice (island=Dream) is not held to it; an empty overall slice is refused.
    island = (("island", "Dream"),)
    assert verdict(config, {ACCURACY: 0.9, "example_count": 0}, slice_key=island)
    assert not verdict(config, {ACCURACY: 0.9, "example_count": 0})
    assert verdict(config, {ACCURACY: 0.9, "example_count": 1})


def test_an_eval_config_without_evaluated_slices_misses_the_overall_slice():
    # No example at all: TFMA reports no slice; the overall slice's count threshold is missing.
    evaluated = as_evaluated(eval_config(Threshold()), has_baseline=False)
    assert metrics_validator.get_missing_slices([], evaluated) == [tfma.SlicingSpec()]


# --- the table used before TFMA is imported --------------------------------------------------


def test_the_known_metrics_are_reported_under_the_keys_tfma_uses():
    assert {cls: info.key for cls, info in KNOWN_METRICS.items()} == {
        cls: metric_name(cls) for cls in KNOWN_METRICS}


def test_a_threshold_on_a_metric_not_computed_is_refused_when_building():
    with pytest.raises(EvalConfigError, match="threshold on 'auc', which is not among"):
        eval_config(Threshold(metric="auc"))


# --- why a candidate was not blessed, as the run reports it ----------------------------------


def written(tmp_path, result) -> str:
    """An evaluation directory holding `result` as TFMA's writer leaves it (validations*)."""
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "validations.tfrecord")) as w:
        w.write(result.SerializeToString())
    return str(tmp_path)


def test_a_failed_threshold_is_one_line_naming_metric_slice_and_bound(tmp_path):
    from pipeline.app.report import validation_failures

    config = eval_config(Threshold(metric=ACCURACY, lower_bound=0.99))
    result = metrics_validator.validate_metrics(
        ((), {key: {"example_count": 68, ACCURACY: 0.969}[key.name]
              for key in tfma.metrics.metric_thresholds_from_metrics_specs(
                  as_evaluated(config, False).metrics_specs)}),
        as_evaluated(config, False))
    assert not result.validation_ok
    assert validation_failures(written(tmp_path, result)) == [
        "sparse_categorical_accuracy on overall: 0.9690, needs >= 0.99"]


@pytest.mark.parametrize("fields, expected", [
    # An empty eval split: no slice at all, so the overall slice's count threshold is missing.
    ({"missing_slices": [tfma.SlicingSpec()]},
     ["no metrics for the overall slice, which a threshold needs (no example evaluated there; "
      "an empty eval split?)"]),
    ({"missing_thresholds": True},
     ["TFMA had no threshold to check, and blesses nothing without one"]),
    ({}, ["TFMA validation failed without a failed threshold (see {uri})"]),
])
def test_a_failed_validation_without_a_failed_threshold_still_says_why(tmp_path, fields,
                                                                       expected):
    # It used to say "True" (the missing_thresholds flag, printed).
    from tensorflow_model_analysis.proto import validation_result_pb2

    from pipeline.app.report import validation_failures

    uri = written(tmp_path, validation_result_pb2.ValidationResult(validation_ok=False, **fields))
    assert validation_failures(uri) == [line.format(uri=uri) for line in expected]
