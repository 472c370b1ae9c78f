"""The wait between the two steps of a label move, against a server that answers as TF Serving.

No TF Serving binary can be installed here, so ``FakeTFServing`` (tests/unit/fake_tf_serving.py)
stands in for it: a real HTTP server on 127.0.0.1, started in the test, that answers exactly as
TF Serving's model status API does (``GET /v1/models/<name>``: ``{"model_version_status":
[{"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}``,
404 ``{"error": ...}`` for an unknown model), and that reads ``models.config`` every poll period
as TF Serving does, loads the versions it lists (after a delay, or never) and rejects a config
whose label points at a version that is not AVAILABLE.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from components.serving import (
    LabelMove,
    ReleaseRequest,
    ServerNotReady,
    ServerWait,
    ServingState,
    promote,
    read_models_config,
    read_state,
    release_version,
    rollback,
)
from components.serving.records import find_release
from components.serving.settings import ServerConfig
from pipeline.config import ConfigError, load_config
from tests.unit.fake_tf_serving import FakeTFServing

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_model(parent, name: str, seed: int) -> str:
    rng = random.Random(seed)
    model = parent / name
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(rng.randbytes(2048))
    (model / "variables" / "variables.data-00000-of-00001").write_bytes(rng.randbytes(4096))
    return str(model)


def release(tmp_path, base, seed: int, wait=None):
    model = make_model(tmp_path, f"m{seed}-{random.random()}", seed)
    return release_version(
        str(base), ReleaseRequest(model_dir=model, model_name="penguin"), between_steps=wait
    )


def config_of(base) -> tuple[list[int], dict[str, int]]:
    state = read_models_config(str(base))
    return list(state.versions), dict(state.labels)


@pytest.fixture
def base(tmp_path):
    return tmp_path / "serving" / "penguin"


def with_status(url: str, **settings) -> ServerWait:
    return ServerWait(ServerConfig(status_url=url, **settings), interval=0.05)


def test_first_release_does_not_wait_or_ask(tmp_path, base):
    with FakeTFServing(str(base), "penguin", load_seconds=5) as server:
        start = time.monotonic()
        first = release(tmp_path, base, 1, with_status(server.url, poll_seconds=5))
        assert time.monotonic() - start < 1.0
    # No server can have read a config that did not exist: nothing to wait for, no request.
    assert server.answers == []
    assert (first.version, read_state(str(base)).labels) == (1, {"canary": 1})


def test_the_label_moves_only_once_the_new_version_is_available(tmp_path, base):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    with FakeTFServing(str(base), "penguin", poll_seconds=0.1, load_seconds=0.5) as server:
        wait = with_status(server.url, poll_seconds=0.1, load_timeout_seconds=5)
        start = time.monotonic()
        second = release(tmp_path, base, 2, wait)
        took = time.monotonic() - start
        time.sleep(0.3)  # let the server read the final file
    written = os.stat(base / "models.config").st_mtime
    available = server.first_answer(2, "AVAILABLE")

    assert available is not None and written >= available, (written, available)
    # It waited for the load, and was released by the answer, not by the 5 s timeout.
    assert 0.5 <= took < 5.0
    # Before the label moved, the server was asked and answered LOADING (or not yet listed).
    assert server.answers[0][1].get(2) in (None, "START", "LOADING")
    # The server read the first step (which serves 2, labels unchanged) before the final one,
    # and never had to reject a config.
    reads = [(versions, labels) for _, versions, labels in server.configs_read]
    assert reads[-2:] == [([1, 2], {"stable": 1}), ([1, 2], {"stable": 1, "canary": 2})]
    assert server.rejected == []
    assert server.labels == {"stable": 1, "canary": 2}
    assert read_state(str(base)).labels == {"stable": 1, "canary": second.version}


def test_without_a_wait_tf_serving_rejects_the_label_move(tmp_path, base):
    """What the pusher did before: both steps milliseconds apart; the server only sees the
    final file, whose label points at a version it has not loaded."""
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    with FakeTFServing(str(base), "penguin", poll_seconds=0.2, load_seconds=0.3) as server:
        time.sleep(0.3)  # the server has read the current config
        release(tmp_path, base, 2, None)
        time.sleep(0.5)
    assert server.rejected and "'canary': 2" in server.rejected[0]


def test_a_version_that_never_loads_leaves_the_first_step_and_the_labels(tmp_path, base):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    routing = (base / "routing.json").read_bytes()
    labels_before = read_state(str(base))
    with FakeTFServing(str(base), "penguin", poll_seconds=0.1, never_loads={2}) as server:
        wait = with_status(server.url, poll_seconds=0.1, load_timeout_seconds=0.8)
        model = make_model(tmp_path, "never", 2)
        start = time.monotonic()
        with pytest.raises(ServerNotReady) as caught:
            release_version(str(base), ReleaseRequest(model_dir=model, model_name="penguin"),
                            between_steps=wait)
        took = time.monotonic() - start
        message = str(caught.value)
        assert 0.8 <= took < 10.0  # gave up at the timeout, and did not hang
        assert "version 2" in message and f"{server.url}/v1/models/penguin" in message
        assert "last state seen: LOADING" in message and "\n" not in message

        # Files left: the first step, labels and routing as they were, no record of version 2.
        assert config_of(base) == ([1, 2], {"stable": 1})
        after = read_state(str(base))
        assert (after.labels, after.stable_history, after.canary_percent) == (
            labels_before.labels, labels_before.stable_history, labels_before.canary_percent
        )
        assert after.history[:-1] == labels_before.history
        failed = after.history[-1]
        assert (failed["operation"], failed["version"], failed["outcome"]) == (
            "release", 2, "failed"
        )
        assert "last state seen: LOADING" in failed["error"]
        assert (base / "routing.json").read_bytes() == routing
        assert find_release(str(base), 2) is None
        assert server.rejected == []

        # Once the server has loaded it, releasing the same model again finishes the release.
        server.load_now(2)
        again = release_version(str(base), ReleaseRequest(model_dir=model, model_name="penguin"),
                                between_steps=wait)
        time.sleep(0.3)
    assert (again.version, again.reused) == (2, True)
    assert find_release(str(base), 2) is not None
    assert config_of(base) == ([1, 2], {"stable": 1, "canary": 2})
    assert server.rejected == [] and server.labels == {"stable": 1, "canary": 2}


def test_rollback_onto_an_unloaded_version_waits_and_promote_of_a_loaded_one_asks_once(
    tmp_path, base
):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    release(tmp_path, base, 2)
    promote(str(base), "canary")  # stable 2; version 1 is no longer served
    assert config_of(base) == ([2], {"stable": 2})
    with FakeTFServing(str(base), "penguin", poll_seconds=0.1, load_seconds=0.3) as server:
        wait = with_status(server.url, poll_seconds=0.1, load_timeout_seconds=5)
        time.sleep(0.1)  # started on the current config: version 2 loading
        start = time.monotonic()
        rollback(str(base), between_steps=wait)
        assert time.monotonic() - start >= 0.3  # version 1 had to be loaded again
        assert os.stat(base / "models.config").st_mtime >= server.first_answer(1, "AVAILABLE")
        assert read_state(str(base)).labels == {"stable": 1}

        release(tmp_path, base, 3, wait)  # canary 3, loaded before its label moved
        asked = len(server.answers)
        start = time.monotonic()
        promote(str(base), "canary", between_steps=wait)  # 3 is served and loaded already
        assert time.monotonic() - start < 0.5 and len(server.answers) == asked + 1
        time.sleep(0.3)
    assert server.rejected == []
    assert server.labels == {"stable": 3}


def test_a_promote_that_times_out_keeps_the_labels_and_says_so(tmp_path, base):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    release(tmp_path, base, 2)
    promote(str(base), "canary")
    before = read_state(str(base))
    with FakeTFServing(str(base), "penguin", poll_seconds=0.1, never_loads={1}) as server:
        wait = with_status(server.url, poll_seconds=0.1, load_timeout_seconds=0.5)
        with pytest.raises(ServerNotReady, match=r"rollback of version 1 .*stopped before the "
                           r"stable label moved: .*last state seen: LOADING"):
            rollback(str(base), between_steps=wait)
    assert config_of(base) == ([1, 2], {"stable": 2})
    after = read_state(str(base))
    assert (after.labels, after.stable_history) == (before.labels, before.stable_history)
    assert after.history[-1]["operation"] == "rollback"
    assert after.history[-1]["outcome"] == "failed"


def test_an_unreachable_server_is_named_in_the_error(tmp_path, base):
    release(tmp_path, base, 1)
    promote(str(base), "canary")
    with FakeTFServing(str(base), "penguin") as server:
        url = server.url
    wait = with_status(url, poll_seconds=0, load_timeout_seconds=0.3)
    with pytest.raises(ServerNotReady, match=r"version 2 .*last state seen: unreachable"):
        release(tmp_path, base, 2, wait)


def test_the_model_status_answer_of_an_unknown_model_is_a_state_not_a_crash(tmp_path, base):
    release(tmp_path, base, 1)
    with FakeTFServing(str(base), "other-model") as server:
        wait = with_status(server.url, poll_seconds=0, load_timeout_seconds=0.3)
        with pytest.raises(ServerNotReady, match=r"last state seen: HTTP 404 \(Could not find "
                           r"any versions of model penguin\)"):
            release(tmp_path, base, 2, wait)


def test_without_a_status_url_the_move_waits_one_poll_period_plus_the_load_time(tmp_path, base):
    wait = ServerWait(ServerConfig(poll_seconds=0.2, load_timeout_seconds=0.3))
    start = time.monotonic()
    release(tmp_path, base, 1, wait)
    assert time.monotonic() - start < 0.3  # first release: no wait
    # Version 1 was first served just now: the promote waits for what is left of the period.
    promote(str(base), "canary", between_steps=wait)
    assert time.monotonic() - start >= 0.5
    with FakeTFServing(str(base), "penguin", poll_seconds=0.2, load_seconds=0.25) as server:
        time.sleep(0.3)
        start = time.monotonic()
        release(tmp_path, base, 2, wait)
        assert time.monotonic() - start >= 0.5
        time.sleep(0.3)
    assert server.rejected == [] and server.labels == {"stable": 1, "canary": 2}

    never = ServerWait(ServerConfig(poll_seconds=0, load_timeout_seconds=60))
    start = time.monotonic()
    release(tmp_path, base, 3, never)  # the server never re-reads the file: no wait
    assert time.monotonic() - start < 0.5


def test_label_move_names_the_versions_a_label_moves_onto():
    old = ServingState("m", "/b", (1, 2), {"stable": 1, "canary": 2})
    served = ServingState("m", "/b", (1, 2, 3), {"stable": 1, "canary": 2})
    target = ServingState("m", "/b", (1, 3), {"stable": 1, "canary": 3})
    assert LabelMove(old, served, 0.0, target).onto == (3,)
    promoted = ServingState("m", "/b", (2,), {"stable": 2})
    assert LabelMove(old, old, 0.0, promoted).onto == (2,)


# --- configuration and the command line -------------------------------------------------------


def test_pusher_serving_config_is_checked_naming_the_key(tmp_path):
    cases = [
        ("poll_seconds: -1", "pusher.serving.poll_seconds: expected >= 0, got -1"),
        ("load_timeout_seconds: 0", "pusher.serving.load_timeout_seconds: expected > 0"),
        ("lock_timeout_seconds: 0", "pusher.serving.lock_timeout_seconds: expected > 0"),
        ("status_url: localhost:8501", "pusher.serving.status_url: expected TF Serving's REST"),
        ("status_url: 8501", "pusher.serving.status_url: expected a string or null, got 8501"),
        ("poll_second: 3", "pusher.serving.poll_second: unknown key (did you mean "
                           "'poll_seconds'?)"),
    ]
    for line, message in cases:
        overlay = tmp_path / "o.yaml"
        overlay.write_text(f"pusher:\n  serving:\n    {line}\n")
        with pytest.raises(ConfigError) as caught:
            load_config("local", overlay)
        assert message in str(caught.value), (line, str(caught.value))
    overlay.write_text("pusher: {serving: {status_url: 'http://127.0.0.1:8501', poll_seconds: 5}}")
    serving = load_config("local", overlay).pusher.serving
    assert ServerConfig.from_json(serving.to_json()) == serving
    assert (serving.poll_seconds, serving.load_timeout_seconds) == (5.0, 3.0)


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": REPO}, capture_output=True,
                          text=True, timeout=60)


def test_cli_promote_waits_for_the_server_and_fails_in_one_line(tmp_path, base):
    from components.metadata import EXECUTION_TYPE, open_store

    release(tmp_path, base, 1)
    promote(str(base), "canary")
    release(tmp_path, base, 2)
    store = tmp_path / "metadata.sqlite"
    with FakeTFServing(str(base), "penguin", poll_seconds=0.1, never_loads={2}) as server:
        config = tmp_path / "release.yaml"
        config.write_text(json.dumps({
            "pipeline_name": "penguin", "metadata_path": str(store),
            "pusher": {"base_path": str(base), "serving": {
                "status_url": server.url, "poll_seconds": 0.1, "load_timeout_seconds": 0.5}},
        }))
        # canary 2 was labelled with no server watching: this server never loads it.
        proc = run_cli("release", "promote", "canary", "--config", str(config), cwd=tmp_path)
        assert proc.returncode == 1 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("error: promote of version 2 (canary-v2-")
        assert f"GET {server.url}/v1/models/penguin" in proc.stderr
        assert "last state seen: LOADING" in proc.stderr
        assert read_state(str(base)).labels == {"stable": 1, "canary": 2}

        server.load_now(2)
        proc = run_cli("release", "promote", "canary", "--config", str(config), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert read_state(str(base)).labels == {"stable": 2}
        proc = run_cli("release", "rollback", "--step-wait", "5", "--config", str(config),
                       cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1
        assert "--step-wait is replaced by the config's pusher.serving" in proc.stderr
    recorded = open_store(str(store)).get_executions_by_type(EXECUTION_TYPE)
    details = [json.loads(e.properties["details"].string_value) for e in recorded]
    assert [(e.properties["operation"].string_value, d.get("outcome")) for e, d in
            zip(recorded, details, strict=True)] == [("promote", "failed"), ("promote", None)]
    assert "last state seen: LOADING" in details[0]["error"]
