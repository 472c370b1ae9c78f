"""The `beam` section: runner names as Beam reads them, each runner's settings and the flags
`pipeline.build.beam_args` makes of them, checked against Beam's own option parser and validator
(apache_beam.options), and the example overlays in pipeline/profiles/beam/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.build import beam_args
from pipeline.config import BEAM_RUNNERS, ConfigError, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "pipeline" / "profiles" / "beam"


def write(tmp_path, data: dict, name: str = "beam.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def error_of(**kwargs) -> str:
    with pytest.raises(ConfigError) as e:
        load_config(**kwargs)
    return str(e.value)


def beam_options(args: list[str]) -> dict:
    """What Beam's own parser reads from `args` (unknown flags are dropped by it)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(args).get_all_options(drop_default=True)


def beam_validation_errors(args: list[str]) -> list[str]:
    """Beam's PipelineOptionsValidator for the runner `args` name, as Beam runs it."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.options.pipeline_options_validator import PipelineOptionsValidator
    from apache_beam.runners.runner import create_runner

    options = PipelineOptions(args)
    runner = create_runner(options.view_as(StandardOptions).runner)
    return PipelineOptionsValidator(options, runner).validate()


# --- runner names ----------------------------------------------------------------------------


def test_the_known_runners_are_beams_own():
    from apache_beam.options.pipeline_options import StandardOptions

    assert list(BEAM_RUNNERS) == StandardOptions.KNOWN_RUNNER_NAMES
    assert list(BEAM_RUNNERS) == [p.rsplit(".", 1)[-1] for p in StandardOptions.ALL_KNOWN_RUNNERS]


@pytest.mark.parametrize("written, runner", [
    ("flink", "FlinkRunner"), ("Flink", "FlinkRunner"), ("FLINKRUNNER", "FlinkRunner"),
    ("SparkRunner", "SparkRunner"), ("spark", "SparkRunner"), ("dataflow", "DataflowRunner"),
    ("portable", "PortableRunner"), ("prism", "PrismRunner"), ("direct", "DirectRunner"),
])
def test_a_runner_is_named_as_beam_reads_it(tmp_path, written, runner):
    from apache_beam.runners.runner import create_runner

    settings = {
        "FlinkRunner": {"flink": {"flink_master": "[local]"}},
        "SparkRunner": {"spark": {"spark_master_url": "local[2]"}},
        "DataflowRunner": {"dataflow": {
            "project": "p-1", "region": "europe-west1", "temp_location": "gs://bkt/tmp",
            "sdk_container_image": "img:1"}},
    }.get(runner, {})
    roots = {"pipeline_root": "gs://bkt/root", "data": {"root": "gs://bkt/data"}} if (
        runner == "DataflowRunner") else {}
    cfg = load_config(config_file=write(tmp_path, {"beam": {"runner": written, **settings},
                                                   **roots}))
    assert cfg.beam.runner == runner
    # Beam itself reads what was written as the same runner (a DirectRunner is Beam's
    # SwitchingDirectRunner under its historical name).
    made = type(create_runner(written)).__name__
    assert made == runner or (runner, made) == ("DirectRunner", "SwitchingDirectRunner")


@pytest.mark.parametrize("written, hint", [
    ("Flnk", " (did you mean 'FlinkRunner'?)"), ("SparkRuner", " (did you mean 'SparkRunner'?)"),
    ("DataFlow Runner", " (did you mean 'DataflowRunner'?)"), ("Hadoop", ""),
    ("apache_beam.runners.portability.flink_runner.FlinkRunner", ""),
])
def test_a_runner_beam_does_not_know_is_refused_with_a_hint(tmp_path, written, hint):
    path = write(tmp_path, {"beam": {"runner": written}})
    assert error_of(config_file=path) == (
        f"{path}: beam.runner: {written!r} is not a runner Beam knows{hint}; expected one of: "
        + ", ".join(BEAM_RUNNERS))


def test_beam_itself_refuses_an_unknown_name():
    from apache_beam.runners.runner import create_runner

    with pytest.raises(ValueError, match="Unexpected pipeline runner: Flnk"):
        create_runner("Flnk")


def test_loading_a_cluster_runner_does_not_import_beam():
    code = (
        "import sys\n"
        "from pipeline.config import load_config\n"
        f"cfg = load_config('kubeflow', {str(EXAMPLES / 'flink.yaml')!r})\n"
        "assert cfg.beam.runner == 'FlinkRunner'\n"
        "assert 'apache_beam' not in sys.modules, 'Beam imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# --- the flags -------------------------------------------------------------------------------


def test_the_direct_runner_keeps_its_flags():
    assert beam_args(load_config()) == [
        "--runner=DirectRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]
    cfg = load_config(overrides={"beam": {"direct_running_mode": "multi_processing",
                                          "direct_num_workers": 4, "extra_args": ["--foo=1"]}})
    assert beam_args(cfg) == ["--runner=DirectRunner", "--direct_running_mode=multi_processing",
                              "--direct_num_workers=4", "--foo=1"]


def test_another_runner_gets_its_flags_and_not_the_direct_ones():
    cfg = load_config(overrides={"beam": {
        "runner": "SparkRunner", "direct_num_workers": 4,
        "spark": {"spark_master_url": "spark://master:7077"},
        "flink": {"flink_master": "unused:8081"},  # another runner's settings: kept, not passed
        "extra_args": ["--max_parallelism=8"]}})
    assert beam_args(cfg) == ["--runner=SparkRunner", "--environment_type=LOOPBACK",
                              "--spark_master_url=spark://master:7077", "--max_parallelism=8"]


def test_each_flag_is_one_beam_reads_with_that_value():
    cfg = load_config("kubeflow", EXAMPLES / "flink.yaml", overrides={"beam": {
        "extra_args": ["--flink_version=1.18"]}})
    args = beam_args(cfg)
    read = beam_options(args)
    for arg in args:
        key, value = arg[2:].split("=", 1)
        assert str(read[key]) == value, (key, read.get(key))


# --- the example overlays --------------------------------------------------------------------


EXPECTED = {
    "flink": [
        "--runner=FlinkRunner", "--job_endpoint=beam-flink-job-server.flink.svc:8099",
        "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
        "--flink_master=flink-jobmanager.flink.svc:8081", "--parallelism=4"],
    "spark": [
        "--runner=SparkRunner", "--job_endpoint=beam-spark-job-server.spark.svc:8099",
        "--environment_type=EXTERNAL", "--environment_config=localhost:50000",
        "--spark_master_url=spark://spark-master.spark.svc:7077"],
    "dataflow": [
        "--runner=DataflowRunner", "--project=my-project", "--region=europe-west1",
        "--temp_location=gs://my-bucket/tfx/beam/tmp",
        "--staging_location=gs://my-bucket/tfx/beam/staging",
        "--sdk_container_image=europe-west1-docker.pkg.dev/my-project/ml/tfx-pipeline-beam:latest",
        "--max_num_workers=10"],
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_each_example_overlay_gives_flags_beam_accepts(example):
    cfg = load_config("kubeflow", EXAMPLES / f"{example}.yaml")
    args = beam_args(cfg)
    assert args == EXPECTED[example]
    # dry_run: Beam's Dataflow checks would otherwise look at the buckets over the network.
    assert beam_validation_errors(args + ["--dry_run=True"]) == []


def test_beam_refuses_what_the_config_refuses():
    """A portable environment without its address: the config's rule is Beam's."""
    args = ["--runner=FlinkRunner", "--flink_master=[local]", "--environment_type=EXTERNAL"]
    assert any("environment" in e.lower() for e in beam_validation_errors(args))
    assert error_of(overrides={"beam": {"runner": "FlinkRunner", "flink": {
        "flink_master": "[local]", "environment_type": "EXTERNAL"}}}) == (
        "command line: beam.flink.environment_config: missing; the EXTERNAL environment needs "
        "the worker pool's host:port")


def test_the_runner_round_trips_through_a_config_file(tmp_path):
    cfg = load_config("kubeflow", EXAMPLES / "spark.yaml", overrides={"beam": {"runner": "spark"}})
    again = load_config(config_file=write(tmp_path, config_to_dict(cfg)))
    assert again.beam.runner == "SparkRunner"
    assert beam_args(again) == EXPECTED["spark"]


# --- settings a runner cannot run without ----------------------------------------------------


DATAFLOW = {"project": "p-1", "region": "europe-west1", "temp_location": "gs://bkt/tmp",
            "sdk_container_image": "img:1"}
GS_ROOTS = {"pipeline_root": "gs://bkt/root", "data": {"root": "gs://bkt/data"}}


@pytest.mark.parametrize("data, message", [
    ({"beam": {"runner": "FlinkRunner"}},
     "beam.flink.flink_master: missing; the FlinkRunner needs it"),
    ({"beam": {"runner": "SparkRunner"}},
     "beam.spark.spark_master_url: missing; the SparkRunner needs it"),
    ({"beam": {"runner": "SparkRunner", "spark": {
        "spark_master_url": "local[2]", "environment_type": "DOCKER"}}},
     "beam.spark.environment_config: missing; the DOCKER environment needs the image the "
     "workers run (Beam's own lacks TFX)"),
    ({"beam": {"runner": "FlinkRunner", "flink": {
        "flink_master": "[local]", "environment_config": "localhost:50000"}}},
     "beam.flink.environment_config: set, but the LOOPBACK environment reads none (use "
     "EXTERNAL, DOCKER or PROCESS, or leave it null)"),
    ({"beam": {"runner": "DataflowRunner", "dataflow": {"project": "p-1"}}, **GS_ROOTS},
     "beam.dataflow.region: missing; the DataflowRunner needs project, region, temp_location "
     "and sdk_container_image"),
    ({"beam": {"runner": "DataflowRunner", "dataflow": {**DATAFLOW,
                                                        "sdk_container_image": None}},
      **GS_ROOTS},
     "beam.dataflow.sdk_container_image: missing; the DataflowRunner needs project, region, "
     "temp_location and sdk_container_image"),
    ({"beam": {"runner": "DataflowRunner", "dataflow": DATAFLOW}},
     "pipeline_root: null (under work_dir): the DataflowRunner's workers read and write the "
     "steps' data there; expected a gs:// path"),
    ({"beam": {"runner": "DataflowRunner", "dataflow": DATAFLOW},
      "pipeline_root": "gs://bkt/root"},
     "data.root: data/penguins: the DataflowRunner's workers read and write the steps' data "
     "there; expected a gs:// path"),
    ({"beam": {"dataflow": {"temp_location": "/tmp/beam"}}},
     "beam.dataflow.temp_location: expected a gs://bucket/path (Dataflow's workers read and write "
     "it), got '/tmp/beam'"),
    ({"beam": {"dataflow": {"temp_location": "gs://bkt"}}},
     "beam.dataflow.temp_location: expected a gs://bucket/path (Dataflow's workers read and "
     "write it), got 'gs://bkt'"),
    ({"beam": {"dataflow": {"staging_location": "s3://b/staging"}}},
     "beam.dataflow.staging_location: expected a gs://bucket/path (Dataflow's workers read and "
     "write it), got 's3://b/staging'"),
    ({"beam": {"extra_args": ["--direct_num_workers=2", "--runner=FlinkRunner"]}},
     "beam.extra_args[1]: '--runner=FlinkRunner': set the runner as beam.runner"),
    ({"beam": {"flink": {"parallelism": 0}}},
     "beam.flink.parallelism: expected a positive integer or null, got 0"),
    ({"beam": {"spark": {"environment_type": "docker"}}},
     "beam.spark.environment_type: expected one of 'LOOPBACK', 'EXTERNAL', 'DOCKER', "
     "'PROCESS', got 'docker'"),
])
def test_settings_a_runner_cannot_run_with_are_refused(tmp_path, data, message):
    path = write(tmp_path, data)
    assert error_of(config_file=path) == f"{path}: {message}"


def test_a_complete_dataflow_section_is_accepted(tmp_path):
    cfg = load_config(config_file=write(tmp_path, {
        "beam": {"runner": "DataflowRunner", "dataflow": DATAFLOW}, **GS_ROOTS}))
    assert beam_args(cfg)[:2] == ["--runner=DataflowRunner", "--project=p-1"]
