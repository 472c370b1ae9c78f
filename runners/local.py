"""The local runner: the pipeline on TFX's LocalDagRunner, ML Metadata at `cfg.metadata_target`
(a SQLite file, or a MySQL/MariaDB server), Beam's DirectRunner.

Everything around a run (preflight, the up-to-date check, progress, the report, the run
record) is `pipeline.app.run.run_pipeline`'s; this module only turns the built pipeline into a
LocalDagRunner run named `run_id`, whole or partial (`runners.partial`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.config import PipelineConfig

if TYPE_CHECKING:
    from runners.partial import PartialRun


def run(cfg: PipelineConfig, run_id: str, *, partial: PartialRun | None = None) -> None:
    """Builds the pipeline for `cfg` and runs it in this process as run `run_id`; with
    `partial`, only its nodes, on top of the latest run's outputs (`runners.partial`).

    Raises:
      ConfigError: a partial run with nothing to run or nothing to reuse.
      Exception: what the failed component raised (LocalDagRunner stops at the first).
    """
    from components.tf_process import defer_tfx_components_init

    defer_tfx_components_init()  # before the first TFX import
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    from components.metadata import pipeline_connection_config
    from pipeline.build import beam_args, build_pipeline
    from runners.beam_package import skip_tfx_package_for_local_beam

    skip_tfx_package_for_local_beam()
    pipeline = build_pipeline(
        cfg,
        metadata_connection_config=pipeline_connection_config(cfg.metadata_target),
        beam_pipeline_args=beam_args(cfg),
    )
    # Compiled here, not `LocalDagRunner().run(pipeline)`, so that the run carries our run id.
    ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    if partial is not None:
        _mark_partial_run(cfg, run_id, ir, partial)
    LocalDagRunner().run_with_ir(ir)  # runs a marked IR's selection, snapshot included


def _mark_partial_run(cfg: PipelineConfig, run_id: str, ir, partial: PartialRun) -> None:
    from components.metadata import open_store, store_exists
    from runners.partial import check_reusable, mark_pipeline, required_nodes

    mark_pipeline(ir, partial)
    target = cfg.metadata_target
    store = open_store(target) if store_exists(target) else None
    check_reusable(store, cfg.pipeline_name, run_id, partial, required_nodes(ir),
                   cfg.metadata_uri)
