"""The local runner: the pipeline on TFX's LocalDagRunner, ML Metadata in SQLite at
`cfg.resolved_metadata_path`, Beam's DirectRunner.

Everything around a run (preflight, the up-to-date check, progress, the report, the run
record) is `pipeline.app.run.run_pipeline`'s; this module only turns the built pipeline into a
LocalDagRunner run named `run_id`.
"""

from __future__ import annotations

from pipeline.config import PipelineConfig


def run(cfg: PipelineConfig, run_id: str) -> None:
    """Builds the pipeline for `cfg` and runs it in this process as run `run_id`.

    Raises:
      Exception: what the failed component raised (LocalDagRunner stops at the first).
    """
    from components.tf_process import defer_tfx_components_init

    defer_tfx_components_init()  # before the first TFX import
    from tfx.dsl.compiler import compiler, constants
    from tfx.orchestration.local.local_dag_runner import LocalDagRunner
    from tfx.orchestration.portable import runtime_parameter_utils

    from components.metadata import pipeline_connection_config
    from pipeline.build import beam_args, build_pipeline

    pipeline = build_pipeline(
        cfg,
        metadata_connection_config=pipeline_connection_config(cfg.resolved_metadata_path),
        beam_pipeline_args=beam_args(cfg),
    )
    # Compiled here, not `LocalDagRunner().run(pipeline)`, so that the run carries our run id.
    ir = compiler.Compiler().compile(pipeline)
    runtime_parameter_utils.substitute_runtime_parameter(
        ir, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id}
    )
    LocalDagRunner().run_with_ir(ir)
