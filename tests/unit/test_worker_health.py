"""The launcher's view of its workers, without TensorFlow: progress files and the private network.

Progress: real files written by `ProgressWriter`, read by `ProgressWatch` at chosen clock values
(the watch takes `now` as an argument, so no test sleeps). Network and lifeline: a real namespace
made by `open_private_network`, joined by real child processes as a worker joins it, which die
with their launcher.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from components.trainer.lifeline import child_env
from components.trainer.netns import IsolationUnavailable, open_private_network
from components.trainer.progress import ProgressWatch, ProgressWriter, describe_silence
from components.trainer.settings import DistributionConfig
from pipeline.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


# --- progress files -----------------------------------------------------------------------


def test_a_report_is_written_atomically_and_throttled(tmp_path):
    path = tmp_path / "worker-0.json"
    writer = ProgressWriter(str(path), worker=0, epochs=3, interval=3600)
    writer.report("starting", force=True)
    assert json.loads(path.read_text())["phase"] == "starting"
    writer.report("training", epoch=1, batch=0)  # a new phase: written
    writer.report("training", batch=7)  # within the interval: not written
    assert json.loads(path.read_text())["batch"] == 0
    writer.report("epoch done", force=True)
    state = json.loads(path.read_text())
    assert (state["phase"], state["epoch"], state["batch"]) == ("epoch done", 1, 7)
    assert [p.name for p in tmp_path.iterdir()] == ["worker-0.json"]  # no temporary left


def test_the_clock_starts_with_the_first_report_and_restarts_on_each_change(tmp_path):
    files = [str(tmp_path / f"worker-{i}.json") for i in (0, 1)]
    watch = ProgressWatch(files, timeout=10)
    running = [True, True]
    assert watch.silent(1000.0, running) == []  # nobody reported: start-up, not a hang
    w0, w1 = (ProgressWriter(f, i, 2, interval=0) for i, f in enumerate(files))
    w0.report("starting")
    assert watch.silent(1001.0, running) == []
    w1.report("starting")
    assert watch.silent(1005.0, running) == []
    w0.report("training", epoch=1, batch=1)
    assert watch.silent(1008.0, running) == []
    # Worker 1 last changed at 1005: silent 11 s at 1016; worker 0 (1008) only 8 s.
    assert [(i, s) for i, s, _ in watch.silent(1016.0, running)] == [(1, 11.0)]
    w1.report("training", epoch=1, batch=1)
    assert watch.silent(1017.0, running) == []


def test_a_worker_that_never_reports_is_timed_from_the_groups_first_report(tmp_path):
    files = [str(tmp_path / f"worker-{i}.json") for i in (0, 1)]
    watch = ProgressWatch(files, timeout=10)
    ProgressWriter(files[0], 0, 2, interval=0).report("starting")
    watch.silent(500.0, [True, True])
    ProgressWriter(files[0], 0, 2, interval=0).report("training", epoch=1, batch=5)
    silent = watch.silent(511.0, [True, True])
    assert [(i, s, last) for i, s, last in silent] == [(1, 11.0, {})]


def test_a_finished_worker_is_not_silent(tmp_path):
    files = [str(tmp_path / f"worker-{i}.json") for i in (0, 1)]
    watch = ProgressWatch(files, timeout=10)
    for i, f in enumerate(files):
        ProgressWriter(f, i, 1, interval=0).report("exported")
    watch.silent(0.0, [True, True])
    assert [i for i, _, _ in watch.silent(60.0, [False, True])] == [1]


def test_the_message_names_each_silent_worker_stopped_ones_first():
    silent = [(0, 62.4, {"phase": "training", "epoch": 3, "epochs": 4, "batch": 57}),
              (1, 61.0, {"phase": "evaluating", "epoch": 3, "epochs": 4, "batch": 0}),
              (2, 61.0, {})]
    line = describe_silence(silent, 60.0, {1: "T", 0: "S", 2: "S"})
    assert line == (
        "no training progress within 60 s: "
        "worker 1 silent for 61 s (stopped; last report: evaluating, epoch 3/4, batch 0), "
        "worker 0 silent for 62 s (last report: training, epoch 3/4, batch 57), "
        "worker 2 silent for 61 s (never reported)"
    )


def test_progress_timeout_has_one_default_and_must_be_positive():
    assert DistributionConfig().progress_timeout_seconds == 300.0
    assert load_config(overrides={"trainer": {"distribution": {
        "progress_timeout_seconds": None}}}).trainer.distribution.progress_timeout_seconds is None
    with pytest.raises(ConfigError, match="trainer.distribution.progress_timeout_seconds: "
                                          "expected > 0 or null"):
        load_config(overrides={"trainer": {"distribution": {"progress_timeout_seconds": 0.0}}})


# --- the private network ------------------------------------------------------------------

PROBE = textwrap.dedent("""
    import json, os, socket
    from components.trainer.lifeline import join_launcher_group
    assert join_launcher_group()  # what a worker does first
    s = socket.socket(socket.AF_INET6)
    s.bind(("::", 0))  # as TensorFlow's gRPC server does: every interface
    s.listen()
    c = socket.create_connection(("127.0.0.1", s.getsockname()[1]))  # loopback works
    print(json.dumps({"netns": os.readlink("/proc/self/ns/net"), "port": s.getsockname()[1],
                      "interfaces": sorted(name for _, name in socket.if_nameindex())}))
    input()  # keep listening until the test has looked
