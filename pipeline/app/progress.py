"""Progress of a run as it happens, for the CLI's component lines.

TFX's in-process runners (LocalDagRunner, Beam's DAG runner, the Kubeflow container entry
point) log "Component <id> is running." and "Component <id> is finished." around each node;
`ProgressHandler` turns those log records into callbacks, whatever runner wrote them. The state
of a finished node (succeeded, cached, failed) is read from ML Metadata as it finishes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from pipeline.config import PipelineConfig

# (component id, "running" | "finished", seconds since it started, its MLMD state once finished:
#  "succeeded" | "cached" | "failed" | ...)
ProgressCallback = Callable[[str, str, float, str], None]

RUNNING = "Component %s is running."
FINISHED = "Component %s is finished."


class ProgressHandler(logging.Handler):
    """Turns the runner's "Component X is running/finished." log lines into callbacks and
    keeps each component's seconds (`seconds`) and the one running now (`current`)."""

    def __init__(
        self, callback: ProgressCallback | None, state_of: Callable[[str], str] | None = None
    ):
        super().__init__(logging.INFO)
        self.callback = callback
        self.state_of = state_of
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.current: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg not in (RUNNING, FINISHED):
            return
        name = str(record.args[0]) if record.args else "?"
        if record.msg == RUNNING:
            self.started[name] = time.monotonic()
            self.current = name
            if self.callback:
                self.callback(name, "running", 0.0, "running")
        else:
            self.seconds[name] = time.monotonic() - self.started.get(name, time.monotonic())
            self.current = None
            if self.callback:
                state = self.state_of(name) if self.state_of else "finished"
                self.callback(name, "finished", self.seconds[name], state)

    def stop_current(self) -> str | None:
        """The component that was running when the run stopped (its seconds counted up to
        now), or None."""
        name = self.current
        if name is not None:
            self.seconds[name] = time.monotonic() - self.started[name]
        return name


def node_state(cfg: PipelineConfig, run_id: str, name: str) -> str:
    """The ML Metadata state of node `name` in run `run_id` (e.g. cached), read as it finishes;
    "finished" when it cannot be read."""
    from components.metadata import execution_state, get_run_executions, open_store

    try:
        execution = get_run_executions(
            open_store(cfg.metadata_target), cfg.pipeline_name, run_id
        ).get(name)
    except Exception:  # noqa: BLE001  (a progress line must never break the run)
        return "finished"
    return execution_state(execution) if execution else "succeeded"
