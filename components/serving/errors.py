"""Errors of release operations. A refusal changes nothing; the CLI exits 2 for it."""

from __future__ import annotations

__all__ = ["InvalidNameError", "LockTimeout", "ReleaseError", "ReleaseRefused", "ServerNotReady"]


class ReleaseError(RuntimeError):
    """A release operation failed; the message names the file, version or value at fault."""


class ReleaseRefused(ReleaseError):
    """The request is not valid in the current state (unknown tag, version not blessed, no
    previous stable, ...). Raised before anything is written."""


class InvalidNameError(ReleaseRefused, ValueError):
    """A model name, channel or tag that is unsafe or malformed; the message quotes it."""


class LockTimeout(ReleaseError):
    """Another operation held the base path's lock for longer than this one would wait; the
    message names the holder (pid, command line, since when). Nothing was changed."""


class ServerNotReady(ReleaseError):
    """TF Serving did not report a version AVAILABLE in time, so the label was not moved onto
    it: ``models.config`` is left at the first step of the move (the new version served beside
    the others, labels unchanged). The message names the version, the URL and the last state.
    """
