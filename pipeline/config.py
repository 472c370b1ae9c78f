"""Typed pipeline configuration, loaded from YAML profiles.

A profile (``pipeline/profiles/<name>.yaml``) is a complete configuration; ``--config FILE``
is merged on top of it key by key, and command-line flags on top of that. Every key is checked
against the sections below (pydantic models, components/typed_config.py): an unknown key, a
wrong type, a value outside its choices or its range is a ``ConfigError`` naming the file, the
dotted key and what was expected. So is a configuration under which a quality gate would measure
nothing, or the wrong thing (no threshold, a bound every model passes or none can, a slice on a
feature the data lacks, a contract no model can meet...): ``PipelineConfig.validate`` and
``check_against_schema`` hold those rules, each with its reason. The trainer's and the
evaluator's sections are defined by those components (components/trainer/settings.py,
components/evaluator/eval_config.py), which rebuild them from what the pipeline hands them: their
defaults are written there, once.

Relative paths are resolved against the working directory when the pipeline is built.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import warnings
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from components.evaluator.eval_config import (
    KNOWN_METRICS,
    EvalConfigError,
    Threshold,
    known_metric,
    merge_thresholds,
    task_problem,
)
from components.serving.settings import ServerConfig
from components.trainer.settings import ModelConfig, TrainerConfig
from components.typed_config import ConfigDataError, ConfigModel, parse

if TYPE_CHECKING:
    from components.metadata.store import MySQLSettings

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "local"


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the file and the key."""


NonEmptyStr = Annotated[str, Field(min_length=1)]


def _distinct(what: str):
    """A validator refusing a list that holds an item twice (`what` names the items)."""
    def check(items: list) -> list:
        seen = []
        for item in items:
            if item in seen:
                raise ValueError(f"{item!r} is listed twice; list each {what} once")
            seen.append(item)
        return items
    return AfterValidator(check)


def _span_pattern(pattern: str) -> str:
    if "{SPAN}" not in pattern:
        raise ValueError("must contain {SPAN}")
    return pattern


class SplitsConfig(ConfigModel):
    # folders: the data already has Split-<name>/ folders; hash: one folder, split by hash buckets.
    mode: Literal["folders", "hash"] = "folders"
    folders: dict[str, NonEmptyStr] = Field(
        default_factory=lambda: {"train": "Split-train", "eval": "Split-eval"}
    )
    hash_buckets: dict[str, Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: {"train": 4, "eval": 1}
    )


# `schema` is also the name of BaseModel's deprecated schema() method: pydantic warns that the
# field shadows it, which is harmless (the field wins; nothing here calls schema()).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class DataConfig(ConfigModel):
        root: str = Field(default="data/penguins", min_length=1)
        # Folder of one span under root; {SPAN} is ImportExampleGen's span placeholder.
        span_pattern: Annotated[str, AfterValidator(_span_pattern)] = "span-{SPAN}"
        # None: the latest span found under root.
        span: int | None = Field(default=None, ge=0)
        file_pattern: str = Field(default="*.tfrecord.gz", min_length=1)
        # The curated schema: the data is validated against it, and the model's label and
        # features and the evaluator's slices must be its features (read when loading).
        schema: str = Field(default="data/schema/schema.pbtxt", min_length=1)
        splits: SplitsConfig = Field(default_factory=SplitsConfig)
        # How ImportExampleGen takes split folders of GZIP TFRecords (other inputs, and hash
        # splits, always go through Beam): copy, the files as they are, each read through
        # before it is registered; link, the same with hard links where the filesystem allows
        # (an input rewritten in place afterwards would change the artifact too); beam, TFX's
        # own import, which decodes and writes every record again (~17k examples/s here).
        import_mode: Literal["copy", "link", "beam"] = "copy"


class StatisticsConfig(ConfigModel):
    # TFDV's sampling: statistics (and so the schema checks and the drift between spans) from
    # this fraction of each split's examples, drawn at random. Null: every example. Reading
    # the span still costs the same; what it saves is TFDV's computation. What it costs: a
    # value present in k examples goes unseen with probability (1 - rate)^k (rate 0.1: k = 10
    # is missed 35% of the time, k = 50 0.5%), so a rare out-of-domain value, a rare NaN or a
    # rare out-of-range number can pass; counts and fractions are estimated, not counted.
    sample_rate: float | None = Field(default=None, gt=0, le=1)


def _some_metrics(metrics: list[str]) -> list[str]:
    if not metrics:
        raise ValueError("empty; list the metric classes to compute, e.g. "
                         "[ExampleCount, SparseCategoricalAccuracy]")
    return metrics


def _some_thresholds(thresholds: list[Threshold]) -> list[Threshold]:
    if not thresholds:
        raise ValueError("empty: every model would be blessed; set at least one threshold")
    return thresholds


