"""The real pipeline with ML Metadata on the MariaDB server of scripts/setup_mariadb.sh, over TLS
with the server's certificate checked against the generated CA: the run, a release operation
and the lineage questions all answered from MariaDB; the password nowhere; and a server that
cannot be used stopping `pipeline run` and `pipeline release` with one line each.

The module's database is its own (created here, dropped at the end), so that it can run beside
the other modules."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from tests.e2e.conftest import run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def database(mariadb):
    name = mariadb.create_database("e2e_tls")
    yield name
    mariadb.drop_database(name)


@pytest.fixture(scope="module")
def tls_run(mariadb, database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mariadb")
    overlay = write_overlay(tmp, metadata=mariadb.overlay(database))
    proc, result = run_json("--config", str(overlay))
    assert proc.returncode == 0, (result.get("error"), proc.stderr[-3000:])
    return tmp, overlay, result, proc


def _store(mariadb, database):
    from components.metadata import open_store

    return open_store(mariadb.settings(database))


def test_the_run_pushes_and_its_records_are_in_mariadb(mariadb, database, tls_run):
    from components.metadata import custom_property, execution_state, get_run_executions

    tmp, _, result, _ = tls_run
    assert result["status"] == "succeeded"
    assert result["metadata"]["uri"] == f"mysql://mlmd@127.0.0.1:{mariadb.port}/{database}"
    assert result["pushed"]["version"] == 1 and result["pushed"]["new"] is True
    assert result["pushed"]["path"] == str(tmp / "serving" / "penguin" / "1")

    store = _store(mariadb, database)
    executions = get_run_executions(store, "penguin", result["run_id"])
    names = [c["name"] for c in result["components"]]
    assert sorted(executions) == sorted(names)
    assert {n: execution_state(e) for n, e in executions.items()} == {
        n: "succeeded" for n in names}
    # Every execution in the database is one of this run's, or its request (RunRequest).
    run = store.get_context_by_type_and_name("pipeline_run", result["run_id"])
    in_run = store.get_executions_by_context(run.id)
    assert sorted(e.id for e in in_run) == sorted(e.id for e in store.get_executions())
    assert sorted(e.type for e in in_run if e.id not in {x.id for x in executions.values()}
                  ) == ["RunRequest"]
    [pushed] = store.get_artifacts_by_type("PushedModel")
    assert custom_property(pushed, "pushed_version") == 1
    assert custom_property(pushed, "pushed_destination") == result["pushed"]["path"]
    assert custom_property(pushed, "tag") == result["pushed"]["tag"]


def test_a_release_operation_and_the_lineage_come_from_mariadb(mariadb, database, tls_run):
    from components.metadata import get_run_executions

    _, overlay, result, _ = tls_run
    tag = result["pushed"]["tag"]
    promote = run_cli("release", "promote", tag, "--config", str(overlay), "--reason",
                      "e2e on MariaDB")
    assert promote.returncode == 0, promote.stderr
    store = _store(mariadb, database)
    [operation] = store.get_executions_by_type("ReleaseOperation")
    [pushed] = store.get_artifacts_by_type("PushedModel")
    assert promote.stdout.splitlines()[-1] == (
        f"recorded in mysql://mlmd@127.0.0.1:{mariadb.port}/{database}: execution "
        f"{operation.id}, PushedModel artifacts {pushed.id}")
    assert operation.properties["operation"].string_value == "promote"
    assert operation.properties["tag"].string_value == tag
    assert [(e.artifact_id, e.type) for e in store.get_events_by_execution_ids([operation.id])
            ] == [(pushed.id, 3)]  # Event.INPUT

    # The chain behind the version serving as stable: this run's nodes in the order they ran,
    # each the execution MariaDB holds, ending in its PushedModel and the promote.
    lineage = run_cli("lineage", "stable", "--config", str(overlay), "--format", "json")
    assert lineage.returncode == 0, lineage.stderr
    chain = json.loads(lineage.stdout)
    executions = get_run_executions(store, "penguin", result["run_id"])
    assert chain["store"] == result["metadata"]["uri"] and chain["run_id"] == result["run_id"]
    assert [(s["node"], s["execution"]) for s in chain["steps"]] == sorted(
        ((name, e.id) for name, e in executions.items()), key=lambda step: step[1])
    assert chain["pushed"] == [pushed.id]
    assert [(r["operation"], r["tag"]) for r in chain["releases"]] == [("promote", tag)]
    assert chain["data"]["spans"] == [2]

    # The reverse question: what was made from span 2.
    derived = run_cli("lineage", "--data", "2", "--config", str(overlay), "--format", "json")
    assert derived.returncode == 0, derived.stderr
    reverse = json.loads(derived.stdout)
    [model] = reverse["models"]
    assert (model["trained_by"], model["run_id"]) == (executions["Trainer"].id,
                                                       result["run_id"])
    assert [(p["version"], p["tag"], p["labels"]) for p in model["pushed"]] == [
        (1, tag, ["stable"])]

    runs = run_cli("runs", "list", "--config", str(overlay), "--json")
    assert runs.returncode == 0, runs.stderr
    [listed] = json.loads(runs.stdout)["runs"]
    assert (listed["run_id"], listed["status"], listed["executions"]) == (
        result["run_id"], "succeeded", len(result["components"]))


def test_the_password_is_nowhere(mariadb, database, tls_run):
    """Not on the terminal, in the run's log (TFX logs the connection config), the
    configuration printed, nor anywhere in the database."""
    _, overlay, result, proc = tls_run
    password = mariadb.password
    assert password not in proc.stdout + proc.stderr
    log = open(result["log_file"]).read()
    assert "mysql {" in log and 'password: "***"' in log  # TFX's line, redacted
    assert password not in log
    shown = run_cli("config", "--config", str(overlay))
    assert shown.returncode == 0 and password not in shown.stdout
    dump = subprocess.run(
        ["mariadb-dump", "--no-defaults", f"--socket={mariadb.socket}",
         f"--user={mariadb.admin_user}", database], capture_output=True, text=True, timeout=120)
    assert dump.returncode == 0, dump.stderr
    assert "PushedModel" in dump.stdout and password not in dump.stdout


# --- a server that cannot be used: one line, nothing changed ---------------------------------


def _refused(proc: subprocess.CompletedProcess, mariadb, where: str, database: str) -> str:
    """The one line on stderr, checked to name the server and the database, never the
    password; what follows the store's name."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    prefix = f"error: cannot open ML Metadata store mysql://mlmd@{where}/{database}: "
    assert lines[0].startswith(prefix), lines
    assert mariadb.password not in proc.stdout + proc.stderr
    return lines[0][len(prefix):]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(300)  # the bound: each command stops within its connect timeout
