"""Typed pipeline configuration, loaded from YAML profiles.

A profile (``pipeline/profiles/<name>.yaml``) is a complete configuration; ``--config FILE``
is merged on top of it key by key, and command-line flags on top of that. Every key is checked
against the dataclasses below: an unknown key, a wrong type or a value outside its choices is a
``ConfigError`` naming the file, the dotted key and what was expected.

Relative paths are resolved against the working directory when the pipeline is built.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "local"


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the file and the key."""


@dataclass
class SplitsConfig:
    # folders: the data already has Split-<name>/ folders; hash: one folder, split by hash buckets.
    mode: Literal["folders", "hash"] = "folders"
    folders: dict[str, str] = field(
        default_factory=lambda: {"train": "Split-train", "eval": "Split-eval"}
    )
    hash_buckets: dict[str, int] = field(default_factory=lambda: {"train": 4, "eval": 1})


@dataclass
class DataConfig:
    root: str = "data/penguins"
    # Folder of one span under root; {SPAN} is ImportExampleGen's span placeholder.
    span_pattern: str = "span-{SPAN}"
    # None: the latest span found under root.
    span: int | None = None
    file_pattern: str = "*.tfrecord.gz"
    schema: str = "data/schema/schema.pbtxt"
    splits: SplitsConfig = field(default_factory=SplitsConfig)


@dataclass
class ModelConfig:
    label: str = "label"
    # None: every feature of the schema but the label.
    features: list[str] | None = None
    task: Literal["multiclass", "binary", "regression"] = "multiclass"
    hidden_units: list[int] = field(default_factory=lambda: [16, 8])
    # Categorical vocabularies larger than this go through an embedding instead of one-hot.
    embedding_threshold: int = 20
    embedding_dim: int = 8
    # String features with no domain in the schema are hashed into this many buckets.
    hash_buckets: int = 100


@dataclass
class DistributionConfig:
    # Local worker processes started on loopback (ignored when TF_CONFIG names a cluster).
    # trainer.batch_size is per worker: the global batch is batch_size x workers.
    workers: int = 1
    # auto: NCCL when GPUs are visible, RING otherwise.
    communication: Literal["auto", "ring", "nccl"] = "auto"
    # Restarts of the whole worker group after a worker dies; training resumes from backup.
    max_restarts: int = 2
    # Every worker must reach the others within this time, or the run stops with an error.
    startup_timeout_seconds: float = 120.0
    # Bound on each collective operation (null: none; the strategy's health checks still run).
    collective_timeout_seconds: float | None = None


@dataclass
class TrainerConfig:
    train_steps: int = 500
    # train_steps are spread over this many epochs (checkpoints are taken between epochs).
    epochs: int = 3
    eval_steps: int = 20
    batch_size: int = 32
    learning_rate: float = 0.01
    # Examples read to compute the normalisation of numeric features.
    normalization_sample: int = 10000
    seed: int = 42
    distribution: DistributionConfig = field(default_factory=DistributionConfig)


@dataclass
class ThresholdConfig:
    metric: str = "sparse_categorical_accuracy"
    # The candidate is blessed only if metric >= lower_bound (or <= upper_bound) ...
    lower_bound: float | None = 0.6
    upper_bound: float | None = None
    # ... and, when a baseline exists, it is no worse than the baseline by more than this.
    max_regression: float | None = 0.0
    higher_is_better: bool = True


@dataclass
class EvaluatorConfig:
    metrics: list[str] = field(
        default_factory=lambda: ["ExampleCount", "SparseCategoricalAccuracy"]
    )
    # Feature keys to slice by; the overall slice is always computed.
    slices: list[list[str]] = field(default_factory=list)
    thresholds: list[ThresholdConfig] = field(default_factory=lambda: [ThresholdConfig()])


