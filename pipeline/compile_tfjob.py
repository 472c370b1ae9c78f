"""``pipeline compile tfjob``: a Kubeflow TFJob manifest that trains with N workers.

Each worker pod runs the trainer's worker entrypoint (``python -m components.trainer.worker
JOB.json``); the TFJob operator gives every pod a ``TF_CONFIG`` naming the ``Worker`` replicas
(worker 0 is the chief, which is what ``components/trainer/cluster.py`` expects: no separate
chief job). The job file is a ``TrainJob`` as JSON (``components/trainer/settings.py``), as the
Trainer writes it to ``job.json`` in its run directory; it must be readable inside the container
(the worker opens it as a local path), e.g. a mounted ConfigMap.

The profile's ``kubeflow`` section gives the image and ``kubeflow.tfjob`` each worker's CPU,
memory and GPUs: an extended resource such as ``nvidia.com/gpu`` or a MIG slice
(``nvidia.com/mig-1g.10gb``), requested and limited alike. Flags override image, CPU and memory.
The manifest must agree with ``trainer.distribution.communication``: NCCL without a GPU in each
worker is refused here rather than by every pod at start-up.

Importing this module is cheap (argparse and re): the CLI registers the command from it, and
rendering needs only the configuration and PyYAML, never TensorFlow.
Exit codes: 0 done, 2 refused (bad configuration, workers < 1, unsafe image, name or path).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any

from components.tf_process import LEGACY_KERAS_ON, LEGACY_KERAS_VAR

DEFAULT_IMAGE = "tfx-pipeline:latest"
DEFAULT_JOB_SPEC = "/etc/tfx-pipeline/job.json"
# The port the TFJob operator puts in TF_CONFIG; its name is what the operator looks for.
TFJOB_PORT = 2222
TFJOB_PORT_NAME = "tfjob-port"
# The TFJob operator requires this container name for the TensorFlow process.
CONTAINER_NAME = "tensorflow"
# Pods are named <job>-worker-<i>: leave room for that suffix within a 63-character label.
MAX_NAME = 48

# A container image reference: [registry[:port]/]path[:tag][@digest], nothing else.
_COMPONENT = r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[a-z0-9]+:[a-f0-9]{32,})?$"
)
_DNS_LABEL = re.compile(r"^[a-z]([a-z0-9-]*[a-z0-9])?$")


class TFJobError(ValueError):
    """A value cannot go into the manifest; the message names the value and why."""


def tfjob_name(pipeline_name: str) -> str:
    """A DNS-safe TFJob name derived from the pipeline name: lowercase, `-` for the rest."""
    base = re.sub(r"[^a-z0-9]+", "-", pipeline_name.lower()).strip("-")
    if not base or not base[0].isalpha():
        base = f"p-{base}".rstrip("-")
    suffix = "-trainer"
    return base[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def _check(workers: int, image: str, name: str, job_spec_uri: str, cpu: str, memory: str) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TFJobError(f"workers: expected a positive integer, got {workers!r}")
    if not _IMAGE.match(image or ""):
        raise TFJobError(
            f"image {image!r}: not a container image reference "
            "(lowercase registry/path, optional :tag and @digest)"
        )
    if len(name) > MAX_NAME or not _DNS_LABEL.match(name):
        raise TFJobError(
            f"name {name!r}: expected a DNS label of at most {MAX_NAME} characters "
            "(lowercase letters, digits, '-', starting with a letter)"
        )
    if "://" in job_spec_uri:
        raise TFJobError(
            f"job spec {job_spec_uri!r}: the worker opens its job file as a local path; "
            "mount it into the container (e.g. a ConfigMap) and give that path"
        )
    if not job_spec_uri.startswith("/") or any(c.isspace() or ord(c) < 32 for c in job_spec_uri):
        raise TFJobError(
            f"job spec {job_spec_uri!r}: expected an absolute path inside the container"
        )
    from pipeline.config import K8S_QUANTITY  # loaded already: render_tfjob takes a config

    for key, value in (("cpu", cpu), ("memory", memory)):
        if not K8S_QUANTITY.match(str(value)):
            raise TFJobError(f"{key} {value!r}: not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")


def render_tfjob(
    cfg,
    *,
    workers: int,
    job_spec_uri: str,
    image: str | None = None,
    name: str | None = None,
    cpu: str | None = None,
    memory: str | None = None,
) -> dict[str, Any]:
    """The TFJob manifest (kubeflow.org/v1) as plain data, ready for `yaml.safe_dump`.

    Args:
      cfg: a validated `PipelineConfig`; gives the name, `trainer.distribution` (max_restarts:
        the job's backoffLimit; communication) and `kubeflow` (image, `tfjob` resources).
      workers: Worker replicas (>= 1).
      job_spec_uri: path of the job file inside the container.
      image: the project's container image (default: `kubeflow.image`).
      name: the TFJob's name (default: derived from `cfg.pipeline_name`).
      cpu, memory: requests and limits of each worker, Kubernetes quantities (default:
        `kubeflow.tfjob.cpu`, `.memory`).

    Raises:
      TFJobError: a value that would make a manifest the cluster refuses or cannot run, or a
        communication the workers' resources cannot give.
    """
    name = tfjob_name(cfg.pipeline_name) if name is None else name
    dist = cfg.trainer.distribution
    tfjob = cfg.kubeflow.tfjob
    image = cfg.kubeflow.image if image is None else image
    cpu = tfjob.cpu if cpu is None else cpu
    memory = tfjob.memory if memory is None else memory
    _check(workers, image, name, job_spec_uri, cpu, memory)
    if dist.communication == "nccl" and not tfjob.gpus_per_worker:
        raise TFJobError(
            "trainer.distribution.communication: nccl needs a GPU in each worker, and "
            "kubeflow.tfjob.gpus_per_worker is 0; give the workers GPUs or use ring or auto"
        )
    resources = {"cpu": str(cpu), "memory": str(memory)}
    if tfjob.gpus_per_worker:
        # An extended resource: whole devices, never overcommitted (requests == limits).
        resources[tfjob.gpu_resource] = str(tfjob.gpus_per_worker)
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "command": ["python", "-m", "components.trainer.worker", job_spec_uri],
        "env": [
            # Keras 2: MultiWorkerMirroredStrategy fails with Keras 3 on this stack.
            {"name": LEGACY_KERAS_VAR, "value": LEGACY_KERAS_ON},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
        ],
        "ports": [{"containerPort": TFJOB_PORT, "name": TFJOB_PORT_NAME}],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "TFJob",
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/part-of": "tfx-pipeline",
                "app.kubernetes.io/component": "trainer",
            },
        },
        "spec": {
            "runPolicy": {
                # Restarts of failed workers before the job fails; BackupAndRestore makes a
                # restarted worker resume from the last finished epoch.
                "backoffLimit": dist.max_restarts,
                "cleanPodPolicy": "Running",
            },
            "tfReplicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "OnFailure",
                    "template": {"spec": {"containers": [container]}},
                }
            },
        },
    }


# --- command line ---------------------------------------------------------------------------


def add_compile_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Adds `compile tfjob` to `subparsers` (from `add_subparsers`); argparse only."""
    compile_ = subparsers.add_parser(
        "compile", help="render what another system runs: a Kubeflow package, an Airflow "
        "DAG, a TFJob manifest"
    )
    targets = compile_.add_subparsers(dest="compile_target", required=True, metavar="TARGET")
    tfjob = targets.add_parser("tfjob", help="a TFJob for N trainer workers, as YAML")
    tfjob.add_argument("--profile", default="local", help="profile in pipeline/profiles (local)")
    tfjob.add_argument("--config", metavar="FILE", help="YAML file merged over the profile")
    tfjob.add_argument("--workers", type=int, metavar="N",
                       help="Worker replicas (default: trainer.distribution.workers)")
    tfjob.add_argument("--image", metavar="IMG",
                       help=f"container image (default: kubeflow.image, {DEFAULT_IMAGE})")
    tfjob.add_argument("--job-spec", default=DEFAULT_JOB_SPEC, metavar="PATH",
                       help=f"job file path inside the container (default: {DEFAULT_JOB_SPEC})")
    tfjob.add_argument("--name", help="TFJob name (default: <pipeline_name>-trainer)")
    tfjob.add_argument("--cpu", help="CPU request and limit per worker "
                       "(default: kubeflow.tfjob.cpu, 2)")
    tfjob.add_argument("--memory", help="memory request and limit per worker "
                       "(default: kubeflow.tfjob.memory, 4Gi)")
    tfjob.add_argument("--output", metavar="FILE", help="write the YAML here instead of stdout")
    from pipeline.compile_airflow import add_airflow_parser  # argparse only: cheap
    from pipeline.compile_kubeflow import add_kubeflow_parser  # argparse only: cheap

    add_airflow_parser(targets)
    add_kubeflow_parser(targets)
    return compile_


def run_compile(args: argparse.Namespace) -> int:
    if args.compile_target == "airflow":
        from pipeline.compile_airflow import run_compile_airflow

        return run_compile_airflow(args)
    if args.compile_target == "kubeflow":
        from pipeline.compile_kubeflow import run_compile_kubeflow

        return run_compile_kubeflow(args)
    import yaml

    from pipeline.config import ConfigError, load_config

    try:
        cfg = load_config(args.profile, args.config)
        workers = cfg.trainer.distribution.workers if args.workers is None else args.workers
        manifest = render_tfjob(cfg, workers=workers, image=args.image,
                                job_spec_uri=args.job_spec, name=args.name,
                                cpu=args.cpu, memory=args.memory)
    except (ConfigError, TFJobError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    text = yaml.safe_dump(manifest, sort_keys=False)
    if not args.output:
        print(text, end="")
        return 0
    from components.serving.files import write_atomically

    try:  # a reader never sees half a manifest
        write_atomically(os.path.abspath(args.output), text.encode())
    except OSError as e:
        print(f"error: {args.output}: cannot write: {e.strerror}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: TFJob {manifest['metadata']['name']}, {workers} worker(s)",
          file=sys.stderr)
    return 0
