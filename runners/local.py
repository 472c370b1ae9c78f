"""Runs the pipeline locally: LocalDagRunner, ML Metadata in SQLite, Beam's DirectRunner."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime, timezone

from pipeline.app.run_result import ComponentRun, RunResult
from pipeline.config import PipelineConfig

# (component id, "running" | "finished", seconds since it started, its MLMD state once finished:
#  "succeeded" | "cached" | "failed" | ...)
ProgressCallback = Callable[[str, str, float, str], None]


def prepare_process_env() -> None:
    """Environment every process that imports TensorFlow here needs, set before the import.

    Keras 2 (tf_keras): MultiWorkerMirroredStrategy fails with Keras 3 on TF 2.16.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # TensorFlow's C++ start-up noise (CUDA factories on a machine without GPU) off the terminal.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def defer_tfx_components_init() -> None:
    """Makes `tfx.components`' __init__ run only when one of its names is asked for.

    TFX's own modules import submodules such as `tfx.components.evaluator.constants`; Python
    then runs `tfx/components/__init__.py`, which imports every standard component (Tuner with
    Keras 3, BulkInferrer, InfraValidator, ...): about 2.5 s of each run's start-up, measured,
    for components this pipeline does not use. The package is registered without running its
    __init__; the first attribute asked of it (`from tfx.components import Trainer`) runs it.
    """
    import importlib.util

    if "tfx.components" in sys.modules:
        return
    spec = importlib.util.find_spec("tfx.components")
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    state = {"loaded": False}

    def load_on_demand(name: str):
        if name.startswith("__") or state["loaded"]:
            raise AttributeError(name)
        state["loaded"] = True
        del module.__getattr__
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load_on_demand
    sys.modules["tfx.components"] = module


class _ProgressHandler(logging.Handler):
    """Turns LocalDagRunner's "Component X is running/finished." log lines into callbacks."""

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
        if record.msg not in ("Component %s is running.", "Component %s is finished."):
            return
        name = str(record.args[0]) if record.args else "?"
        if record.msg.endswith("running."):
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


def _node_state(cfg: PipelineConfig, run_id: str, name: str) -> str:
    """The MLMD state of node `name` in run `run_id` (e.g. cached), read as it finishes."""
    from pipeline.app.report import STATES, node_executions, open_store

    try:
        execution = node_executions(
            open_store(cfg.resolved_metadata_path), cfg.pipeline_name, run_id
        ).get(name)
    except Exception:  # noqa: BLE001  (a progress line must never break the run)
        return "finished"
    return STATES.get(execution.last_known_state, "finished") if execution else "succeeded"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _one_line(exc: BaseException) -> str:
    """The most specific, readable reason in an exception chain."""
    from components.data_check import DataCheckError
    from components.data_validation import AnomaliesFoundError
    from pipeline.config import ConfigError

    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, AnomaliesFoundError | DataCheckError | ConfigError):
            return str(e)
    root = chain[-1]
    text = str(root).strip().splitlines()[0] if str(root).strip() else ""
    return f"{type(root).__name__}: {text}" if text else type(root).__name__


def _setup_logging(log_file: str) -> logging.Handler:
    """Sends every library log line to the run's log file instead of the terminal."""
    from absl import logging as absl_logging

    os.makedirs(os.path.dirname(log_file), exist_ok=True)
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.removeHandler(absl_logging.get_absl_handler())
    for h in list(root.handlers):
        if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    absl_logging.set_verbosity(absl_logging.INFO)
    return handler


