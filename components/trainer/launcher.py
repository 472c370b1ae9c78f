"""Starts N local training workers, watches them, restarts the group when one dies.

Each worker is `python -m components.trainer.worker JOB.json` with its own TF_CONFIG on free
loopback ports (worker 0 is the chief). Their output is streamed into this process's log with a
`[worker i]` prefix. When a worker exits with an error or is killed, the launcher notices within
`poll_seconds`, kills the others and starts the group again on new ports; BackupAndRestore
makes the new group resume from the last finished epoch. Every worker is gone when this returns
or raises, Ctrl-C included; the workers also die with the launcher (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from components.tf_process import tf_child_env
from components.trainer.cluster import free_loopback_ports, local_tf_configs

log = logging.getLogger(__name__)


class WorkerGroupError(RuntimeError):
    """The worker group failed more times than allowed; the message says which worker and how."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: SIGKILL it when the launcher dies.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _stream(proc: subprocess.Popen, prefix: str, sink: Callable[[str], None]) -> None:
    for raw in iter(proc.stdout.readline, b""):
        sink(f"{prefix} {raw.decode(errors='replace').rstrip()}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Kills every worker still running, at once.

    SIGKILL, not SIGTERM: TensorFlow catches SIGTERM once a worker has joined a cluster and
    keeps going (measured: a healthy worker trained on to the end), and there is nothing to
    flush, since backups are written at the end of each epoch.
    """
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for p in procs:
        p.wait()


def run_local_workers(
    job_spec_path: str,
    num_workers: int,
    *,
    max_restarts: int,
    poll_seconds: float = 0.5,
    state_file: str | None = None,
    sink: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Runs the worker group until every worker finishes; restarts it after a failure.

    Args:
      job_spec_path: the JSON job file every worker reads.
      max_restarts: restarts allowed after the first attempt (trainer.distribution).
      state_file: if set, `{"attempt": k, "pids": [...]}` is written there for each attempt
        (for operators and fault tests).
      sink: where worker output lines go (default: this module's logger).
      env: the workers' environment (default: this process's, without TF_CONFIG).

    Raises:
      WorkerGroupError: after `max_restarts` restarts, naming the last failed worker.
    """
    sink = sink or log.info
    base_env = dict(os.environ if env is None else env)
    base_env.pop("TF_CONFIG", None)
    base_env = tf_child_env(base_env)
    base_env["PYTHONUNBUFFERED"] = "1"
    failure = ""
    for attempt in range(max_restarts + 1):
        if attempt:
            sink(f"[launcher] restarting the worker group (restart {attempt} of {max_restarts})")
        procs: list[subprocess.Popen] = []
        try:
            for i, tf_config in enumerate(local_tf_configs(free_loopback_ports(num_workers))):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "components.trainer.worker", job_spec_path],
                    env={**base_env, "TF_CONFIG": tf_config},
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    start_new_session=True, preexec_fn=_die_with_parent,
                ))
                threading.Thread(target=_stream, args=(procs[-1], f"[worker {i}]", sink),
                                 daemon=True).start()
            if state_file:
                tmp = f"{state_file}.tmp"
                with open(tmp, "w") as f:
                    json.dump({"attempt": attempt, "pids": [p.pid for p in procs]}, f)
                os.replace(tmp, state_file)
            failed = _wait_for_group(procs, poll_seconds)
            if failed is None:
                sink(f"[launcher] all {num_workers} workers finished")
                return
            index, code = failed
            failure = f"worker {index} {_describe_exit(code)}"
            sink(f"[launcher] {failure}; stopping the other workers")
        finally:
            _stop(procs)
    raise WorkerGroupError(
        f"training failed after {max_restarts} restart(s): last, {failure}"
    )


def run_cluster_worker(
    job_spec_path: str, tf_config: str, *, sink: Callable[[str], None] | None = None
) -> None:
    """Runs this host's worker of an existing TF_CONFIG cluster in a process of its own.

    Raises:
      WorkerGroupError: the worker failed; the message carries its last error line.
    """
    sink = sink or log.info
    env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
    env = tf_child_env(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "components.trainer.worker", job_spec_path], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    last_error: list[str] = []

    def keep(line: str) -> None:
        if "error:" in line:
            last_error[:] = [line.split("error:", 1)[1].strip()]
        sink(line)

    try:
        _stream(proc, "[worker]", keep)
        code = proc.wait()
    finally:
        _stop([proc])
    if code != 0:
        reason = last_error[0] if last_error else f"the worker {_describe_exit(code)}"
        raise WorkerGroupError(reason)


def _wait_for_group(procs: list[subprocess.Popen], poll_seconds: float):
    """None when every worker exits 0; else (index, exit code) of the first that failed."""
    while True:
        codes = [p.poll() for p in procs]
        for i, code in enumerate(codes):
            if code not in (None, 0):
                return i, code
        if all(code == 0 for code in codes):
            return None
        time.sleep(poll_seconds)
