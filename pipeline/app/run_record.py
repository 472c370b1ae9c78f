"""The record of the last successful run, around a run: the inputs fingerprinted and the state
marked before it starts, its outputs reused when nothing changed since, the record saved after
it succeeds unless someone else changed the state meanwhile (`during_run`).

The comparison itself is `pipeline.app.up_to_date`; this module is what a run does with it,
and it never lets a problem with the record fail a run (in doubt, the run goes through TFX).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from pipeline.app.run_result import ComponentRun, RunResult
from pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from pipeline.app.during_run import StartState

log = logging.getLogger(__name__)


def inputs_before_run(cfg: PipelineConfig) -> dict[str, str] | None:
    """The run's inputs as they are before it starts; None if they cannot be read (the run
    then goes through TFX, whose checks report why)."""
    from pipeline.app.up_to_date import input_fingerprint
    from pipeline.spans import selected_span

    try:
        return input_fingerprint(cfg, selected_span(cfg))
    except Exception:  # noqa: BLE001
        log.info("inputs not fingerprinted", exc_info=True)
        return None


def reuse_last_run(cfg: PipelineConfig, result: RunResult, inputs: dict[str, str]) -> bool:
    """Fills `result` from the last successful run and says True when nothing changed since."""
    from components.metadata import open_store, store_exists
    from pipeline.app.up_to_date import check

    try:
        target = cfg.metadata_target
        if not store_exists(target):
            return False
        freshness = check(cfg, inputs, open_store(target))
    except Exception:  # noqa: BLE001  (when in doubt, go through TFX)
        log.warning("up-to-date check failed; running through TFX", exc_info=True)
        return False
    if not freshness.up_to_date:
        log.info("running through TFX: %s", freshness.reason)
        return False
    last = freshness.record["result"]
    log.info("up to date with run %s: inputs, metadata and serving unchanged; "
             "its outputs are reused and TFX is not started", last["run_id"])
    result.status = "succeeded"
    result.up_to_date_with = last["run_id"]
    result.components = [
        ComponentRun(name=c["name"], status="cached", seconds=0.0, cached=True)
        for c in last["components"]
    ]
    result.pushed = {**last["pushed"], "new": False} if last.get("pushed") else None
    result.blessed = last.get("blessed")
    result.metrics = dict(last.get("metrics") or {})
    result.validation_failures = list(last.get("validation_failures") or [])
    result.span = last.get("span")
    result.baseline = last.get("baseline")
    return True


def state_before_run(cfg: PipelineConfig) -> StartState | None:
    """ML Metadata's and the base path's marks before the run starts (`during_run`); None if
    they cannot be read (the run is then not recorded)."""
    from pipeline.app.during_run import state_at_start

    try:
        return state_at_start(cfg)
    except Exception:  # noqa: BLE001
        log.warning("state before the run not read; the run will not be recorded",
                    exc_info=True)
        return None


def save_run_record(cfg: PipelineConfig, inputs: dict[str, str], result: RunResult,
                    start: StartState | None) -> None:
    """Records a successful run for the next one's check, unless someone else changed ML
    Metadata or the base path while it ran (the old record is then removed too); a failure to
    write is logged. Without a record the next run goes through TFX."""
    from components.metadata import open_store
    from pipeline.app.during_run import changes_by_others
    from pipeline.app.up_to_date import record_path, save_record

    try:
        store = open_store(cfg.metadata_target)
        data = result.to_json()
        others = ["the state before the run is unknown"] if start is None else (
            changes_by_others(cfg, store, data, start))
        if others:
            record_path(cfg).unlink(missing_ok=True)
            log.warning("run %s not recorded as up to date: changed during the run by someone "
                        "else: %s", result.run_id, "; ".join(others))
            return
        save_record(cfg, inputs, data, store)
    except Exception:  # noqa: BLE001  (without a record the next run goes through TFX)
        log.warning("could not save the run record", exc_info=True)
        with contextlib.suppress(OSError):
            record_path(cfg).unlink(missing_ok=True)
