"""`build_pipeline(cfg)`: the one and only definition of the pipeline, shared by every runner."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.code_fingerprint import code_fingerprint
from pipeline.config import ConfigError, PipelineConfig
from pipeline.spans import split_patterns

REPO_ROOT = Path(__file__).resolve().parent.parent
# The package each custom node runs (its code fingerprint: pipeline/code_fingerprint.py).
NODE_CODE = {
    "ImportSchemaGen": "components.schema",
    "DataValidationGate": "components.data_validation",
    "Trainer": "components.trainer",
    "SignatureValidator": "components.signature",
    "ServingPusher": "components.pusher",
    "StableBaseline": "components.baseline",
}


# Node ids in run order, as the CLI lists them.
NODE_ORDER = [
    "ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator",
    "DataValidationGate", "Trainer", "StableBaseline", "Evaluator", "SignatureValidator",
    "ServingPusher",
]


# What a runner compiling for a cluster may turn into runtime parameters, and where each goes:
# ImportExampleGen's input_base and range_config (a RangeConfig as JSON, "" for the latest
# span), the Trainer's train_args (a TrainArgs as JSON), the pusher's channel, and why and by
# whom the run was asked for (recorded in the release record's notes).
RUNTIME_INPUTS = ("data_root", "range_config", "train_args", "channel", "reason", "requested_by")


@dataclass(frozen=True)
class ClusterInputs:
    """What a build for a cluster puts in place of this machine's values (`runners.kubeflow`).

    Attributes:
      schema_file: the curated schema as the steps open it (in the image); the build still
        reads the local copy named by `data.schema` (features, digest).
      parameters: `RUNTIME_INPUTS` names -> TFX RuntimeParameters, in place of the constants.
    """

    schema_file: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.parameters) - set(RUNTIME_INPUTS))
        if unknown:
            raise ValueError(f"unknown runtime inputs {unknown}; known: {list(RUNTIME_INPUTS)}")


def resolve_path(path: str) -> str:
    """`path` from the working directory, or as it is when it is a URI (`gs://...`)."""
    return path if "://" in path else os.path.abspath(path)


def span_input_patterns(cfg: PipelineConfig, span: int) -> list[str]:
    """The file patterns, relative to the data root, that a run on `span` reads."""
    return [p.replace("{SPAN}", str(span)) for p in split_patterns(cfg).values()]


def trainer_custom_config(cfg: PipelineConfig) -> dict[str, Any]:
    """The Trainer's `custom_config`: the settings `run_fn` rebuilds (TrainerCustomConfig)."""
    from components.trainer.settings import TrainerCustomConfig

    return TrainerCustomConfig(
        model=cfg.model, trainer=cfg.trainer,
        code_fingerprint=code_fingerprint(NODE_CODE["Trainer"]),
    ).model_dump()


def stable_chain_key(base_path: str) -> str:
    """The baseline node's cache key: the base path's stable chain as this build reads it
    (`components/baseline`); "" for a remote base path (`gs://...`, compiled for a cluster):
    the node reads it when it runs, and a runner that compiles once must key it itself (e.g.
    a runtime parameter), or the orchestrator's cache keeps the first baseline.

    Raises:
      ConfigError: a label or release record of the base path is malformed (naming the file).
    """
    from components.baseline.choice import chain_to_json, stable_chain
    from components.serving import PushError, ReleaseError

    if "://" in base_path:
        return ""
    try:
        return chain_to_json(stable_chain(os.path.abspath(base_path)))
    except (ReleaseError, PushError) as e:
        raise ConfigError(f"pusher.base_path: {e}") from None


