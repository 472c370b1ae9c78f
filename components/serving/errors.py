"""Errors of release operations. A refusal changes nothing; the CLI exits 2 for it."""

from __future__ import annotations

__all__ = ["InvalidNameError", "ReleaseError", "ReleaseRefused"]


class ReleaseError(RuntimeError):
    """A release operation failed; the message names the file, version or value at fault."""


class ReleaseRefused(ReleaseError):
    """The request is not valid in the current state (unknown tag, version not blessed, no
    previous stable, ...). Raised before anything is written."""


class InvalidNameError(ReleaseRefused, ValueError):
    """A model name, channel or tag that is unsafe or malformed; the message quotes it."""
