"""The Kubeflow runner: `build_pipeline(cfg)` compiled by TFX's KubeflowV2DagRunner into a
Kubeflow Pipelines v2 package (a PipelineSpec as YAML) that `kfp.Client` uploads.

Every step runs the profile's image (`kubeflow.image`) with TFX's entry point, `python -m
tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path ...`.
Nothing of this machine goes into the package: the pipeline root, the data root and the serving
base path are cluster paths from the profile, the curated schema is the image's copy under
`kubeflow.project_dir` (`cluster_paths`). What changes per run is a runtime parameter with a
default (`RUNTIME_PARAMETERS`, `parameter_defaults`, `run_parameters` for kfp.Client's
`params`).

No TFX resolver is compiled (open-source KFP runs only container and importer executors): the
baseline is the StableBaseline step, which reads the base path's labels and release records
when it runs. It and ImportExampleGen read state that is not among their inputs (the base path;
the data root's newest span), so both are compiled with KFP's cache off (`UNCACHED_NODES`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from pipeline.config import ConfigError, PipelineConfig

# What kfp.Client uploads: .yaml/.yml (also .zip/.tar.gz archives of one, which this does
# not write). TFX writes any other name as a PipelineJob JSON, which kfp.Client refuses.
PACKAGE_SUFFIXES = (".yaml", ".yml")

# The package's runtime parameters (KFP pipeline inputs, all strings, each with a default from
# the profile: `parameter_defaults`); `pipeline.build.RUNTIME_INPUTS` says where each goes.
RUNTIME_PARAMETERS: dict[str, str] = {
    "data_root": "the data root the spans are read under (gs://..., s3://... or a mount)",
    "range_config": 'the spans to read, a TFX RangeConfig as JSON, e.g. {"static_range": '
                    '{"start_span_number": 3, "end_span_number": 3}}; "": the latest span',
    "train_args": 'the Trainer\'s TrainArgs as JSON, e.g. {"splits": ["train"], '
                  '"num_steps": 300}',
    "channel": "the release channel (canary, stable, ...): the tag, and the label it moves",
    "reason": "why this run was asked for (recorded with the release)",
    "requested_by": "who asked for it, user@host (recorded with the release)",
}

# Nodes KFP must not serve from its cache, because they read what is not among their inputs.
# KFP keys its cache on a task's parameters and input artifacts only: the baseline (the base
# path's stable version, moved by a promote or a rollback) and the newest span of the data root
# would stay those of the first cached run. A runtime parameter could not key them instead: a
# recurring run's parameters are fixed when it is created, and the submitter cannot always read
# the base path or the bucket. Their outputs are new each run, so the steps after them run too.
UNCACHED_NODES = ("ImportExampleGen", "StableBaseline")

# TFX's PipelineBuilder accepts no other pipeline name (Kubernetes resource names).
_PIPELINE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


class KubeflowError(ConfigError):
    """The configuration cannot be compiled for Kubeflow; the message names the key or file."""


@dataclass(frozen=True)
class ClusterPaths:
    """The paths as the steps see them on the cluster (`cluster_paths`)."""

    pipeline_root: str
    data_root: str
    schema_file: str
    base_path: str


def default_output(cfg: PipelineConfig) -> str:
    """Where `pipeline compile kubeflow` writes the package by default."""
    return os.path.join("kubeflow", f"{cfg.pipeline_name}.yaml")


def check_output_path(path: str) -> None:
    """Raises KubeflowError for a package name kfp.Client would not upload, a directory, or a
    place this process cannot write (checked before the build's seconds of imports)."""
    if not path.endswith(PACKAGE_SUFFIXES):
        raise KubeflowError(
            f"--output {path}: a Kubeflow package must end in .yaml or .yml (kfp.Client "
            "uploads .yaml, .yml, .zip and .tar.gz; this writes the YAML)")
    if os.path.isdir(path):
        raise KubeflowError(f"--output {path}: is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the folders compile_package would create
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise KubeflowError(f"--output {path}: cannot write under {parent}")


def _is_uri(path: str) -> bool:
    return "://" in path


def cluster_paths(cfg: PipelineConfig) -> ClusterPaths:
    """The profile's paths as the steps see them; refuses what no pod could use.

    - `pipeline_root`: set, and a URI (gs://, s3://, ...) or an absolute path (a volume every
      step mounts): each step runs in its own pod, where a relative path means nothing.
    - `data.root`: a URI or an absolute path; a relative one is the image's copy, under
      `kubeflow.project_dir` (the sample data).
    - `data.schema`: relative to the repository, read here (features, digest) and by the steps
      as the image's copy under `kubeflow.project_dir`: the schema travels in the image, so
      compiling needs no network and the digest compiled in is the image's file's.
    - `pusher.base_path`: an absolute path on a volume mounted in the StableBaseline,
      SignatureValidator and ServingPusher steps (and read by TF Serving): the serving code
      takes file locks and hard links, which object stores do not have.

    Raises:
      KubeflowError: naming the key, the value and what to give instead.
    """
    where = cfg.where
    project = cfg.kubeflow.project_dir
    root = cfg.pipeline_root
    if not root or not (_is_uri(root) or os.path.isabs(root)):
        raise KubeflowError(
            f"{where}: pipeline_root: {root!r}: give the pipeline root every step can reach "
            "(gs://bucket/..., s3://... or an absolute path on a shared volume)")
    data_root = cfg.data.root
    if not (_is_uri(data_root) or os.path.isabs(data_root)):
        data_root = f"{project}/{data_root.removeprefix('./')}"
    schema = cfg.data.schema
    if _is_uri(schema) or os.path.isabs(schema):
        raise KubeflowError(
            f"{where}: data.schema: {schema!r}: the steps read the schema from the image; give "
            "its path in the repository (e.g. data/schema/schema.pbtxt), which the image holds "
            f"under kubeflow.project_dir ({project})")
    base_path = cfg.pusher.base_path
    if _is_uri(base_path) or not os.path.isabs(base_path):
        raise KubeflowError(
            f"{where}: pusher.base_path: {base_path!r}: give an absolute path on a volume "
            "mounted in the pods (e.g. /mnt/serving/<model>): releases take file locks and "
            "hard links there, which an object store or a pod's own disk cannot keep")
    return ClusterPaths(
        pipeline_root=root.rstrip("/"),
        data_root=data_root.rstrip("/"),
        schema_file=f"{project}/{os.path.normpath(schema)}",
        base_path=base_path.rstrip("/"),
    )


def range_config_json(span: int | None) -> str:
    """The `range_config` parameter that reads `span` only ("" for the latest span)."""
    if span is None:
        return ""
    return json.dumps({"static_range": {"start_span_number": span, "end_span_number": span}})


def train_args_json(train_steps: int) -> str:
    """The `train_args` parameter for `train_steps` steps on the train split."""
    return json.dumps({"splits": ["train"], "num_steps": train_steps})


def parameter_defaults(cfg: PipelineConfig) -> dict[str, str]:
    """Each runtime parameter's default, from the profile (`RUNTIME_PARAMETERS`' order)."""
    return {
        "data_root": cluster_paths(cfg).data_root,
        "range_config": range_config_json(cfg.data.span),
        "train_args": train_args_json(cfg.trainer.train_steps),
        "channel": cfg.pusher.channel,
        "reason": "",
        "requested_by": "",
    }


def run_parameters(
    *,
    data_root: str | None = None,
    span: int | None = None,
    train_steps: int | None = None,
    channel: str | None = None,
    reason: str | None = None,
    requested_by: str | None = None,
) -> dict[str, str]:
    """kfp.Client's `params` for a run or a recurring run: the parameters given (the others
    keep the package's defaults).

    Raises:
      KubeflowError: a value the run would fail on, naming it.
    """
    from components.serving.errors import InvalidNameError
    from components.serving.names import validate_channel

    params: dict[str, str] = {}
    if data_root is not None:
        if not (_is_uri(data_root) or os.path.isabs(data_root)):
            raise KubeflowError(f"data_root: {data_root!r}: give a URI or an absolute path "
                                "(a pod's working directory is not yours)")
        params["data_root"] = data_root
    if span is not None:
        if isinstance(span, bool) or not isinstance(span, int) or span < 0:
            raise KubeflowError(f"span: expected an integer >= 0, got {span!r}")
        params["range_config"] = range_config_json(span)
    if train_steps is not None:
        if isinstance(train_steps, bool) or not isinstance(train_steps, int) or train_steps < 1:
            raise KubeflowError(f"train_steps: expected an integer >= 1, got {train_steps!r}")
        params["train_args"] = train_args_json(train_steps)
    if channel is not None:
        try:
            params["channel"] = validate_channel(channel)
        except InvalidNameError as e:
            raise KubeflowError(f"channel: {e}") from None
    if reason is not None:
        params["reason"] = reason
    if requested_by is not None:
        params["requested_by"] = requested_by
    return params


def compile_spec(cfg: PipelineConfig) -> dict[str, Any]:
    """The package's PipelineSpec (a dict, as kfp reads the YAML), compiled from
    `build_pipeline(cfg)` by TFX's KubeflowV2DagRunner, checked by parsing it into
    kfp-pipeline-spec's `PipelineSpec`.

    Raises:
      KubeflowError, ConfigError: naming the key.
    """
    if not _PIPELINE_NAME.fullmatch(cfg.pipeline_name):
        raise KubeflowError(
            f"{cfg.where}: pipeline_name: {cfg.pipeline_name!r}: Kubeflow takes lowercase "
            "letters, digits and '-' (at most 128, starting with a letter or digit)")
    paths = cluster_paths(cfg)
    defaults = parameter_defaults(cfg)
    from pipeline.config import check_against_schema

    check_against_schema(cfg)  # the repository's copy: the one the image holds

    from components.tf_process import defer_tfx_components_init

    defer_tfx_components_init()  # before the first TFX import
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    from tfx.orchestration import data_types
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner as v2

    from pipeline.build import ClusterInputs, beam_args, build_pipeline

    parameters = {name: data_types.RuntimeParameter(name=name, ptype=str, default=value)
                  for name, value in defaults.items()}
    pipeline = build_pipeline(
        cfg, beam_pipeline_args=beam_args(cfg),
        cluster=ClusterInputs(schema_file=paths.schema_file, parameters=parameters))
    # Spec 2.1: a YAML package with runtime parameters needs it (parameterType, not type).
    runner = v2.KubeflowV2DagRunner(v2.KubeflowV2DagRunnerConfig(
        default_image=cfg.kubeflow.image, use_pipeline_spec_2_1=True))
    spec = runner.run(pipeline, write_out=False)["pipelineSpec"]

    # TFX puts the defaults only into a PipelineJob's runtimeConfig, which a YAML package
    # does not hold: they go onto the pipeline's inputs, where kfp.Client and the UI read them.
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    if set(inputs) != set(RUNTIME_PARAMETERS):
        raise RuntimeError(f"compiled runtime parameters {sorted(inputs)}, expected "
                           f"{sorted(RUNTIME_PARAMETERS)}")
    for name, value in defaults.items():
        inputs[name].update(defaultValue=value, isOptional=True,
                            description=RUNTIME_PARAMETERS[name])
    for node in UNCACHED_NODES:
        spec["root"]["dag"]["tasks"][node]["cachingOptions"] = {}  # as kfp writes "off"
    spec["defaultPipelineRoot"] = paths.pipeline_root
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())  # strict: unknown fields fail
    return spec


def render_package(spec: dict[str, Any], sources: list[str]) -> str:
    """The package's YAML text: a comment naming the pipeline, its inputs and the files its
    configuration came from (by name: no local path goes into a package), then the
    PipelineSpec (one YAML document, as kfp writes it)."""
    import yaml

    names = ", ".join(os.path.basename(s) for s in sources) or "defaults"
    lines = ["# PIPELINE DEFINITION", f"# Name: {spec['pipelineInfo']['name']}",
             "# Written by `pipeline compile kubeflow` (TFX KubeflowV2DagRunner); compile "
             "again rather than edit.", f"# Configuration: {names}", "# Inputs:"]
    for name, p in sorted(spec["root"]["inputDefinitions"]["parameters"].items()):
        lines.append(f"#    {name}: str [Default: {p.get('defaultValue', '')!r}]")
    return "\n".join(lines) + "\n" + yaml.safe_dump(spec, sort_keys=True)


def compile_package(cfg: PipelineConfig, output_path: str) -> dict[str, Any]:
    """Compiles the pipeline for `cfg` into the package `output_path` (.yaml/.yml), written
    whole or not at all; returns what it holds: path, pipeline name, image, pipeline root,
    node ids (run order), each node's upstream nodes, runtime parameter defaults, the nodes
    compiled uncached.

    Raises:
      KubeflowError, ConfigError: a name or value the package cannot hold (naming the key).
      OSError: the package cannot be written.
    """
    check_output_path(output_path)
    spec = compile_spec(cfg)
    text = render_package(spec, [str(s) for s in cfg.sources])
    from components.serving.files import write_atomically

    path = os.path.abspath(output_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, text.encode())  # kfp.Client never uploads half a package
    return package_summary(spec, output_path)


def package_summary(spec: dict[str, Any], path: str) -> dict[str, Any]:
    """What `compile_package` returns, read from the compiled spec."""
    from pipeline.build import NODE_ORDER

    tasks = spec["root"]["dag"]["tasks"]
    image = {spec["deploymentSpec"]["executors"][f"{n}_executor"]["container"]["image"]
             for n in tasks}
    return {
        "path": path,
        "pipeline_name": spec["pipelineInfo"]["name"],
        "image": image.pop() if len(image) == 1 else sorted(image),
        "pipeline_root": spec["defaultPipelineRoot"],
        "nodes": [n for n in NODE_ORDER if n in tasks] + sorted(set(tasks) - set(NODE_ORDER)),
        "upstream": {n: sorted(t.get("dependentTasks", [])) for n, t in tasks.items()},
        "parameters": {n: p["defaultValue"] for n, p in
                       spec["root"]["inputDefinitions"]["parameters"].items()},
        "uncached": [n for n, t in tasks.items()
                     if not t.get("cachingOptions", {}).get("enableCache")],
    }
