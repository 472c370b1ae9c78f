"""The distribution strategy factory: every training process gets its strategy from here."""

from __future__ import annotations

from typing import Literal

Communication = Literal["auto", "ring", "nccl"]


def resolve_communication(communication: Communication, gpus_visible: int) -> str:
    """`auto` is NCCL when GPUs are visible, RING otherwise; NCCL without a GPU is an error."""
    if communication == "auto":
        return "nccl" if gpus_visible else "ring"
    if communication == "nccl" and not gpus_visible:
        raise ValueError("trainer.distribution.communication: nccl needs a GPU, none is visible")
    return communication


def make_strategy(communication: Communication = "auto", timeout_seconds: float | None = None):
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
    communication: Communication, peers: list[str], collective_timeout: float | None = None,
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
