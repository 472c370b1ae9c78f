"""One training worker: `python -m components.trainer.worker JOB.json` with TF_CONFIG set.

Started by the local launcher, by the Trainer when TF_CONFIG names a cluster, or as the
container command of a TFJob's pods.
Exit codes: 0 done, 2 bad TF_CONFIG or job file, 3 peers unreachable in time, 1 training failed.
"""

from __future__ import annotations

import os
import select
import signal
import sys

UNREACHABLE_EXIT = 3


def start_watchdog(timeout: float, message: str):
    """Ends this process with `message` and exit code 3 unless disarmed within `timeout` s.

    A forked child, not a thread: MultiWorkerMirroredStrategy waits for missing peers inside
    TensorFlow while holding the GIL, where no thread or signal handler of ours would run.
    Must be called before TensorFlow starts threads. Returns the function that disarms it.
    """
    read_end, write_end = os.pipe()
    parent = os.getpid()
    child = os.fork()
    if child == 0:  # the watchdog
        os.close(write_end)
        ready, _, _ = select.select([read_end], [], [], timeout)
        if not ready:  # neither disarmed nor the parent gone (that closes the pipe)
            print(f"error: {message}", file=sys.stderr, flush=True)
            try:
                os.kill(parent, signal.SIGKILL)
            except ProcessLookupError:
                pass
        os._exit(0)
    os.close(read_end)

    def disarm() -> None:
        os.write(write_end, b"ok")
        os.close(write_end)
        os.waitpid(child, 0)

    return disarm


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m components.trainer.worker JOB.json", file=sys.stderr)
        return 2
    from components.trainer.lifeline import LifelineError, join_launcher_group

    try:  # first: before any thread, and before the launcher could die unnoticed
        if not join_launcher_group():
            return 2  # the launcher is gone: nobody to train for
    except LifelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from components.tf_process import prepare_tf_process

    prepare_tf_process()  # Keras 2 for MultiWorkerMirroredStrategy: before TensorFlow's import
    from components.trainer.cluster import ClusterConfigError, parse_tf_config

    try:
        cluster = parse_tf_config(os.environ.get("TF_CONFIG", ""))
    except ClusterConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from components.trainer.settings import TrainJob

    try:
        job = TrainJob.read(args[0])
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not a job (names the key)
        print(f"error: job file {args[0]}: {e}", file=sys.stderr)
        return 2
    timeout = job.trainer.distribution.startup_timeout_seconds

    disarm = None
    if cluster.num_workers > 1:
        disarm = start_watchdog(
            timeout,
            f"worker {cluster.index}: could not reach the other worker(s) "
            f"{', '.join(cluster.peers())} within {timeout:.0f} s; check TF_CONFIG and that "
            "every worker is running",
        )
    from components.trainer.progress import PROGRESS_FILE_VAR
    from components.trainer.run_fn import train_and_export

    train_and_export(job, cluster=cluster, on_strategy_ready=disarm,
                     progress_file=os.environ.get(PROGRESS_FILE_VAR))
    print(f"worker {cluster.index} finished", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
