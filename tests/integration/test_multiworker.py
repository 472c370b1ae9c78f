"""Multi-worker training with real processes and real TensorFlow: bad clusters, dead workers,
hung workers, and the group's private network.

Every worker here is `python -m components.trainer.worker JOB.json`, the entrypoint the launcher,
cluster mode and the TFJob pods run. Subprocess timeouts and pytest-timeout bound every test, and
each test ends by checking (and then making sure) that no process of its own is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from components.tf_process import LOG_LEVEL_QUIET, tf_child_env
from components.trainer.cluster import free_loopback_ports, local_tf_configs
from components.trainer.launcher import WorkerGroupError, run_local_workers

# Heartbeat and silence bounds: run alone, not beside another test (make test).
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

REPO = Path(__file__).resolve().parents[2]
PENGUINS = REPO / "data" / "penguins" / "span-2"
TRAIN_FILES = [str(PENGUINS / "Split-train" / "*.gz")]
EVAL_FILES = [str(PENGUINS / "Split-eval" / "*.gz")]
SCHEMA = str(REPO / "data" / "schema" / "schema.pbtxt")
# The bound on noticing a dead worker (a functional bound, not a benchmark).
DETECTION_BOUND_SECONDS = 60.0


# --- helpers ------------------------------------------------------------------------------


def write_job(tmp: Path, *, epochs: int = 4, train_steps: int = 1200, **distribution) -> Path:
    """A job file for the penguin data whose outputs all stay inside `tmp`."""
    from components.trainer.settings import TrainJob
    from pipeline.config import load_config

    cfg = load_config(overrides={"trainer": {
        "epochs": epochs, "train_steps": train_steps, "eval_steps": 5,
        "distribution": {"communication": "ring", **distribution},
    }})
    job = TrainJob(
        train_files=TRAIN_FILES,
        eval_files=EVAL_FILES,
        schema_path=SCHEMA,
        serving_model_dir=str(tmp / "serving"),
        model=cfg.model,
        trainer=cfg.trainer,
        train_steps=train_steps,
        eval_steps=5,
        backup_dir=str(tmp / "backup"),
    )
    path = tmp / "job.json"
    job.write(str(path))
    return path


def worker_env(**extra: str) -> dict[str, str]:
    env = tf_child_env({k: v for k, v in os.environ.items() if k != "TF_CONFIG"},
                       log_level=LOG_LEVEL_QUIET)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def processes_with(needle: str) -> list[int]:
    """Live (not zombie) processes whose command line contains `needle`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_leftovers(needle: str) -> list[int]:
    """SIGKILLs processes of this test (found by a path unique to it); returns their pids."""
    left = processes_with(needle)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Recorder:
    """A launcher sink that timestamps every line and can act once on a condition."""

    def __init__(self, echo: bool = True):
        self.lines: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.echo = echo
        self.action = None  # (predicate over the lines so far, callback), run once

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        with self.lock:
            self.lines.append((now, line))
            if self.echo:
                print(line, flush=True)
            if self.action and self.action[0](self.texts()):
                callback, self.action = self.action[1], None
                callback()

    def texts(self) -> list[str]:
        return [line for _, line in self.lines]

    def first(self, text: str) -> tuple[int, float]:
        """(position, time) of the first line containing `text`; fails if there is none."""
        for i, (t, line) in enumerate(self.lines):
            if text in line:
                return i, t
        pytest.fail(f"no line contains {text!r}")


def read_pids(state_file: Path) -> tuple[int, list[int]]:
    state = json.loads(state_file.read_text())
    return state["attempt"], state["pids"]


def evaluate(model_dir: Path) -> dict:
    """class_id of the SavedModel's serving_default vs. the label, over the eval examples."""
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        model = tf.saved_model.load(sys.argv[1])
        serve = model.signatures["serving_default"]
        files = sorted(f for p in sys.argv[2:] for f in tf.io.gfile.glob(p))
        records = [r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]
        labels = [tf.train.Example.FromString(r).features.feature["species"].int64_list.value[0]
                  for r in records]
        predicted = serve(examples=tf.constant(records))["class_id"].numpy().tolist()
        right = sum(int(p == y) for p, y in zip(predicted, labels))
        print(json.dumps({"examples": len(labels), "accuracy": right / len(labels)}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), *EVAL_FILES], cwd=REPO,
        env=worker_env(), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- a bad TF_CONFIG: a clear error within a bounded time, never a hang ------------------------


