"""Helpers for end-to-end tests: run the real `pipeline` CLI in a subprocess on real data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def write_overlay(tmp: Path, **sections) -> Path:
    """A --config overlay that keeps every output of the run inside `tmp`."""
    import yaml

    cfg = {
        "work_dir": str(tmp / "var"),
        "pusher": {"base_path": str(tmp / "serving" / "penguin")},
        "trainer": {"train_steps": 300},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp / "overlay.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def run_json(*args: str) -> tuple[subprocess.CompletedProcess, dict]:
    proc = run_cli("run", "--json", *args)
    try:
        return proc, json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON object:\n{proc.stdout}\n{proc.stderr[-3000:]}")