""")


def listening(table: str, port: int) -> bool:
    rows = [r.split() for r in Path(table).read_text().splitlines()[1:]]
    return any(r[3] == "0A" and int(r[1].rsplit(":", 1)[1], 16) == port for r in rows)


def private_network_or_skip():
    try:
        return open_private_network()
    except IsolationUnavailable as e:
        pytest.skip(f"no private network namespace here: {e}")


def test_a_worker_in_the_private_network_listens_only_there():
    network = private_network_or_skip()
    env, fds = child_env(network)
    try:
        proc = subprocess.Popen([sys.executable, "-c", PROBE], cwd=REPO, env={**os.environ, **env},
                                pass_fds=fds, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    finally:
        network.close()  # the worker's handles keep the namespace
    try:
        seen = json.loads(proc.stdout.readline())
        assert listening(f"/proc/{proc.pid}/net/tcp6", seen["port"])  # inside: listening
        assert not listening("/proc/self/net/tcp6", seen["port"])  # outside: nothing
        assert not listening("/proc/self/net/tcp", seen["port"])
    finally:
        proc.communicate("\n", timeout=10)
    assert proc.returncode == 0
    assert seen["netns"] != os.readlink("/proc/self/ns/net")
    assert seen["interfaces"] == ["lo"]


LAUNCHER = textwrap.dedent("""
    import os, subprocess, sys, time
    from components.trainer.lifeline import child_env
    from components.trainer.netns import open_private_network
    env, fds = child_env(open_private_network() if sys.argv[1] == "private" else None)
    worker = ("from components.trainer.lifeline import join_launcher_group\\n"
              "assert join_launcher_group()\\nprint('joined', flush=True)\\n"
              "import time\\ntime.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", worker], env={**os.environ, **env},
                             pass_fds=fds, start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.parametrize("network", ["private", "host"])
def test_a_worker_dies_with_its_launcher(network):
    if network == "private":
        private_network_or_skip().close()
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, network], cwd=REPO,
                                stdout=subprocess.PIPE, text=True)
    try:
        pid = int(launcher.stdout.readline())
        assert launcher.stdout.readline().strip() == "joined"
        launcher.kill()  # SIGKILL: no handler of the launcher runs
        launcher.wait()
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the worker outlived its launcher"
    finally:
        launcher.kill()
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_where_namespaces_are_refused_the_reason_is_the_systems():
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "--user", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare --user` is not available here")
    script = textwrap.dedent("""
        from components.trainer.netns import IsolationUnavailable, open_private_network
        try:
            open_private_network()
        except IsolationUnavailable as e:
            print(e)
    """)
    # A user namespace without a uid mapping: no capability, and no further namespace allowed.
    proc = subprocess.run(["unshare", "--user", sys.executable, "-c", script], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == (
        "unshare(CLONE_NEWNET): Operation not permitted, and with a new user namespace: "
        "Operation not permitted"), proc.stderr
