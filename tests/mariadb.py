"""The MariaDB server of the ML Metadata tests (scripts/setup_mariadb.sh, which `make test` runs
first), as pytest fixtures: `mariadb` (the server) and `mariadb_database` (a database of the
test's own, dropped after it, so that test modules can run side by side).

Where the server is missing: in CI (the `CI` variable set) the tests fail, they are never
skipped; elsewhere they are skipped with the command that sets the server up.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SETUP = "scripts/setup_mariadb.sh"


def settings_file() -> Path:
    return Path(os.environ.get("MARIADB_DIR", REPO / "var" / "mariadb")) / "connection.json"


@dataclass(frozen=True)
class MariaDB:
    """The server as scripts/setup_mariadb.sh left it (its connection.json)."""

    host: str
    port: int
    user: str
    x509_user: str
    password_file: str
    database: str
    ca: str
    cert: str
    key: str
    socket: str
    admin_user: str

    @property
    def password(self) -> str:
        return Path(self.password_file).read_text().strip()

    def settings(self, database: str, **changes: Any):
        """`MySQLSettings` over TLS, the server's certificate checked against the CA."""
        import dataclasses

        from components.metadata import MySQLSettings, SSLSettings

        settings = MySQLSettings(host=self.host, port=self.port, database=database,
                                 user=self.user, password=self.password,
                                 ssl=SSLSettings(ca=self.ca, verify_server_cert=True))
        return dataclasses.replace(settings, **changes)

    def overlay(self, database: str, **changes: Any) -> dict[str, Any]:
        """The `metadata:` section of a config overlay for `database` (password from the file,
        TLS with the server's certificate checked)."""
        section = {"kind": "mysql", "host": self.host, "port": self.port, "database": database,
                   "user": self.user, "password_file": self.password_file,
                   "tls": {"ca": self.ca, "verify_server_cert": True}}
        section.update(changes)
        return section

    def sql(self, statement: str) -> str:
        """Runs `statement` as the administrator (the Unix socket); its output."""
        proc = subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={self.socket}", f"--user={self.admin_user}",
             "--batch", "--skip-column-names", "-e", statement],
            capture_output=True, text=True, timeout=60)
        if proc.returncode:
            raise RuntimeError(f"mariadb: {statement}: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, hint: str) -> str:
        """A new, empty database named after `hint` (the test), unique to this call."""
        slug = re.sub(r"[^A-Za-z0-9_]", "_", hint)[:40]
        name = f"mlmd_{slug}_{uuid.uuid4().hex[:8]}"
        self.sql(f"CREATE DATABASE `{name}`")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{name}`")


def _unavailable(reason: str):
    message = (f"no MariaDB server for the ML Metadata tests: {reason}; "
               f"run {SETUP} (make test does)")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def mariadb() -> MariaDB:
    """The server, checked to answer (TLS, the test user's password)."""
    from components.metadata import MetadataError, check_mysql_server

    path = settings_file()
    if not path.is_file():
        _unavailable(f"{path} is missing")
    server = MariaDB(**json.loads(path.read_text()))
    try:
        check_mysql_server(server.settings(server.database))
    except MetadataError as e:
        _unavailable(str(e))
    return server


@pytest.fixture
def mariadb_database(mariadb: MariaDB, request) -> str:
    """A database of this test's own on `mariadb`, dropped after the test."""
    name = mariadb.create_database(request.node.name)
    yield name
    mariadb.drop_database(name)