def run_worker(job: Path, tf_config: str, timeout: float) -> tuple[subprocess.CompletedProcess,
                                                                  float]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "components.trainer.worker", str(job)], cwd=REPO,
        env=worker_env(TF_CONFIG=tf_config), capture_output=True, text=True, timeout=timeout,
    )
    return proc, time.monotonic() - start


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "tf_config, problem",
    [
        ('{"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker", "index": 0',
         "TF_CONFIG is not valid JSON"),
        ('{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, '
         '"task": {"type": "worker", "index": 2}}',
         "task index 2 out of range for 2 worker(s)"),
    ],
    ids=["malformed-json", "index-out-of-range"],
)
def test_bad_tf_config_exits_2_with_one_error_line(tmp_path, tf_config, problem):
    job = write_job(tmp_path)
    try:
        proc, seconds = run_worker(job, tf_config, timeout=120)
    finally:
        kill_leftovers(str(job))
    print(f"exit {proc.returncode} after {seconds:.1f} s")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and problem in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # Refused before TensorFlow is imported: seconds, not the start-up of a training process.
    assert seconds < 30


@pytest.mark.timeout(240)
def test_unreachable_peer_ends_the_worker_with_an_error_naming_it(tmp_path):
    """A lone chief, and a lone non-chief, each of a 2-worker cluster whose peer never comes."""
    job = write_job(tmp_path, startup_timeout_seconds=15)
    started = {}
    try:
        for index in (0, 1):  # two independent clusters, run side by side to save time
            ports = free_loopback_ports(2)
            tf_config = local_tf_configs(ports)[index]
            peer = f"127.0.0.1:{ports[1 - index]}"
            proc = subprocess.Popen(
                [sys.executable, "-m", "components.trainer.worker", str(job)], cwd=REPO,
                env=worker_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True,
            )
            started[index] = (proc, peer, time.monotonic())
        results = {}
        for index, (proc, peer, start) in started.items():
            try:
                _, stderr = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {index} with an unreachable peer still runs after 120 s")
            results[index] = (proc.returncode, stderr, time.monotonic() - start, peer)
    finally:
        for proc, _, _ in started.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        leftovers = kill_leftovers(str(job))
    for index, (code, stderr, seconds, peer) in results.items():
        print(f"worker {index}: exit {code} after {seconds:.1f} s")
        # Ended by its watchdog (SIGKILL), since TensorFlow waits for peers without limit.
        assert code != 0, stderr[-2000:]
        errors = error_lines(stderr)
        assert len(errors) == 1, stderr[-3000:]
        assert f"worker {index}: could not reach the other worker(s) {peer} within 15 s" \
            in errors[0]
        assert seconds < 60  # 15 s startup bound + import; a hang would be the 120 s timeout
    assert leftovers == [], "the watchdog or the worker outlived the test"


# --- a dead worker: the group restarts and resumes from the last backup ------------------------


