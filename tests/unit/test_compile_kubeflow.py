"""`pipeline compile kubeflow`: the package TFX's KubeflowV2DagRunner compiles from the one
`build_pipeline`, read back with kfp's own loaders and kfp-pipeline-spec's `PipelineSpec`;
its tasks, dependencies, runtime parameters, images and entry points; no resolver, no local
path; and compiled container commands executed for real, with an executor input built as
Kubeflow's driver builds it (`executor_input`), the venv's python standing for the image's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_config
from runners.kubeflow import (
    RUNTIME_PARAMETERS,
    KubeflowError,
    check_output_path,
    cluster_paths,
    compile_spec,
    parameter_defaults,
    run_parameters,
)

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
PROFILE_IMAGE = "registry.example.com/tfx-pipeline:latest"  # pipeline/profiles/kubeflow.yaml
CUSTOM_NODES = {  # node -> the project's executor class the step runs
    "ImportExampleGen": "components.example_gen.executor.FileImportExecutor",
    "StatisticsGen": "components.statistics.executor.Executor",
    "Evaluator": "components.evaluator.executor.BatchedEvaluatorExecutor",
    "ImportSchemaGen": "components.schema.component.CuratedSchemaImporter_Executor",
    "DataValidationGate": "components.data_validation.component.DataValidationGate_Executor",
    "StableBaseline": "components.baseline.component.StableBaseline_Executor",
    "SignatureValidator": "components.signature.component.SignatureValidator_Executor",
    "ServingPusher": "components.pusher.component.ServingPusher_Executor",
}


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "compile", "kubeflow", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def _overlay(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overlay.yaml"
    path.write_text(text)
    return path


# --- fast: what is refused, and the parameters, without compiling ----------------------------


def test_runtime_parameter_defaults_come_from_the_profile():
    cfg = load_config("kubeflow")
    assert parameter_defaults(cfg) == {
        "data_root": "gs://my-bucket/tfx/penguin/data",
        "range_config": "",  # data.span null: the latest span
        "train_args": json.dumps({"splits": ["train"], "num_steps": 300}),
        "channel": "canary",
        "reason": "",
        "requested_by": "",
    }
    assert list(parameter_defaults(cfg)) == list(RUNTIME_PARAMETERS)


def test_run_parameters_become_the_packages_parameters():
    assert run_parameters() == {}
    assert run_parameters(span=3, train_steps=50, channel="stable", reason="new data",
                          requested_by="ana@ws1", data_root="gs://b/data") == {
        "range_config": json.dumps({"static_range": {"start_span_number": 3,
                                                     "end_span_number": 3}}),
        "train_args": json.dumps({"splits": ["train"], "num_steps": 50}),
        "channel": "stable", "reason": "new data", "requested_by": "ana@ws1",
        "data_root": "gs://b/data"}
    # The JSON is what TFX parses into the protos: RangeConfig and TrainArgs.
    from google.protobuf import json_format
    from tfx.proto import range_config_pb2, trainer_pb2

    params = run_parameters(span=3, train_steps=50)
    rc = json_format.Parse(params["range_config"], range_config_pb2.RangeConfig())
    assert (rc.static_range.start_span_number, rc.static_range.end_span_number) == (3, 3)
    assert json_format.Parse(params["train_args"], trainer_pb2.TrainArgs()).num_steps == 50


@pytest.mark.parametrize("kwargs, message", [
    ({"span": -1}, "span: expected an integer >= 0, got -1"),
    ({"span": True}, "span: expected an integer >= 0, got True"),
    ({"train_steps": 0}, "train_steps: expected an integer >= 1, got 0"),
    ({"data_root": "data/penguins"}, "data_root: 'data/penguins': give a URI or an absolute"),
    ({"channel": "Bad Channel"}, "channel: "),
])
def test_run_parameters_refuse_what_the_run_would_fail_on(kwargs, message):
    with pytest.raises(KubeflowError) as e:
        run_parameters(**kwargs)
    assert str(e.value).startswith(message)


def test_cluster_paths_of_the_profile():
    paths = cluster_paths(load_config("kubeflow"))
    assert paths.pipeline_root == "gs://my-bucket/tfx/penguin/pipeline_root"
    assert paths.data_root == "gs://my-bucket/tfx/penguin/data"
    assert paths.schema_file == "/app/data/schema/schema.pbtxt"  # the image's copy
    assert paths.base_path == "/mnt/serving/penguin"


def test_relative_data_root_is_the_images_copy():
    cfg = load_config("kubeflow", overrides={"data": {"root": "./data/penguins"},
                                             "kubeflow": {"project_dir": "/srv/app/"}})
    paths = cluster_paths(cfg)
    assert paths.data_root == "/srv/app/data/penguins"
    assert paths.schema_file == "/srv/app/data/schema/schema.pbtxt"


@pytest.mark.parametrize("overrides, message", [
    ({"pipeline_root": "var/pipeline_root"},
     "pipeline_root: 'var/pipeline_root': give the pipeline root every step can reach"),
    ({"pusher": {"base_path": "gs://my-bucket/serving"}},
     "pusher.base_path: 'gs://my-bucket/serving': give an absolute path on a volume"),
    ({"pusher": {"base_path": "var/serving/penguin"}},
     "pusher.base_path: 'var/serving/penguin': give an absolute path on a volume"),
    ({"data": {"schema": "gs://my-bucket/schema.pbtxt"}},
     "data.schema: 'gs://my-bucket/schema.pbtxt': the steps read the schema from the image"),
])
def test_paths_no_pod_could_use_are_refused_naming_the_key(overrides, message):
    cfg = load_config("kubeflow", overrides=overrides, check_schema=False)
    with pytest.raises(KubeflowError) as e:
        cluster_paths(cfg)
    assert str(e.value).startswith(f"command line: {message}")


def test_the_local_profiles_paths_are_refused_for_a_package():
    with pytest.raises(KubeflowError) as e:
        cluster_paths(load_config("local"))
    assert "pipeline_root: None: give the pipeline root" in str(e.value)


def test_a_pipeline_name_kubeflow_refuses_is_named_before_building():
    cfg = load_config("kubeflow", overrides={"pipeline_name": "Penguin_v2"})
    with pytest.raises(KubeflowError) as e:
        compile_spec(cfg)
    assert str(e.value) == (
        "command line: pipeline_name: 'Penguin_v2': Kubeflow takes lowercase letters, digits "
        "and '-' (at most 128, starting with a letter or digit)")


def test_project_dir_must_be_absolute():
    with pytest.raises(ConfigError) as e:
        load_config("kubeflow", overrides={"kubeflow": {"project_dir": "app"}})
    assert "kubeflow.project_dir" in str(e.value)
    assert "expected an absolute path inside the image" in str(e.value)


def test_output_names_kfp_client_would_not_upload_are_refused(tmp_path):
    for name in ("penguin.json", "penguin.yaml.txt", "penguin"):
        with pytest.raises(KubeflowError) as e:
            check_output_path(str(tmp_path / name))
        assert "must end in .yaml or .yml" in str(e.value)
    check_output_path(str(tmp_path / "new" / "folder" / "penguin.yml"))  # created on write


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "error: unknown profile 'nope'; known profiles: "),
    (["--output", "{tmp}/penguin.json"], "error: --output {tmp}/penguin.json: a Kubeflow "
     "package must end in .yaml or .yml"),
    (["--output", "{tmp}/a-file/penguin.yaml"], "error: --output {tmp}/a-file/penguin.yaml: "
     "cannot write under {tmp}/a-file"),
    (["--output", "{tmp}/out.yaml", "--config", "{tmp}/overlay.yaml"],
     "error: {tmp}/overlay.yaml: pusher.base_path: 'gs://b/serving': give an absolute path"),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path, args, message):
    (tmp_path / "a-file").write_text("not a folder")
    _overlay(tmp_path, "pusher: {base_path: 'gs://b/serving'}\n")
    args = [a.format(tmp=tmp_path) for a in args]
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(tmp=tmp_path)), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "overlay.yaml"]


# --- slow: the compiled package (TFX and TensorFlow imports: ~20 s) ----------------------------


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> tuple[Path, dict]:
    """The package `pipeline compile kubeflow` writes from the kubeflow profile, and the
    summary it prints with --json."""
    out = tmp_path_factory.mktemp("kfp") / "kubeflow" / "penguin.yaml"
    proc = _cli("--output", str(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def spec(package):
    """The package parsed strictly into kfp-pipeline-spec's PipelineSpec (no unknown field)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    with open(package[0]) as f:
        data = yaml.safe_load(f)
    return json_format.ParseDict(data, pipeline_spec_pb2.PipelineSpec())