@dataclass
class PusherConfig:
    base_path: str = "var/serving/model"
    # The release channel: part of the tag (<channel>-v<N>-<YYYYMMDD>); `canary` and `stable`
    # also label the new version.
    channel: str = "canary"
    # The model's name in models.config (null: the pipeline's name).
    model_name: str | None = None
    # TF Serving batching parameters (max_batch_size, batch_timeout_micros, num_batch_threads,
    # max_enqueued_batches, pad_variable_length_inputs, allowed_batch_sizes), written to
    # <base_path>/batching_parameters.txt on release; null: no file.
    batching: dict[str, int | bool | list[int]] | None = None

    def resolved_model_name(self, pipeline_name: str) -> str:
        return self.model_name or pipeline_name


@dataclass
class TensorContractConfig:
    dtype: str = ""
    # null: any rank; a null dimension: any size.
    shape: list[int | None] | None = None


@dataclass
class SignatureContractConfig:
    inputs: dict[str, TensorContractConfig] = field(default_factory=dict)
    outputs: dict[str, TensorContractConfig] = field(default_factory=dict)


@dataclass
class ContractConfig:
    signatures: dict[str, SignatureContractConfig] = field(default_factory=dict)


@dataclass
class AllowBreakingChangeConfig:
    # Why clients may break; recorded in the verdict, on the PushedModel and in contract.json.
    reason: str = ""


@dataclass
class ValidationConfig:
    # The serving contract (null: the one kept in <pusher.base_path>/contract.json, set by the
    # first release).
    contract: ContractConfig | None = None
    # Let a breaking signature change through; the reason is required.
    allow_breaking_change: AllowBreakingChangeConfig | None = None
    # Evaluation examples fed to serving_default by the signature probe.
    sample_size: int = 64


@dataclass
class BeamConfig:
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = 1
    extra_args: list[str] = field(default_factory=list)


@dataclass
class PipelineConfig:
    pipeline_name: str = "tfx-pipeline"
    # pipeline_root/ and metadata.sqlite live here unless set explicitly.
    work_dir: str = "var"
    pipeline_root: str | None = None
    metadata_path: str | None = None
    enable_cache: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    evaluator: EvaluatorConfig = field(default_factory=EvaluatorConfig)
    pusher: PusherConfig = field(default_factory=PusherConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)
    # Where the configuration came from, for messages; not a YAML key.
    sources: list[str] = field(default_factory=list, metadata={"internal": True})

    @property
    def resolved_pipeline_root(self) -> str:
        return os.path.abspath(self.pipeline_root or os.path.join(self.work_dir, "pipeline_root"))

    @property
    def resolved_metadata_path(self) -> str:
        return os.path.abspath(self.metadata_path or os.path.join(self.work_dir, "metadata.sqlite"))

    def validate(self) -> None:
        """Checks rules that span several keys; raises ConfigError naming the last source."""
        where = self.sources[-1] if self.sources else "<config>"
        if self.model.features is not None and not self.model.features:
            raise ConfigError(
                f"{where}: model.features: empty; list feature names, or null for every "
                "feature of the schema but the label"
            )
        if self.model.features is not None and self.model.label in self.model.features:
            raise ConfigError(
                f"{where}: model.features: must not contain the label {self.model.label!r}"
            )
        positives = {
            "trainer.train_steps": self.trainer.train_steps,
            "trainer.eval_steps": self.trainer.eval_steps,
            "trainer.batch_size": self.trainer.batch_size,
            "trainer.epochs": self.trainer.epochs,
            "trainer.distribution.workers": self.trainer.distribution.workers,
            "beam.direct_num_workers": self.beam.direct_num_workers,
        }
        for key, value in positives.items():
            if value < 1:
                raise ConfigError(f"{where}: {key}: expected a positive integer, got {value}")
        dist = self.trainer.distribution
        if dist.max_restarts < 0:
            raise ConfigError(f"{where}: trainer.distribution.max_restarts: expected >= 0")
        if dist.startup_timeout_seconds <= 0:
            raise ConfigError(
                f"{where}: trainer.distribution.startup_timeout_seconds: expected > 0"
            )
        if dist.collective_timeout_seconds is not None and dist.collective_timeout_seconds <= 0:
            raise ConfigError(
                f"{where}: trainer.distribution.collective_timeout_seconds: expected > 0 or null"
            )
        if self.trainer.learning_rate <= 0:
            raise ConfigError(f"{where}: trainer.learning_rate: expected > 0")
        if self.data.span is not None and self.data.span < 0:
            raise ConfigError(f"{where}: data.span: expected a span number >= 0")
        if "{SPAN}" not in self.data.span_pattern:
            raise ConfigError(f"{where}: data.span_pattern: must contain {{SPAN}}")
        split_names = (
            self.data.splits.folders if self.data.splits.mode == "folders"
            else self.data.splits.hash_buckets
        )
        if set(split_names) != {"train", "eval"}:
            raise ConfigError(
                f"{where}: data.splits.{self.data.splits.mode}: expected the splits "
                f"'train' and 'eval', got {sorted(split_names)}"
            )
        for name, buckets in self.data.splits.hash_buckets.items():
            if buckets < 1:
                raise ConfigError(f"{where}: data.splits.hash_buckets.{name}: expected >= 1")
        self._validate_release(where)
        for i, t in enumerate(self.evaluator.thresholds):
            if t.lower_bound is None and t.upper_bound is None and t.max_regression is None:
                raise ConfigError(
                    f"{where}: evaluator.thresholds[{i}]: set lower_bound, upper_bound "
                    "or max_regression"
                )


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
        v = self.validation
        if v.sample_size < 1:
            raise ConfigError(f"{where}: validation.sample_size: expected a positive integer, "
                              f"got {v.sample_size}")
        if v.allow_breaking_change is not None and not v.allow_breaking_change.reason.strip():
            raise ConfigError(
                f"{where}: validation.allow_breaking_change.reason: say why clients may break "
                "(it is recorded with the release)"
            )
        if v.contract is not None:
            try:
                Contract.from_json(dataclasses.asdict(v.contract), "validation.contract")
            except ContractError as e:
                raise ConfigError(f"{where}: {e}") from None