@pytest.mark.timeout(400)
def test_killed_worker_restarts_the_group_which_resumes_from_backup(tmp_path):
    job = write_job(tmp_path, epochs=4, train_steps=4 * 300, workers=2, max_restarts=2)
    state_file = tmp_path / "workers.json"
    worker_tmp = tmp_path / "worker-tmp"  # where the non-chief exports, then removes
    worker_tmp.mkdir()
    sink = Recorder()
    killed: dict[str, object] = {}

    def epoch_2_done_by_both(lines: list[str]) -> bool:
        # Both workers have logged epoch 2: the chief logs after BackupAndRestore has saved it,
        # so the kill falls in epoch 3 with epoch 2 backed up.
        return all(any(f"[worker {i}] epoch 2/4 done" in x for x in lines) for i in (0, 1))

    def kill_worker_1() -> None:
        attempt, pids = read_pids(state_file)
        os.kill(pids[1], signal.SIGKILL)
        killed.update(time=time.monotonic(), pid=pids[1], first_pids=pids, attempt=attempt)
        print(f"[test] SIGKILL to worker 1 (pid {pids[1]})", flush=True)

    sink.action = (epoch_2_done_by_both, kill_worker_1)
    try:
        run_local_workers(str(job), poll_seconds=0.5, state_file=str(state_file), sink=sink,
                          env=worker_env(TMPDIR=str(worker_tmp)))
        attempt, last_pids = read_pids(state_file)
    finally:
        leftovers = kill_leftovers(str(job))

    lines = sink.texts()
    assert killed, "worker 1 was never killed: epoch 2 was not logged by both workers"
    assert killed["attempt"] == 0
    # The launcher noticed the death, stopped the group and started it again, once.
    detect_at, detect_time = sink.first("[launcher] worker 1 was killed by SIGKILL")
    delay = detect_time - killed["time"]
    print(f"detection delay: {delay:.2f} s (kill -> launcher line)")
    assert delay < DETECTION_BOUND_SECONDS
    restart_at, _ = sink.first("[launcher] restarting the worker group (restart 1 of 2)")
    assert detect_at < restart_at
    assert attempt == 1
    assert not any("restart 2 of 2" in x for x in lines)
    # Training resumed past the first epoch, from the backup of epoch 2, on both workers.
    after = lines[restart_at:]
    for i in (0, 1):
        assert f"[worker {i}] resumed from backup at epoch 3 of 4" in after
        assert not any(f"[worker {i}] epoch {e}/4 done" in x for x in after for e in (1, 2))
        assert any(x.startswith(f"[worker {i}] epoch 4/4 done") for x in after)
        assert f"[worker {i}] worker {i} finished" in after
    assert lines.count("[launcher] all 2 workers finished") == 1
    # No worker of any attempt is left, nor any other process of this test.
    for pid in [*killed["first_pids"], *last_pids]:
        assert not alive(pid), f"worker pid {pid} is still alive"
    assert leftovers == []
    # Only the chief wrote a model; the other worker's temporary export (worker-1-*) is gone.
    assert [p.name for p in worker_tmp.iterdir() if p.name.startswith("worker-")] == []
    model_dir = tmp_path / "serving"
    assert (model_dir / "saved_model.pb").is_file()
    result = evaluate(model_dir)
    print(f"model after the restart: {result}")
    assert result["examples"] > 50
    assert result["accuracy"] >= 0.8


@pytest.mark.timeout(240)
def test_group_stops_with_a_clear_error_when_restarts_are_exhausted(tmp_path):
    job = write_job(tmp_path, epochs=4, train_steps=4 * 300, workers=2, max_restarts=0)
    state_file = tmp_path / "workers.json"
    sink = Recorder()
    killed: dict[str, object] = {}

    def worker_1_is_up(lines: list[str]) -> bool:
        return state_file.exists() and any(x.startswith("[worker 1] ") for x in lines)

    def kill_worker_1() -> None:
        _, pids = read_pids(state_file)
        os.kill(pids[1], signal.SIGKILL)
        killed["pids"] = pids

    sink.action = (worker_1_is_up, kill_worker_1)
    try:
        with pytest.raises(WorkerGroupError) as info:
            run_local_workers(str(job), poll_seconds=0.5, state_file=str(state_file),
                              sink=sink, env=worker_env())
    finally:
        leftovers = kill_leftovers(str(job))
    message = str(info.value)
    print(f"WorkerGroupError: {message}")
    assert killed, "worker 1 never printed a line"
    assert "worker 1" in message and "SIGKILL" in message
    assert "\n" not in message
    assert not any("restarting the worker group" in x for x in sink.texts())
    for pid in killed["pids"]:
        assert not alive(pid), f"worker pid {pid} is still alive"
    assert leftovers == []
    assert not (tmp_path / "serving").exists()


