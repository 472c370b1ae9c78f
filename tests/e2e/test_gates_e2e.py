"""Evaluation gates through the real Evaluator: every threshold holds, and the first release is
decided on the value thresholds alone (both were silently wrong: docs/REFUSED.md)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import run_json, write_overlay

pytestmark = pytest.mark.e2e


def test_two_thresholds_on_one_metric_both_hold(tmp_path):
    # The second threshold used to replace the first: a 0.97 model passed "0.99 and 0.5".
    overlay = write_overlay(tmp_path, evaluator={"thresholds": [
        {"metric": "sparse_categorical_accuracy", "lower_bound": 0.99, "max_regression": None},
        {"metric": "sparse_categorical_accuracy", "lower_bound": 0.5, "max_regression": None},
    ]})
    proc, out = run_json("--config", str(overlay))
    accuracy = out["metrics"]["sparse_categorical_accuracy"]
    assert accuracy < 0.99, "the model is too good for this test: raise the bound"
    assert proc.returncode == 3, out.get("error")
    assert out["status"] == "succeeded" and out["pushed"] is None
    assert any(line.startswith("sparse_categorical_accuracy on overall:") and ">= 0.99" in line
               for line in out["validation_failures"]), out["validation_failures"]
    assert not (tmp_path / "serving" / "penguin" / "1").exists()


def test_a_regression_only_threshold_lets_the_first_release_through(tmp_path):
    # With no baseline TFX drops change thresholds; nothing was left to validate, so nothing was
    # ever blessed ("not pushed, because: - True") and no baseline ever appeared.
    overlay = write_overlay(tmp_path, evaluator={"slices": [], "thresholds": [
        {"metric": "sparse_categorical_accuracy", "lower_bound": None, "max_regression": 0.05},
    ]})
    proc, out = run_json("--config", str(overlay))
    assert proc.returncode == 0, (out.get("error"), out.get("validation_failures"))
    assert out["pushed"]["version"] == 1 and out["blessed"] is True
    assert out["metrics"]["example_count"] >= 1