def gpus_visible() -> int:
    """NVIDIA GPUs this process may use, without starting TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        gpus = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0
    return min(gpus, len(visible.split(","))) if visible else gpus


def preflight(cfg: PipelineConfig) -> int:
    """Checks the configuration against this machine and the input files before anything
    starts; returns the span to read.

    Raises:
      ConfigError: NCCL asked for with no GPU visible.
      DataCheckError: naming the data root or the bad file.
    """
    from pipeline.config import ConfigError

    if cfg.trainer.distribution.communication == "nccl" and not gpus_visible():
        where = cfg.sources[-1] if cfg.sources else "<config>"
        raise ConfigError(
            f"{where}: trainer.distribution.communication: nccl needs a GPU, none is visible "
            "(use ring or auto)"
        )
    from components.data_check import check_input_files
    from pipeline.build import span_input_patterns
    from pipeline.spans import selected_span

    span = selected_span(cfg)
    check_input_files(os.path.abspath(cfg.data.root), span_input_patterns(cfg, span))
    return span


def run_local(
    cfg: PipelineConfig,
    *,
    run_id: str | None = None,
    on_progress: ProgressCallback | None = None,
    full: bool = False,
) -> RunResult:
    """Runs the whole pipeline once and reports what happened; never raises for a failed run.

    The MLMD store is SQLite at `cfg.resolved_metadata_path`; the full log goes to
    `<work_dir>/logs/<run_id>.log`. When nothing that could change the outcome changed since
    the last successful run (pipeline/up_to_date.py), that run's outputs are reported as
    reused without starting TFX, unless `full` (or `enable_cache: false`) asks for a pass
    through TFX, where each node meets TFX's own cache.
    """
    prepare_process_env()
    run_id = run_id or new_run_id()
    result = RunResult(
        run_id=run_id,
        status="failed",
        metadata_uri=cfg.resolved_metadata_path,
        pipeline_root=cfg.resolved_pipeline_root,
        log_file=os.path.abspath(os.path.join(cfg.work_dir, "logs", f"{run_id}.log")),
    )
    log_handler = _setup_logging(result.log_file)
    inputs = _input_fingerprint(cfg)
    if inputs and not full and cfg.enable_cache and _reuse_if_up_to_date(cfg, result, inputs):
        log_handler.flush()
        return result
    progress = _ProgressHandler(on_progress, lambda name: _node_state(cfg, run_id, name))
    logging.getLogger().addHandler(progress)
    try:
        result.span = preflight(cfg)
        _run_pipeline(cfg, run_id)
        result.status = "succeeded"
    except BaseException as e:  # noqa: BLE001  (Ctrl-C too: report, then re-raise below)
        logging.getLogger(__name__).error("run %s failed:\n%s", run_id, traceback.format_exc())
        failed_in = progress.current
        reason = _one_line(e)
        result.error = f"{failed_in}: {reason}" if failed_in else reason
        if failed_in:
            progress.seconds[failed_in] = time.monotonic() - progress.started[failed_in]
        if isinstance(e, KeyboardInterrupt):
            raise
    finally:
        logging.getLogger().removeHandler(progress)
        try:
            from pipeline.app.report import collect_report

            collect_report(cfg, result, progress.seconds)
        except Exception:  # noqa: BLE001  (a report problem must not hide the run's outcome)
            logging.getLogger(__name__).exception("could not read the run report from MLMD")
        if result.status == "succeeded" and inputs:
            _save_run_record(cfg, inputs, result)
        log_handler.flush()
    return result


def _input_fingerprint(cfg: PipelineConfig) -> dict[str, str] | None:
    """The run's inputs as they are before it starts; None if they cannot be read (the normal
    path then reports why)."""
    from pipeline.app.up_to_date import input_fingerprint
    from pipeline.spans import selected_span

    try:
        return input_fingerprint(cfg, selected_span(cfg))
    except Exception:  # noqa: BLE001
        logging.getLogger(__name__).info("inputs not fingerprinted", exc_info=True)
        return None


def _reuse_if_up_to_date(cfg: PipelineConfig, result: RunResult, inputs: dict[str, str]) -> bool:
    """Fills `result` from the last successful run and says True when nothing changed since."""
    from pipeline.app.report import open_store
    from pipeline.app.up_to_date import check

    log = logging.getLogger(__name__)
    if not os.path.exists(cfg.resolved_metadata_path):
        return False
    try:
        verdict = check(cfg, inputs, open_store(cfg.resolved_metadata_path))
    except Exception:  # noqa: BLE001  (when in doubt, go through TFX)
        log.warning("up-to-date check failed; running through TFX", exc_info=True)
        return False
    if not verdict.up_to_date:
        log.info("running through TFX: %s", verdict.reason)
        return False
    last = verdict.record["result"]
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
    return True


def _save_run_record(
    cfg: PipelineConfig, inputs: dict[str, str], result: RunResult
) -> None:
    from pipeline.app.report import open_store
    from pipeline.app.up_to_date import save_record

    try:
        save_record(cfg, inputs, result.to_json(), open_store(cfg.resolved_metadata_path))
    except Exception:  # noqa: BLE001  (without a record the next run goes through TFX)
        logging.getLogger(__name__).warning("could not save the run record", exc_info=True)


def _run_pipeline(cfg: PipelineConfig, run_id: str) -> None:
    defer_tfx_components_init()
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration import metadata
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    from pipeline.build import beam_args, build_pipeline

    os.makedirs(os.path.dirname(cfg.resolved_metadata_path), exist_ok=True)
    pipeline = build_pipeline(
        cfg,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            cfg.resolved_metadata_path
        ),
        beam_pipeline_args=beam_args(cfg),
    )
    ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    LocalDagRunner().run_with_ir(ir)
