"""The distribution strategy factory: every training process gets its strategy from here."""

from __future__ import annotations

from typing import Literal

Communication = Literal["auto", "ring", "nccl"]


def make_strategy(communication: Communication = "auto"):
    """A MultiWorkerMirroredStrategy; single-worker when TF_CONFIG names no cluster.

    `auto` lets TensorFlow choose (NCCL with GPUs, RING otherwise).
    """
    import tensorflow as tf

    impl = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }[communication]
    options = tf.distribute.experimental.CommunicationOptions(implementation=impl)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