@pytest.mark.slow
def test_kfps_own_loader_reads_the_package(package, spec):
    from kfp import components

    component = components.load_component_from_file(str(package[0]))
    assert component.pipeline_spec == spec  # kfp reads what kfp-pipeline-spec parses
    assert spec.pipeline_info.name == "penguin"
    assert spec.schema_version == "2.1.0"  # a YAML package with runtime parameters needs it
    assert spec.sdk_version == "tfx-1.16.0"
    # kfp.Client's upload takes the package as it is written (suffix and content).
    assert package[0].suffix == ".yaml"
    assert set(component.component_spec.inputs) == set(RUNTIME_PARAMETERS)


@pytest.mark.slow
def test_every_node_is_a_task_with_the_definitions_dependencies(package, spec):
    from pipeline.build import NODE_ORDER, build_pipeline

    tasks = spec.root.dag.tasks
    assert sorted(tasks) == sorted(NODE_ORDER)
    assert package[1]["nodes"] == NODE_ORDER
    # The same definition, built for this machine: the same graph.
    local = build_pipeline(load_config("local"))
    expected = {c.id: sorted(n.id for n in c.upstream_nodes) for c in local.components}
    assert {n: sorted(t.dependent_tasks) for n, t in tasks.items()} == expected
    assert package[1]["upstream"] == expected


