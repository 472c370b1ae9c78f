"""Starts N local training workers, watches them, restarts the group when one dies or hangs.

Each worker is `python -m components.trainer.worker JOB.json` with its own TF_CONFIG on free
loopback ports (worker 0 is the chief), inside one private network namespace with only loopback
(components/trainer/netns.py) where the OS allows it. Their output is streamed into this
process's log with a `[worker i]` prefix. When a worker exits with an error or is killed, or
reports no progress for `progress_timeout_seconds` (components/trainer/progress.py), the
launcher notices within `poll_seconds`, kills the group and starts it again on new ports;
BackupAndRestore makes the new group resume from the last finished epoch. Every worker is gone
when this returns or raises, Ctrl-C included; the workers also die with the launcher
(PR_SET_PDEATHSIG, set by each worker: components/trainer/lifeline.py).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from components.tf_process import tf_child_env
from components.trainer.cluster import free_loopback_ports, local_tf_configs
from components.trainer.lifeline import child_env
from components.trainer.netns import IsolationUnavailable, PrivateNetwork, open_private_network
from components.trainer.progress import (
    PROGRESS_FILE_VAR,
    ProgressWatch,
    describe_silence,
)
from components.trainer.settings import TrainJob

log = logging.getLogger(__name__)


class WorkerGroupError(RuntimeError):
    """The worker group failed more times than allowed; the message says which worker and how."""


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
    *,
    poll_seconds: float = 0.5,
    state_file: str | None = None,
    sink: Callable[[str], None] | None = None,
    env: dict[str, str] | None = None,
    private_network: bool = True,
) -> None:
    """Runs the worker group until every worker finishes; restarts it after a failure.

    The group's size, `max_restarts` and `progress_timeout_seconds` are the job's
    `trainer.distribution`. A failure is a worker that exits with an error or a signal, or a
    group in which a running worker reported no progress for `progress_timeout_seconds`.

    Args:
      job_spec_path: the JSON job file every worker reads. Workers report their progress in
        `progress/worker-<i>.json` beside it.
      state_file: if set, `{"attempt": k, "pids": [...], "workers": [host:port, ...]}` is
        written there for each attempt (for operators and fault tests).
      sink: where worker output lines go (default: this module's logger).
      env: the workers' environment (default: this process's, without TF_CONFIG).
      private_network: run the group in a network namespace of its own (netns.py) when the OS
        allows it; False: on the host's network, as where it does not.

    Raises:
      WorkerGroupError: after `max_restarts` restarts, naming the last failed worker.
    """
    sink = sink or log.info
    job = TrainJob.read(job_spec_path)
    dist = job.trainer.distribution
    base_env = dict(os.environ if env is None else env)
    base_env.pop("TF_CONFIG", None)
    base_env = tf_child_env(base_env)
    base_env["PYTHONUNBUFFERED"] = "1"
    progress_dir = Path(job_spec_path).parent / "progress"
    progress_dir.mkdir(exist_ok=True)
    progress_files = [str(progress_dir / f"worker-{i}.json") for i in range(dist.workers)]
    network = _private_network(job, base_env, sink) if private_network else None
    lifeline, pass_fds = child_env(network)
    failure = ""
    try:
        for attempt in range(dist.max_restarts + 1):
            if attempt:
                sink(f"[launcher] restarting the worker group "
                     f"(restart {attempt} of {dist.max_restarts})")
            for path in progress_files:  # a new attempt starts silent
                Path(path).unlink(missing_ok=True)
            procs: list[subprocess.Popen] = []
            try:
                configs = local_tf_configs(free_loopback_ports(dist.workers))
                for i, tf_config in enumerate(configs):
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "components.trainer.worker", job_spec_path],
                        env={**base_env, **lifeline, "TF_CONFIG": tf_config,
                             PROGRESS_FILE_VAR: progress_files[i]},
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        start_new_session=True, pass_fds=pass_fds,
                    ))
                    threading.Thread(target=_stream, args=(procs[-1], f"[worker {i}]", sink),
                                     daemon=True).start()
                if state_file:
                    workers = json.loads(configs[0])["cluster"]["worker"]
                    _write_state(state_file, {"attempt": attempt,
                                              "pids": [p.pid for p in procs],
                                              "workers": workers})
                watch = (ProgressWatch(progress_files, dist.progress_timeout_seconds)
                         if dist.progress_timeout_seconds is not None else None)
                failure = _wait_for_group(procs, poll_seconds, watch)
                if not failure:
                    sink(f"[launcher] all {dist.workers} workers finished")
                    return
                sink(f"[launcher] {failure}; stopping the worker group")
            finally:
                _stop(procs)
    finally:
        if network is not None:
            network.close()
    raise WorkerGroupError(
        f"training failed after {dist.max_restarts} restart(s): last, {failure}"
    )


def _write_state(path: str, state: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def _private_network(job: TrainJob, env: dict[str, str],
                     sink: Callable[[str], None]) -> PrivateNetwork | None:
    """The group's namespace, or None (and one log line why) when it must use the host's."""
    paths = [*job.train_files, *job.eval_files, job.schema_path, job.serving_model_dir,
             job.backup_dir or ""]
    remote = [p for p in paths if "://" in p]
    if remote:
        reason = f"the job uses remote storage ({remote[0]}), which needs the host's network"
    else:
        try:
            network = open_private_network(env)
        except IsolationUnavailable as e:
            reason = f"no private network namespace here ({e})"
        else:
            sink(f"[launcher] the workers run in {network.kind} with only loopback: "
                 "unreachable from other machines")
            return network
    sink(f"[launcher] warning: workers NOT isolated: {reason}; their TensorFlow servers "
         "listen unauthenticated on every interface of this machine while they train")
    return None


def run_cluster_worker(
    job_spec_path: str, tf_config: str, *, sink: Callable[[str], None] | None = None
) -> None:
    """Runs this host's worker of an existing TF_CONFIG cluster in a process of its own.

    Raises:
      WorkerGroupError: the worker failed; the message carries its last error line.
    """
    sink = sink or log.info
    lifeline, _ = child_env(None)
    env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1", **lifeline}
    env = tf_child_env(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "components.trainer.worker", job_spec_path], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
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


def _wait_for_group(procs: list[subprocess.Popen], poll_seconds: float,
                    watch: ProgressWatch | None) -> str:
    """Empty when every worker exits 0; else what failed first: an exit or a silence."""
    while True:
        codes = [p.poll() for p in procs]
        for i, code in enumerate(codes):
            if code not in (None, 0):
                return f"worker {i} {_describe_exit(code)}"
        if all(code == 0 for code in codes):
            return ""
        if watch is not None:
            now, running = time.monotonic(), [code is None for code in codes]
            if watch.silent(now, running):
                # Peers stopped a moment later are just under the bound: name every worker.
                silent = watch.silences(now, running)
                states = {i: _process_state(procs[i].pid) for i, _, _ in silent}
                return describe_silence(silent, watch.timeout, states)
        time.sleep(poll_seconds)


def _process_state(pid: int) -> str:
    """The state letter of /proc/<pid>/stat ("T": stopped), or "" if unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
