"""The trainer's settings across the TFX boundary and the job file (no TensorFlow).

The pipeline hands the Trainer its settings as `custom_config`; `run_fn` rebuilds them
(components/trainer/settings.py), writes a `TrainJob` as `job.json` for its workers, and each
worker rebuilds the same job from that file, refusing a bad one with one error line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from components.trainer.cluster import local_tf_configs
from components.trainer.run_fn import job_spec
from components.trainer.settings import (
    ModelConfig,
    TrainerConfig,
    TrainerCustomConfig,
    TrainJob,
)
from components.typed_config import ConfigDataError
from pipeline.build import trainer_custom_config
from pipeline.config import PipelineConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def fn_args(tmp_path, custom_config: dict) -> SimpleNamespace:
    """What TFX's Trainer gives run_fn; custom_config went through JSON, as in TFX."""
    return SimpleNamespace(
        train_files=[str(tmp_path / "train" / "*.gz")],
        eval_files=[str(tmp_path / "eval" / "*.gz")],
        schema_path=str(tmp_path / "schema.pbtxt"),
        serving_model_dir=str(tmp_path / "serving"),
        model_run_dir=str(tmp_path / "run"),
        custom_config=json.loads(json.dumps(custom_config)),
        train_steps=7,
        eval_steps=2,
    )


@pytest.fixture
def cfg(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(
        "model: {features: [island, bill_length_mm], hidden_units: [5]}\n"
        "trainer: {epochs: 2, learning_rate: 1e-3, distribution: {workers: 2, "
        "communication: ring, collective_timeout_seconds: 30}}\n"
    )
    return load_config(config_file=str(overlay))


def test_the_trainer_rebuilds_the_pipeline_settings_from_custom_config(tmp_path, cfg):
    job = job_spec(fn_args(tmp_path, trainer_custom_config(cfg)))
    assert job.model == cfg.model
    assert job.trainer == cfg.trainer
    assert job.model.features == ["island", "bill_length_mm"]
    assert job.trainer.distribution.collective_timeout_seconds == 30.0
    assert job.trainer.learning_rate == 0.001
    assert (job.train_steps, job.eval_steps) == (7, 2)
    assert job.train_files == [str(tmp_path / "train" / "*.gz")]
    assert job.backup_dir == str(tmp_path / "run" / "backup")


def test_custom_config_is_the_model_and_trainer_sections_as_data(cfg):
    data = trainer_custom_config(cfg)
    assert list(data) == ["model", "trainer", "code_fingerprint"]
    assert data["model"] == cfg.model.model_dump()
    assert data["trainer"]["distribution"]["workers"] == 2
    assert len(data["code_fingerprint"]) == 16


def test_a_key_the_pipeline_did_not_set_takes_the_one_default():
    # The pipeline always sends every key; were one absent, the default is the config's own.
    settings = TrainerCustomConfig.from_custom_config(
        {"model": {}, "trainer": {"distribution": {}}, "code_fingerprint": "x"}
    )
    defaults = PipelineConfig()
    assert settings.trainer == defaults.trainer == TrainerConfig()
    assert settings.model == defaults.model == ModelConfig()
    assert settings.trainer.epochs == 3
    assert settings.trainer.distribution.max_restarts == 2


@pytest.mark.parametrize("change, message", [
    ({"trainer": {"epochs": "3"}}, "trainer.epochs: expected an integer, got '3'"),
    ({"model": {"labl": "x"}}, "model.labl: unknown key (did you mean 'label'?)"),
    ({"trainer": {"distribution": {"communication": "gloo"}}},
     "trainer.distribution.communication: expected one of 'auto', 'ring', 'nccl', got 'gloo'"),
])
def test_a_custom_config_that_is_not_the_settings_is_refused(tmp_path, change, message):
    data = {"model": {}, "trainer": {}, "code_fingerprint": "x"}
    for section, values in change.items():
        data[section] = values
    with pytest.raises(ConfigDataError) as info:
        job_spec(fn_args(tmp_path, data))
    assert str(info.value).startswith(message)


def test_the_job_file_round_trips(tmp_path, cfg):
    job = job_spec(fn_args(tmp_path, trainer_custom_config(cfg)))
    path = str(tmp_path / "job.json")
    job.write(path)
    assert TrainJob.read(path) == job
    data = json.loads(Path(path).read_text())
    assert data["trainer"]["distribution"]["workers"] == 2
    assert data["schema_path"] == str(tmp_path / "schema.pbtxt")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("job.json.")] == []


# --- a worker given a bad job file: one error line, exit 2, before TensorFlow ------------------


def run_worker(job_path: Path) -> tuple[subprocess.CompletedProcess, float]:
    (tf_config,) = local_tf_configs([2222])
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "components.trainer.worker", str(job_path)], cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "TF_CONFIG": tf_config}, capture_output=True, text=True,
        timeout=120,
    )
    return proc, time.monotonic() - start


@pytest.mark.parametrize("content, problem", [
    (None, "No such file or directory"),
    ("{not json", "Expecting property name"),
    ("[]", "expected a mapping, got []"),
    ('{"train_files": []}', "eval_files: missing; expected a list of a string"),
], ids=["missing", "not-json", "not-a-mapping", "missing-key"])
def test_a_bad_job_file_is_one_error_line_and_exit_2(tmp_path, content, problem):
    job_path = tmp_path / "job.json"
    if content is not None:
        job_path.write_text(content)
    proc, seconds = run_worker(job_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: job file {job_path}: "), lines
    assert problem in lines[0]
    assert "Traceback" not in proc.stderr
    assert seconds < 30  # refused before TensorFlow is imported


def test_a_job_file_with_a_wrong_setting_names_the_key(tmp_path, cfg):
    job = job_spec(fn_args(tmp_path, trainer_custom_config(cfg)))
    data = job.model_dump()
    data["trainer"]["distribution"]["startup_timeout_seconds"] = "soon"
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(data))
    proc, _ = run_worker(job_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: job file {job_path}: trainer.distribution.startup_timeout_seconds: "
        "expected a number, got 'soon'"
    )
