"""Names that end up in paths, tags and TF Serving's config: model names, channels, tags.

The rule (checked before anything is written):

* a **channel** is ``[a-z0-9][a-z0-9_.-]*``, at most 63 characters: lower case, because it
  becomes part of a tag and matches TF Serving's lower-case labels (``stable``, ``canary``);
* a **model name** is ``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 128 characters (TF Serving model
  names are case-sensitive and appear in request URLs such as ``/v1/models/<name>``);
* neither may contain ``..``.

So ``/``, ``\\``, whitespace, control characters, quotes, ``:``, ``*`` and the like are refused, as
are the empty string, ``.`` and ``..``, and names starting with ``-`` or ``.`` (which would read
as a flag or a hidden file). The first character being a letter or digit and the absence of
``/`` make a name a single, visible path component.

A **tag** is ``<channel>-v<N>-<YYYYMMDD>``: the channel, the model's release number N (1, 2, ...)
and the UTC date of the release, e.g. ``canary-v2-20240520``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from components.serving.errors import InvalidNameError

__all__ = ["Tag", "make_tag", "parse_tag", "validate_channel", "validate_model_name"]

_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_TAG = re.compile(
    r"(?P<channel>[a-z0-9][a-z0-9_.-]*)-v(?P<number>[1-9][0-9]{0,8})-(?P<date>[0-9]{8})"
)


class Tag(NamedTuple):
    """The parts of a semantic tag."""

    channel: str
    number: int
    date: dt.date


def _problem(value: str, allowed: tuple[str, str], max_len: int) -> str:
    """Say what is wrong with ``value`` in a few words.

    ``allowed`` is (pattern of the first character, pattern of the others).
    """
    if value == "":
        return "it is empty"
    if len(value) > max_len:
        return f"it is longer than {max_len} characters"
    if ".." in value:
        return "it contains '..'"
    if not re.fullmatch(allowed[0], value[0]):
        return f"it starts with {value[0]!r}"
    for ch in value:
        if not re.fullmatch(allowed[1], ch):
            return f"it contains {ch!r}"
    return "it is not allowed"  # not reached for the patterns above


def _check(
    kind: str,
    value: object,
    pattern: re.Pattern[str],
    allowed: tuple[str, str],
    rule: str,
    max_len: int,
) -> str:
    if not isinstance(value, str):
        raise InvalidNameError(f"invalid {kind} {value!r}: expected a string")
    if pattern.fullmatch(value) and ".." not in value:
        return value
    why = _problem(value, allowed, max_len)
    raise InvalidNameError(f"invalid {kind} {value!r}: {why}; allowed: {rule}")


def validate_channel(channel: object) -> str:
    """Return ``channel`` if it is a safe channel name.

    Raises:
        InvalidNameError: naming the value and what is wrong with it.
    """
    return _check(
        "channel", channel, _CHANNEL, ("[a-z0-9]", "[a-z0-9_.-]"),
        "lower-case letters, digits, '_', '.', '-', starting with a letter or digit, no '..'",
        63,
    )


def validate_model_name(name: object) -> str:
    """Return ``name`` if it is a safe model name.

    Raises:
        InvalidNameError: naming the value and what is wrong with it.
    """
    return _check(
        "model name", name, _MODEL_NAME, ("[A-Za-z0-9]", "[A-Za-z0-9_.-]"),
        "letters, digits, '_', '.', '-', starting with a letter or digit, no '..'",
        128,
    )


def make_tag(channel: str, number: int, date: dt.date) -> str:
    """``<channel>-v<number>-<YYYYMMDD>``, e.g. ``make_tag("canary", 2, date(2024, 5, 20))``.

    Raises:
        InvalidNameError: the channel is unsafe or the number is not a positive integer.
    """
    validate_channel(channel)
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidNameError(f"invalid release number {number!r}: expected an integer >= 1")
    return f"{channel}-v{number}-{date:%Y%m%d}"


def parse_tag(tag: object) -> Tag:
    """Split a semantic tag into channel, release number and date.

    Raises:
        InvalidNameError: the value is not a well-formed tag (unsafe characters included).
    """
    if not isinstance(tag, str):
        raise InvalidNameError(f"invalid tag {tag!r}: expected a string")
    match = _TAG.fullmatch(tag)
    if match is None or ".." in tag:
        why = _problem(tag, ("[a-z0-9]", "[a-z0-9_.-]"), 100)
        why = "" if why == "it is not allowed" else f"{why}; "
        raise InvalidNameError(
            f"invalid tag {tag!r}: {why}expected <channel>-v<N>-<YYYYMMDD>, e.g. "
            "canary-v2-20240520, with a channel of lower-case letters, digits, '_', '.', '-'"
        )
    try:
        date = dt.datetime.strptime(match["date"], "%Y%m%d").date()
    except ValueError:
        raise InvalidNameError(f"invalid tag {tag!r}: {match['date']} is not a date") from None
    return Tag(validate_channel(match["channel"]), int(match["number"]), date)
