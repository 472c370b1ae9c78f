"""The TFJob manifest (pipeline/compile_tfjob.py) and `pipeline compile tfjob` (no TensorFlow)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.compile_tfjob import (
    CONTAINER_NAME,
    TFJobError,
    render_tfjob,
    tfjob_name,
)
from pipeline.config import load_config

REPO = Path(__file__).resolve().parents[2]
JOB = "/etc/tfx-pipeline/job.json"


@pytest.fixture(scope="module")
def cfg():
    return load_config()


def render(cfg, **kw):
    args = {"workers": 3, "image": "registry.example.com/ml/tfx-pipeline:1.0",
            "job_spec_uri": JOB, **kw}
    return render_tfjob(cfg, **args)


def worker_spec(manifest):
    return manifest["spec"]["tfReplicaSpecs"]["Worker"]


def container(manifest):
    return worker_spec(manifest)["template"]["spec"]["containers"][0]


# --- structure -----------------------------------------------------------------------------


def test_kind_api_version_and_name(cfg):
    m = render(cfg)
    assert m["apiVersion"] == "kubeflow.org/v1"
    assert m["kind"] == "TFJob"
    assert m["metadata"]["name"] == "penguin-trainer"  # from pipeline_name: penguin


def test_only_worker_replicas_with_on_failure_restart(cfg):
    m = render(cfg, workers=4)
    # Worker 0 is the chief: a separate Chief or PS replica would be refused by the worker.
    assert list(m["spec"]["tfReplicaSpecs"]) == ["Worker"]
    spec = worker_spec(m)
    assert spec["replicas"] == 4
    assert spec["restartPolicy"] == "OnFailure"
    assert len(spec["template"]["spec"]["containers"]) == 1


def test_backoff_limit_is_the_configured_max_restarts(cfg):
    assert render(cfg)["spec"]["runPolicy"]["backoffLimit"] == 2
    other = load_config(overrides={"trainer": {"distribution": {"max_restarts": 5}}})
    assert render(other)["spec"]["runPolicy"]["backoffLimit"] == 5


def test_container_runs_the_worker_entrypoint(cfg):
    c = container(render(cfg))
    assert c["name"] == CONTAINER_NAME == "tensorflow"  # the name the TFJob operator requires
    assert c["image"] == "registry.example.com/ml/tfx-pipeline:1.0"
    assert c["command"] == ["python", "-m", "components.trainer.worker", JOB]
    assert c["ports"] == [{"containerPort": 2222, "name": "tfjob-port"}]


def test_container_environment_selects_keras_2_and_no_tf_config(cfg):
    env = {e["name"]: e["value"] for e in container(render(cfg))["env"]}
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert all(isinstance(v, str) for v in env.values())  # Kubernetes wants strings
    assert "TF_CONFIG" not in env  # the operator sets it per pod


def test_container_resources(cfg):
    c = container(render(cfg, cpu="4", memory="8Gi"))
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "8Gi"},
    }
    default = container(render(cfg))["resources"]
    assert default["requests"] == {"cpu": "2", "memory": "4Gi"}


def test_yaml_round_trip(cfg):
    m = render(cfg)
    text = yaml.safe_dump(m, sort_keys=False)
    assert yaml.safe_load(text) == m
    assert "!!python" not in text


def test_explicit_name_is_used(cfg):
    assert render(cfg, name="nightly-penguin")["metadata"]["name"] == "nightly-penguin"


@pytest.mark.parametrize(
    "pipeline_name, expected",
    [("penguin", "penguin-trainer"), ("My Pipeline_v2", "my-pipeline-v2-trainer"),
     ("42-model", "p-42-model-trainer"), ("tfx.pipeline", "tfx-pipeline-trainer")],
)
def test_name_derived_from_pipeline_name_is_dns_safe(pipeline_name, expected):
    assert tfjob_name(pipeline_name) == expected


def test_long_pipeline_name_is_shortened():
    name = tfjob_name("a" * 200)
    assert len(name) <= 48 and name.endswith("-trainer")


# --- refused -------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, -1, True])
def test_workers_below_one_is_refused(cfg, workers):
    with pytest.raises(TFJobError, match="workers: expected a positive integer"):
        render(cfg, workers=workers)


@pytest.mark.parametrize(
    "image", ["", "tfx pipeline", "img;rm -rf /", "Tfx-Pipeline:1", "img:", "$(whoami)",
              "img:tag\nkind: Pod"]
)
def test_unsafe_image_is_refused(cfg, image):
    with pytest.raises(TFJobError, match="image .*not a container image reference"):
        render(cfg, image=image)


@pytest.mark.parametrize("image", ["tfx-pipeline:latest", "localhost:5000/team/tfx:v1.2",
                                   "gcr.io/p/img@sha256:" + "a" * 64])
def test_image_references_are_accepted(cfg, image):
    assert container(render(cfg, image=image))["image"] == image


@pytest.mark.parametrize("name", ["Penguin", "penguin_trainer", "-x", "x" * 49, "a b", ""])
def test_unsafe_name_is_refused(cfg, name):
    with pytest.raises(TFJobError, match="name .*DNS label"):
        render(cfg, name=name)


@pytest.mark.parametrize("uri", ["gs://bucket/job.json", "job.json", "/a b/job.json"])
def test_job_spec_that_the_worker_cannot_open_is_refused(cfg, uri):
    with pytest.raises(TFJobError, match="job spec"):
        render(cfg, job_spec_uri=uri)


@pytest.mark.parametrize("kw", [{"cpu": "two"}, {"memory": "4 GB"}])
def test_bad_resource_quantity_is_refused(cfg, kw):
    with pytest.raises(TFJobError, match="not a Kubernetes quantity"):
        render(cfg, **kw)


# --- the command ---------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "compile", "tfjob", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_the_manifest_with_workers_from_the_config(tmp_path):
    overlay = tmp_path / "two.yaml"
    overlay.write_text(yaml.safe_dump({"pipeline_name": "churn",
                                       "trainer": {"distribution": {"workers": 2}}}))
    proc = run_cli("--config", str(overlay))
    assert proc.returncode == 0, proc.stderr
    m = yaml.safe_load(proc.stdout)
    assert m["kind"] == "TFJob"
    assert m["metadata"]["name"] == "churn-trainer"
    assert worker_spec(m)["replicas"] == 2
    assert container(m)["image"] == "tfx-pipeline:latest"


def test_cli_flags_and_output_file(tmp_path):
    out = tmp_path / "tfjob.yaml"
    proc = run_cli("--workers", "4", "--image", "ghcr.io/acme/tfx:2", "--job-spec",
                   "/mnt/job/job.json", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    m = yaml.safe_load(out.read_text())
    assert worker_spec(m)["replicas"] == 4
    assert container(m)["image"] == "ghcr.io/acme/tfx:2"
    assert container(m)["command"][-1] == "/mnt/job/job.json"
    assert [p.name for p in tmp_path.iterdir()] == ["tfjob.yaml"]  # no temporary left


@pytest.mark.parametrize(
    "args, words",
    [(["--workers", "0"], "workers"), (["--image", "bad image"], "image 'bad image'"),
     (["--name", "Bad_Name"], "name 'Bad_Name'"), (["--profile", "nope"], "unknown profile")],
)
def test_cli_refusals_are_one_line_and_exit_2(args, words):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr


def test_cli_refuses_a_bad_config_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer: {distribution: {workers: 0}}\n")
    proc = run_cli("--config", str(bad))
    assert proc.returncode == 2
    assert "trainer.distribution.workers" in proc.stderr


def test_compile_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "rc = main(['compile', 'tfjob', '--workers', '2'])\n"
        "heavy = [m for m in ('tensorflow', 'tfx', 'tf_keras') if m in sys.modules]\n"
        "assert rc == 0 and not heavy, (rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "kind: TFJob" in proc.stdout


# --- GPUs and MIG slices from the profile ----------------------------------------------------


def with_tfjob(tmp_path, tfjob: dict, **extra) -> str:
    """A config file giving `kubeflow.tfjob` (and any other top-level sections)."""
    path = tmp_path / "tfjob.yaml"
    path.write_text(yaml.safe_dump({"kubeflow": {"tfjob": tfjob}, **extra}))
    return str(path)


def test_profile_resources_and_mig_slice_go_into_requests_and_limits(tmp_path):
    cfg = load_config(config_file=with_tfjob(tmp_path, {
        "gpu_resource": "nvidia.com/mig-1g.10gb", "gpus_per_worker": 1,
        "cpu": "6", "memory": "24Gi"}))
    resources = container(render(cfg))["resources"]
    expected = {"cpu": "6", "memory": "24Gi", "nvidia.com/mig-1g.10gb": "1"}
    # An extended resource cannot be overcommitted: Kubernetes wants requests == limits.
    assert resources == {"requests": expected, "limits": expected}


def test_whole_gpus_per_worker(tmp_path):
    cfg = load_config(config_file=with_tfjob(tmp_path, {"gpus_per_worker": 2}))
    limits = container(render(cfg))["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "2"


def test_no_gpu_asked_for_by_default(cfg):
    resources = container(render(cfg))["resources"]
    assert resources["limits"] == resources["requests"] == {"cpu": "2", "memory": "4Gi"}


def test_image_comes_from_the_profile_and_arguments_override_it(tmp_path):
    cfg = load_config(overrides={"kubeflow": {"image": "ghcr.io/acme/tfx:7",
                                              "tfjob": {"cpu": "3", "memory": "5Gi"}}})
    c = container(render_tfjob(cfg, workers=1, job_spec_uri=JOB))
    assert c["image"] == "ghcr.io/acme/tfx:7"
    assert c["resources"]["limits"] == {"cpu": "3", "memory": "5Gi"}
    c = container(render_tfjob(cfg, workers=1, job_spec_uri=JOB, image="img:1", cpu="1",
                               memory="1Gi"))
    assert c["image"] == "img:1"
    assert c["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize("communication, gpus", [("nccl", 1), ("auto", 1), ("auto", 0),
                                                 ("ring", 0), ("ring", 1)])
def test_communication_the_workers_resources_can_give(tmp_path, communication, gpus):
    cfg = load_config(config_file=with_tfjob(
        tmp_path, {"gpus_per_worker": gpus},
        trainer={"distribution": {"communication": communication}}))
    assert worker_spec(render(cfg))["replicas"] == 3


def test_nccl_without_a_gpu_per_worker_is_refused(tmp_path):
    cfg = load_config(overrides={"trainer": {"distribution": {"communication": "nccl"}}})
    with pytest.raises(TFJobError, match=r"communication: nccl needs a GPU in each worker.*"
                                         r"gpus_per_worker is 0"):
        render(cfg)


@pytest.mark.parametrize("resource, words", [
    ("gpu", "'gpu' is not an extended resource name: expected domain/name"),
    ("nvidia.com/", "is not an extended resource name"),
    ("NVIDIA.com/gpu", "is not an extended resource name"),
    ("nvidia.com/mig 1g", "is not an extended resource name"),
    ("nvidia.com/gpu\nkind: Pod", "is not an extended resource name"),
    ("kubernetes.io/gpu", "the kubernetes.io domain holds Kubernetes' own resources"),
])
def test_cli_refuses_a_resource_name_kubernetes_would_refuse(tmp_path, resource, words):
    path = with_tfjob(tmp_path, {"gpu_resource": resource, "gpus_per_worker": 1})
    proc = run_cli("--config", path)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: kubeflow.tfjob.gpu_resource: ") and (
        words in lines[0]), lines[0]


def test_cli_refuses_several_mig_slices_per_worker(tmp_path):
    path = with_tfjob(tmp_path, {"gpu_resource": "nvidia.com/mig-2g.20gb", "gpus_per_worker": 2})
    proc = run_cli("--config", path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: {path}: kubeflow.tfjob.gpus_per_worker: 2 slices of 'nvidia.com/mig-2g.20gb': "
        "a CUDA process sees one MIG device, the others would sit idle; ask for 1 per worker "
        "and more workers")


def test_cli_refuses_nccl_without_gpus_in_one_line(tmp_path):
    path = tmp_path / "nccl.yaml"
    path.write_text("trainer: {distribution: {communication: nccl}}\n")
    proc = run_cli("--config", str(path))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: trainer.distribution.communication: nccl needs a GPU")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_takes_gpus_from_the_profile_and_flags_over_it(tmp_path):
    path = with_tfjob(tmp_path, {"gpu_resource": "nvidia.com/mig-1g.10gb",
                                 "gpus_per_worker": 1, "cpu": "4", "memory": "16Gi"})
    proc = run_cli("--config", path, "--memory", "12Gi")
    assert proc.returncode == 0, proc.stderr
    limits = container(yaml.safe_load(proc.stdout))["resources"]["limits"]
    assert limits == {"cpu": "4", "memory": "12Gi", "nvidia.com/mig-1g.10gb": "1"}


def test_cli_refuses_a_bad_quantity_in_the_profile(tmp_path):
    path = with_tfjob(tmp_path, {"memory": "4 GB"})
    proc = run_cli("--config", path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {path}: kubeflow.tfjob.memory: '4 GB' is not a "
                                   "Kubernetes quantity (e.g. 2, 500m, 4Gi)")
