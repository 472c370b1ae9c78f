"""Prepares a process that imports TensorFlow: the one place for the Keras 2 switch, the
TensorFlow log level and the warnings filter, and the environment handed to child processes.

Every entry point calls `prepare_tf_process()` before anything imports TensorFlow (the
`pipeline run` application layer, the trainer's workers, the signature probe, the benchmarks,
the tests' conftest); a process that starts another one that imports TensorFlow gives it
`tf_child_env(...)`. Imports nothing heavy: the release and compile commands use it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from collections.abc import Mapping

# Keras 2 (tf_keras): with TF 2.16 `tf.keras` is Keras 3 unless this is "1", and
# MultiWorkerMirroredStrategy fails with Keras 3 on this stack (measured: see
# scripts/check_keras_multiworker.py). Read when TensorFlow is first imported, not later.
LEGACY_KERAS_VAR = "TF_USE_LEGACY_KERAS"
LEGACY_KERAS_ON = "1"
LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"
# Nothing from TensorFlow's C++ side (CUDA factories on a machine without GPU, ...): the runner
# and the training workers, whose output goes to the run's log.
LOG_LEVEL_QUIET = "3"
# Errors only: the signature probe, whose last stderr line becomes the ProbeError message.
LOG_LEVEL_ERRORS = "2"


def prepare_tf_process(*, log_level: str = LOG_LEVEL_QUIET) -> None:
    """Sets up this process for TensorFlow; call it before TensorFlow is first imported.

    Keras 2 is always switched on (the project does not work with Keras 3). The log level is
    `log_level` unless the environment already sets one (so `TF_CPP_MIN_LOG_LEVEL=0` still
    shows everything when debugging). Future and deprecation warnings of the libraries are
    hidden: they are not actionable here and would bury the run's own lines. Idempotent.
    """
    os.environ[LEGACY_KERAS_VAR] = LEGACY_KERAS_ON
    os.environ.setdefault(LOG_LEVEL_VAR, log_level)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def tf_child_env(
    base: Mapping[str, str] | None = None, *, log_level: str | None = None
) -> dict[str, str]:
    """The environment for a child process that imports TensorFlow.

    Args:
      base: the environment to start from (default: this process's).
      log_level: the child's TensorFlow log level, whatever `base` says; None keeps `base`'s,
        or `LOG_LEVEL_QUIET` when it has none.
    """
    env = dict(os.environ if base is None else base)
    env[LEGACY_KERAS_VAR] = LEGACY_KERAS_ON
    if log_level is None:
        env.setdefault(LOG_LEVEL_VAR, LOG_LEVEL_QUIET)
    else:
        env[LOG_LEVEL_VAR] = log_level
    return env


def defer_tfx_components_init() -> None:
    """Makes `tfx.components`' __init__ run only when one of its names is asked for.

    TFX's own modules import submodules such as `tfx.components.evaluator.constants`; Python
    then runs `tfx/components/__init__.py`, which imports every standard component (Tuner with
    Keras 3, BulkInferrer, InfraValidator, ...): about 2.5 s of each run's start-up, measured,
    for components this pipeline does not use. The package is registered without running its
    __init__; the first attribute asked of it (`from tfx.components import Trainer`) runs it.
    Call it before anything imports TFX.
    """
    if "tfx.components" in sys.modules:
        return
    spec = importlib.util.find_spec("tfx.components")
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    state = {"loaded": False}

    def load_on_demand(name: str):
        if name.startswith("__") or state["loaded"]:
            raise AttributeError(name)
        state["loaded"] = True
        del module.__getattr__
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = load_on_demand
    sys.modules["tfx.components"] = module
