"""Opening ML Metadata: one connection-config builder and one ``open_store``.

A store is named by a SQLite file path (today) or by ``MySQLSettings`` (a MySQL or MariaDB
server, next); both become an ``ml_metadata`` ``ConnectionConfig``. The same builder serves the
project's own readers and writers and TFX itself (``pipeline_connection_config``), so the
pipeline and the release commands always agree on where the records are.

``ml_metadata`` (no TensorFlow) is imported only when a config is built or a store is opened.
"""

from __future__ import annotations

import os
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
    "connection_config",
    "describe_store",
    "open_store",
    "pipeline_connection_config",
    "redact",
]

MYSQL_DEFAULT_PORT = 3306


class MetadataError(RuntimeError):
    """ML Metadata cannot be opened, read or written; the message names the store."""


@dataclass(frozen=True)
class SSLSettings:
    """TLS for a MySQL connection (``MySQLDatabaseConfig.SSLOptions``); "" leaves a file unset."""

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
            for name in ("key", "cert", "ca", "capath", "cipher"):
                value = getattr(target.ssl, name)
                if value:
                    setattr(ssl, name, value)
            ssl.verify_server_cert = target.ssl.verify_server_cert
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
        where = f"socket {m.socket}" if m.socket else f"{m.host}:{m.port}"
        return f"mysql://{m.user}@{where}/{m.database}"
    return kind or "unconfigured ML Metadata store"


def open_store(target: StoreTarget, *, create: bool = False) -> MetadataStore:
    """A ``MetadataStore`` on ``target``: a SQLite path, ``MySQLSettings`` or a
    ``ConnectionConfig`` (used as given, its mode included: ``create`` then does not apply).

    Args:
        target: where the store is.
        create: create it if missing (and a SQLite file's directory); False: it must exist.

    Raises:
        MetadataError: the store cannot be opened; the message names it, without a password.
    """
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    config = target if isinstance(target, pb.ConnectionConfig) else connection_config(
        target, create=create)
    try:
        _make_sqlite_directory(config)
        return metadata_store.MetadataStore(config)
    except Exception as e:  # MLMD raises its own error types and RuntimeError from C++
        raise MetadataError(
            f"cannot open ML Metadata store {describe_store(config)}: {redact(str(e), config)}"
        ) from e


def redact(message: str, config: ConnectionConfig) -> str:
    """``message`` without the config's password, should a driver ever echo it."""
    password = config.mysql.password if config.WhichOneof("config") == "mysql" else ""
    return message.replace(password, "***") if password else message


def _make_sqlite_directory(config: ConnectionConfig) -> None:
    from ml_metadata.proto import metadata_store_pb2 as pb

    create = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    if config.WhichOneof("config") == "sqlite" and config.sqlite.connection_mode == create:
        os.makedirs(os.path.dirname(os.path.abspath(config.sqlite.filename_uri)), exist_ok=True)
