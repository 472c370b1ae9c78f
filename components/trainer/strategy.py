"""The distribution strategy factory: every training process gets its strategy from here.

Also the rule on the communication a configuration asks for, checked by the pipeline before a
run starts (`gpus_visible()` needs no TensorFlow) and by every training process.
"""

from __future__ import annotations

import os
from typing import Literal

Communication = Literal["auto", "ring", "nccl"]
# One entry per NVIDIA GPU the driver knows of (Linux).
NVIDIA_GPUS_DIR = "/proc/driver/nvidia/gpus"


class CommunicationError(ValueError):
    """The configured communication cannot work on this machine; the message names the key."""


def gpus_visible() -> int:
    """NVIDIA GPUs this process may use, without starting TensorFlow."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    try:
        gpus = len(os.listdir(NVIDIA_GPUS_DIR))
    except OSError:
        return 0
    return min(gpus, len(visible.split(","))) if visible else gpus


def resolve_communication(communication: Communication, gpus_visible: int) -> str:
    """`auto` is NCCL when GPUs are visible, RING otherwise.

    Raises:
      CommunicationError: NCCL without a GPU; the message starts with the config key, so that
        the caller can put the configuration file in front of it.
    """
    if communication == "auto":
        return "nccl" if gpus_visible else "ring"
    if communication == "nccl" and not gpus_visible:
        raise CommunicationError(
            "trainer.distribution.communication: nccl needs a GPU, none is visible "
            "(use ring or auto)"
        )
    return communication


def make_strategy(communication: Communication, timeout_seconds: float | None):
    """A MultiWorkerMirroredStrategy; single-worker when TF_CONFIG names no cluster.

    Args:
      timeout_seconds: bound on every collective operation, so that a dead peer is an error
        rather than a hang (None: TensorFlow's default, no bound).
    """
    import tensorflow as tf

    impl = resolve_communication(communication, len(tf.config.list_physical_devices("GPU")))
    options = tf.distribute.experimental.CommunicationOptions(
        implementation={
            "ring": tf.distribute.experimental.CommunicationImplementation.RING,
            "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
        }[impl],
        timeout_seconds=timeout_seconds,
    )
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def start_strategy(
    communication: Communication, peers: list[str], *, collective_timeout: float | None,
):
    """Creates the strategy and, with peers, runs one all-reduce so that every worker is there.

    MultiWorkerMirroredStrategy waits for unreachable peers without limit, inside TensorFlow
    and without releasing the GIL, so no Python thread or signal handler can bound it: the
    worker process bounds it with a watchdog process (components/trainer/worker.py).
    """
    import tensorflow as tf

    strategy = make_strategy(communication, collective_timeout)
    if peers:
        ones = strategy.run(lambda: tf.constant(1.0))
        strategy.reduce(tf.distribute.ReduceOp.SUM, ones, axis=None)
    return strategy
