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
fails. A runner that can run part of the pipeline also takes `partial=` (`runners.partial`).

Who asked for the run, and why (`RunRequest`), is recorded in ML Metadata before the run starts,
with what it is made of (git commit, configuration, input files: `pipeline.provenance`), and
linked to the run's context after it (`components.metadata.run_requests`); the metrics the
report reads are recorded with the request too, for `pipeline lineage` and `runs show`.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

from pipeline.app.progress import ProgressCallback, ProgressHandler, node_state
from pipeline.app.run_result import RunResult
from pipeline.config import ConfigError, PipelineConfig

if TYPE_CHECKING:
    from components.metadata import RunRequest
    from runners.partial import PartialRun

log = logging.getLogger(__name__)


class Runner(Protocol):
    def __call__(self, cfg: PipelineConfig, run_id: str) -> None:
        """Builds the pipeline for `cfg` and runs it to the end as run `run_id` (MLMD's
        pipeline_run context); raises when the run fails. Called with `partial=PartialRun`
        for a partial run (a runner without that keyword cannot make one): it runs only those
        nodes, on top of the latest run's outputs, and fills in the `PartialRun` before the
        first node starts."""


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
    partial: PartialRun | None = None,
    request: RunRequest | None = None,
) -> RunResult:
    """Runs the whole pipeline (or `partial`'s nodes) once with `runner` and reports what
    happened.

    When nothing that could change the outcome changed since the last successful run, that
    run's outputs are reported as reused and the runner is not called, unless `full` (or
    `enable_cache: false`) asks for a pass through TFX, where each node meets TFX's own cache.
    A partial run, and a run asked for with a reason, always go through TFX; a partial run is
    never recorded as a run to be up to date with (it did not run the whole pipeline on the
    current inputs).

    `request` (who asked, and why) is recorded in ML Metadata with the run; without it nothing
    is recorded.

    Raises:
      KeyboardInterrupt: after the result is reported to the log.
    """
    from components.metadata.store import MetadataError
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
        metadata_uri=cfg.metadata_uri,
        pipeline_root=cfg.resolved_pipeline_root,
        log_file=os.path.abspath(os.path.join(cfg.work_dir, "logs", f"{run_id}.log")),
    )
    try:  # the log goes into work_dir: it must be writable before anything, the log too
        check_output_paths(cfg)
    except ConfigError as e:
        result.error, result.error_kind, result.log_file = str(e), "config", ""
        return result
    except MetadataError as e:  # a MySQL server that cannot be reached or refuses the login
        result.error, result.error_kind, result.log_file = str(e), "run", ""
        return result
    # The MySQL password (read by check_output_paths): TFX logs the connection config.
    password = getattr(cfg.metadata_target, "password", "")
    log_handler = open_run_log(result.log_file, secrets=[password])
    inputs = None if partial is not None else inputs_before_run(cfg)
    through_tfx = full or not cfg.enable_cache or bool(request and request.reason)
    if inputs and not through_tfx and reuse_last_run(cfg, result, inputs):
        log_handler.flush()
        return result
    requested = _record_request(cfg, run_id, request, partial, result, runner)
    # Before anything of the run: what changes after this and is not the run's own is found.
    start = state_before_run(cfg) if inputs else None
    progress = ProgressHandler(on_progress, lambda name: node_state(cfg, run_id, name))
    logging.getLogger().addHandler(progress)
    try:
        result.span = preflight(cfg)
        if partial is None:
            runner(cfg, run_id)
        else:
            runner(cfg, run_id, partial=partial)  # type: ignore[call-arg]
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
        _link_request(cfg, run_id, requested)
        _report(cfg, result, progress.seconds)
        _record_metrics(cfg, result)
        if partial is not None:
            _report_partial(cfg, result, partial)
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


def _record_metrics(cfg: PipelineConfig, result: RunResult) -> None:
    """Records the metrics the report read (TFMA's files) with the run's request, naming the
    run's ModelEvaluation, so that `pipeline lineage` and `pipeline runs show` answer without
    TensorFlow (not on the artifact itself: see `record_run_metrics`). A failure is logged."""
    if not result.metrics:
        return
    from components.metadata import get_output_artifacts, get_run_executions, open_store
    from components.metadata.run_requests import record_run_metrics

    try:
        store = open_store(cfg.metadata_target)
        evaluator = get_run_executions(store, cfg.pipeline_name, result.run_id).get("Evaluator")
        for a in get_output_artifacts(store, evaluator.id) if evaluator is not None else []:
            if a.type == "ModelEvaluation":
                record_run_metrics(store, result.run_id, a.id, result.metrics)
    except Exception:  # noqa: BLE001  (informative: never fails the run)
        log.warning("the metrics of run %s were not recorded in ML Metadata", result.run_id,
                    exc_info=True)