def _distinct_slices(slices: list[list[str]]) -> list[list[str]]:
    seen: list[set[str]] = []
    for keys in slices:
        if set(keys) in seen:
            raise ValueError(f"{keys} is listed twice (as slices[{seen.index(set(keys))}])")
        seen.append(set(keys))
    return slices


class EvaluatorConfig(ConfigModel):
    metrics: Annotated[list[NonEmptyStr], AfterValidator(_some_metrics),
                       _distinct("metric")] = Field(
        default_factory=lambda: ["ExampleCount", "SparseCategoricalAccuracy"]
    )
    # Feature keys to slice by (features of data.schema); the overall slice is always computed.
    slices: Annotated[
        list[Annotated[list[NonEmptyStr], Field(min_length=1), _distinct("feature of a slice")]],
        AfterValidator(_distinct_slices),
    ] = Field(default_factory=list)
    # Every one must hold (several on one metric: the strictest bounds of them all).
    thresholds: Annotated[list[Threshold], AfterValidator(_some_thresholds)] = Field(
        default_factory=lambda: [Threshold()]
    )


class PusherConfig(ConfigModel):
    base_path: str = Field(default="var/serving/model", min_length=1)
    # The release channel: part of the tag (<channel>-v<N>-<YYYYMMDD>); `canary` and `stable`
    # also label the new version.
    channel: str = "canary"
    # The model's name in models.config (null: the pipeline's name).
    model_name: str | None = None
    # TF Serving batching parameters (max_batch_size, batch_timeout_micros, num_batch_threads,
    # max_enqueued_batches, pad_variable_length_inputs, allowed_batch_sizes), written to
    # <base_path>/batching_parameters.txt on release; null: no file.
    batching: dict[str, int | bool | list[int]] | None = None
    # The TF Serving server reading models.config: its poll period, its REST status URL, how
    # long a load may take (the label move waits for it), and the base path's lock timeout.
    serving: ServerConfig = Field(default_factory=ServerConfig)

    def resolved_model_name(self, pipeline_name: str) -> str:
        return self.model_name or pipeline_name


class TensorContractConfig(ConfigModel):
    dtype: str = ""
    # null: any rank; a null dimension: any size.
    shape: list[int | None] | None = None


class SignatureContractConfig(ConfigModel):
    inputs: dict[str, TensorContractConfig] = Field(default_factory=dict)
    outputs: dict[str, TensorContractConfig] = Field(default_factory=dict)


class ContractConfig(ConfigModel):
    signatures: dict[str, SignatureContractConfig] = Field(default_factory=dict)


class AllowBreakingChangeConfig(ConfigModel):
    # Why clients may break; recorded in the verdict, on the PushedModel and in contract.json.
    reason: str = ""


class ValidationConfig(ConfigModel):
    # The serving contract (null: the one kept in <pusher.base_path>/contract.json, set by the
    # first release).
    contract: ContractConfig | None = None
    # Let a breaking signature change through; the reason is required.
    allow_breaking_change: AllowBreakingChangeConfig | None = None
    # Evaluation examples fed to serving_default by the signature probe.
    sample_size: int = Field(default=64, gt=0)


# The runners Beam knows by name: the last part of StandardOptions.ALL_KNOWN_RUNNERS, written
# here so that loading a configuration does not import Beam (seconds); a unit test keeps both
# lists equal.
BEAM_RUNNERS = (
    "DataflowRunner", "BundleBasedDirectRunner", "DirectRunner", "SwitchingDirectRunner",
    "InteractiveRunner", "FlinkRunner", "PortableRunner", "PrismRunner", "SparkRunner",
    "TestDirectRunner", "TestDataflowRunner",
)


def _beam_runner(name: str) -> str:
    """Beam's name of the runner `name` names, as Beam reads it (`create_runner`: any case,
    "Runner" optional: flink, FlinkRunner)."""
    forms = {}
    for runner in BEAM_RUNNERS:
        forms[runner.lower()] = forms[runner.lower().removesuffix("runner")] = runner
    if name.lower() in forms:
        return forms[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(forms), n=1)
    hint = f" (did you mean {forms[close[0]]!r}?)" if close else ""
    raise ValueError(f"{name!r} is not a runner Beam knows{hint}; expected one of: "
                     f"{', '.join(BEAM_RUNNERS)}")


def _gcs_path(value: str | None) -> str | None:
    # Beam's own check (PipelineOptionsValidator.validate_gcs_path): a bucket, then an object.
    if value is not None and not re.fullmatch(r"gs://[a-z0-9][-_a-z0-9.]+[a-z0-9]/[^\n\r]*",
                                              value):
        raise ValueError(f"expected a gs://bucket/path (Dataflow's workers read and write "
                         f"it), got {value!r}")
    return value


