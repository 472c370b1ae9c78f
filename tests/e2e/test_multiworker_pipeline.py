"""Two RING workers on loopback inside the real pipeline (LocalDagRunner) on data/."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, run_json, write_overlay

# Heartbeat and silence bounds: run alone, not beside another test (make test).
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

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


class LogTail:
    """The lines of the run's log (var/logs/*.log) as it grows."""

    def __init__(self, logs_dir: Path):
        self.logs_dir, self.read, self.partial = logs_dir, 0, b""
        self.lines: list[str] = []

    def poll(self) -> list[str]:
        logs = list(self.logs_dir.glob("*.log"))
        if logs:
            with open(logs[0], "rb") as f:
                f.seek(self.read)
                chunk = f.read()
            self.read += len(chunk)
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            self.lines += [x.decode(errors="replace") for x in complete]
        return self.lines


def kill_chief(var: Path, attempt: int) -> int:
    state = json.loads(next(var.rglob("workers.json")).read_text())
    assert state["attempt"] == attempt, state
    os.kill(state["pids"][0], signal.SIGKILL)
    return state["pids"][0]


@pytest.mark.timeout(900)
def test_killing_the_chief_mid_training_and_while_exporting_resumes_and_pushes(tmp_path):
    """The chief (worker 0) is SIGKILLed twice in one `pipeline run`: in epoch 3 (epoch 2 backed
    up), then, in the restarted group, while it exports the trained model."""
    overlay = write_overlay(tmp_path, trainer={
        "train_steps": 4 * 500, "epochs": 4,
        "distribution": {"workers": 2, "communication": "ring", "max_restarts": 2},
    })
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", "--json", "--config", str(overlay)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    var, tail, killed = tmp_path / "var", LogTail(tmp_path / "var" / "logs"), []
    try:
        deadline = time.monotonic() + 600
        while len(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
            lines = tail.poll()
            # The chief logs an epoch after BackupAndRestore has saved it.
            if not killed and any("[worker 0] epoch 2/4 done" in x for x in lines):
                killed.append(kill_chief(var, attempt=0))
            restarted = [i for i, x in enumerate(lines) if "(restart 1 of 2)" in x]
            if len(killed) == 1 and restarted and any(
                    "[worker 0] exporting the model" in x for x in lines[restarted[0]:]):
                time.sleep(0.3)  # inside the export (seconds long), not before it
                killed.append(kill_chief(var, attempt=1))
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"SIGKILLed the chief: pids {killed}")
    assert len(killed) == 2, f"the chief was killed {len(killed)} time(s):\n{stderr[-3000:]}"
    result = json.loads(stdout)
    assert proc.returncode == 0 and result["status"] == "succeeded", result["error"]
    log = open(result["log_file"]).read()
    assert log.count("[launcher] worker 0 was killed by SIGKILL") == 2
    first, second = log.split("restarting the worker group (restart 1 of 2)", 1)[1].split(
        "restarting the worker group (restart 2 of 2)", 1)
    # Restart 1 resumed from the chief's backup of epoch 2 (or later), not from the start ...
    resumed = {int(m) for m in re.findall(r"\] resumed from backup at epoch (\d) of 4", first)}
    assert len(resumed) == 1 and resumed.pop() >= 3, first[-3000:]
    # ... and restart 2, after the training had ended, only exported: the backup was kept.
    for i in (0, 1):
        assert f"[worker {i}] resumed from backup at epoch" in first
        assert f"[worker {i}] epoch 1/4 done" not in first
        assert (f"[worker {i}] resumed from backup after the last epoch (4 of 4): only the "
                "export is left") in second
        assert not re.search(rf"\[worker {i}\] epoch \d/4 done", second)
        assert f"[worker {i}] worker {i} finished" in second
    # The model passed the evaluator's thresholds and was pushed.
    assert result["metrics"]["sparse_categorical_accuracy"] >= 0.8
    assert result["pushed"]["version"] == 1
    # The backup is gone once the model is exported.
    assert list(var.rglob("backup")) == []
