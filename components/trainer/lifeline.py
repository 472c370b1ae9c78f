"""What a worker started by the local launcher does first: join the group's network namespace,
then arrange to die with the launcher.

Done by the worker itself, right after exec, not by a `preexec_fn` between fork and exec: the
launcher runs inside the TFX Trainer, a process with TensorFlow's threads, and Python code run in
a child forked from such a process can deadlock (measured here: a worker hung for good in
`preexec_fn`, and the launcher with it inside `Popen`). Without `preexec_fn`, `subprocess` starts
the child without running any Python in it.

The launcher hands over (see `child_env`): its pid, and the open namespace handles as inherited
file descriptors. Joining a user namespace clears the parent-death signal, so the order is fixed:
namespace first, then `PR_SET_PDEATHSIG`, then the check that the launcher is still the parent
(it may have died before the signal was set).
"""

from __future__ import annotations

import ctypes
import os
import signal

from components.trainer.netns import PrivateNetwork

PARENT_VAR = "TRAINER_LAUNCHER_PID"
NETNS_VAR = "TRAINER_NETNS_FDS"  # "net_fd" or "net_fd,user_fd"
_PR_SET_PDEATHSIG = 1


class LifelineError(OSError):
    """The worker could not join its group's namespace; the message says why."""


def child_env(network: PrivateNetwork | None) -> tuple[dict[str, str], tuple[int, ...]]:
    """The variables and the file descriptors to hand to a worker of this launcher."""
    env = {PARENT_VAR: str(os.getpid())}
    if network is None:
        return env, ()
    fds = (network.net_fd,) + ((network.user_fd,) if network.user_fd is not None else ())
    env[NETNS_VAR] = ",".join(str(fd) for fd in fds)
    return env, fds


def join_launcher_group() -> bool:
    """Joins the namespace and sets the death signal, if a launcher asked for them.

    Call first thing in the worker, before any thread starts (joining a user namespace needs a
    single-threaded process). Returns False when the launcher is already gone (then exit).

    Raises:
      LifelineError: the namespace could not be joined.
    """
    fds = os.environ.pop(NETNS_VAR, "")
    if fds:
        net_fd, *user = (int(x) for x in fds.split(","))
        network = PrivateNetwork(net_fd, user[0] if user else None)
        try:
            network.enter()
        except OSError as e:
            raise LifelineError(e.errno, f"joining the worker group's network: {e}") from None
        finally:
            network.close()
    parent = os.environ.pop(PARENT_VAR, "")
    if not parent:
        return True
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    return os.getppid() == int(parent)
