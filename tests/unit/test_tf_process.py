"""components/tf_process.py: what a TensorFlow process and its children are given, checked in
fresh interpreters (the settings only count before TensorFlow is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from components.tf_process import LOG_LEVEL_ERRORS, tf_child_env

REPO = Path(__file__).resolve().parents[2]


def fresh(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**base, **env})


PREPARE = (
    "import json, os, warnings\n"
    "from components.tf_process import prepare_tf_process\n"
    "prepare_tf_process({args})\n"
    "warnings.warn('old', FutureWarning)\n"
    "warnings.warn('older', DeprecationWarning)\n"
    "print(json.dumps([os.environ.get('TF_USE_LEGACY_KERAS'),"
    " os.environ.get('TF_CPP_MIN_LOG_LEVEL')]))\n"
)


def test_prepare_switches_keras_2_on_quiets_tensorflow_and_library_warnings():
    proc = fresh(PREPARE.format(args=""), TF_USE_LEGACY_KERAS="0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["1", "3"]  # Keras 2 even when asked for Keras 3
    assert "Warning" not in proc.stderr


def test_prepare_keeps_a_log_level_the_user_set():
    proc = fresh(PREPARE.format(args="log_level='2'"), TF_CPP_MIN_LOG_LEVEL="0")
    assert json.loads(proc.stdout) == ["1", "0"]
    proc = fresh(PREPARE.format(args="log_level='2'"))
    assert json.loads(proc.stdout) == ["1", "2"]


def test_child_env_keeps_the_base_and_sets_keras_and_the_log_level():
    base = {"PATH": "/bin", "TF_CONFIG": "{}", "TF_USE_LEGACY_KERAS": "0"}
    assert tf_child_env(base) == {**base, "TF_USE_LEGACY_KERAS": "1",
                                  "TF_CPP_MIN_LOG_LEVEL": "3"}
    assert tf_child_env({**base, "TF_CPP_MIN_LOG_LEVEL": "1"})["TF_CPP_MIN_LOG_LEVEL"] == "1"
    forced = tf_child_env({**base, "TF_CPP_MIN_LOG_LEVEL": "3"}, log_level=LOG_LEVEL_ERRORS)
    assert forced["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert base["TF_USE_LEGACY_KERAS"] == "0"  # the caller's mapping is not changed


def test_tfx_components_init_is_deferred_until_a_name_is_asked_for():
    proc = fresh(
        "import sys\n"
        "from components.tf_process import defer_tfx_components_init\n"
        "defer_tfx_components_init()\n"
        "import tfx.components.evaluator.constants\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(('tfx.components.tuner',"
        " 'tfx.components.trainer', 'tensorflow')))\n"
        "assert not loaded, loaded\n"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
