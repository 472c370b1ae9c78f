"""`build_pipeline(cfg)`: the one and only definition of the pipeline, shared by every runner."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, PipelineConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
# The code whose change must retrain: the trainer's modules.
TRAINER_CODE = REPO_ROOT / "components" / "trainer"


# Node ids in run order, as the CLI lists them.
NODE_ORDER = [
    "ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
    "DataValidationGate", "Trainer", "baseline_resolver", "Evaluator", "ServingPusher",
]


def code_fingerprint(folder: Path = TRAINER_CODE) -> str:
    """sha256 of the trainer's source files, so that a code change busts the Trainer's cache."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(str(path.relative_to(folder)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def split_patterns(cfg: PipelineConfig) -> dict[str, str]:
    """Split name -> file pattern relative to the data root, with ImportExampleGen's {SPAN}."""
    d = cfg.data
    if d.splits.mode == "folders":
        return {
            name: f"{d.span_pattern}/{folder}/{d.file_pattern}"
            for name, folder in d.splits.folders.items()
        }
    return {"single_split": f"{d.span_pattern}/{d.file_pattern}"}


def trainer_custom_config(cfg: PipelineConfig) -> dict[str, Any]:
    return {
        "model": dataclasses.asdict(cfg.model),
        "trainer": dataclasses.asdict(cfg.trainer),
        "code_fingerprint": code_fingerprint(),
    }


def build_pipeline(
    cfg: PipelineConfig,
    *,
    metadata_connection_config=None,
    beam_pipeline_args: list[str] | None = None,
):
    """The TFX pipeline for `cfg`.

    ImportExampleGen -> StatisticsGen -> ExampleValidator (with the curated schema) -> gate ->
    Trainer -> Evaluator (against the baseline) -> ServingPusher.

    Args:
      cfg: a validated PipelineConfig.
      metadata_connection_config: MLMD connection (None: the orchestrator's default).
      beam_pipeline_args: Beam flags for the Beam-based components.

    Raises:
      ConfigError: the configured schema cannot be used for the configured model.
    """
    # Each component from its own module: `from tfx.components import ...` would run
    # tfx/components/__init__.py, which imports every standard component (Tuner, BulkInferrer,
    # InfraValidator, ...) for seconds of start-up that this pipeline does not use.
    from tfx.components.evaluator.component import Evaluator
    from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
    from tfx.components.example_validator.component import ExampleValidator
    from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
    from tfx.components.statistics_gen.component import StatisticsGen
    from tfx.components.trainer.component import Trainer
    from tfx.dsl.components.common.resolver import Resolver
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.proto import example_gen_pb2, range_config_pb2, trainer_pb2
    from tfx.types import Channel
    from tfx.types.standard_artifacts import Model, ModelBlessing

    from components.data_validation.component import DataValidationGate
    from components.evaluator.baseline import BaselineBeforeCandidateStrategy
    from components.evaluator.eval_config import EvalConfigError, Threshold, build_eval_config
    from components.pusher.component import ServingPusher
    from components.trainer.features import FeatureSpecError, load_schema, select_features

    schema_path = os.path.abspath(cfg.data.schema)
    where = cfg.sources[-1] if cfg.sources else "<config>"
    try:
        select_features(load_schema(schema_path), cfg.model.label, cfg.model.features,
                        cfg.model.task)
    except FeatureSpecError as e:
        raise ConfigError(f"{where}: model: {e} (schema {schema_path})") from None

    patterns = split_patterns(cfg)
    input_config = example_gen_pb2.Input(
        splits=[example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in patterns.items()]
    )
    output_config = None
    if cfg.data.splits.mode == "hash":
        output_config = example_gen_pb2.Output(
            split_config=example_gen_pb2.SplitConfig(
                splits=[
                    example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b)
                    for n, b in cfg.data.splits.hash_buckets.items()
                ]
            )
        )
    range_config = None
    if cfg.data.span is not None:
        range_config = range_config_pb2.RangeConfig(
            static_range=range_config_pb2.StaticRange(
                start_span_number=cfg.data.span, end_span_number=cfg.data.span
            )
        )
    example_gen = ImportExampleGen(
        input_base=os.path.abspath(cfg.data.root),
        input_config=input_config,
        output_config=output_config,
        range_config=range_config,
    )
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = ImportSchemaGen(schema_file=schema_path)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    gate = DataValidationGate(anomalies=example_validator.outputs["anomalies"])

    trainer = Trainer(
        run_fn="components.trainer.run_fn.run_fn",
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=trainer_pb2.TrainArgs(splits=["train"], num_steps=cfg.trainer.train_steps),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=cfg.trainer.eval_steps),
        custom_config=trainer_custom_config(cfg),
    )
    # Anomalies stop the run before any training.
    trainer.add_upstream_node(gate)

    baseline = Resolver(
        strategy_class=BaselineBeforeCandidateStrategy,
        candidate=trainer.outputs["model"],
        model=Channel(type=Model),
        model_blessing=Channel(type=ModelBlessing),
    ).with_id("baseline_resolver")

    try:
        eval_config = build_eval_config(
            label_key=cfg.model.label,
            task=cfg.model.task,
            metrics=cfg.evaluator.metrics,
            slices=cfg.evaluator.slices,
            thresholds=[Threshold(**dataclasses.asdict(t)) for t in cfg.evaluator.thresholds],
        )
    except EvalConfigError as e:
        raise ConfigError(f"{where}: evaluator: {e}") from None
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        eval_config=eval_config,
        example_splits=["eval"],
    )
    pusher = ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        base_path=os.path.abspath(cfg.pusher.base_path),
    )

    components = [
        example_gen, statistics_gen, schema_gen, example_validator, gate,
        trainer, baseline, evaluator, pusher,
    ]
    return tfx_pipeline.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=cfg.resolved_pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )


def beam_args(cfg: PipelineConfig) -> list[str]:
    """Beam DirectRunner flags from the profile."""
    return [
        "--runner=DirectRunner",
        f"--direct_running_mode={cfg.beam.direct_running_mode}",
        f"--direct_num_workers={cfg.beam.direct_num_workers}",
        *cfg.beam.extra_args,
    ]