def build_pipeline(
    cfg: PipelineConfig,
    *,
    metadata_connection_config=None,
    beam_pipeline_args: list[str] | None = None,
    cluster: ClusterInputs | None = None,
):
    """The TFX pipeline for `cfg`.

    ImportExampleGen -> StatisticsGen -> ExampleValidator (with the curated schema) -> gate ->
    Trainer -> Evaluator (against the baseline: the stable version) -> SignatureValidator ->
    ServingPusher (needs both the Evaluator's blessing and the signature verdict).

    Args:
      cfg: a validated PipelineConfig.
      metadata_connection_config: MLMD connection (None: the orchestrator's default).
      beam_pipeline_args: Beam flags for the Beam-based components.
      cluster: for a build compiled to run elsewhere (Kubeflow): the schema's path there and
        the runtime parameters; ImportExampleGen then resolves its span in its executor.

    Raises:
      ConfigError: the configured schema cannot be used for the configured model.
    """
    # Each component from its own module: `from tfx.components import ...` would run
    # tfx/components/__init__.py, which imports every standard component (Tuner, BulkInferrer,
    # InfraValidator, ...) for seconds of start-up that this pipeline does not use.
    from tfx.components.evaluator.component import Evaluator
    from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
    from tfx.components.example_validator.component import ExampleValidator
    from tfx.components.statistics_gen.component import StatisticsGen
    from tfx.components.trainer.component import Trainer
    from tfx.orchestration import pipeline as tfx_pipeline
    from tfx.proto import example_gen_pb2, range_config_pb2, trainer_pb2

    from components.baseline.component import StableBaseline
    from components.data_validation.component import DataValidationGate
    from components.evaluator.eval_config import EvalConfigError, build_eval_config
    from components.pusher.component import ServingPusher
    from components.schema import schema_digest
    from components.schema.component import CuratedSchemaImporter
    from components.signature.component import SignatureValidator
    from components.trainer.features import FeatureSpecError, load_schema, select_features

    schema_path = os.path.abspath(cfg.data.schema)
    where = cfg.where
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
    runtime = dict(cluster.parameters) if cluster else {}
    example_gen = ImportExampleGen(
        input_base=runtime.get("data_root", resolve_path(cfg.data.root)),
        input_config=input_config,
        output_config=output_config,
        range_config=runtime.get("range_config", range_config),
    )
    # Split folders of GZIP files are taken as they are (`data.import_mode`). Every one of
    # these executors also resolves `{SPAN}` when no driver did: TFX does it in a driver that
    # only Vertex runs (a lifecycle hook that open-source KFP ignores).
    from tfx.dsl.components.base.executor_spec import BeamExecutorSpec

    from components.example_gen import executor as import_executors

    if cfg.data.import_mode != "beam":
        example_gen.executor_spec = BeamExecutorSpec(
            import_executors.LinkingImportExecutor if cfg.data.import_mode == "link"
            else import_executors.FileImportExecutor)
    elif cluster is not None:
        example_gen.executor_spec = BeamExecutorSpec(import_executors.SpanResolvingExecutor)
    # TFX caches it on the files' size and mtime: a rewrite keeping both came back cached. A
    # digest of their content in `custom_config` (which its executor ignores) is part of the
    # cache key. Only where the data is a local directory (others compile where it is not).
    if cluster is None and os.path.isdir(cfg.data.root):
        from google.protobuf import any_pb2, wrappers_pb2
        from tfx.utils import proto_utils

        from components.data_check import DataCheckError
        from components.data_check.fingerprint import CACHE_FILE, span_fingerprint
        from pipeline.spans import selected_span

        try:  # the cache written by the up-to-date check, read only: hashed once per run
            digest = span_fingerprint(
                os.path.abspath(cfg.data.root), span_input_patterns(cfg, selected_span(cfg)),
                os.path.join(cfg.resolved_pipeline_root, CACHE_FILE), update_cache=False)
        except (DataCheckError, OSError):
            digest = None  # no input: the pre-flight check reports it
        if digest is not None:
            packed = any_pb2.Any()
            packed.Pack(wrappers_pb2.StringValue(value=f"data-sha256:{digest}"))
            example_gen.exec_properties["custom_config"] = proto_utils.proto_to_json(
                example_gen_pb2.CustomConfig(custom_config=packed))
    stats_options = None
    if cfg.statistics.sample_rate is not None:
        from tensorflow_data_validation.statistics.stats_options import StatsOptions

        stats_options = StatsOptions(sample_rate=cfg.statistics.sample_rate)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"],
                                   stats_options=stats_options)
    # TFX's executor, reading GZIP tf.Examples through tf.data rather than Beam's Python reader.
    from components.statistics import executor as statistics_executor

    statistics_gen.executor_spec = BeamExecutorSpec(statistics_executor.Executor)
    # Not TFX's ImportSchemaGen, which is cached on the path: an edit in place was ignored.
    with open(schema_path, "rb") as f:
        schema_sha256 = schema_digest(f.read())
    schema_gen = CuratedSchemaImporter(
        schema_file=cluster.schema_file if cluster else schema_path, schema_sha256=schema_sha256,
        code_fingerprint=code_fingerprint(NODE_CODE["ImportSchemaGen"]),
    ).with_id("ImportSchemaGen")
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]
    )
    gate = DataValidationGate(
        anomalies=example_validator.outputs["anomalies"],
        statistics=statistics_gen.outputs["statistics"],
        schema=schema_gen.outputs["schema"],
        code_fingerprint=code_fingerprint(NODE_CODE["DataValidationGate"]),
    )

    trainer = Trainer(
        run_fn="components.trainer.run_fn.run_fn",
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        train_args=runtime.get("train_args", trainer_pb2.TrainArgs(
            splits=["train"], num_steps=cfg.trainer.train_steps)),
        eval_args=trainer_pb2.EvalArgs(splits=["eval"], num_steps=cfg.trainer.eval_steps),
        custom_config=trainer_custom_config(cfg),
    )
    # Anomalies stop the run before any training.
    trainer.add_upstream_node(gate)

    base_path = resolve_path(cfg.pusher.base_path)
    baseline = StableBaseline(
        candidate=trainer.outputs["model"],
        base_path=base_path,
        # Compiled for a cluster, the base path is read when the node runs (this machine cannot
        # see it), and the runner keeps the node out of the orchestrator's cache.
        stable_chain_json="" if cluster else stable_chain_key(cfg.pusher.base_path),
        # There, a volume that is not mounted would read as "nothing released yet": refused.
        mounted_volume=1 if cluster else 0,
        code_fingerprint=code_fingerprint(NODE_CODE["StableBaseline"]),
    )

    try:
        eval_config = build_eval_config(
            label_key=cfg.model.label,
            task=cfg.model.task,
            metrics=cfg.evaluator.metrics,
            slices=cfg.evaluator.slices,
            thresholds=cfg.evaluator.thresholds,
        )
    except EvalConfigError as e:
        raise ConfigError(f"{where}: evaluator: {e}") from None
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["baseline"],
        eval_config=eval_config,
        example_splits=["eval"],
    )
    # TFX's executor; the metrics of a whole batch at once where TFMA would go one example at
    # a time (components/evaluator/batched.py), stock TFMA for a metric it does not cover.
    from components.evaluator.executor import BatchedEvaluatorExecutor

    evaluator.executor_spec = BeamExecutorSpec(BatchedEvaluatorExecutor)
    validation = cfg.validation
    signature_validator = SignatureValidator(
        model=trainer.outputs["model"],
        examples=example_gen.outputs["examples"],
        # Not read: ties the verdict's cache to the stable version it is compared with.
        baseline_model=baseline.outputs["baseline"],
        base_path=base_path,
        contract_json=(
            json.dumps(validation.contract.model_dump(), sort_keys=True)
            if validation.contract is not None else ""
        ),
        allow_breaking_reason=(
            validation.allow_breaking_change.reason if validation.allow_breaking_change else ""
        ),
        sample_size=validation.sample_size,
        code_fingerprint=code_fingerprint(NODE_CODE["SignatureValidator"]),
    ).with_id("SignatureValidator")
    # After the Evaluator, as the pipeline reads; it runs even when the Evaluator did not
    # bless, so that a run reports every reason not to push.
    signature_validator.add_upstream_node(evaluator)
    pusher = ServingPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        signature_verdict=signature_validator.outputs["verdict"],
        evaluation=evaluator.outputs["evaluation"],
        examples=example_gen.outputs["examples"],
        base_path=base_path,
        model_name=cfg.pusher.resolved_model_name(cfg.pipeline_name),
        channel=runtime.get("channel", cfg.pusher.channel),
        batching_json=(
            json.dumps(cfg.pusher.batching, sort_keys=True) if cfg.pusher.batching else ""
        ),
        serving_json=cfg.pusher.serving.to_json(),
        code_fingerprint=code_fingerprint(NODE_CODE["ServingPusher"]),
        # Set only where a runtime parameter carries them: a local run records them in ML
        # Metadata instead (RunRequest), and leaves the pusher's cache key as it was.
        **{k: runtime[k] for k in ("reason", "requested_by") if k in runtime},
    )

    components = [
        example_gen, statistics_gen, schema_gen, example_validator, gate,
        trainer, baseline, evaluator, signature_validator, pusher,
    ]
    return tfx_pipeline.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=(resolve_path(cfg.pipeline_root) if cfg.pipeline_root
                       else cfg.resolved_pipeline_root),
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )


def beam_args(cfg: PipelineConfig) -> list[str]:
    """The Beam flags of the profile's runner (`beam.runner`: DirectRunner unless a profile
    points the Beam-based steps at Flink, Spark or Dataflow), then `beam.extra_args`."""
    return [*cfg.beam.runner_args(), *cfg.beam.extra_args]
