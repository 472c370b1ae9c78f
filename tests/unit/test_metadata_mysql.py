"""ML Metadata on MySQL/MariaDB: the `metadata:` section, its secret, and opening a store on the
real server of scripts/setup_mariadb.sh (TLS required; fixtures in tests/mariadb.py), each
failure as one line that names the server and the database, never the password."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from components.metadata import (
    MetadataError,
    MySQLSettings,
    SSLSettings,
    check_mysql_server,
    connection_config,
    open_store,
)
from pipeline.config import ConfigError, config_to_dict, load_config

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-Do-Not-Print-7f1c"


def _overlay(tmp_path: Path, metadata: dict, name: str = "overlay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"work_dir": str(tmp_path / "var"), "metadata": metadata}))
    return path


MYSQL = {"kind": "mysql", "host": "db.internal", "port": 3307, "database": "mlmd",
         "user": "tfx", "password_env": "TEST_MLMD_PASSWORD"}


def _load(tmp_path: Path, **changes):
    return load_config(config_file=_overlay(tmp_path, {**MYSQL, **changes}), check_schema=False)


# --- the configuration -----------------------------------------------------------------------


def test_sqlite_stays_the_default(tmp_path):
    cfg = load_config(config_file=_overlay(tmp_path, {}), check_schema=False)
    assert cfg.metadata.kind == "sqlite"
    assert cfg.metadata_target == cfg.resolved_metadata_path == str(
        tmp_path / "var" / "metadata.sqlite")
    assert cfg.metadata_uri == cfg.resolved_metadata_path


def test_a_mysql_section_gives_the_server_with_the_password_read_when_asked(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _load(tmp_path, tls={"ca": "certs/ca.pem", "cert": "certs/c.pem", "key": "certs/k.pem"},
                connect_timeout_seconds=2)
    monkeypatch.setenv("TEST_MLMD_PASSWORD", SECRET)
    target = cfg.metadata_target
    assert target == MySQLSettings(
        host="db.internal", port=3307, database="mlmd", user="tfx", password=SECRET,
        ssl=SSLSettings(ca=str(tmp_path / "certs/ca.pem"), cert=str(tmp_path / "certs/c.pem"),
                        key=str(tmp_path / "certs/k.pem"), verify_server_cert=True),
        connect_timeout=2.0)
    assert cfg.metadata_uri == "mysql://tfx@db.internal:3307/mlmd"
    # Read at that moment: a changed secret is the one used next.
    monkeypatch.setenv("TEST_MLMD_PASSWORD", "rotated")
    assert cfg.metadata_target.password == "rotated"


def test_the_password_file_gives_its_first_line(tmp_path):
    secret = tmp_path / "mlmd-password"
    secret.write_text(SECRET + "\n")
    cfg = _load(tmp_path, password_env=None, password_file=str(secret))
    assert cfg.metadata_target.password == SECRET


def test_a_missing_variable_or_file_is_one_line_naming_it(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_MLMD_PASSWORD", raising=False)
    cfg = _load(tmp_path)
    with pytest.raises(ConfigError) as caught:
        _ = cfg.metadata_target
    assert str(caught.value) == (
        f"{tmp_path / 'overlay.yaml'}: metadata.password_env: the environment variable "
        "TEST_MLMD_PASSWORD is not set (it must hold the ML Metadata password)")
    cfg = _load(tmp_path, password_env=None, password_file=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match=r"metadata.password_file: .*/nope: cannot read the "
                                          "password: No such file or directory$"):
        _ = cfg.metadata_target


def test_a_literal_password_is_refused_without_repeating_it(tmp_path):
    overlay = _overlay(tmp_path, {**MYSQL, "password": SECRET})
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "--config",
                           str(overlay)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: {overlay}: metadata: a password is never written in a configuration file (it "
        "is copied into run logs, DAG files and ML Metadata): name an environment variable in "
        "metadata.password_env, or a file holding it in metadata.password_file"]
    assert SECRET not in proc.stdout + proc.stderr


@pytest.mark.parametrize(("changes", "problem"), [
    ({"user": None}, "metadata.user: missing; kind mysql needs host (or socket), database and "
                     "user"),
    ({"host": "localhost"}, "metadata.host: 'localhost' means the Unix socket to ML Metadata's "
                            "MySQL client; use 127.0.0.1 for TCP, or set socket"),
    ({"password_env": None}, "metadata.password_env: set either password_env (an environment "
                             "variable's name) or password_file (a file holding the password)"),
    ({"password_file": "/run/secrets/mlmd"},
     "metadata.password_env: set either password_env (an environment variable's name) or "
     "password_file (a file holding the password), not both"),
    ({"tls": {"key": "k.pem"}}, "metadata.tls.key: set tls.cert too (the client certificate "
                                "the key belongs to)"),
    ({"password_env": "hunter2!"}, "metadata.password_env: expected the name of an environment "
                                   "variable (letters, digits, '_'), not the password"),
    ({"database": "mlmd-prod"}, "metadata.database: use at most 64 letters, digits, '_' or '$'"),
    ({"port": 0}, "metadata.port: expected a positive integer, got 0"),
])
def test_a_mysql_section_that_cannot_work_is_refused(tmp_path, changes, problem):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, **changes)
    assert str(caught.value) == f"{tmp_path / 'overlay.yaml'}: {problem}"


def test_the_password_is_in_no_dump_of_the_configuration(tmp_path, monkeypatch):
    """What copies the configuration: `pipeline config`, the run record's fingerprint, the
    Airflow DAG file (`portable_config`), the run's --json (`metadata_uri`)."""
    from runners.airflow import portable_config

    secret = tmp_path / "pw"
    secret.write_text(SECRET)
    monkeypatch.setenv("TEST_MLMD_PASSWORD", SECRET)
    for cfg in (_load(tmp_path), _load(tmp_path, password_env=None, password_file=str(secret))):
        assert cfg.metadata_target.password == SECRET
        dumps = [yaml.safe_dump(config_to_dict(cfg)), json.dumps(portable_config(cfg)),
                 cfg.metadata_uri, repr(cfg), repr(cfg.metadata_target)]
        for text in dumps:
            assert SECRET not in text
    assert portable_config(cfg)["metadata"]["password_file"] == str(secret)
    overlay = _overlay(tmp_path, MYSQL)
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "--config",
                           str(overlay)], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TEST_MLMD_PASSWORD": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert "password_env: TEST_MLMD_PASSWORD" in proc.stdout and SECRET not in proc.stdout