@pytest.mark.slow
def test_no_resolver_nor_importer_only_containers_of_the_profiles_image(spec):
    from tfx.utils import import_utils

    executors = spec.deployment_spec["executors"]
    assert sorted(executors) == sorted(f"{n}_executor" for n in spec.root.dag.tasks)
    for label, executor in executors.items():
        assert set(executor) == {"container"}, label  # no "resolver", no "importer"
        container = executor["container"]
        assert container["image"] == PROFILE_IMAGE, label
        assert list(container["command"]) == ENTRY_POINT, label
        args = list(container["args"])
        assert args[:4] == ["--executor_class_path", args[1], "--json_serialized_invocation_args",
                            "{{$}}"], label
        import_utils.import_class_by_path(args[1])  # the image's code has it
    for node, path in CUSTOM_NODES.items():
        assert executors[f"{node}_executor"]["container"]["args"][1] == path


@pytest.mark.slow
def test_runtime_parameters_have_their_defaults_and_reach_their_nodes(spec):
    params = spec.root.input_definitions.parameters
    assert {n: p.default_value.string_value for n, p in params.items()} == parameter_defaults(
        load_config("kubeflow"))
    from kfp.pipeline_spec import pipeline_spec_pb2

    string = pipeline_spec_pb2.ParameterType.STRING
    assert all(p.is_optional and p.parameter_type == string for p in params.values())
    tasks = spec.root.dag.tasks

    def wired(node: str) -> dict[str, str]:
        return {k: v.component_input_parameter for k, v in tasks[node].inputs.parameters.items()
                if v.component_input_parameter}

    assert wired("ImportExampleGen") == {"input_base": "data_root",
                                         "range_config": "range_config"}
    assert wired("Trainer") == {"train_args": "train_args"}
    assert wired("ServingPusher") == {"channel": "channel", "reason": "reason",
                                      "requested_by": "requested_by"}
    assert set().union(*(wired(n).values() for n in tasks)) == set(RUNTIME_PARAMETERS)


@pytest.mark.slow
def test_the_pusher_consumes_the_evaluators_blessing_not_a_signature_verdict(spec):
    artifacts = spec.root.dag.tasks["ServingPusher"].inputs.artifacts
    blessing = artifacts["model_blessing"].task_output_artifact
    assert (blessing.producer_task, blessing.output_artifact_key) == ("Evaluator", "blessing")
    verdict = artifacts["signature_verdict"].task_output_artifact
    assert (verdict.producer_task, verdict.output_artifact_key) == ("SignatureValidator",
                                                                    "verdict")
    evaluator = spec.root.dag.tasks["Evaluator"].inputs.artifacts["baseline_model"]
    assert evaluator.task_output_artifact.producer_task == "StableBaseline"