class PortableBeamConfig(ConfigModel):
    """Settings of a portable runner (Flink, Spark); each key is the Beam flag of its name."""

    # A Beam job server running beside the cluster (host:port). Null: Beam starts one itself,
    # a Java process (Java and the job server's jar, which the project's image lacks).
    job_endpoint: str | None = Field(default=None, min_length=1)
    # Where the transforms' Python code runs: LOOPBACK (in the process that submits, e.g. the
    # pipeline's step), EXTERNAL (a Beam worker pool at environment_config, host:port), DOCKER
    # (the image environment_config), PROCESS (environment_config: JSON with the command).
    environment_type: Literal["LOOPBACK", "EXTERNAL", "DOCKER", "PROCESS"] = "LOOPBACK"
    environment_config: str | None = Field(default=None, min_length=1)

    def problem(self) -> str | None:
        """What the runner cannot run with, as ``key: message``, or None."""
        if self.environment_type == "LOOPBACK" and self.environment_config is not None:
            return ("environment_config: set, but the LOOPBACK environment reads none "
                    "(use EXTERNAL, DOCKER or PROCESS, or leave it null)")
        if self.environment_type != "LOOPBACK" and self.environment_config is None:
            what = {"EXTERNAL": "the worker pool's host:port",
                    "DOCKER": "the image the workers run (Beam's own lacks TFX)",
                    "PROCESS": 'JSON with the command, {"command": "..."}'}
            return (f"environment_config: missing; the {self.environment_type} environment "
                    f"needs {what[self.environment_type]}")
        return None


class FlinkBeamConfig(PortableBeamConfig):
    # The Flink JobManager's REST address (host:port), or [local] / [auto] for a Flink
    # started by Beam in this process (tests).
    flink_master: str | None = Field(default=None, min_length=1)
    # Parallelism of each operator (null: the cluster's default).
    parallelism: int | None = Field(default=None, gt=0)


class SparkBeamConfig(PortableBeamConfig):
    # The Spark master: spark://host:7077, or local[N] (tests).
    spark_master_url: str | None = Field(default=None, min_length=1)


class DataflowBeamConfig(ConfigModel):
    """Google Cloud Dataflow; each key is the Beam flag of its name."""

    project: str | None = Field(default=None, min_length=1)
    region: str | None = Field(default=None, min_length=1)
    temp_location: Annotated[str | None, AfterValidator(_gcs_path)] = None
    # Null: under temp_location.
    staging_location: Annotated[str | None, AfterValidator(_gcs_path)] = None
    # The workers' image: the project's, built with `--target beam-worker` (TFX, Keras 2 and
    # Beam's boot entry point); Beam's own image lacks TFX.
    sdk_container_image: str | None = Field(default=None, min_length=1)
    max_num_workers: int | None = Field(default=None, gt=0)
    machine_type: str | None = Field(default=None, min_length=1)

    def problem(self) -> str | None:
        for key in ("project", "region", "temp_location", "sdk_container_image"):
            if getattr(self, key) is None:
                return (f"{key}: missing; the DataflowRunner needs project, region, "
                        "temp_location and sdk_container_image")
        return None


class BeamConfig(ConfigModel):
    # The runner of the Beam-based steps (ImportExampleGen, StatisticsGen, ExampleValidator,
    # Evaluator): a name Beam knows (DirectRunner, FlinkRunner, SparkRunner, DataflowRunner,
    # ...). Only the settings of this runner are passed; the other sections are kept, unused.
    runner: Annotated[str, AfterValidator(_beam_runner)] = "DirectRunner"
    # DirectRunner's settings.
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = Field(default=1, gt=0)
    flink: FlinkBeamConfig = Field(default_factory=FlinkBeamConfig)
    spark: SparkBeamConfig = Field(default_factory=SparkBeamConfig)
    dataflow: DataflowBeamConfig = Field(default_factory=DataflowBeamConfig)
    # Further Beam flags, passed as they are after the runner's own.
    extra_args: list[NonEmptyStr] = Field(default_factory=list)

    def problem(self) -> str | None:
        """What the chosen runner cannot run with, as ``key: message``, or None."""
        for i, arg in enumerate(self.extra_args):
            if arg.split("=", 1)[0] == "--runner":
                return f"extra_args[{i}]: {arg!r}: set the runner as beam.runner"
        required = {"FlinkRunner": ("flink", "flink_master"),
                    "SparkRunner": ("spark", "spark_master_url")}
        if self.runner in required:
            section, key = required[self.runner]
            settings = getattr(self, section)
            if getattr(settings, key) is None:
                return f"{section}.{key}: missing; the {self.runner} needs it"
            problem = settings.problem()
            return f"{section}.{problem}" if problem else None
        if self.runner == "DataflowRunner":
            problem = self.dataflow.problem()
            return f"dataflow.{problem}" if problem else None
        return None

    def runner_args(self) -> list[str]:
        """The Beam flags of the chosen runner: `--runner` and its section's settings."""
        args = [f"--runner={self.runner}"]
        if self.runner == "DirectRunner":
            return args + [f"--direct_running_mode={self.direct_running_mode}",
                           f"--direct_num_workers={self.direct_num_workers}"]
        section = {"FlinkRunner": self.flink, "SparkRunner": self.spark,
                   "DataflowRunner": self.dataflow}.get(self.runner)
        if section is not None:
            args += [f"--{key}={value}" for key, value in section.model_dump().items()
                     if value is not None]
        return args


