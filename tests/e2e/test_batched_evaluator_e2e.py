"""The Evaluator's batched metrics (components/evaluator/batched.py) against stock TFMA: a real
pipeline run on binary synthetic data with slices, a threshold and a baseline, then TFX's own
Evaluator executor on the same artifacts. Every metric value (candidate, baseline, diffs, on
every slice) and the validation result must be the same; a failing threshold fails both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_json, write_overlay

pytestmark = [
    pytest.mark.e2e,
    # Stock TFMA warns once per example and metric (NumPy 1.25's scalar conversion): 380k
    # warnings kept by pytest otherwise.
    pytest.mark.filterwarnings("ignore:Conversion of an array with ndim:DeprecationWarning"),
]

METRICS = ["ExampleCount", "BinaryAccuracy", "AUC"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from data.synthetic import write_split_layout

    tmp = tmp_path_factory.mktemp("batched")
    layout = write_split_layout(str(tmp / "data"), 3000, 2500, seed=5, n_files=2)
    overlay = write_overlay(
        tmp,
        pipeline_name="batched",
        data={"root": str(tmp / "data"), "span": 1, "schema": layout.schema},
        model={"label": "label", "features": None, "task": "binary"},
        trainer={"train_steps": 150, "batch_size": 128},
        evaluator={"metrics": METRICS, "slices": [["color"], ["bucket"]],
                   "thresholds": [{"metric": "binary_accuracy", "lower_bound": 0.55,
                                   "max_regression": 0.02}]},
    )
    proc, result = run_json("--config", str(overlay))
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp / "var" / "pipeline_root"

    def only(path: str) -> Path:
        [found] = list((root / path).iterdir())
        return found

    return {"tmp": tmp, "examples": only("ImportExampleGen/examples"),
            "model": only("Trainer/model"), "evaluation": only("Evaluator/evaluation"),
            "log": Path(result["log_file"]).read_text()}


@pytest.fixture(scope="module")
def penguin_run(tmp_path_factory):
    """The multiclass sample: Keras metrics (SparseCategorical...) on class probabilities."""
    tmp = tmp_path_factory.mktemp("penguin")
    overlay = write_overlay(tmp, evaluator={
        "metrics": MULTICLASS_METRICS, "slices": [["island"], ["sex"]],
        "thresholds": [{"metric": "sparse_categorical_accuracy", "lower_bound": 0.5}]})
    proc, result = run_json("--config", str(overlay))
    assert proc.returncode == 0, proc.stderr[-3000:]
    root = tmp / "var" / "pipeline_root"
    return {"tmp": tmp, "examples": next((root / "ImportExampleGen/examples").iterdir()),
            "model": next((root / "Trainer/model").iterdir()),
            "evaluation": next((root / "Evaluator/evaluation").iterdir()),
            "log": Path(result["log_file"]).read_text()}


MULTICLASS_METRICS = ["ExampleCount", "SparseCategoricalAccuracy",
                      "SparseCategoricalCrossentropy"]


def _multiclass_config(lower_bound: float = 0.5):
    from components.evaluator.eval_config import Threshold, build_eval_config

    return build_eval_config(
        label_key="species", task="multiclass", metrics=MULTICLASS_METRICS,
        slices=[["island"], ["sex"]],
        thresholds=[Threshold(metric="sparse_categorical_accuracy", lower_bound=lower_bound,
                              max_regression=0.02)])


def _eval_config(lower_bound: float = 0.55, change: float | None = None):
    from components.evaluator.eval_config import Threshold, build_eval_config

    return build_eval_config(
        label_key="label", task="binary", metrics=METRICS, slices=[["color"], ["bucket"]],
        thresholds=[Threshold(metric="binary_accuracy", lower_bound=lower_bound,
                              max_regression=change if change is not None else 0.02)])


def _evaluate(executor_class, run, out: Path, eval_config, baseline: bool = True) -> Path:
    from tfx.components.evaluator import executor as tfx_evaluator
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    examples = standard_artifacts.Examples()
    examples.uri = str(run["examples"])
    examples.split_names = '["train", "eval"]'
    model = standard_artifacts.Model()
    model.uri = str(run["model"])
    inputs = {"examples": [examples], "model": [model]}
    if baseline:  # the candidate against itself: every diff is computed, and is 0
        stable = standard_artifacts.Model()
        stable.uri = str(run["model"])
        inputs["baseline_model"] = [stable]
    evaluation = standard_artifacts.ModelEvaluation()
    evaluation.uri = str(out / "evaluation")
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(out / "blessing")
    (out / "blessing").mkdir(parents=True)
    context = tfx_evaluator.Executor.Context(
        beam_pipeline_args=["--direct_running_mode=in_memory"], tmp_dir=str(out / "tmp"))
    executor_class(context).Do(inputs, {"evaluation": [evaluation], "blessing": [blessing]}, {
        "eval_config": proto_utils.proto_to_json(eval_config),
        "example_splits": json.dumps(["eval"]),
    })
    return out


def _values(evaluation: Path) -> dict[str, float]:
    import tensorflow_model_analysis as tfma

    values = {}
    for record in tfma.load_metrics(str(evaluation)):
        slice_key = tuple((s.column, s.bytes_value or s.int64_value or s.float_value)
                          for s in record.slice_key.single_slice_keys)
        for kv in record.metric_keys_and_values:
            key = (slice_key, kv.key.model_name, kv.key.name, kv.key.is_diff,
                   str(kv.key.sub_key))
            if kv.value.HasField("double_value"):
                values[key] = kv.value.double_value.value
    return values


def _failures(evaluation: Path) -> tuple[bool, set]:
    import tensorflow_model_analysis as tfma

    result = tfma.load_validation_result(str(evaluation))
    failed = {(str(v.slice_key), f.metric_key.name, f.metric_key.is_diff)
              for v in result.metric_validations_per_slice for f in v.failures}
    return result.validation_ok, failed


def _same_values(mine: dict, stock: dict, n_slices: int = 1 + 5 + 10,
                 rel: float = 1e-9, abs_tol: float = 1e-12) -> None:
    assert sorted(mine) == sorted(stock)
    slices = {key[0] for key in mine}
    assert len(slices) == n_slices  # overall, color, bucket
    for key, value in stock.items():
        assert mine[key] == pytest.approx(value, rel=rel, abs=abs_tol), key


def test_the_pipelines_evaluation_is_stock_tfmas(run, tmp_path):
    """What the run's Evaluator wrote (batched: its log says so) against stock TFMA."""
    from tfx.components.evaluator.executor import Executor

    assert "metrics computed a batch at a time" in run["log"]
    stock = _evaluate(Executor, run, tmp_path / "stock", _eval_config())
    mine, theirs = _values(run["evaluation"]), _values(stock / "evaluation")
    # The run's baseline is StableBaseline's choice; compare the candidate's values.
    candidate = {k: v for k, v in theirs.items() if k[1] == "candidate" and not k[3]}
    assert candidate and all(mine[k] == pytest.approx(v, rel=1e-9, abs=1e-12)
                             for k, v in candidate.items())
    assert any(k[2] == "auc" for k in candidate) and any(k[2] == "binary_accuracy"
                                                         for k in candidate)