@pytest.mark.slow
def test_the_baseline_and_the_span_are_read_each_run_never_cached(package, spec):
    tasks = spec.root.dag.tasks
    uncached = {n for n, t in tasks.items() if not t.caching_options.enable_cache}
    assert uncached == {"StableBaseline", "ImportExampleGen"}
    assert sorted(package[1]["uncached"]) == sorted(uncached)
    # The chain is not compiled in: the step reads the base path when it runs.
    baseline = tasks["StableBaseline"].inputs.parameters
    assert baseline["stable_chain_json"].runtime_value.constant.string_value == ""
    assert baseline["base_path"].runtime_value.constant.string_value == "/mnt/serving/penguin"


@pytest.mark.slow
def test_no_local_path_in_the_package(package, spec):
    from components.schema import schema_digest

    text = package[0].read_text()
    for local in (str(REPO), str(package[0].parent.parent), os.getcwd(), "/tmp/"):
        assert local not in text, local
    assert spec.default_pipeline_root == "gs://my-bucket/tfx/penguin/pipeline_root"
    schema = spec.root.dag.tasks["ImportSchemaGen"].inputs.parameters
    assert schema["schema_file"].runtime_value.constant.string_value == (
        "/app/data/schema/schema.pbtxt")
    # The digest compiled in is the repository's schema's, the file the image holds.
    digest = schema_digest((REPO / "data/schema/schema.pbtxt").read_bytes())
    assert schema["schema_sha256"].runtime_value.constant.string_value == digest


# --- slow: compiled container commands run for real ----------------------------------------------


def executor_input(spec, node: str, pipeline_root: str, output_file: str, *,
                   inputs: dict[str, str] | None = None,
                   params: dict[str, str] | None = None) -> dict:
    """The ExecutorInput Kubeflow's driver hands a task's container in place of `{{$}}`: the
    task's parameters (constants from the spec, pipeline inputs from the run's `params` or
    their defaults), its input artifacts (`inputs`: key -> the producer's output uri), one
    output artifact per output under <pipeline_root>/<task>/<uuid>/<key>, and the file the
    executor writes its output metadata to (KFP's driver: `provisionOutputs`)."""
    from google.protobuf import json_format

    task = spec.root.dag.tasks[node]
    component = spec.components[task.component_ref.name]
    run = {n: p.default_value.string_value for n, p in
           spec.root.input_definitions.parameters.items()} | (params or {})
    values = {}
    for key, p in task.inputs.parameters.items():
        if p.component_input_parameter:
            values[key] = run[p.component_input_parameter]
        else:
            values[key] = json_format.MessageToDict(p.runtime_value.constant)
    salt = uuid.uuid4().hex
    artifacts = {}
    for key, uri in (inputs or {}).items():
        producer = task.inputs.artifacts[key].task_output_artifact.producer_task
        artifacts[key] = {"artifacts": [{
            "name": f"{producer}-{key}-{salt}", "uri": uri, "metadata": {},
            "type": json_format.MessageToDict(
                component.input_definitions.artifacts[key].artifact_type)}]}
    outputs = {key: {"artifacts": [{
        "uri": f"{pipeline_root}/{node}/{salt}/{key}", "metadata": {},
        "type": json_format.MessageToDict(a.artifact_type)}]}
        for key, a in component.output_definitions.artifacts.items()}
    return {"inputs": {"parameterValues": values, "artifacts": artifacts},
            "outputs": {"artifacts": outputs, "outputFile": output_file}}


