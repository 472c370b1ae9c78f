"""The one writer and the one JSON reader of the files under a model base path.

Every file is written under a temporary name in the same directory, fsync'ed and renamed into
place, so that a reader (TF Serving polling ``models.config``, a router reading
``routing.json``, another process listing releases) sees the old file or the new one, never a
mix. Temporaries are named ``.tmp-<name>-<random>``: a writer holding the base path's lock
removes any that a killed writer left behind (``ServingDir.remove_stale_temporaries``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from typing import Any

from components.serving.errors import ReleaseError

__all__ = ["TMP_PREFIX", "fsync_path", "read_json", "write_atomically", "write_json"]

TMP_PREFIX = ".tmp-"


def fsync_path(path: str) -> None:
    """fsync a file or a directory (O_RDONLY is enough for both on Linux)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and a rename.

    The directory is fsync'ed after the rename, so the new file survives a crash.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{name}-{secrets.token_hex(4)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(directory)


def write_json(path: str, data: Any, *, sort_keys: bool = True) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically, creating its directory.

    Args:
        sort_keys: False keeps the mapping's own order (the push metadata's historic layout).

    Raises:
        ReleaseError: ``data`` holds a NaN or infinity (not JSON) or another unserialisable
            value; nothing is written.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ReleaseError(f"{path}: cannot write as JSON: {e}") from e
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, (text + "\n").encode())


def read_json(path: str, error: type[Exception] = ReleaseError) -> Any | None:
    """The JSON value in ``path``, or None when the file does not exist.

    Args:
        error: the exception raised for an unreadable file; each file's owner raises its own
            (``PushError`` for push metadata, ``ContractError`` for the contract).

    Raises:
        error: the file exists but is not readable JSON (naming the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise error(f"{path}: unreadable JSON ({e})") from e