def test_with_a_baseline_every_value_and_the_validation_are_stock_tfmas(run, tmp_path):
    from tfx.components.evaluator.executor import Executor

    from components.evaluator.executor import BatchedEvaluatorExecutor

    config = _eval_config()
    mine = _evaluate(BatchedEvaluatorExecutor, run, tmp_path / "mine", config)
    stock = _evaluate(Executor, run, tmp_path / "stock", config)
    _same_values(_values(mine / "evaluation"), _values(stock / "evaluation"))
    assert _failures(mine / "evaluation") == _failures(stock / "evaluation") == (True, set())
    assert (mine / "blessing" / "BLESSED").exists() and (stock / "blessing" / "BLESSED").exists()


def test_a_failing_threshold_fails_both_on_the_same_slices(run, tmp_path):
    from tfx.components.evaluator.executor import Executor

    from components.evaluator.executor import BatchedEvaluatorExecutor

    config = _eval_config(lower_bound=0.999)
    mine = _evaluate(BatchedEvaluatorExecutor, run, tmp_path / "mine", config, baseline=False)
    stock = _evaluate(Executor, run, tmp_path / "stock", config, baseline=False)
    _same_values(_values(mine / "evaluation"), _values(stock / "evaluation"))
    ok, failed = _failures(mine / "evaluation")
    assert not ok and {m for _, m, _ in failed} == {"binary_accuracy"} and len(failed) > 1
    assert _failures(mine / "evaluation") == _failures(stock / "evaluation")
    assert (mine / "blessing" / "NOT_BLESSED").exists()
    assert (stock / "blessing" / "NOT_BLESSED").exists()


def test_configs_without_a_batched_path_run_stock_tfma():
    from components.evaluator import batched
    from components.evaluator.eval_config import Threshold, build_eval_config

    assert batched.supported(_eval_config())
    keras = _eval_config()
    keras.options.include_default_metrics.value = True
    assert not batched.supported(keras)
    def with_metric(name: str):
        return build_eval_config(
            label_key="label", task="binary", metrics=[*METRICS, name], slices=[],
            thresholds=[Threshold(metric="binary_accuracy", lower_bound=0.5)])

    assert batched.supported(with_metric("BinaryCrossentropy"))  # a Keras metric: batched
    assert not batched.supported(with_metric("MeanLabel"))  # a TFMA combiner it lacks
    weighted = _eval_config()
    weighted.model_specs[0].example_weight_key = "f0"
    assert not batched.supported(weighted)
    intervals = _eval_config()
    intervals.options.compute_confidence_intervals.value = True
    assert not batched.supported(intervals)


def test_multiclass_keras_metrics_are_stock_tfmas(penguin_run, tmp_path):
    """SparseCategoricalAccuracy and SparseCategoricalCrossentropy (Keras metrics, whose
    float32 sums TFMA adds up batch by batch) on the sample, with a baseline and slices."""
    from tfx.components.evaluator.executor import Executor

    from components.evaluator.executor import BatchedEvaluatorExecutor

    assert "metrics computed a batch at a time" in penguin_run["log"]
    slices = len({k[0] for k in _values(penguin_run["evaluation"])})
    for lower_bound, ok in ((0.5, True), (0.999, False)):
        config = _multiclass_config(lower_bound)
        out = tmp_path / str(lower_bound)
        mine = _evaluate(BatchedEvaluatorExecutor, penguin_run, out / "mine", config)
        stock = _evaluate(Executor, penguin_run, out / "stock", config)
        values = _values(mine / "evaluation")
        assert {k[2] for k in values} >= {"sparse_categorical_accuracy",
                                          "sparse_categorical_crossentropy", "example_count"}
        stock_values = _values(stock / "evaluation")
        # Accuracy's sums are counts: exact. The crossentropy's are float32 sums over other
        # batches (a loss of ~6e-5 differed by 4e-9): within float32 rounding.
        exact = {k: v for k, v in stock_values.items() if k[2] != "sparse_categorical_crossentropy"}
        _same_values({k: values[k] for k in exact}, exact, n_slices=slices)
        _same_values(values, stock_values, n_slices=slices, rel=1e-4, abs_tol=1e-7)
        assert _failures(mine / "evaluation") == _failures(stock / "evaluation")
        assert _failures(mine / "evaluation")[0] is ok