def _record_request(cfg: PipelineConfig, run_id: str, request: RunRequest | None,
                    partial: PartialRun | None, result: RunResult, runner: Runner | None = None
                    ) -> int | None:
    """Records `request` with the run's parameters and provenance (git commit, configuration,
    input files: `pipeline.provenance`) in ML Metadata (before the run, so that a refused or
    crashed run's request is on record too); its execution id, or None. A failure is logged:
    the run goes on without the record."""
    if request is None:
        return None
    import dataclasses

    from components.metadata import open_store, record_run_request

    if partial is None:
        resolved = {"data_root": os.path.abspath(cfg.data.root), "span": _span(cfg),
                    "channel": cfg.pusher.channel}
    else:  # the data may be the reused run's: only what was asked
        resolved = {"channel": cfg.pusher.channel, "from_nodes": partial.from_nodes,
                    "to_nodes": partial.to_nodes}
    request = dataclasses.replace(request, details={**request.details, **resolved})
    result.request = request.to_json()
    try:  # what the run is made of: code, configuration, input files (a partial run's data
        # may be the reused run's: no files)
        from pipeline.provenance import run_provenance

        orchestrator = getattr(runner, "__module__", "").rpartition(".")[2] or "local"
        request = dataclasses.replace(request, provenance=run_provenance(
            cfg, with_data=partial is None, orchestrator=orchestrator))
    except Exception:  # noqa: BLE001  (the run matters more than its provenance's record)
        log.warning("the run's provenance (git, config, input files) was not taken",
                    exc_info=True)
    try:
        store = open_store(cfg.metadata_target, create=True)
        execution_id = record_run_request(store, cfg.pipeline_name, run_id, request)
    except Exception:  # noqa: BLE001  (the run matters more than its request's record)
        log.warning("the run request was not recorded in ML Metadata", exc_info=True)
        return None
    log.info("run %s requested by %s@%s (%s): %s", run_id, request.user, request.host,
             request.trigger, request.reason or "no reason given")
    return execution_id


def _link_request(cfg: PipelineConfig, run_id: str, execution_id: int | None) -> None:
    """Associates the recorded request with the run's context, if the run created one."""
    if execution_id is None:
        return
    from components.metadata import link_run_request, open_store

    try:
        link_run_request(open_store(cfg.metadata_target), execution_id, run_id)
    except Exception:  # noqa: BLE001
        log.warning("the run request was not linked to run %s", run_id, exc_info=True)


def _report_partial(cfg: PipelineConfig, result: RunResult, partial: PartialRun) -> None:
    """A partial run's components: those reused from the base run say so (TFX records them as
    cached executions of this run), those after the selection were not run. When the node that
    reads the data was reused, the run's span is the one it read then."""
    result.partial = partial.to_json()
    for c in result.components:
        if c.name in partial.reused and c.status == "cached":
            c.status, c.cached = "reused", True
        elif c.name in partial.skipped:
            c.status, c.cached = "not run", False
    from pipeline.build import NODE_ORDER

    if NODE_ORDER[0] in partial.reused:
        result.span = _span_read(cfg, result.run_id, NODE_ORDER[0])


def _span_read(cfg: PipelineConfig, run_id: str, node: str) -> int | None:
    """The span of the examples `node` output in run `run_id` (None if unknown)."""
    from components.metadata import (
        custom_property,
        get_output_artifacts,
        get_run_executions,
        open_store,
    )

    try:
        store = open_store(cfg.metadata_target)
        execution = get_run_executions(store, cfg.pipeline_name, run_id).get(node)
        # TFX 1.16 records an Examples' span as a custom property.
        spans = {custom_property(a, "span") for a in get_output_artifacts(store, execution.id)}
    except Exception:  # noqa: BLE001  (informative: never fails the run)
        log.warning("span of run %s not read", run_id, exc_info=True)
        return None
    spans.discard(None)
    return spans.pop() if len(spans) == 1 else None


def _span(cfg: PipelineConfig) -> int | None:
    """The span the run will read; None when it cannot be told (preflight then says why)."""
    from pipeline.spans import selected_span

    try:
        return selected_span(cfg)
    except Exception:  # noqa: BLE001
        return None
