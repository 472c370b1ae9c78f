"""JSON files of the serving directory, written atomically and read strictly."""

from __future__ import annotations

import json
import os
from typing import Any

from components.serving.errors import ReleaseError
from components.serving.versions import write_atomically

__all__ = ["read_json", "write_json"]


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temporary file, fsync, ``os.replace``).

    Raises:
        ReleaseError: ``data`` holds a NaN or infinity (not JSON) or another unserialisable
            value; nothing is written.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ReleaseError(f"{path}: cannot write as JSON: {e}") from e
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, (text + "\n").encode())


def read_json(path: str) -> Any | None:
    """The JSON value in ``path``, or None when the file does not exist.

    Raises:
        ReleaseError: the file exists but is not readable JSON (naming the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ReleaseError(f"{path}: unreadable JSON ({e})") from e