def test_mlmd_never_gets_its_own_broken_certificate_check():
    config = connection_config(MySQLSettings(
        host="127.0.0.1", database="mlmd", user="tfx",
        ssl=SSLSettings(ca="/ca.pem", verify_server_cert=True)))
    assert config.mysql.ssl_options.ca == "/ca.pem"
    assert config.mysql.HasField("ssl_options") and not config.mysql.ssl_options.verify_server_cert
    # TLS with no file at all is still TLS: the options are present.
    bare = connection_config(MySQLSettings(host="127.0.0.1", database="m", user="u",
                                           ssl=SSLSettings()))
    assert bare.mysql.HasField("ssl_options")


# --- the real server -------------------------------------------------------------------------


def test_a_store_opens_over_tls_with_the_servers_certificate_checked(mariadb,
                                                                     mariadb_database):
    from ml_metadata.proto import metadata_store_pb2 as pb

    settings = mariadb.settings(mariadb_database)
    store = open_store(settings, create=True)
    store.put_execution_type(pb.ExecutionType(name="Probe"))
    again = open_store(settings)  # an existing store: no creation asked
    assert [t.name for t in again.get_execution_types()] == ["Probe"]


def test_mlmd_cannot_check_the_certificate_itself(mariadb, mariadb_database):
    """Why the probe checks it (components/metadata/mysql_probe.py): MLMD 1.16's client fails
    every connection with `verify_server_cert`, even to this server with its own CA. When this
    test fails, MLMD's check works: hand it back to MLMD (`connection_config`)."""
    config = connection_config(mariadb.settings(mariadb_database))
    config.mysql.ssl_options.verify_server_cert = True
    with pytest.raises(MetadataError, match=r"mysql_real_connect failed: errno: , error: "):
        open_store(config)
    config.mysql.ssl_options.verify_server_cert = False
    open_store(config)