# --- a hung group: no progress within the bound, the group restarts from backup --------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_stopped_group_is_detected_and_resumes_from_backup(tmp_path):
    """SIGSTOP every worker mid-epoch: no process is left to notice (TensorFlow's own health
    checks notice a single stopped peer, from the other worker); only the launcher can."""
    timeout = 45.0
    job = write_job(tmp_path, epochs=4, train_steps=4 * 300, workers=2, max_restarts=2,
                    progress_timeout_seconds=timeout)
    state_file = tmp_path / "workers.json"
    sink = Recorder()
    stopped: dict[str, object] = {}

    def epoch_2_done_by_both(lines: list[str]) -> bool:
        return all(any(f"[worker {i}] epoch 2/4 done" in x for x in lines) for i in (0, 1))

    def stop_both() -> None:
        attempt, pids = read_pids(state_file)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        stopped.update(time=time.monotonic(), pids=pids, attempt=attempt)
        print(f"[test] SIGSTOP to workers 0 and 1 (pids {pids})", flush=True)

    sink.action = (epoch_2_done_by_both, stop_both)
    try:
        run_local_workers(str(job), poll_seconds=0.5, state_file=str(state_file), sink=sink,
                          env=worker_env())
        attempt, last_pids = read_pids(state_file)
    finally:
        leftovers = kill_leftovers(str(job))

    lines = sink.texts()
    assert stopped and stopped["attempt"] == 0
    at, detected = sink.first(f"[launcher] no training progress within {timeout:g} s: ")
    line = lines[at]
    delay = detected - stopped["time"]
    print(f"detection delay: {delay:.1f} s (SIGSTOP -> launcher line; bound {timeout:g} s)")
    # Silence is timed from the last report the launcher saw (reports are at most 1 s apart
    # while training, polls 0.5 s apart): never before the bound, and soon after it.
    assert timeout - 2 <= delay <= timeout + 10
    for i in (0, 1):
        assert f"worker {i} silent for" in line
    assert line.count("(stopped; last report: ") == 2, line
    assert "stopping the worker group" in line
    restart_at, _ = sink.first("[launcher] restarting the worker group (restart 1 of 2)")
    assert at < restart_at
    assert attempt == 1
    after = lines[restart_at:]
    for i in (0, 1):
        assert f"[worker {i}] resumed from backup at epoch 3 of 4" in after
        assert any(x.startswith(f"[worker {i}] epoch 4/4 done") for x in after)
        assert f"[worker {i}] worker {i} finished" in after
    assert lines.count("[launcher] all 2 workers finished") == 1
    # A stopped process still dies from SIGKILL: nothing of the first attempt is left.
    for pid in [*stopped["pids"], *last_pids]:
        assert not alive(pid), f"worker pid {pid} is still alive"
    assert leftovers == []
    result = evaluate(tmp_path / "serving")
    print(f"model after the restart: {result}")
    assert result["accuracy"] >= 0.8


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_worker_hung_on_its_input_is_named_and_ends_the_run(tmp_path):
    """One worker blocks for ever opening an eval file (a FIFO nobody writes: a stalled
    filesystem). It is alive, so TensorFlow's health checks see nothing and its peer waits in
    an all-reduce without limit; the launcher stops the group once the bound has passed."""
    timeout = 30.0
    fifo = tmp_path / "stalled-eval.tfrecord.gz"
    os.mkfifo(fifo)
    job = write_job(tmp_path, epochs=2, train_steps=2 * 100, workers=2, max_restarts=0,
                    progress_timeout_seconds=timeout)
    data = json.loads(job.read_text())
    data["eval_files"] = [*EVAL_FILES, str(fifo)]
    job.write_text(json.dumps(data))
    # Each worker reads whole files, in sorted order: worker i gets the i-th file.
    files = sorted([str(fifo), *(str(p) for p in (PENGUINS / "Split-eval").glob("*.gz"))])
    hung = files.index(str(fifo))
    sink = Recorder()
    start = time.monotonic()
    try:
        with pytest.raises(WorkerGroupError) as info:
            run_local_workers(str(job), poll_seconds=0.5, state_file=str(tmp_path / "w.json"),
                              sink=sink, env=worker_env())
    finally:
        leftovers = kill_leftovers(str(job))
    message = str(info.value)
    print(f"WorkerGroupError after {time.monotonic() - start:.0f} s: {message}")
    assert f"no training progress within {timeout:g} s: " in message
    # Both started evaluating epoch 1 and never finished a batch: the hung worker blocks in
    # its input, its peer in the all-reduce; both are named with their last reports.
    for i in (0, 1):
        assert f"worker {i} silent for" in message
    assert re.search(rf"worker {hung} silent for \d+ s \(last report: evaluating, "
                     r"epoch 1/2, batch 0\)", message), message
    assert "stopped" not in message and "\n" not in message
    assert not any(f"[worker {hung}] epoch 1/2 done" in x for x in sink.texts())
    assert leftovers == []


