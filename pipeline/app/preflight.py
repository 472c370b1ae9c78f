"""Checks a run can start, before any runner is asked to: the configuration against this
machine, the paths the run writes, and the input files of the selected span. Imports neither
TensorFlow nor TFX."""

from __future__ import annotations

import os

from pipeline.config import ConfigError, PipelineConfig

_SQLITE_HEADER = b"SQLite format 3\x00"


def preflight(cfg: PipelineConfig) -> int:
    """Checks the configuration against this machine and the input files; returns the span to
    read. (`check_output_paths` comes first, before the run's log is opened in work_dir.)

    Raises:
      ConfigError: NCCL asked for with no GPU visible (naming the config file).
      DataCheckError: naming the data root, the span folder or the bad file.
    """
    from components.data_check import check_input_files
    from components.trainer.strategy import (
        CommunicationError,
        gpus_visible,
        resolve_communication,
    )
    from pipeline.build import span_input_patterns
    from pipeline.spans import selected_span

    try:
        resolve_communication(cfg.trainer.distribution.communication, gpus_visible())
    except CommunicationError as e:
        raise ConfigError(f"{cfg.where}: {e}") from e
    span = selected_span(cfg)
    check_input_files(os.path.abspath(cfg.data.root), span_input_patterns(cfg, span))
    return span


def check_output_paths(cfg: PipelineConfig) -> None:
    """The folders and the metadata store the run writes can be written, checked before
    anything is: a base path that is a file otherwise ends a whole training run in "not
    pushed".

    A MySQL/MariaDB store (`metadata.kind: mysql`) is opened, and created if missing: the
    server must answer, take the credentials and the TLS settings (within
    `metadata.connect_timeout_seconds` per step).

    Raises:
      ConfigError: `<key>: <path> <what is wrong>`, for work_dir, pipeline_root,
        metadata_path and pusher.base_path (work_dir for the ones derived from it); the
        MySQL password's variable or file, or a TLS file, cannot be read.
      MetadataError: the MySQL store cannot be opened; one line naming the server and the
        database, and why.
    """
    _check_folder("work_dir", os.path.abspath(cfg.work_dir))
    _check_folder("pipeline_root" if cfg.pipeline_root else "work_dir",
                  cfg.resolved_pipeline_root)
    if cfg.metadata.kind == "mysql":
        _check_mysql(cfg)
    else:
        _check_metadata("metadata_path" if cfg.metadata_path else "work_dir",
                        cfg.resolved_metadata_path)
    _check_folder("pusher.base_path", os.path.abspath(cfg.pusher.base_path))


def _writable(path: str) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _check_folder(key: str, path: str) -> None:
    """`path` is a writable folder, or one that can be created."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ConfigError(f"{key}: {path} is a file, not a directory")
        if not _writable(path):
            raise ConfigError(f"{key}: {path} is not writable")
        return
    if os.path.islink(path):
        raise ConfigError(f"{key}: {path} is a broken symbolic link (or a loop)")
    _check_creatable(key, path)


def _check_creatable(key: str, path: str) -> None:
    """The nearest existing ancestor of the missing `path` is a writable folder."""
    ancestor = os.path.dirname(path)
    while not os.path.lexists(ancestor) and os.path.dirname(ancestor) != ancestor:
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ConfigError(f"{key}: {path} cannot be created: {ancestor} is a file, "
                          "not a directory")
    if not _writable(ancestor):
        raise ConfigError(f"{key}: {path} cannot be created: {ancestor} is not writable")


def _check_mysql(cfg: PipelineConfig) -> None:
    """The files of `metadata.tls` can be read, and the store opens (created if missing)."""
    from components.metadata import open_store

    target = cfg.metadata_target  # reads the password: ConfigError naming its variable/file
    tls = cfg.metadata.tls
    for name in ("ca", "cert", "key"):
        path = getattr(tls, name) if tls is not None else None
        if path is not None and not os.access(path, os.R_OK):
            path = os.path.abspath(path)
            why = "no such file" if not os.path.exists(path) else "not readable"
            raise ConfigError(f"{cfg.where}: metadata.tls.{name}: {path}: {why}")
    open_store(target, create=True)


def _check_metadata(key: str, path: str) -> None:
    """`path` is an SQLite database (or an empty file) the run can write, or can be created."""
    if not os.path.exists(path):
        if os.path.islink(path):
            raise ConfigError(f"{key}: {path} is a broken symbolic link (or a loop)")
        _check_creatable(key, path)
        return
    if os.path.isdir(path):
        raise ConfigError(f"{key}: {path} is a directory, not an SQLite database")
    try:
        with open(path, "rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as e:
        raise ConfigError(f"{key}: {path} cannot be read ({e.strerror or e})") from None
    if header and header != _SQLITE_HEADER:  # SQLite takes an empty file for a new database
        raise ConfigError(f"{key}: {path} is not an SQLite database (it does not start with "
                          "'SQLite format 3')")
    if not os.access(path, os.W_OK):
        raise ConfigError(f"{key}: {path} is not writable")
    # SQLite writes its journal beside the database.
    if not _writable(os.path.dirname(path)):
        raise ConfigError(f"{key}: {os.path.dirname(path)}, the folder of the metadata store "
                          f"{path}, is not writable")