def _dag_id(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_.-]{1,200}", value):
        raise ValueError("use at most 200 letters, digits, '.', '-' or '_'")
    return value


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None
    return value


class AirflowConfig(ConfigModel):
    # The DAG's id (null: the pipeline's name).
    dag_id: Annotated[str | None, AfterValidator(_dag_id)] = None
    # A cron expression or preset ("0 3 * * *", "@daily"); null: runs only when triggered.
    schedule: str | None = Field(default=None, min_length=1)
    # The date (UTC) the schedule counts from; with catchup off, past dates get no run.
    start_date: Annotated[str, AfterValidator(_iso_date)] = "2024-01-01"
    # Retries of a failed node (its task) and the wait before each.
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_seconds: int = Field(default=300, ge=0, le=86400)


def _absolute_posix(value: str) -> str:
    if not value.startswith("/") or "://" in value:
        raise ValueError("expected an absolute path inside the image, e.g. /app")
    return value.rstrip("/") or "/"


class KubeflowScheduleConfig(ConfigModel):
    # KFP's cron: six fields, seconds first ("0 0 3 * * *": 03:00 every day); null: none.
    cron: str | None = Field(default=None, min_length=1)
    # Runs of the recurring run allowed at the same time.
    max_concurrency: int = Field(default=1, ge=1, le=10)
    # True: a paused or late schedule does not run the intervals it missed.
    no_catchup: bool = True


# A Kubernetes quantity as a manifest holds one (2, 500m, 4Gi, 1.5).
K8S_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_RESOURCE_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"


def _extended_resource(name: str) -> str:
    """A Kubernetes extended resource name: `domain/name`, the domain outside kubernetes.io."""
    domain, _, resource = name.partition("/")
    if not (re.fullmatch(_DNS_SUBDOMAIN, domain) and len(domain) <= 253 and "." in domain
            and re.fullmatch(_RESOURCE_NAME, resource)):
        raise ValueError(f"{name!r} is not an extended resource name: expected domain/name, "
                         "e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb")
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise ValueError(f"{name!r}: the kubernetes.io domain holds Kubernetes' own resources")
    return name