# --- loading -------------------------------------------------------------------------------


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        k, v = typing.get_args(tp)
        return f"a mapping of {_describe(k)} to {_describe(v)}"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a number",
            str: "a string"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    """Converts a parsed YAML value to type `tp`, or raises ConfigError naming `key`."""

    def fail() -> typing.NoReturn:
        raise ConfigError(f"{where}: {key}: expected {_describe(tp)}, got {value!r}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, where)
            except ConfigError:
                continue
        fail()
    if origin is Literal:
        if value not in typing.get_args(tp):
            fail()
        return value
    if origin is list:
        if not isinstance(value, list):
            fail()
        (item_tp,) = typing.get_args(tp)
        return [_convert(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        k_tp, v_tp = typing.get_args(tp)
        return {
            _convert(k, k_tp, key, where): _convert(v, v_tp, f"{key}.{k}", where)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail()
        return _build(tp, value, key, where)
    if tp is bool:
        if not isinstance(value, bool):
            fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail()
        return value
    if tp is float:
        # PyYAML (YAML 1.1) reads 1e-3 as a string: accept what float() reads.
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                fail()
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail()
        return value
    fail()


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}


def _build(cls: type, data: dict[str, Any], prefix: str, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{where}: {dotted}: unknown key{hint}; expected one of: {', '.join(known)}"
            )
        kwargs[key] = _convert(value, hints[key], dotted, where)
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
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
) -> PipelineConfig:
    """Loads a profile, merges an optional config file and flag overrides on top, validates.

    Args:
      profile: name of a file in pipeline/profiles, without `.yaml`.
      config_file: a YAML file whose keys override the profile's.
      overrides: nested dict of values from flags (e.g. {"data": {"span": 2}}).

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
        _build(PipelineConfig, layer, "", name)
        merged = _merge(merged, layer)
        cfg = _build(PipelineConfig, merged, "", name)
        cfg.sources = [n for n, _ in layers[: i + 1]]
        cfg.validate()
    return cfg


def config_to_dict(cfg: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain data (what a YAML file would hold)."""
    data = dataclasses.asdict(cfg)
    data.pop("sources", None)
    return data