def _other_ca(tmp_path: Path) -> str:
    ca = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=another CA", "-keyout", str(tmp_path / "other-ca-key.pem"),
                    "-out", str(ca)], check=True, capture_output=True)
    return str(ca)


def test_a_server_certificate_from_another_ca_is_refused(mariadb, mariadb_database, tmp_path):
    other = mariadb.settings(mariadb_database, ssl=SSLSettings(ca=_other_ca(tmp_path),
                                                               verify_server_cert=True))
    with pytest.raises(MetadataError) as caught:
        open_store(other)
    assert str(caught.value) == (
        f"cannot open ML Metadata store mysql://mlmd@127.0.0.1:{mariadb.port}/"
        f"{mariadb_database}: TLS: the server's certificate was refused: self-signed "
        "certificate in certificate chain (metadata.tls.ca must be the CA that signed it, "
        "for this host name)")
    # Unchecked, the same connection goes through: the check is what refused it.
    unchecked = mariadb.settings(mariadb_database, ssl=SSLSettings(ca=other.ssl.ca))
    open_store(unchecked)


def test_a_user_that_needs_a_client_certificate(mariadb, mariadb_database):
    without = mariadb.settings(mariadb_database, user=mariadb.x509_user)
    with pytest.raises(MetadataError, match=r"access denied for user 'mlmd_x509': wrong "
                                            "password, or the user may not connect from this "
                                            "host or without a client certificate"):
        open_store(without)
    with_cert = mariadb.settings(mariadb_database, user=mariadb.x509_user, ssl=SSLSettings(
        ca=mariadb.ca, cert=mariadb.cert, key=mariadb.key, verify_server_cert=True))
    open_store(with_cert)


def _assert_one_line(error: BaseException, mariadb, database: str, port: int | None = None):
    message = str(error)
    assert "\n" not in message
    assert f"mysql://mlmd@127.0.0.1:{port or mariadb.port}/{database}:" in message
    assert mariadb.password not in message
    return message.split(f"/{database}: ", 1)[1]


@pytest.mark.timeout(60)  # the bound: each case answers within its connect timeout
def test_each_failure_is_one_line_naming_server_and_database(mariadb, mariadb_database):
    cases = {
        "wrong password": mariadb.settings(mariadb_database, password="not-the-password"),
        "plain": mariadb.settings(mariadb_database, ssl=None),
        "no database": mariadb.settings("mlmd_never_created"),
        "no grant": mariadb.settings("mysql"),
    }
    reasons = {}
    for name, settings in cases.items():
        with pytest.raises(MetadataError) as caught:
            open_store(settings)
        reasons[name] = _assert_one_line(caught.value, mariadb, settings.database)
    assert reasons["wrong password"].startswith(
        "access denied for user 'mlmd': wrong password, or the user may not connect from this "
        "host or without a client certificate (server: Access denied for user 'mlmd'@")
    assert reasons["plain"] == (
        "the server refuses plain connections (require_secure_transport): set metadata.tls "
        "(at least its ca, to check the server's certificate)")
    assert reasons["no database"] == (
        "the database 'mlmd_never_created' does not exist (nothing recorded there yet?)")
    assert reasons["no grant"] == "user 'mlmd' has no access to the database 'mysql'"


@pytest.mark.timeout(60)
def test_an_unreachable_or_silent_server_is_one_line_within_the_timeout(mariadb,
                                                                         mariadb_database):
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]
    with pytest.raises(MetadataError) as caught:
        open_store(mariadb.settings(mariadb_database, port=closed_port))
    assert _assert_one_line(caught.value, mariadb, mariadb_database, closed_port) == (
        f"nothing listens on 127.0.0.1:{closed_port} (connection refused): is the server "
        "running, and is the port right?")

    # A server that takes the connection and never says a word: MLMD's client would wait.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    port = silent.getsockname()[1]
    try:
        with pytest.raises(MetadataError) as caught:
            open_store(mariadb.settings(mariadb_database, port=port, connect_timeout=1.0))
    finally:
        silent.close()
    assert _assert_one_line(caught.value, mariadb, mariadb_database, port) == (
        f"127.0.0.1:{port} took the connection but sent no MySQL greeting within 1 s (not a "
        "MySQL server, or it is overloaded)")