def _quantity(value: str) -> str:
    if not K8S_QUANTITY.match(value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
    return value


class TFJobConfig(ConfigModel):
    # The extended resource each worker asks for: a whole GPU ("nvidia.com/gpu") or a MIG
    # slice as the NVIDIA device plugin names it ("nvidia.com/mig-1g.10gb"); how many per
    # worker (0: CPU only). A MIG slice is one per worker: CUDA shows a process one MIG device.
    gpu_resource: Annotated[str, AfterValidator(_extended_resource)] = "nvidia.com/gpu"
    gpus_per_worker: int = Field(default=0, ge=0, le=16)
    # CPU and memory of each worker (requests and limits); `compile tfjob` flags override.
    cpu: Annotated[str, AfterValidator(_quantity)] = "2"
    memory: Annotated[str, AfterValidator(_quantity)] = "4Gi"

    @property
    def is_mig(self) -> bool:
        return self.gpu_resource.partition("/")[2].startswith("mig-")

    def problem(self) -> str | None:
        """What no worker could use, as ``key: message``, or None."""
        if self.is_mig and self.gpus_per_worker > 1:
            return (f"gpus_per_worker: {self.gpus_per_worker} slices of {self.gpu_resource!r}: "
                    "a CUDA process sees one MIG device, the others would sit idle; ask for "
                    "1 per worker and more workers")
        return None


class KubeflowConfig(ConfigModel):
    # The image every step runs (the repository's Dockerfile builds it).
    image: str = Field(default="tfx-pipeline:latest", min_length=1)
    # The repository's copy inside the image (its working directory): a relative data.schema
    # or data.root of a compiled package is found under it.
    project_dir: Annotated[str, AfterValidator(_absolute_posix)] = "/app"
    # The KFP API endpoint and the user namespace; null: $KFP_HOST / $KFP_NAMESPACE.
    host: str | None = Field(default=None, min_length=1)
    namespace: str | None = Field(default=None, min_length=1)
    # The KFP experiment runs and schedules go into (null: the pipeline name).
    experiment: str | None = Field(default=None, min_length=1)
    # The most seconds one command (`runs submit`, `schedule`, `retrain --on kubeflow`) waits
    # for the KFP API, all its requests together (kfp.Client alone has no bound).
    api_timeout_seconds: int = Field(default=120, ge=1, le=3600)
    schedule: KubeflowScheduleConfig = Field(default_factory=KubeflowScheduleConfig)
    tfjob: TFJobConfig = Field(default_factory=TFJobConfig)


def _mysql_database(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_$]{1,64}", value):
        raise ValueError("use at most 64 letters, digits, '_' or '$'")
    return value


def _env_name(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError("expected the name of an environment variable (letters, digits, "
                         "'_'), not the password")
    return value


class MetadataTLSConfig(ConfigModel):
    # PEM files. ca: the CA that signed the server's certificate (null: the system's CAs);
    # cert and key: a client certificate and its key, for a user created REQUIRE X509.
    ca: str | None = Field(default=None, min_length=1)
    cert: str | None = Field(default=None, min_length=1)
    key: str | None = Field(default=None, min_length=1)
    # Check that the server's certificate is signed by `ca` for `host`; checked by the project
    # before it connects, as ML Metadata 1.16's client cannot (docs/OPERATIONS.md).
    verify_server_cert: bool = True
    # OpenSSL cipher list (null: the library's defaults).
    cipher: str | None = Field(default=None, min_length=1)


class MetadataConfig(ConfigModel):
    # sqlite: the file at metadata_path (default <work_dir>/metadata.sqlite); mysql: a MySQL or
    # MariaDB server, the keys below.
    kind: Literal["sqlite", "mysql"] = "sqlite"
    # An IP address or a host name; not "localhost", which ML Metadata's client takes for
    # the Unix socket (use 127.0.0.1, or `socket`).
    host: str | None = Field(default=None, min_length=1)
    port: int = Field(default=3306, ge=1, le=65535)
    # A Unix socket instead of host and port (null: TCP).
    socket: str | None = Field(default=None, min_length=1)
    database: Annotated[str | None, AfterValidator(_mysql_database)] = None
    user: str | None = Field(default=None, min_length=1)
    # The password: the name of an environment variable holding it, or a file holding it (its
    # first line), read when the store is opened. Never the password itself: the configuration
    # is copied into run logs, DAG files and ML Metadata.
    password_env: Annotated[str | None, AfterValidator(_env_name)] = None
    password_file: str | None = Field(default=None, min_length=1)
    # TLS, required when set (a server that does not offer it is refused); null: a plain
    # connection, which a server with require_secure_transport refuses.
    tls: MetadataTLSConfig | None = None
    # Seconds each step of connecting (TCP, greeting, TLS, login) may take before the command
    # stops with one line.
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)

    @model_validator(mode="before")
    @classmethod
    def _no_literal_password(cls, data: Any) -> Any:
        if isinstance(data, dict) and "password" in data:
            raise ValueError(
                "a password is never written in a configuration file (it is copied into run "
                "logs, DAG files and ML Metadata): name an environment variable in "
                "metadata.password_env, or a file holding it in metadata.password_file")
        return data

    def problem(self) -> str | None:
        """The first rule a `mysql` store breaks, as `<key>: <why>`; None when it breaks none."""
        if self.kind != "mysql":
            return None
        for key in ("user", "database"):
            if getattr(self, key) is None:
                return f"{key}: missing; kind mysql needs host (or socket), database and user"
        if self.host is None and self.socket is None:
            return "host: missing; kind mysql needs host (or socket), database and user"
        if self.host == "localhost" and self.socket is None:
            return ("host: 'localhost' means the Unix socket to ML Metadata's MySQL client; "
                    "use 127.0.0.1 for TCP, or set socket")
        if (self.password_env is None) == (self.password_file is None):
            return ("password_env: set either password_env (an environment variable's name) or "
                    "password_file (a file holding the password)"
                    + (", not both" if self.password_env else ""))
        if self.tls is not None and self.tls.key is not None and self.tls.cert is None:
            return "tls.key: set tls.cert too (the client certificate the key belongs to)"
        return None

    def password(self, where: str) -> str:
        """The password, read now from the environment or the secret file.

        Raises:
          ConfigError: the variable is not set, or the file cannot be read or is empty; the
            message names the variable or the file, never the value.
        """
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"{where}: metadata.password_env: the environment variable "
                                  f"{self.password_env} is not set (it must hold the ML "
                                  "Metadata password)")
            if not value:
                raise ConfigError(f"{where}: metadata.password_env: the environment variable "
                                  f"{self.password_env} is empty")
            return value
        path = os.path.abspath(self.password_file or "")
        try:
            with open(path, encoding="utf-8") as f:
                value = f.read().split("\n", 1)[0].rstrip("\r")
        except OSError as e:
            raise ConfigError(f"{where}: metadata.password_file: {path}: cannot read the "
                              f"password: {e.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: metadata.password_file: {path}: not UTF-8 text"
                              ) from None
        if not value:
            raise ConfigError(f"{where}: metadata.password_file: {path}: its first line is "
                              "empty")
        return value

    def mysql_settings(self, password: str = "") -> MySQLSettings:
        """The MySQLSettings `components.metadata` opens (paths made absolute)."""
        from components.metadata.store import MySQLSettings, SSLSettings

        def absolute(path: str | None) -> str:
            return os.path.abspath(path) if path else ""

        tls = self.tls
        ssl = None if tls is None else SSLSettings(
            ca=absolute(tls.ca), cert=absolute(tls.cert), key=absolute(tls.key),
            cipher=tls.cipher or "", verify_server_cert=tls.verify_server_cert)
        return MySQLSettings(
            host=self.host or "localhost", port=self.port, database=self.database or "",
            user=self.user or "", password=password, socket=absolute(self.socket), ssl=ssl,
            connect_timeout=self.connect_timeout_seconds)


