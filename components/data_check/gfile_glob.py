"""`tf.io.gfile.glob` on the local filesystem, in pure Python (no TensorFlow import).

TFX lists its input files with `tf.io.gfile.glob` (ImportExampleGen's span and fingerprint:
`tfx.dsl.io.fileio.glob`, whose TensorFlow filesystem wins over the local plugin), not with
Python's `glob`, which skips dot-files: a `Split-train/.part.tfrecord.gz` is read by TFX but was
invisible to the pre-flight check and to the up-to-date fingerprint. This module replicates
TensorFlow's `GetMatchingPaths` (tsl/platform/file_system_helper.cc) and POSIX
`fnmatch(pattern, path, FNM_PATHNAME)`, which `LocalPosixFileSystem::Match` calls:

- the pattern is cut into directory prefixes; the levels before the first one holding a glob
  character (`*`, `?`, `[`, `\\`) are taken as they are; from there each level's children
  (`os.listdir`: dot-files included, `.` and `..` not) are matched against the whole prefix
  pattern, and only directories are descended into; a pattern with no glob character is the
  path itself, if it exists; a pattern without a directory part is read as `./pattern`;
- `*` matches any run of characters but `/`, `?` one character but `/`, dot-files included
  (no FNM_PERIOD); `[...]` a set (ranges, `!` or `^` negation, a leading `]` literal, POSIX
  classes such as `[:digit:]`, ASCII), never `/`; an unclosed `[` is a literal `[`; `\\x`
  is a literal `x`, and a trailing `\\` matches nothing;
- the matches, files and directories alike, are returned (sorted here; TensorFlow's order
  depends on its threads).

`tests/unit/test_gfile_glob.py` checks it against `tf.io.gfile.glob` on a tree with dot-files,
nested folders and every kind of pattern. Beam's reader (`ReadFromTFRecord`) lists files with
its own rules; they agree with these for patterns without `**` (which Beam reads as "any
depth", TensorFlow as `*`).
"""

from __future__ import annotations

import os
import re

__all__ = ["GLOB_CHARS", "fnmatch_pathname", "gfile_glob"]

# What makes a level of a pattern a glob for TensorFlow (kGlobbingChars).
GLOB_CHARS = "*?[\\"
# POSIX character classes, ASCII (the C locale).
_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "blank": " \\t", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "\\x21-\\x7e", "lower": "a-z", "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~", "space": " \\t\\n\\r\\f\\v", "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}
_NEVER = re.compile(r"(?!)")


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The regex of the bracket expression whose `[` is at `start - 1`, and the index after
    its `]`; None when it is not closed (the `[` is then a literal)."""
    i, n = start, len(pattern)
    negate = i < n and pattern[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while True:
        if i >= n:
            return None
        c = pattern[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "[" and pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2:end] if end >= 0 else None
            if name in _CLASSES:
                items.append(_CLASSES[name])
                i = end + 2
                continue
            if end >= 0:  # an unknown class: glibc's fnmatch matches nothing
                return r"(?!)", end + 2
        if c == "\\" and i + 1 < n:
            c = pattern[i + 1]
            i += 1
        i += 1
        if i + 1 < n and pattern[i] == "-" and pattern[i + 1] != "]":
            high = pattern[i + 1]
            i += 2
            if high == "\\" and i < n:
                high = pattern[i]
                i += 1
            if ord(high) >= ord(c):  # a reversed range is empty
                items.append(f"{re.escape(c)}-{re.escape(high)}")
            continue
        items.append(re.escape(c))
    body = "".join(items)
    if negate:
        return (f"[^/{body}]", i)
    return (f"(?!/)[{body}]" if body else r"(?!)"), i


def _translate(pattern: str) -> re.Pattern[str]:
    """fnmatch(3) with FNM_PATHNAME (and neither FNM_PERIOD nor FNM_NOESCAPE) as a regex."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i == n:  # a trailing backslash matches nothing
                return _NEVER
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            parsed = _bracket(pattern, i)
            if parsed is None:
                out.append(re.escape("["))
            else:
                regex, i = parsed
                out.append(regex)
        else:
            out.append(re.escape(c))
    return re.compile("(?s:" + "".join(out) + r")\Z")


def fnmatch_pathname(pattern: str, path: str) -> bool:
    """True when `path` matches `pattern` as `fnmatch(pattern, path, FNM_PATHNAME) == 0`."""
    return _translate(pattern).match(path) is not None


def _dirname(path: str) -> str:
    """tsl::io::Dirname: up to the last `/` ("/" for a top-level path, "" without one)."""
    pos = path.rfind("/")
    if pos < 0:
        return ""
    return "/" if pos == 0 else path[:pos]


def _join(parent: str, child: str) -> str:
    """tsl::io::JoinPath of a directory and a child name."""
    if not parent:
        return child
    return parent + child if parent.endswith("/") else f"{parent}/{child}"


def _directory_prefixes(pattern: str) -> list[str]:
    """Every directory prefix of `pattern`, root first, the pattern itself last."""
    fixed = pattern
    for k, ch in enumerate(pattern):
        if ch in GLOB_CHARS:
            fixed = pattern[:k]
            break
    patched = _join(".", pattern) if not _dirname(fixed) else pattern
    path = _dirname(patched) if pattern.endswith("/") else patched
    prefixes = []
    while path:
        prefixes.append(path)
        parent = _dirname(path)
        if parent == path:
            break
        path = parent
    return prefixes[::-1]


def _is_glob(part: str) -> bool:
    return any(ch in GLOB_CHARS for ch in part)


def gfile_glob(pattern: str) -> list[str]:
    """The paths `tf.io.gfile.glob(pattern)` returns on the local filesystem, sorted."""
    if not pattern:
        return []
    prefixes = _directory_prefixes(pattern)
    first = next((i for i, p in enumerate(prefixes) if _is_glob(p)), len(prefixes))
    if first == len(prefixes):
        return [pattern] if os.path.exists(pattern) else []
    results: list[str] = []
    level = [(prefixes[first - 1], first - 1)] if first else [("", -1)]
    while level:
        deeper = []
        for parent, index in level:
            index += 1
            match = _translate(prefixes[index]).match
            try:
                children = os.listdir(parent)
            except OSError:  # missing, not a directory, not readable: no children
                continue
            for child in children:
                path = _join(parent, child)
                if not match(path):
                    continue
                if index == len(prefixes) - 1:
                    results.append(path)
                elif os.path.isdir(path):
                    deeper.append((path, index))
        level = deeper
    return sorted(results)