def test_a_user_signing_in_with_another_method_is_told_what_mlmd_needs(mariadb,
                                                                        mariadb_database):
    """MySQL 8's default (caching_sha2_password) is the usual case; MariaDB's ed25519 shows
    the same answer here."""
    installed = mariadb.sql("SELECT COUNT(*) FROM information_schema.PLUGINS "
                            "WHERE PLUGIN_NAME = 'ed25519'").strip()
    if installed == "0":
        mariadb.sql("INSTALL SONAME 'auth_ed25519'")
    user = f"ed_{mariadb_database[-8:]}"
    mariadb.sql(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED VIA ed25519 USING "
                f"PASSWORD('{mariadb.password}'); GRANT ALL ON `{mariadb_database}`.* TO "
                f"'{user}'@'127.0.0.1'")
    try:
        with pytest.raises(MetadataError) as caught:
            check_mysql_server(mariadb.settings(mariadb_database, user=user))
    finally:
        mariadb.sql(f"DROP USER '{user}'@'127.0.0.1'")
    assert str(caught.value).endswith(
        f"user '{user}' signs in with client_ed25519, which ML Metadata's MySQL client cannot: "
        "ALTER USER ... IDENTIFIED VIA mysql_native_password USING PASSWORD('...')")


_OPEN_AT_ONCE = """
import os, sys, time
from components.metadata import MySQLSettings, SSLSettings, open_store
settings = MySQLSettings(host="127.0.0.1", port=int(sys.argv[1]), database=sys.argv[2],
                         user="mlmd", password=os.environ["MLMD_TEST_PASSWORD"],
                         ssl=SSLSettings(ca=sys.argv[3], verify_server_cert=True))
import ml_metadata.metadata_store.metadata_store  # imported before the start
print("ready", flush=True)
while not os.path.exists(sys.argv[4]):
    time.sleep(0.001)
store = open_store(settings, create=True)
from components.metadata import DataFile, RunProvenance, RunRequest, record_run_request
files = (DataFile("span-2/a.tfrecord.gz", "/data/span-2/a.tfrecord.gz", 10, "ab" * 32),)
request = RunRequest(trigger="run", provenance=RunProvenance(git_commit="c0ffee", span=2,
                                                             data_files=files))
print("opened", flush=True)
while not os.path.exists(sys.argv[4] + "-record"):  # then all record at once
    time.sleep(0.001)
record_run_request(store, "penguin", sys.argv[5], request)
print("recorded", flush=True)
"""


@pytest.mark.timeout(300)
def test_processes_starting_on_one_new_database_at_once_each_record_once(
        mariadb, mariadb_database, tmp_path):
    """Six runs starting at the same moment on an empty database: each opens it and records its
    request, on the same pipeline and input file. MLMD refuses all but one of several first
    connections ("Please retry connection"; measured: 5 of 6 refused without the retry in
    `open_store`), and two processes creating the same context or DataFile collide."""
    go = tmp_path / "go"
    env = {**os.environ, "MLMD_TEST_PASSWORD": mariadb.password}
    procs = [subprocess.Popen([sys.executable, "-c", _OPEN_AT_ONCE, str(mariadb.port),
                               mariadb_database, mariadb.ca, str(go), f"run-{i}"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(6)]
    for proc in procs:
        assert proc.stdout.readline() == "ready\n", proc.stderr.read()
    go.touch()
    for proc in procs:
        assert proc.stdout.readline() == "opened\n", proc.stderr.read()
    (tmp_path / "go-record").touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out == "recorded\n", err[-2000:]
    store = open_store(mariadb.settings(mariadb_database))
    [pipeline] = store.get_contexts_by_type("pipeline")
    requests = store.get_executions_by_type("RunRequest")
    assert sorted(e.properties["run_id"].string_value for e in requests) == [
        f"run-{i}" for i in range(6)]
    assert sorted(e.id for e in store.get_executions_by_context(pipeline.id)) == sorted(
        e.id for e in requests)
    [data_file] = store.get_artifacts_by_type("DataFile")
    assert sorted(e.execution_id for e in store.get_events_by_artifact_ids([data_file.id])
                  ) == sorted(e.id for e in requests)
