"""The trainer's settings and its job file: the one place their defaults are written.

`pipeline/config.py` composes `ModelConfig` and `TrainerConfig` into the pipeline's config; the
pipeline hands them to the TFX Trainer as `custom_config` (`TrainerCustomConfig`), and the
Trainer rebuilds them from it with the same checks. A training worker gets a `TrainJob`: the
job file (`job.json`) holds it as plain JSON, and `TrainJob.read` rebuilds it the same way.
No TensorFlow here: a worker reads its job file before TensorFlow starts.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from components.trainer.strategy import Communication
from components.typed_config import ConfigModel, parse


def _feature_names(names: list[str] | None) -> list[str] | None:
    """model.features: null, or distinct names (a repeat would be one input twice)."""
    if names is None:
        return None
    if not names:
        raise ValueError("empty; list feature names, or null for every feature of the schema "
                         "but the label")
    seen = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{name!r} is listed twice")
        seen.add(name)
    return names


class ModelConfig(ConfigModel):
    label: str = Field(default="label", min_length=1)
    # None: every feature of the schema but the label.
    features: Annotated[list[Annotated[str, Field(min_length=1)]] | None,
                        AfterValidator(_feature_names)] = None
    task: Literal["multiclass", "binary", "regression"] = "multiclass"
    # Widths of the hidden layers; [] is a linear (logistic) model, which is allowed.
    hidden_units: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [16, 8])
    # Categorical vocabularies larger than this go through an embedding instead of one-hot
    # (0: always an embedding).
    embedding_threshold: int = Field(default=20, ge=0)
    embedding_dim: int = Field(default=8, gt=0)
    # String features with no domain in the schema are hashed into this many buckets (one
    # bucket would make every such feature a constant the model cannot learn from).
    hash_buckets: int = Field(default=100, ge=2)


class DistributionConfig(ConfigModel):
    # Local worker processes started on loopback (ignored when TF_CONFIG names a cluster).
    # trainer.batch_size is per worker: the global batch is batch_size x workers.
    workers: int = Field(default=1, gt=0)
    # auto: NCCL when GPUs are visible, RING otherwise.
    communication: Communication = "auto"
    # Restarts of the whole worker group after a worker dies; training resumes from backup.
    max_restarts: int = Field(default=2, ge=0)
    # Every worker must reach the others within this time, or the run stops with an error.
    startup_timeout_seconds: float = Field(default=120.0, gt=0)
    # Bound on each collective operation (null: none; the strategy's health checks still run).
    collective_timeout_seconds: float | None = Field(default=None, gt=0)
    # Local workers: a worker silent this long (no finished batch, eval batch or epoch) once
    # the group trains is hung; the group is stopped and restarted from backup, counting
    # against max_restarts. Must exceed the slowest step, the first (traced) step and the
    # export (null: no bound).
    progress_timeout_seconds: float | None = Field(default=300.0, gt=0)


class TrainerConfig(ConfigModel):
    train_steps: int = Field(default=500, gt=0)
    # train_steps are spread over this many epochs (checkpoints are taken between epochs).
    epochs: int = Field(default=3, gt=0)
    eval_steps: int = Field(default=20, gt=0)
    batch_size: int = Field(default=32, gt=0)
    learning_rate: float = Field(default=0.01, gt=0)
    # Examples read to compute the normalisation of numeric features (0 would leave them
    # unnormalised without a word).
    normalization_sample: int = Field(default=10000, gt=0)
    # Seeds Python, NumPy (which takes 0 .. 2**32-1) and TensorFlow.
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    distribution: DistributionConfig = Field(default_factory=DistributionConfig)


class TrainerCustomConfig(ConfigModel):
    """What the pipeline hands the TFX Trainer as `custom_config` (plain data in between)."""

    model: ModelConfig
    trainer: TrainerConfig
    # Not read: a change of the trainer's code changes it, and so busts the Trainer's cache.
    code_fingerprint: str

    @classmethod
    def from_custom_config(cls, data: dict[str, Any]) -> TrainerCustomConfig:
        """Rebuilds the settings from `fn_args.custom_config`; raises ConfigDataError."""
        return parse(cls, data)


class TrainJob(ConfigModel):
    """Everything one training process needs: what TFX gives the Trainer, and the settings.

    Only the chief writes `serving_model_dir`. `backup_dir` is where BackupAndRestore keeps
    its checkpoints, so that a restarted worker group resumes from the last finished epoch
    (None: no backups).
    """

    train_files: list[str]
    eval_files: list[str]
    schema_path: str
    serving_model_dir: str
    model: ModelConfig
    trainer: TrainerConfig
    # TFX's TrainArgs/EvalArgs (the pipeline sets them from trainer.train_steps, eval_steps).
    train_steps: int
    eval_steps: int
    backup_dir: str | None = None

    def write(self, path: str) -> None:
        """Writes the job file atomically: a worker never reads half of one."""
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(self.model_dump(), f)
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: str) -> TrainJob:
        """The job in a job file.

        Raises:
          OSError: the file cannot be read.
          ValueError: not JSON (json.JSONDecodeError), or not a job (ConfigDataError, naming
            the dotted key).
        """
        with open(path) as f:
            return parse(cls, json.load(f))
