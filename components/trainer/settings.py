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
from typing import Any, Literal

from pydantic import Field

from components.trainer.strategy import Communication
from components.typed_config import ConfigModel, parse


class ModelConfig(ConfigModel):
    label: str = "label"
    # None: every feature of the schema but the label.
    features: list[str] | None = None
    task: Literal["multiclass", "binary", "regression"] = "multiclass"
    hidden_units: list[int] = Field(default_factory=lambda: [16, 8])
    # Categorical vocabularies larger than this go through an embedding instead of one-hot.
    embedding_threshold: int = 20
    embedding_dim: int = 8
    # String features with no domain in the schema are hashed into this many buckets.
    hash_buckets: int = 100


class DistributionConfig(ConfigModel):
    # Local worker processes started on loopback (ignored when TF_CONFIG names a cluster).
    # trainer.batch_size is per worker: the global batch is batch_size x workers.
    workers: int = 1
    # auto: NCCL when GPUs are visible, RING otherwise.
    communication: Communication = "auto"
    # Restarts of the whole worker group after a worker dies; training resumes from backup.
    max_restarts: int = 2
    # Every worker must reach the others within this time, or the run stops with an error.
    startup_timeout_seconds: float = 120.0
    # Bound on each collective operation (null: none; the strategy's health checks still run).
    collective_timeout_seconds: float | None = None
    # Local workers: a worker silent this long (no finished batch, eval batch or epoch) once
    # the group trains is hung; the group is stopped and restarted from backup, counting
    # against max_restarts. Must exceed the slowest step, the first (traced) step and the
    # export (null: no bound).
    progress_timeout_seconds: float | None = 300.0


class TrainerConfig(ConfigModel):
    train_steps: int = 500
    # train_steps are spread over this many epochs (checkpoints are taken between epochs).
    epochs: int = 3
    eval_steps: int = 20
    batch_size: int = 32
    learning_rate: float = 0.01
    # Examples read to compute the normalisation of numeric features.
    normalization_sample: int = 10000
    seed: int = 42
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
