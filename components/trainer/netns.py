"""A private network namespace with only loopback up, shared by the workers of a local group.

TensorFlow's gRPC server listens on `[::]:<port>` whatever host the cluster spec names, and
does not authenticate, so a local group on the host's network can be reached from anywhere.
Inside a namespace of its own, the group's ports exist on its own loopback only.

How: a short-lived holder process (`python -m components.trainer.netns`) unshares its network
namespace (as root; otherwise inside a new user namespace that maps only the caller's uid and
gid), brings `lo` up and says "ready"; the launcher opens `/proc/<holder>/ns/net` (and `user`),
which keeps the namespace alive after the holder exits, and hands the handles to each worker,
which joins with `setns` as its first act (components/trainer/lifeline.py). All workers share
one namespace, so they reach each other on loopback.
Where the OS allows neither (no root, user namespaces off, a seccomp filter), the launcher
falls back to the host's network and says so in the run's log.

Pure standard library: no TensorFlow, no external commands (`unshare`, `ip`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_READY = "ready"
# The holder needs a Python start-up and three system calls: seconds would mean a stuck system.
_HOLDER_TIMEOUT_SECONDS = 30.0


class IsolationUnavailable(OSError):
    """No private network namespace could be made here; the message says why."""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _unshare_loopback_only() -> None:
    """Moves this process into a new network namespace (and user namespace when not
    privileged) and brings its loopback interface up."""
    libc = _libc()
    if libc.unshare(CLONE_NEWNET) != 0:
        first = ctypes.get_errno()
        if first != errno.EPERM:
            raise OSError(first, f"unshare(CLONE_NEWNET): {os.strerror(first)}")
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            second = ctypes.get_errno()
            raise OSError(second, f"unshare(CLONE_NEWNET): {os.strerror(first)}, and with a "
                                  f"new user namespace: {os.strerror(second)}")
        # The same uid and gid inside: files the workers write keep their owner.
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            request = struct.pack("16sH22x", b"lo", 0)
            flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request)[:18])[1]
            fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))
    except OSError as e:
        raise OSError(e.errno, f"bringing up lo: {os.strerror(e.errno)}") from None


@dataclass
class PrivateNetwork:
    """Open handles on a private namespace; `enter` moves the calling process into it (it must
    have a single thread to join a user namespace)."""

    net_fd: int
    user_fd: int | None  # None: a network namespace of the host's user namespace (root)

    def enter(self) -> None:
        libc = _libc()
        if self.user_fd is not None:  # first: the network namespace belongs to it
            _check(libc.setns(self.user_fd, CLONE_NEWUSER), "setns(user)")
        _check(libc.setns(self.net_fd, CLONE_NEWNET), "setns(net)")

    def close(self) -> None:
        for fd in (self.net_fd, self.user_fd):
            if fd is not None:
                os.close(fd)

    @property
    def kind(self) -> str:
        return "a private network namespace" + (
            " (in a user namespace)" if self.user_fd is not None else "")


def open_private_network(env: dict[str, str] | None = None) -> PrivateNetwork:
    """A new namespace with only loopback up, for the workers of one local group.

    Raises:
      IsolationUnavailable: the OS refused it; the message gives the system's reason.
    """
    try:
        holder = subprocess.Popen(
            [sys.executable, "-m", "components.trainer.netns"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # it exits when its stdin closes, the launcher's death included
    except OSError as e:
        raise IsolationUnavailable(f"cannot start the namespace holder: {e}") from None
    try:
        line = _read_line(holder)
        if line != _READY:
            raise IsolationUnavailable(line or "the namespace holder said nothing")
        net_fd = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        user_fd = None
        user_path = f"/proc/{holder.pid}/ns/user"
        if os.stat(user_path).st_ino != os.stat("/proc/self/ns/user").st_ino:
            user_fd = os.open(user_path, os.O_RDONLY | os.O_CLOEXEC)
        return PrivateNetwork(net_fd, user_fd)
    finally:
        holder.stdin.close()  # the holder exits; the open handles keep the namespace
        try:
            holder.wait(timeout=_HOLDER_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()


def _read_line(holder: subprocess.Popen) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(holder.stdout, selectors.EVENT_READ)
        if not sel.select(_HOLDER_TIMEOUT_SECONDS):
            return f"the namespace holder did not answer within {_HOLDER_TIMEOUT_SECONDS:g} s"
    return holder.stdout.readline().strip()


def _hold() -> int:
    try:
        _unshare_loopback_only()
    except OSError as e:
        print(e.strerror or str(e), flush=True)
        return 0
    print(_READY, flush=True)
    sys.stdin.read()  # until the launcher has opened the namespace and closes our stdin
    return 0


if __name__ == "__main__":
    sys.exit(_hold())