class PipelineConfig(ConfigModel):
    pipeline_name: str = Field(default="tfx-pipeline", min_length=1)
    # pipeline_root/ and metadata.sqlite live here unless set explicitly.
    work_dir: str = Field(default="var", min_length=1)
    pipeline_root: str | None = Field(default=None, min_length=1)
    metadata_path: str | None = Field(default=None, min_length=1)
    # Where ML Metadata is: the SQLite file above (default), or a MySQL/MariaDB server.
    metadata: MetadataConfig = Field(default_factory=MetadataConfig)
    enable_cache: bool = True
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    pusher: PusherConfig = Field(default_factory=PusherConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    beam: BeamConfig = Field(default_factory=BeamConfig)
    airflow: AirflowConfig = Field(default_factory=AirflowConfig)
    kubeflow: KubeflowConfig = Field(default_factory=KubeflowConfig)
    # Where the configuration came from, for messages; not a YAML key.
    _sources: list[str] = PrivateAttr(default_factory=list)

    @property
    def sources(self) -> list[str]:
        """The layers this configuration was read from, profile first ("command line" last)."""
        return self._sources

    @sources.setter
    def sources(self, value: list[str]) -> None:
        self._sources = list(value)

    @property
    def where(self) -> str:
        """The layer to name in a message about a rule: the last one read ("<config>": none)."""
        return self.sources[-1] if self.sources else "<config>"

    @property
    def resolved_pipeline_root(self) -> str:
        return os.path.abspath(self.pipeline_root or os.path.join(self.work_dir, "pipeline_root"))

    @property
    def resolved_metadata_path(self) -> str:
        return os.path.abspath(self.metadata_path or os.path.join(self.work_dir, "metadata.sqlite"))

    @property
    def metadata_target(self) -> str | MySQLSettings:
        """Where ML Metadata is: what `components.metadata.open_store` and
        `pipeline_connection_config` take: the SQLite file, or the MySQL/MariaDB server's
        `MySQLSettings`, its password read now (`MetadataConfig.password`).

        Raises:
          ConfigError: the password's environment variable or file cannot be read.
        """
        if self.metadata.kind == "sqlite":
            return self.resolved_metadata_path
        return self.metadata.mysql_settings(self.metadata.password(self.where))

    @property
    def metadata_uri(self) -> str:
        """Where ML Metadata is, for people and records: the SQLite file, or
        ``mysql://user@host:port/database``; never the password (which is not read)."""
        from components.metadata.store import describe_target

        if self.metadata.kind == "sqlite":
            return self.resolved_metadata_path
        return describe_target(self.metadata.mysql_settings())

    def validate(self) -> None:
        """Checks rules that span several keys; raises ConfigError naming the last source.

        The range of each key is checked on its field, when the layer is parsed; the rules
        that need the schema file are `check_against_schema`'s.
        """
        where = self.where
        if self.model.features is not None and self.model.label in self.model.features:
            raise ConfigError(
                f"{where}: model.features: must not contain the label {self.model.label!r}"
            )
        splits = self.data.splits
        split_names = splits.folders if splits.mode == "folders" else splits.hash_buckets
        if set(split_names) != {"train", "eval"}:
            raise ConfigError(
                f"{where}: data.splits.{splits.mode}: expected the splits "
                f"'train' and 'eval', got {sorted(split_names)}"
            )
        if splits.mode == "folders" and splits.folders["train"] == splits.folders["eval"]:
            raise ConfigError(
                f"{where}: data.splits.folders: train and eval are both "
                f"{splits.folders['eval']!r}: the model would be evaluated on its training data"
            )
        self._validate_evaluator(where)
        self._validate_release(where)
        problem = self.metadata.problem()
        if problem:
            raise ConfigError(f"{where}: metadata.{problem}")
        for section, problem in (("beam", self.beam.problem()),
                                 ("kubeflow.tfjob", self.kubeflow.tfjob.problem())):
            if problem:
                raise ConfigError(f"{where}: {section}.{problem}")
        if self.beam.runner == "DataflowRunner":  # its workers run far from any local path
            for key, path in (("pipeline_root", self.pipeline_root), ("data.root", self.data.root)):
                if not (path or "").startswith("gs://"):
                    raise ConfigError(
                        f"{where}: {key}: {path or 'null (under work_dir)'}: the DataflowRunner's "
                        "workers read and write the steps' data there; expected a gs:// path"
                    )

    def _validate_evaluator(self, where: str) -> None:
        """Metrics that read the model's predictions as intended, thresholds on them that can
        all hold together."""
        ev = self.evaluator
        for i, cls in enumerate(ev.metrics):
            problem = task_problem(cls, self.model.task)
            if problem:
                raise ConfigError(f"{where}: evaluator.metrics[{i}]: {problem}")
        # The keys TFMA reports the metrics under, as far as the table knows them.
        keys = {cls: KNOWN_METRICS[cls].key if cls in KNOWN_METRICS else cls
                for cls in ev.metrics}
        computed = set(keys) | set(keys.values())
        for i, t in enumerate(ev.thresholds):
            # A class outside the table may report any key: TFMA is asked at build time.
            if t.metric not in computed and all(c in KNOWN_METRICS for c in ev.metrics):
                listed = ", ".join(f"{c} ({k})" for c, k in keys.items())
                raise ConfigError(
                    f"{where}: evaluator.thresholds[{i}].metric: {t.metric!r} is not among "
                    f"the metrics computed ({listed}); add its class to evaluator.metrics"
                )

        def key_of(metric: str) -> str:
            info = known_metric(metric)
            return keys.get(metric) or (info.key if info else metric)

        try:
            merge_thresholds(ev.thresholds, key_of)
        except EvalConfigError as e:
            raise ConfigError(f"{where}: evaluator.{e}") from None

    def _validate_release(self, where: str) -> None:
        """Rules of the pusher and validation sections (names, batching, contract)."""
        from components.serving.batching import BatchingParametersError, batching_parameters_text
        from components.serving.contract import Contract, ContractError
        from components.serving.errors import InvalidNameError
        from components.serving.names import validate_channel, validate_model_name

        checks = [
            ("pusher.channel", validate_channel, self.pusher.channel),
            ("pusher.model_name", validate_model_name,
             self.pusher.resolved_model_name(self.pipeline_name)),
        ]
        for key, check, value in checks:
            try:
                check(value)
            except InvalidNameError as e:
                hint = " (set pusher.model_name)" if key.endswith("model_name") and (
                    self.pusher.model_name is None) else ""
                raise ConfigError(f"{where}: {key}: {e}{hint}") from None
        if self.pusher.batching is not None:
            try:
                batching_parameters_text(self.pusher.batching)
            except BatchingParametersError as e:
                raise ConfigError(f"{where}: pusher.batching: {e}") from None
        problem = self.pusher.serving.problem()
        if problem:
            raise ConfigError(f"{where}: pusher.serving.{problem}")
        v = self.validation
        if v.allow_breaking_change is not None and not v.allow_breaking_change.reason.strip():
            raise ConfigError(
                f"{where}: validation.allow_breaking_change.reason: say why clients may break "
                "(it is recorded with the release)"
            )
        if v.contract is not None:
            try:
                contract = Contract.from_json(v.contract.model_dump(), "validation.contract")
            except ContractError as e:
                raise ConfigError(f"{where}: {e}") from None
            for name, signature in sorted(contract.signatures.items()):
                if not signature.inputs:
                    # Every input of a TF signature is required: each would be a breaking
                    # addition against a contract without inputs.
                    raise ConfigError(
                        f"{where}: validation.contract.signatures.{name}.inputs: empty: every "
                        "input of the model would be a breaking change, so no model can pass"
                    )


# --- the rules that read the schema ----------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _parsed_schema(path: str, mtime_ns: int, size: int):
    """The schema at `path` as it was at (mtime_ns, size): read once per version of the file
    (the config is validated after each layer)."""
    from components.trainer.features import load_schema

    return load_schema(path)


def _hint(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_against_schema(cfg: PipelineConfig) -> None:
    """The rules that need `data.schema` (a relative path: from the working directory).

    The schema must be readable; the label and `model.features` must be features of it that the
    trainer can serve (`select_features`, as the Trainer will call it); every slice key must be
    one of its features (TFMA computes only the overall slice when none is present, so the
    per-slice gate would be off), and not a FLOAT feature (one slice per distinct value).
    Reads protobuf only, no TensorFlow.

    Raises:
      ConfigError: naming the last layer read and the dotted key.
    """
    from components.trainer.features import FeatureSpecError, select_features

    where = cfg.where
    path = os.path.abspath(cfg.data.schema)
    try:
        stat = os.stat(path)
        schema = _parsed_schema(path, stat.st_mtime_ns, stat.st_size)
    except OSError as e:
        raise ConfigError(f"{where}: data.schema: {path}: cannot read the schema: "
                          f"{e.strerror}") from None
    except FeatureSpecError as e:
        raise ConfigError(f"{where}: data.schema: {e}") from None
    kinds = {f.name: f.type for f in schema.feature}
    names = list(kinds)
    model = cfg.model
    missing = [("model.label", model.label)] + [
        (f"model.features[{i}]", n) for i, n in enumerate(model.features or [])]
    for key, name in missing:
        if name not in kinds:
            raise ConfigError(f"{where}: {key}: {name!r} is not a feature of the schema "
                              f"{path}{_hint(name, names)}")
    try:
        select_features(schema, model.label, model.features, model.task)
    except FeatureSpecError as e:
        key = "model.label" if str(e).startswith("label") else "model.features"
        raise ConfigError(f"{where}: {key}: {e} (schema {path})") from None
    from tensorflow_metadata.proto.v0 import schema_pb2

    for i, keys in enumerate(cfg.evaluator.slices):
        for name in keys:
            if name not in kinds:
                raise ConfigError(
                    f"{where}: evaluator.slices[{i}]: {name!r} is not a feature of the schema "
                    f"{path}{_hint(name, names)}; TFMA would compute no such slice and its "
                    "thresholds would not be checked"
                )
            if kinds[name] == schema_pb2.FLOAT:
                raise ConfigError(
                    f"{where}: evaluator.slices[{i}]: {name!r} is a FLOAT feature: one slice "
                    "per distinct value, each of a few examples; slice by a categorical feature"
                )


# --- loading -------------------------------------------------------------------------------


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.cache
def _yaml_loader() -> type:
    """PyYAML's safe loader, reading exponent floats such as ``1e-3`` as YAML 1.2 does.

    PyYAML implements YAML 1.1, where a float needs a dot and a signed exponent (``1.0e-3``),
    so ``1e-3`` would be the string '1e-3' and be refused where a number is expected.
    """
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return Loader


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.load(text, Loader=_yaml_loader())  # a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{at}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return data


def profile_path(name: str) -> Path:
    """The YAML file of a named profile; raises ConfigError for an unknown name."""
    path = PROFILES_DIR / f"{name}.yaml"
    if not name.replace("-", "").replace("_", "").isalnum() or not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown profile {name!r}; known profiles: {known}")
    return path


def load_config(
    profile: str = DEFAULT_PROFILE,
    config_file: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    check_schema: bool = True,
) -> PipelineConfig:
    """Loads a profile, merges an optional config file and flag overrides on top, validates.

    Args:
      profile: name of a file in pipeline/profiles, without `.yaml`.
      config_file: a YAML file whose keys override the profile's.
      overrides: nested dict of values from flags (e.g. {"data": {"span": 2}}).
      check_schema: also check the rules that read `data.schema` (`check_against_schema`);
        False for commands that neither train nor evaluate (``pipeline release``), which may
        run where the schema's relative path does not lead to it.

    Raises:
      ConfigError: naming the file and key of the first problem found.
    """
    sources = [profile_path(profile)]
    if config_file is not None:
        sources.append(Path(config_file))
    layers = [(str(src), _read_yaml(src)) for src in sources]
    if overrides:
        layers.append(("command line", overrides))
    merged: dict[str, Any] = {}
    for i, (name, layer) in enumerate(layers):
        # Check each layer on its own so that the error names the file that holds the bad key,
        # then the merge so far: a rule broken only now is broken by this layer.
        _parse(layer, name)
        merged = _merge(merged, layer)
        cfg = _parse(merged, name)
        cfg.sources = [n for n, _ in layers[: i + 1]]
        cfg.validate()
        if check_schema:
            check_against_schema(cfg)
    return cfg


def _parse(data: dict[str, Any], where: str) -> PipelineConfig:
    try:
        return parse(PipelineConfig, data)
    except ConfigDataError as e:
        raise ConfigError(f"{where}: {e}") from None


def config_to_dict(cfg: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain data (what a YAML file would hold)."""
    return cfg.model_dump()
