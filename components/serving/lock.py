"""The base path's lock: ``flock`` on ``<base>/.lock``, with a bounded wait and a named holder.

Every writer of a base path (a push, a release, promote, rollback, traffic, prune) holds it for
the whole operation, across processes and threads alike. The kernel drops the lock of a holder
that dies, so a killed operation never wedges the next one; a live holder that does not let go
(hung, or waiting a long time for TF Serving) makes the next one give up after its timeout with
a message naming the holder. The holder writes who it is into the lock file as one JSON line,
right after acquiring it, and empties the file when it lets go::

    {"pid": 4242, "command": "python -m pipeline.cli release promote canary",
     "since": "2026-11-30T10:12:03+00:00"}

Pure standard library.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from components.serving.errors import LockTimeout

__all__ = ["DEFAULT_LOCK_TIMEOUT_SECONDS", "LOCK_FILE", "describe_lock_holder", "hold_lock"]

LOCK_FILE = ".lock"
# How long an operation waits for another's lock unless told otherwise (``pusher.serving``'s
# ``lock_timeout_seconds``): longer than a push of a large model plus the wait for TF Serving
# to load it.
DEFAULT_LOCK_TIMEOUT_SECONDS = 600.0
_RETRY_SECONDS = 0.05

# Base paths whose lock the current thread holds, so that an operation holding the lock (a
# release: push + record + models.config) can call ``push`` without deadlocking on its own flock.
_held = threading.local()


@contextlib.contextmanager
def hold_lock(base_path: str, timeout: float) -> Iterator[bool]:
    """Hold the lock of ``base_path`` (absolute), waiting at most ``timeout`` seconds.

    Re-entrant within a thread. Creates the base path if missing.

    Yields:
        True for the outermost hold of this thread (the one that acquired the flock).

    Raises:
        LockTimeout: another process or thread still held it after ``timeout`` s; the message
            names the holder.
    """
    held: set[str] = _held.__dict__.setdefault("paths", set())
    if base_path in held:
        yield False
        return
    os.makedirs(base_path, exist_ok=True)
    path = os.path.join(base_path, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, base_path, timeout)
        held.add(base_path)
        try:
            _write_holder(fd)
            yield True
        finally:
            held.discard(base_path)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it now
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _acquire(fd: int, path: str, base_path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"gave up after {timeout:g} s waiting for the lock of {base_path}: "
                    f"{describe_lock_holder(path)}"
                ) from None
            time.sleep(_RETRY_SECONDS)


def _command_line() -> str:
    try:
        with open("/proc/self/cmdline", "rb") as f:
            args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        args = list(sys.argv)
    return " ".join(" ".join(args).split())[:300]  # one line, whatever the arguments hold


def _write_holder(fd: int) -> None:
    holder = {
        "pid": os.getpid(),
        "command": _command_line(),
        "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by another user
    return True


def _read_holder(lock_path: str) -> dict[str, Any] | None:
    # A holder that has just acquired the lock may not have written its line yet: try again
    # briefly before saying it did not say who it is.
    for _ in range(5):
        try:
            with open(lock_path, encoding="utf-8") as f:
                holder = json.loads(f.read() or "null")
        except (OSError, ValueError):
            holder = None
        if isinstance(holder, dict) and isinstance(holder.get("pid"), int):
            return holder
        time.sleep(0.02)
    return None


def describe_lock_holder(lock_path: str) -> str:
    """Who holds the lock at ``lock_path``, in words, from what the holder wrote into it."""
    holder = _read_holder(lock_path)
    if holder is None:
        return "held by a process that did not say who it is"
    since = holder.get("since", "?")
    ago = ""
    with contextlib.suppress(TypeError, ValueError):
        seconds = (datetime.now(timezone.utc) - datetime.fromisoformat(since)).total_seconds()
        ago = f", {seconds:.0f} s ago"
    command = holder.get("command") or "unknown command"
    words = f"pid {holder['pid']} ({command}), since {since}{ago}"
    if not _alive(holder["pid"]):
        return f"held by a process that did not say who it is (last holder: {words}, exited)"
    return f"held by {words}"
