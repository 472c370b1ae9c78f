"""Opening ML Metadata: one connection-config builder and one ``open_store``.

A store is named by a SQLite file path or by ``MySQLSettings`` (a MySQL or MariaDB server);
both become an ``ml_metadata`` ``ConnectionConfig``. The same builder serves the project's own
readers and writers and TFX itself (``pipeline_connection_config``), so the pipeline and the
release commands always agree on where the records are.

Before a MySQL store is opened, ``mysql_probe`` asks the server, within
``MySQLSettings.connect_timeout`` per step: MLMD's client reports every failed connection with
the same empty message, after 10 s for a host that does not answer (measured). The probe also
checks the server's TLS certificate, which MLMD 1.16's client cannot (see ``connection_config``).

``ml_metadata`` (no TensorFlow) is imported only when a config is built or a store is opened.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from ml_metadata.metadata_store.metadata_store import MetadataStore
    from ml_metadata.proto.metadata_store_pb2 import ConnectionConfig

__all__ = [
    "MetadataError",
    "MySQLSettings",
    "SSLSettings",
    "StoreTarget",
    "check_mysql_server",
    "connection_config",
    "describe_store",
    "describe_target",
    "open_store",
    "pipeline_connection_config",
    "redact",
    "store_exists",
]

MYSQL_DEFAULT_PORT = 3306
# What MLMD says when another process is creating the tables of the same empty database (its
# own words, or the server's deadlock between the two), and how many times to try again then
# (5.5 s of waiting at most): creating them is idempotent.
_EMPTY_DATABASE_RACE = ("concurrent connection to the empty database",
                        "Deadlock found when trying to get lock")
_EMPTY_DATABASE_RETRIES = 10


class MetadataError(RuntimeError):
    """ML Metadata cannot be opened, read or written; the message names the store."""


@dataclass(frozen=True)
class SSLSettings:
    """TLS for a MySQL connection (``MySQLDatabaseConfig.SSLOptions``); "" leaves a file unset.

    With settings, TLS is required: the probe refuses a server that does not offer it.
    ``verify_server_cert``: the server's certificate must be signed by ``ca`` (or ``capath``;
    the system's CAs when both are empty) for the host name connected to; the probe checks it
    each time a store is opened (``check_mysql_server``), not MLMD's client (see
    ``connection_config``).
    """

    key: str = ""
    cert: str = ""
    ca: str = ""
    capath: str = ""
    cipher: str = ""
    verify_server_cert: bool = False


@dataclass(frozen=True)
class MySQLSettings:
    """A MySQL/MariaDB ML Metadata database. ``password`` is never shown (``repr``, errors)."""

    host: str
    database: str
    user: str
    password: str = field(default="", repr=False)
    port: int = MYSQL_DEFAULT_PORT
    # A Unix socket instead of host and port ("" for TCP).
    socket: str = ""
    ssl: SSLSettings | None = None
    # Seconds each step of the probe (connect, greeting, TLS, login) may take.
    connect_timeout: float = 5.0


StoreTarget = Union[str, "os.PathLike[str]", MySQLSettings, "ConnectionConfig"]


def connection_config(target: str | os.PathLike[str] | MySQLSettings, *,
                      create: bool = False) -> ConnectionConfig:
    """The ``ConnectionConfig`` of a SQLite file or a MySQL database.

    Args:
        target: a SQLite file path, or ``MySQLSettings``.
        create: create the store if missing (SQLite ``READWRITE_OPENCREATE``; MySQL creates the
            database); False: it must exist (SQLite ``READWRITE``; MySQL ``skip_db_creation``).
            For SQLite with ``create`` this is exactly the config TFX's
            ``sqlite_metadata_connection_config`` builds.

    MLMD's own ``verify_server_cert`` is always left off: MLMD 1.16's client (MariaDB
    Connector/C on BoringSSL) then fails every connection, because it asks
    ``X509_check_host`` for a name of length 0 (measured; ``mysql_probe``'s docstring). The
    certificate is checked by ``check_mysql_server`` instead, before the project opens a store
    and before a run starts; MLMD's own connections are encrypted but do not check it.
    """
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = pb.ConnectionConfig()
    if isinstance(target, MySQLSettings):
        mysql = config.mysql
        mysql.host, mysql.port = target.host, target.port
        mysql.database, mysql.user, mysql.password = target.database, target.user, target.password
        if target.socket:
            mysql.socket = target.socket
        if not create:
            mysql.skip_db_creation = True
        if target.ssl is not None:
            ssl = mysql.ssl_options
            ssl.SetInParent()  # present, even empty: MLMD's client then encrypts
            for name in ("key", "cert", "ca", "capath", "cipher"):
                value = getattr(target.ssl, name)
                if value:
                    setattr(ssl, name, value)
        return config
    sqlite = pb.SqliteMetadataSourceConfig
    config.sqlite.filename_uri = os.fspath(target)
    config.sqlite.connection_mode = sqlite.READWRITE_OPENCREATE if create else sqlite.READWRITE
    return config


def pipeline_connection_config(target: str | os.PathLike[str] | MySQLSettings
                               ) -> ConnectionConfig:
    """The config TFX's ``Pipeline(metadata_connection_config=...)`` takes: the store is created
    if missing (for SQLite, with its directory, as TFX's own helper does)."""
    config = connection_config(target, create=True)
    _make_sqlite_directory(config)
    return config


def describe_store(config: ConnectionConfig) -> str:
    """A name for the store in messages: the SQLite file, or ``mysql://user@host:port/db``
    (never the password)."""
    kind = config.WhichOneof("config")
    if kind == "sqlite":
        return config.sqlite.filename_uri
    if kind == "mysql":
        m = config.mysql
        return _mysql_name(m.user, m.host, m.port, m.database, m.socket)
    return kind or "unconfigured ML Metadata store"


def describe_target(target: str | os.PathLike[str] | MySQLSettings) -> str:
    """``describe_store`` of a target, without importing ``ml_metadata``: the SQLite file's
    absolute path, or ``mysql://user@host:port/db`` (never the password)."""
    if isinstance(target, MySQLSettings):
        return _mysql_name(target.user, target.host, target.port, target.database,
                           target.socket)
    return os.path.abspath(os.fspath(target))


def _mysql_name(user: str, host: str, port: int, database: str, socket: str) -> str:
    where = f"socket {socket}" if socket else f"{host}:{port}"
    return f"mysql://{user}@{where}/{database}"


def store_exists(target: str | os.PathLike[str] | MySQLSettings) -> bool:
    """Whether there may be records to read: False for a SQLite file not created yet; a MySQL
    database is assumed there (opening it says otherwise)."""
    return isinstance(target, MySQLSettings) or os.path.exists(target)


def check_mysql_server(settings: MySQLSettings, *, create: bool = False) -> None:
    """Asks the server whether it takes these settings (``mysql_probe``), within
    ``settings.connect_timeout`` per step.

    Args:
        create: the database may be missing (it will be created).

    Raises:
        MetadataError: one line naming the store and what is wrong, never the password.
    """
    from components.metadata.mysql_probe import ProbeError, probe_mysql, tls_context

    try:
        tls = None if settings.ssl is None else tls_context(
            ca=settings.ssl.ca, capath=settings.ssl.capath, cert=settings.ssl.cert,
            key=settings.ssl.key, cipher=settings.ssl.cipher,
            verify_server_cert=settings.ssl.verify_server_cert)
        probe_mysql(settings.host, settings.port, settings.user, settings.password,
                    settings.database, socket_path=settings.socket, tls=tls,
                    timeout=settings.connect_timeout, database_may_be_missing=create)
    except ProbeError as e:
        message = str(e).replace(settings.password, "***") if settings.password else str(e)
        raise MetadataError(
            f"cannot open ML Metadata store {describe_target(settings)}: {message}") from None


def open_store(target: StoreTarget, *, create: bool = False) -> MetadataStore:
    """A ``MetadataStore`` on ``target``: a SQLite path, ``MySQLSettings`` (the server checked
    first, ``check_mysql_server``) or a ``ConnectionConfig`` (used as given, its mode included:
    ``create`` then does not apply).

    Args:
        target: where the store is.
        create: create it if missing (and a SQLite file's directory); False: it must exist.

    Raises:
        MetadataError: the store cannot be opened; the message names it, without a password.
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    if isinstance(target, MySQLSettings):
        check_mysql_server(target, create=create)
    config = target if isinstance(target, pb.ConnectionConfig) else connection_config(
        target, create=create)
    retries = 0
    while True:
        try:
            _make_sqlite_directory(config)
            return metadata_store.MetadataStore(config)
        except Exception as e:  # MLMD raises its own error types and RuntimeError from C++
            retries += 1
            if retries <= _EMPTY_DATABASE_RETRIES and any(
                    words in str(e) for words in _EMPTY_DATABASE_RACE):
                # Two processes creating the tables of one new MySQL database: MLMD asks the
                # later one to retry once the other is done (measured: two runs at once).
                time.sleep(0.1 * retries)
                continue
            raise _open_error(config, e) from e


def _open_error(config: ConnectionConfig, e: Exception) -> MetadataError:
    reason = redact(str(e), config)
    if reason.rstrip().endswith("errno: , error:"):  # MLMD's client says nothing more
        reason += " (ML Metadata's MySQL client gives no reason)"
    return MetadataError(f"cannot open ML Metadata store {describe_store(config)}: {reason}")


def redact(message: str, config: ConnectionConfig) -> str:
    """``message`` without the config's password, should a driver ever echo it."""
    password = config.mysql.password if config.WhichOneof("config") == "mysql" else ""
    return message.replace(password, "***") if password else message


def _make_sqlite_directory(config: ConnectionConfig) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    create = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    if config.WhichOneof("config") == "sqlite" and config.sqlite.connection_mode == create:
        os.makedirs(os.path.dirname(os.path.abspath(config.sqlite.filename_uri)), exist_ok=True)