def run_container(spec, node: str, invocation: dict) -> tuple[subprocess.CompletedProcess,
                                                                dict]:
    """The task's compiled command and args, `{{$}}` replaced by `invocation`, run in the
    repository (the image's working directory) with this venv's python as the image's; the
    ExecutorOutput it wrote, parsed strictly."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    json_format.ParseDict(invocation, pipeline_spec_pb2.ExecutorInput())  # a valid one
    label = spec.components[spec.root.dag.tasks[node].component_ref.name].executor_label
    container = spec.deployment_spec["executors"][label]["container"]
    argv = [a.replace("{{$}}", json.dumps(invocation)) for a in
            list(container["command"]) + list(container["args"])]
    assert argv[0] == "python"
    proc = subprocess.run([sys.executable, *argv[1:]], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    with open(invocation["outputs"]["outputFile"]) as f:
        output = json_format.Parse(f.read(), pipeline_spec_pb2.ExecutorOutput())
    return proc, json_format.MessageToDict(output)


@pytest.mark.slow
def test_the_compiled_stable_baseline_step_runs_and_outputs_the_stable_version(tmp_path):
    """StableBaseline's container command, as compiled, on a base path (the volume, here a
    folder) holding a stable version and a newer canary: the step writes the stable version
    as its Model artifact, and says so in the output metadata Kubeflow reads."""
    from components.serving import ReleaseRequest, promote, release_version
    from runners.kubeflow import compile_spec
    from tests.unit.test_release import make_model

    base = tmp_path / "volume" / "serving" / "penguin"
    for seed in (1, 2):
        release_version(str(base), ReleaseRequest(
            model_dir=make_model(tmp_path / "released", f"m{seed}", seed),
            model_name="penguin"))
        if seed == 1:
            promote(str(base), "canary")  # v1 stable, v2 the canary
    cfg = load_config("kubeflow", _overlay(tmp_path, f"pusher: {{base_path: '{base}'}}\n"))
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    spec = json_format.ParseDict(compile_spec(cfg), pipeline_spec_pb2.PipelineSpec())
    root = tmp_path / "pipeline_root"
    candidate = root / "Trainer" / "run1" / "model"
    Path(make_model(candidate, "Format-Serving", 3))  # the Trainer's output: a third model
    invocation = executor_input(spec, "StableBaseline", str(root),
                                str(tmp_path / "kfp_outputs" / "output_metadata.json"),
                                inputs={"candidate": str(candidate)})
    _, output = run_container(spec, "StableBaseline", invocation)

    [baseline] = output["artifacts"]["baseline"]["artifacts"]
    out_uri = invocation["outputs"]["artifacts"]["baseline"]["artifacts"][0]["uri"]
    assert baseline["uri"] == out_uri
    meta = baseline["metadata"]
    assert (meta["baseline_kind"], meta["baseline_version"]) == ("stable", 1.0)
    assert meta["baseline_tag"].startswith("canary-v1-")
    assert json.loads(meta["stable_chain"]) == [1]
    served = base / "1"
    written = Path(out_uri) / "Format-Serving"
    files = sorted(str(p.relative_to(served)) for p in served.rglob("*") if p.is_file())
    assert files and files == sorted(
        str(p.relative_to(written)) for p in written.rglob("*") if p.is_file())
    for name in files:
        assert (written / name).read_bytes() == (served / name).read_bytes()


@pytest.mark.slow
def test_the_compiled_example_gen_step_resolves_the_span_without_tfxs_driver(spec, tmp_path):
    """ImportExampleGen's container command alone (open-source KFP runs no preCacheCheck
    hook): with the run's data_root parameter, the newest span is found and imported; with
    range_config naming span 1, span 1."""
    data_root = str(REPO / "data" / "penguins")
    spans = sorted(int(p.name.split("-")[1]) for p in Path(data_root).glob("span-*"))
    root = tmp_path / "pipeline_root"
    for params, span in (({"data_root": data_root}, spans[-1]),
                         (run_parameters(data_root=data_root, span=spans[0]), spans[0])):
        out = tmp_path / f"kfp_outputs_{span}" / "output_metadata.json"
        invocation = executor_input(spec, "ImportExampleGen", str(root), str(out),
                                    params=params)
        _, output = run_container(spec, "ImportExampleGen", invocation)
        [examples] = output["artifacts"]["examples"]["artifacts"]
        # As TFX's driver records it: a custom property, which TFX's Kubeflow translation
        # prefixes (Examples also has a `span` property) and reads back the same way.
        assert examples["metadata"]["custom:span"] == float(span)
        assert examples["metadata"]["input_fingerprint"].startswith("split:")
        uri = Path(examples["uri"])
        for split in ("train", "eval"):
            assert list((uri / f"Split-{split}").glob("*.gz")), split
