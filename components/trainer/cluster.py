"""TF_CONFIG: reading and checking the cluster a worker joins, and making one for local workers.

Pure Python: checked before TensorFlow starts, so that a bad TF_CONFIG is a one-line error
instead of a hang inside MultiWorkerMirroredStrategy.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass


class ClusterConfigError(ValueError):
    """TF_CONFIG is malformed or inconsistent; the message says which part."""


@dataclass(frozen=True)
class ClusterTask:
    workers: tuple[str, ...]  # host:port of every worker, index order
    index: int  # this process's worker index

    @property
    def is_chief(self) -> bool:
        # With no "chief" job, MultiWorkerMirroredStrategy makes worker 0 the chief.
        return self.index == 0

    @property
    def num_workers(self) -> int:
        return len(self.workers)

    def peers(self) -> list[str]:
        return [w for i, w in enumerate(self.workers) if i != self.index]


def parse_tf_config(text: str) -> ClusterTask:
    """Checks a TF_CONFIG value for a worker of a MultiWorkerMirroredStrategy cluster.

    Raises:
      ClusterConfigError: malformed JSON, no `cluster.worker` list, a task that is not a worker,
        an index out of range, or an address that is not host:port.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterConfigError(f"TF_CONFIG is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ClusterConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = data.get("cluster"), data.get("task")
    if not isinstance(cluster, dict) or not isinstance(cluster.get("worker"), list):
        raise ClusterConfigError("TF_CONFIG: 'cluster.worker' must be a list of host:port")
    extra = sorted(set(cluster) - {"worker", "chief"})
    if extra:
        raise ClusterConfigError(
            f"TF_CONFIG: job(s) {extra} not supported by MultiWorkerMirroredStrategy "
            "(use 'worker', optionally 'chief')"
        )
    if cluster.get("chief"):
        raise ClusterConfigError(
            "TF_CONFIG: a separate 'chief' job is not supported; worker 0 acts as chief"
        )
    workers = cluster["worker"]
    if not workers:
        raise ClusterConfigError("TF_CONFIG: 'cluster.worker' is empty")
    for w in workers:
        host, _, port = str(w).rpartition(":")
        if not host or not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
            raise ClusterConfigError(f"TF_CONFIG: worker address {w!r} is not host:port")
    if not isinstance(task, dict) or task.get("type") != "worker":
        raise ClusterConfigError("TF_CONFIG: 'task' must be {\"type\": \"worker\", \"index\": i}")
    index = task.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ClusterConfigError(f"TF_CONFIG: task index {index!r} is not an integer")
    if not 0 <= index < len(workers):
        raise ClusterConfigError(
            f"TF_CONFIG: task index {index} out of range for {len(workers)} worker(s)"
        )
    return ClusterTask(tuple(str(w) for w in workers), index)


def free_loopback_ports(n: int) -> list[int]:
    """`n` distinct TCP ports free on 127.0.0.1 right now (the OS picks them)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def local_tf_configs(ports: list[int]) -> list[str]:
    """One TF_CONFIG per worker of a loopback cluster; worker 0 is the chief."""
    workers = [f"127.0.0.1:{p}" for p in ports]
    return [
        json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        for i in range(len(workers))
    ]
