"""NaN and infinite feature values through the real pipeline: missing, never silently present."""

from __future__ import annotations

import math
import re

import pytest

from tests.e2e.conftest import REPO, run_json, write_overlay
from tests.e2e.test_bad_input import assert_refused, copy_span, rewrite_examples, train_file

pytestmark = pytest.mark.e2e

SCHEMA = REPO / "data" / "schema" / "schema.pbtxt"


def set_value(name: str, value: float, every: int, first: int):
    """A `rewrite_examples` change: `name` := value in examples i with i % every < first."""

    def change(i, ex):
        if i % every < first:
            f = ex.features.feature[name]
            f.ClearField("float_list")
            f.float_list.value.append(value)

    return change


def test_nan_in_30_percent_of_examples_fails_the_presence_rule(tmp_path):
    root = copy_span(tmp_path)
    rewrite_examples(train_file(root), set_value("body_mass_g", float("nan"), 10, 3))
    overlay = write_overlay(tmp_path, trainer={"train_steps": 50})
    proc, out = run_json("--config", str(overlay), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, "DataValidationGate", "split 'train'",
                   "feature 'body_mass_g'", "NaN", "at least 90%")
    # One anomaly, and it is this one.
    assert "with 1 anomaly:" in out["error"], out["error"]
    by_name = {c["name"]: c for c in out["components"]}
    assert by_name["DataValidationGate"]["status"] == "failed"
    assert by_name["Trainer"]["status"] == "not run"


def test_infinity_in_a_float_feature_without_a_domain_is_imputed(tmp_path):
    # bill_depth_mm without its float_domain: TFDV has no range to refuse +inf with.
    text = SCHEMA.read_text()
    no_domain = re.sub(r'(name: "bill_depth_mm".*?)float_domain \{[^}]*\}', r"\1", text,
                       count=1, flags=re.S)
    assert no_domain != text
    schema = tmp_path / "schema.pbtxt"
    schema.write_text(no_domain)
    root = copy_span(tmp_path)
    # 5 of 184 training examples: the feature is still present (finite) in over 90%.
    rewrite_examples(train_file(root), set_value("bill_depth_mm", float("inf"), 37, 1))
    # The usual 300 steps: this run must pass the Evaluator's accuracy bounds to be pushed.
    overlay = write_overlay(tmp_path, data={"schema": str(schema)})
    proc, out = run_json("--config", str(overlay), "--data-root", str(root))
    assert proc.returncode == 0, out.get("error")
    by_name = {c["name"]: c for c in out["components"]}
    assert by_name["DataValidationGate"]["status"] == "succeeded"
    assert out["pushed"]["version"] == 1
    assert out["metrics"], out
    for name, value in out["metrics"].items():
        assert math.isfinite(value), (name, value)
