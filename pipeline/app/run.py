"""One pipeline run, whatever runs it: what every runner needs around a run, once.

`run_pipeline(cfg, runner)` prepares the process, sends the log to `<work_dir>/logs/<run_id>.log`,
reuses the last run when nothing changed since (`pipeline.app.up_to_date`), checks the
configuration against this machine and the input files (`preflight`), hands the run to the
runner, turns its log into progress callbacks, reads the report back from ML Metadata, saves
the run record, and returns a `RunResult` with a one-line error. It never raises for a failed
run (Ctrl-C excepted).

A runner (`runners/<name>.py`) only turns the built pipeline into a run on its orchestrator:
a callable `run(cfg, run_id) -> None` that builds the pipeline with
`pipeline.build.build_pipeline(cfg, ...)`, runs it to the end under `run_id` and raises when it
fails.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from datetime import datetime, timezone
from typing import Protocol

from pipeline.app.progress import ProgressCallback, ProgressHandler, node_state
from pipeline.app.run_result import RunResult
from pipeline.config import ConfigError, PipelineConfig

log = logging.getLogger(__name__)


class Runner(Protocol):
    def __call__(self, cfg: PipelineConfig, run_id: str) -> None:
        """Builds the pipeline for `cfg` and runs it to the end as run `run_id` (MLMD's
        pipeline_run context); raises when the run fails."""


def new_run_id() -> str:
    """`<UTC time>-<6 hex>`: sortable by start time, unique across machines."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def run_pipeline(
    cfg: PipelineConfig,
    runner: Runner,
    *,
    run_id: str | None = None,
    on_progress: ProgressCallback | None = None,
    full: bool = False,
) -> RunResult:
    """Runs the whole pipeline once with `runner` and reports what happened.

    When nothing that could change the outcome changed since the last successful run, that
    run's outputs are reported as reused and the runner is not called, unless `full` (or
    `enable_cache: false`) asks for a pass through TFX, where each node meets TFX's own cache.

    Raises:
      KeyboardInterrupt: after the result is reported to the log.
    """
    from components.tf_process import prepare_tf_process
    from pipeline.app.preflight import check_output_paths, preflight
    from pipeline.app.run_log import error_kind, error_line, open_run_log
    from pipeline.app.run_record import (
        inputs_before_run,
        reuse_last_run,
        save_run_record,
        state_before_run,
    )

    prepare_tf_process()  # before anything (the runner, the report) imports TensorFlow
    run_id = run_id or new_run_id()
    result = RunResult(
        run_id=run_id,
        status="failed",
        metadata_uri=cfg.resolved_metadata_path,
        pipeline_root=cfg.resolved_pipeline_root,
        log_file=os.path.abspath(os.path.join(cfg.work_dir, "logs", f"{run_id}.log")),
    )
    try:  # the log goes into work_dir: it must be writable before anything, the log too
        check_output_paths(cfg)
    except ConfigError as e:
        result.error, result.error_kind, result.log_file = str(e), "config", ""
        return result
    log_handler = open_run_log(result.log_file)
    inputs = inputs_before_run(cfg)
    if inputs and not full and cfg.enable_cache and reuse_last_run(cfg, result, inputs):
        log_handler.flush()
        return result
    # Before anything of the run: what changes after this and is not the run's own is found.
    start = state_before_run(cfg)
    progress = ProgressHandler(on_progress, lambda name: node_state(cfg, run_id, name))
    logging.getLogger().addHandler(progress)
    try:
        result.span = preflight(cfg)
        runner(cfg, run_id)
        result.status = "succeeded"
    except BaseException as e:  # noqa: BLE001  (Ctrl-C too: report, then re-raise below)
        log.error("run %s failed:\n%s", run_id, traceback.format_exc())
        failed_in = progress.stop_current()
        reason = error_line(e)
        result.error = f"{failed_in}: {reason}" if failed_in else reason
        result.error_kind = error_kind(e)
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        logging.getLogger().removeHandler(progress)
        _report(cfg, result, progress.seconds)
        if result.status == "succeeded" and inputs:
            save_run_record(cfg, inputs, result, start)
        log_handler.flush()
    return result


def _report(cfg: PipelineConfig, result: RunResult, seconds: dict[str, float]) -> None:
    try:
        from pipeline.app.report import collect_report

        collect_report(cfg, result, seconds)
    except Exception:  # noqa: BLE001  (a report problem must not hide the run's outcome)
        log.exception("could not read the run report from MLMD")
