"""Two RING workers on loopback inside the real pipeline (LocalDagRunner) on data/."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import run_json, write_overlay

pytestmark = pytest.mark.e2e

# Two workers see the same data in a different order and split each batch between them: the
# model differs, but on the 65 eval examples its accuracy must stay this close to one worker's.
ACCURACY_TOLERANCE = 0.05


def test_two_workers_train_a_model_as_good_as_one(tmp_path):
    single_dir, multi_dir = tmp_path / "one", tmp_path / "two"
    single_dir.mkdir()
    multi_dir.mkdir()
    _, single = run_json("--config", str(write_overlay(single_dir)))
    assert single["status"] == "succeeded", single["error"]
    proc, multi = run_json("--config", str(write_overlay(
        multi_dir, trainer={"train_steps": 300, "distribution": {"workers": 2,
                                                                  "communication": "ring"}})))
    assert proc.returncode == 0, multi["error"]
    assert multi["pushed"]["version"] == 1
    log = open(multi["log_file"]).read()
    # Really two processes that all-reduced: both workers logged their epochs and finished.
    for i in (0, 1):
        assert f"[worker {i}] epoch 3/3 done" in log
        assert f"[worker {i}] worker {i} finished" in log
    assert "[launcher] all 2 workers finished" in log
    acc1 = single["metrics"]["sparse_categorical_accuracy"]
    acc2 = multi["metrics"]["sparse_categorical_accuracy"]
    assert acc2 >= 0.8
    assert abs(acc2 - acc1) <= ACCURACY_TOLERANCE, (acc1, acc2)