def test_pipeline_run_stops_with_one_line_when_the_server_cannot_be_used(
        mariadb, database, tmp_path):
    port = _closed_port()
    cases = {
        "wrong password": ({"password_file": None, "password_env": "MLMD_TEST_PASSWORD"},
                           f"127.0.0.1:{mariadb.port}"),
        "unreachable": ({"port": port}, f"127.0.0.1:{port}"),
        "plain": ({"tls": None}, f"127.0.0.1:{mariadb.port}"),
    }
    reasons = {}
    for name, (changes, where) in cases.items():
        overlay = write_overlay(tmp_path, metadata=mariadb.overlay(database, **changes))
        proc = _run_with_env(["run", "--config", str(overlay)],
                             {"MLMD_TEST_PASSWORD": "not-the-password"})
        assert proc.returncode == 1, (name, proc.stderr)
        reasons[name] = _refused(proc, mariadb, where, database)
        assert not (tmp_path / "var" / "logs").exists()  # stopped before the run's log
    assert reasons["wrong password"].startswith("access denied for user 'mlmd': wrong password")
    assert reasons["unreachable"] == (
        f"nothing listens on 127.0.0.1:{port} (connection refused): is the server running, "
        "and is the port right?")
    assert reasons["plain"].startswith("the server refuses plain connections "
                                       "(require_secure_transport)")
    # The secret's variable missing: the configuration's fault, exit 2, naming the variable.
    overlay = write_overlay(tmp_path, metadata=mariadb.overlay(
        database, password_file=None, password_env="MLMD_TEST_UNSET"))
    proc = _run_with_env(["run", "--config", str(overlay)], {})
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {overlay}: metadata.password_env: the environment variable MLMD_TEST_UNSET is "
        "not set (it must hold the ML Metadata password)"]


@pytest.mark.timeout(300)
def test_a_release_operation_changes_nothing_when_the_server_cannot_be_used(
        mariadb, database, tls_run, tmp_path):
    """Checked before the labels move: else the operation would be applied but unrecorded."""
    tmp, _, result, _ = tls_run
    labels = (tmp / "serving" / "penguin" / "labels.json").read_text()
    port = _closed_port()
    for changes, where in (({"port": port}, f"127.0.0.1:{port}"),
                           ({"tls": None}, f"127.0.0.1:{mariadb.port}")):
        overlay = write_overlay(tmp_path, metadata=mariadb.overlay(database, **changes),
                                pusher={"base_path": str(tmp / "serving" / "penguin")})
        proc = run_cli("release", "rollback", "--config", str(overlay))
        assert proc.returncode == 1, proc.stderr
        assert _refused(proc, mariadb, where, database).endswith("; nothing was changed")
        assert (tmp / "serving" / "penguin" / "labels.json").read_text() == labels


def _run_with_env(args: list[str], extra: dict[str, str]) -> subprocess.CompletedProcess:
    import os
    import sys

    from tests.e2e.conftest import REPO

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CONFIG", "MLMD_TEST_PASSWORD", "MLMD_TEST_UNSET")}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=REPO,
                          env={**env, **extra}, capture_output=True, text=True, timeout=300)