# --- the group's network: unreachable from outside its namespace -----------------------------


def listening_ports(tcp_table: str) -> set[int]:
    """Ports in LISTEN state (0A) in a /proc/net/tcp or tcp6 table."""
    ports = set()
    for row in tcp_table.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 3 and fields[3] == "0A":
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def ports_listening_in(proc: str) -> set[int]:
    """Listening TCP ports of the network namespace of /proc/<proc> ("self": this test's)."""
    return (listening_ports(Path(f"/proc/{proc}/net/tcp").read_text())
            | listening_ports(Path(f"/proc/{proc}/net/tcp6").read_text()))


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_local_workers_listen_only_inside_their_own_network_namespace(tmp_path):
    from components.trainer.netns import IsolationUnavailable, open_private_network

    try:
        open_private_network().close()
    except IsolationUnavailable as e:
        pytest.skip(f"this machine allows no private network namespace: {e}")
    job = write_job(tmp_path, epochs=3, train_steps=3 * 200, workers=2, max_restarts=0)
    state_file = tmp_path / "workers.json"
    sink = Recorder()
    seen: dict[str, object] = {}

    def training(lines: list[str]) -> bool:
        return any(x.startswith("[worker 1] epoch 1/3 done") for x in lines)

    def look() -> None:  # while both workers train: between epochs 1 and 3
        _, pids = read_pids(state_file)
        workers = json.loads(state_file.read_text())["workers"]
        seen.update(
            ports={int(w.rsplit(":", 1)[1]) for w in workers},
            outside=ports_listening_in("self"),
            inside=[ports_listening_in(str(pid)) for pid in pids],
        )

    sink.action = (training, look)
    try:
        run_local_workers(str(job), poll_seconds=0.5, state_file=str(state_file), sink=sink,
                          env=worker_env())
    finally:
        leftovers = kill_leftovers(str(job))
    print(f"workers' ports {seen.get('ports')}; listening in the workers' namespace: "
          f"{[sorted(p & seen['ports']) for p in seen.get('inside', [])]}")
    assert seen, "worker 1 never finished its first epoch"
    assert sink.first("[launcher] the workers run in a private network namespace")
    # The servers are up (in the workers' namespace, every worker sees both ports) ...
    for inside in seen["inside"]:
        assert seen["ports"] <= inside
    # ... and not one of them listens in the namespace of this test, the host's.
    assert not seen["ports"] & seen["outside"]
    assert "[launcher] all 2 workers finished" in sink.texts()
    assert (tmp_path / "serving" / "saved_model.pb").is_file()
    assert leftovers == []


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_where_the_os_refuses_a_namespace_the_group_trains_and_the_log_says_so(tmp_path):
    """Inside `unshare --user` with no uid mapping, a process has no capability and may not
    create namespaces: the launcher falls back to the host's network, with one warning line."""
    if not shutil.which("unshare") or subprocess.run(
            ["unshare", "--user", "true"], capture_output=True).returncode != 0:
        pytest.skip("`unshare --user` is not available here")
    job = write_job(tmp_path, epochs=1, train_steps=20, workers=2, max_restarts=0)
    script = textwrap.dedent("""
        import sys
        from components.trainer.launcher import run_local_workers
        run_local_workers(sys.argv[1], sink=lambda line: print(line, flush=True))
    """)
    try:
        proc = subprocess.run(
            ["unshare", "--user", sys.executable, "-c", script, str(job)], cwd=REPO,
            env=worker_env(), capture_output=True, text=True, timeout=300,
        )
    finally:
        leftovers = kill_leftovers(str(job))
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [x for x in proc.stdout.splitlines() if "workers NOT isolated" in x]
    assert len(warnings) == 1
    assert "no private network namespace here (unshare(CLONE_NEWNET): Operation not " \
        "permitted" in warnings[0]
    assert "[launcher] all 2 workers finished" in proc.stdout
    assert leftovers == []
