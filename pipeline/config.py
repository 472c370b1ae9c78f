"""Typed pipeline configuration, loaded from YAML profiles.

A profile (``pipeline/profiles/<name>.yaml``) is a complete configuration; ``--config FILE``
is merged on top of it key by key, and command-line flags on top of that. Every key is checked
against the sections below (pydantic models, components/typed_config.py): an unknown key, a
wrong type or a value outside its choices is a ``ConfigError`` naming the file, the dotted key
and what was expected. The trainer's and the evaluator's sections are defined by those
components (components/trainer/settings.py, components/evaluator/eval_config.py), which rebuild
them from what the pipeline hands them: their defaults are written there, once.

Relative paths are resolved against the working directory when the pipeline is built.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr

from components.evaluator.eval_config import Threshold
from components.serving.settings import ServerConfig
from components.trainer.settings import ModelConfig, TrainerConfig
from components.typed_config import ConfigDataError, ConfigModel, parse

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "local"


class ConfigError(ValueError):
    """A configuration file or value is wrong; the message names the file and the key."""


class SplitsConfig(ConfigModel):
    # folders: the data already has Split-<name>/ folders; hash: one folder, split by hash buckets.
    mode: Literal["folders", "hash"] = "folders"
    folders: dict[str, str] = Field(
        default_factory=lambda: {"train": "Split-train", "eval": "Split-eval"}
    )
    hash_buckets: dict[str, int] = Field(default_factory=lambda: {"train": 4, "eval": 1})


# `schema` is also the name of BaseModel's deprecated schema() method: pydantic warns that the
# field shadows it, which is harmless (the field wins; nothing here calls schema()).
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "schema"', category=UserWarning)

    class DataConfig(ConfigModel):
        root: str = "data/penguins"
        # Folder of one span under root; {SPAN} is ImportExampleGen's span placeholder.
        span_pattern: str = "span-{SPAN}"
        # None: the latest span found under root.
        span: int | None = None
        file_pattern: str = "*.tfrecord.gz"
        schema: str = "data/schema/schema.pbtxt"
        splits: SplitsConfig = Field(default_factory=SplitsConfig)


class EvaluatorConfig(ConfigModel):
    metrics: list[str] = Field(
        default_factory=lambda: ["ExampleCount", "SparseCategoricalAccuracy"]
    )
    # Feature keys to slice by; the overall slice is always computed.
    slices: list[list[str]] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=lambda: [Threshold()])


class PusherConfig(ConfigModel):
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
    sample_size: int = 64


class BeamConfig(ConfigModel):
    direct_running_mode: Literal["in_memory", "multi_threading", "multi_processing"] = "in_memory"
    direct_num_workers: int = 1
    extra_args: list[str] = Field(default_factory=list)


class PipelineConfig(ConfigModel):
    pipeline_name: str = "tfx-pipeline"
    # pipeline_root/ and metadata.sqlite live here unless set explicitly.
    work_dir: str = "var"
    pipeline_root: str | None = None
    metadata_path: str | None = None
    enable_cache: bool = True
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    evaluator: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    pusher: PusherConfig = Field(default_factory=PusherConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    beam: BeamConfig = Field(default_factory=BeamConfig)
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

    def validate(self) -> None:
        """Checks rules that span several keys; raises ConfigError naming the last source."""
        where = self.where
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
        if dist.progress_timeout_seconds is not None and dist.progress_timeout_seconds <= 0:
            raise ConfigError(
                f"{where}: trainer.distribution.progress_timeout_seconds: expected > 0 or null"
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
        problem = self.pusher.serving.problem()
        if problem:
            raise ConfigError(f"{where}: pusher.serving.{problem}")
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
                Contract.from_json(v.contract.model_dump(), "validation.contract")
            except ContractError as e:
                raise ConfigError(f"{where}: {e}") from None


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
        _parse(layer, name)
        merged = _merge(merged, layer)
        cfg = _parse(merged, name)
        cfg.sources = [n for n, _ in layers[: i + 1]]
        cfg.validate()
    return cfg


def _parse(data: dict[str, Any], where: str) -> PipelineConfig:
    try:
        return parse(PipelineConfig, data)
    except ConfigDataError as e:
        raise ConfigError(f"{where}: {e}") from None


def config_to_dict(cfg: PipelineConfig) -> dict[str, Any]:
    """The configuration as plain data (what a YAML file would hold)."""
    return cfg.model_dump()
