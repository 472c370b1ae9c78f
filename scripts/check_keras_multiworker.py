"""Evidence for the Keras choice: 2 MultiWorkerMirroredStrategy workers (RING, loopback) fit a
small model with Keras 3 (`tf.keras` of TF 2.16) and with Keras 2 (`tf_keras`).

Run: `.venv/bin/python scripts/check_keras_multiworker.py`; prints one line per Keras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

WORKER = r"""
import os, sys
import numpy as np
import tensorflow as tf
if os.environ.get("TF_USE_LEGACY_KERAS") == "1":
    import tf_keras as keras
else:
    import keras
strategy = tf.distribute.MultiWorkerMirroredStrategy(
    communication_options=tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING))
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy")
x = np.random.rand(512, 4).astype("float32"); y = np.random.randint(0, 3, 512)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(64).repeat()
model.fit(ds, epochs=2, steps_per_epoch=4, verbose=0)
print("OK replicas", strategy.num_replicas_in_sync, "keras", keras.__version__)
"""


def run(legacy: bool) -> str:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from components.tf_process import LEGACY_KERAS_VAR, LOG_LEVEL_QUIET, LOG_LEVEL_VAR
    from components.trainer.cluster import free_loopback_ports, local_tf_configs

    configs = local_tf_configs(free_loopback_ports(2))
    # Not tf_child_env: that always switches Keras 2 on, and this compares both Keras.
    env = {**os.environ, LOG_LEVEL_VAR: LOG_LEVEL_QUIET}
    env[LEGACY_KERAS_VAR] = "1" if legacy else "0"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env={**env, "TF_CONFIG": c},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in configs]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=300)[0])
        except subprocess.TimeoutExpired:
            p.kill()
            outs.append("TIMEOUT")
    lines = []
    for i, out in enumerate(outs):
        ok = [ln for ln in out.splitlines() if ln.startswith("OK")]
        err = [ln for ln in out.splitlines() if "Error" in ln]
        lines.append(f"worker {i}: " + (ok[0] if ok else (err[-1][:160] if err else "failed")))
    return "; ".join(lines)


if __name__ == "__main__":
    for legacy in (False, True):
        print(json.dumps({"keras": "2 (tf_keras)" if legacy else "3 (tf.keras)",
                          "result": run(legacy)}))
