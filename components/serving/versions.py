"""Push a SavedModel into a TensorFlow Serving model base path, atomically.

Layout of a base path::

    <base>/1/, <base>/2/, ...      version directories, the only entries TF Serving reads
    <base>/.versions/<N>.json      {"version", "content_hash", "pushed_at"} per pushed version
    <base>/.version_counter        the last version number handed out (never reused)
    <base>/.lock                   flock'ed for the whole of a push or release operation;
                                   holds its holder's pid, command line and start time
    <base>/.tmp-*                  work in progress; removed by whoever takes the lock next
                                   (as are ``.tmp-*`` files in hidden bookkeeping directories)

A numeric directory appears in one ``rename`` and only once complete and fsync'ed, so TF
Serving (which polls the base path) never loads a half-copied model. Pure standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from components.serving.files import TMP_PREFIX, fsync_path, read_json, write_atomically, write_json
from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS, LOCK_FILE, hold_lock

__all__ = [
    "COUNTER_FILE",
    "DEFAULT_LOCK_TIMEOUT_SECONDS",
    "LOCK_FILE",
    "METADATA_DIR",
    "PushError",
    "PushResult",
    "ServingDir",
    "model_content_hash",
]

COUNTER_FILE = ".version_counter"
METADATA_DIR = ".versions"
SAVED_MODEL_FILE = "saved_model.pb"

# ASCII digits only: str.isdigit() would also accept e.g. "²", which int() rejects.
_VERSION_NAME = re.compile(r"[0-9]+")
_HASH_CHUNK = 1024 * 1024


class PushError(RuntimeError):
    """A push cannot be done; the message names the offending path."""


@dataclass(frozen=True)
class PushResult:
    """Outcome of ``ServingDir.push``.

    Attributes:
        version: the version number serving the model.
        path: absolute path of the version directory.
        content_hash: ``model_content_hash`` of the model.
        reused: True when an identical model was already there and nothing was copied.
    """

    version: int
    path: str
    content_hash: str
    reused: bool


def _walk_model(model_dir: str) -> tuple[list[str], list[str]]:
    """Return (directories, files) under ``model_dir`` as sorted relative paths.

    Symlinks are followed so that a version directory is a self-contained copy: a link back
    into a mutable training directory would let a served version change under TF Serving.
    """
    if not os.path.isdir(model_dir):
        raise PushError(f"model directory {model_dir} does not exist or is not a directory")

    def fail(error: OSError) -> None:
        # os.walk skips unreadable directories silently by default; that would push (and hash)
        # a partial model.
        raise PushError(f"cannot read {error.filename}: {error.strerror}") from error

    dirs: list[str] = []
    files: list[str] = []
    for root, dirnames, filenames in os.walk(model_dir, onerror=fail, followlinks=True):
        rel_root = os.path.relpath(root, model_dir)
        for name in dirnames:
            dirs.append(os.path.normpath(os.path.join(rel_root, name)))
        for name in filenames:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if not os.path.isfile(os.path.join(model_dir, rel)):
                raise PushError(
                    f"{os.path.join(model_dir, rel)} is not a regular file (broken link?)"
                )
            files.append(rel)
    return sorted(dirs), sorted(files)


def _file_sha256(path: str) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.digest()


def model_content_hash(model_dir: str) -> str:
    """SHA-256 over the sorted relative file paths and file contents of a directory tree.

    Each file contributes ``path + NUL + sha256(content)``: NUL cannot occur in a path and the
    file digest has a fixed size, so no two different trees hash the same input. Empty
    directories do not count. Files are streamed in chunks.

    Args:
        model_dir: the directory to hash.

    Returns:
        The hex digest.

    Raises:
        PushError: ``model_dir`` is not a directory, or holds an unreadable directory or an
            entry that is not a regular file.
    """
    return _tree_hash(model_dir, _walk_model(model_dir)[1])


def _tree_hash(root: str, files: list[str]) -> str:
    digest = hashlib.sha256()
    for rel in files:
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(_file_sha256(os.path.join(root, rel)))
    return digest.hexdigest()


def _copy_tree(src: str, dst: str, dirs: list[str], files: list[str]) -> None:
    """Copy ``dirs`` and ``files`` (relative to ``src``) into new ``dst``, fsync'ing all."""
    os.mkdir(dst)
    for rel in dirs:
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
    for rel in files:
        target = os.path.join(dst, rel)
        shutil.copy2(os.path.join(src, rel), target)
        fsync_path(target)
    # Children before parents, so each directory entry is durable before its parent's.
    for rel in sorted(dirs, key=lambda d: d.count(os.sep), reverse=True):
        fsync_path(os.path.join(dst, rel))
    fsync_path(dst)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


class ServingDir:
    """A TensorFlow Serving model base path: numbered version directories plus bookkeeping.

    Reads (``versions``, ``next_version``, ``find_by_hash``, ``read_metadata``) take no lock
    and are safe while a push runs, because every write is a rename of a complete file or
    directory. ``push`` serialises with other pushes through ``flock`` on ``<base>/.lock``,
    across processes and threads alike, waiting at most ``lock_timeout`` seconds.
    """

    def __init__(
        self, base_path: str, lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    ) -> None:
        self.base_path = os.path.abspath(base_path)
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"ServingDir({self.base_path!r})"

    def version_path(self, version: int) -> str:
        """Absolute path of the directory of ``version`` (whether or not it exists)."""
        return os.path.join(self.base_path, str(version))

    def versions(self) -> list[int]:
        """The version numbers present: numeric child directories, sorted ascending.

        Hidden and temporary entries (``.tmp-*``), non-numeric names and plain files are
        ignored. A missing base path has no versions.
        """
        try:
            entries = list(os.scandir(self.base_path))
        except FileNotFoundError:
            return []
        return sorted(
            int(e.name) for e in entries if _VERSION_NAME.fullmatch(e.name) and e.is_dir()
        )

    def _metadata_path(self, version: int) -> str:
        return os.path.join(self.base_path, METADATA_DIR, f"{version}.json")

    def _recorded_versions(self) -> list[int]:
        try:
            names = os.listdir(os.path.join(self.base_path, METADATA_DIR))
        except FileNotFoundError:
            return []
        return [
            int(stem)
            for stem, ext in map(os.path.splitext, names)
            if ext == ".json" and _VERSION_NAME.fullmatch(stem)
        ]

    def _read_counter(self) -> int:
        path = os.path.join(self.base_path, COUNTER_FILE)
        try:
            with open(path) as f:
                text = f.read().strip()
        except FileNotFoundError:
            return 0
        if not _VERSION_NAME.fullmatch(text):
            # Guessing here could hand out a used number again; a person must look.
            raise PushError(f"{path}: expected the last used version number, found {text!r}")
        return int(text)

    def next_version(self) -> int:
        """The next version number never used in this base path.

        ``max(counter file, highest existing version, highest recorded version) + 1``. The
        counter keeps a deleted version's number from coming back; the recorded versions
        (``.versions/*.json``) are a second line of defence should the counter be lost.

        Raises:
            PushError: the counter file holds something other than a number.
        """
        return max([self._read_counter(), *self.versions(), *self._recorded_versions()]) + 1

    def read_metadata(self, version: int) -> dict[str, Any] | None:
        """The recorded metadata of ``version``, or None if none was recorded.

        Raises:
            PushError: the metadata file exists but is not the expected JSON object.
        """
        path = self._metadata_path(version)
        metadata = read_json(path, PushError)
        if metadata is None:
            return None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("content_hash"), str):
            raise PushError(f"{path}: version metadata without a content_hash")
        return metadata

    def find_by_hash(self, content_hash: str) -> int | None:
        """The newest existing version whose recorded content hash is ``content_hash``.

        Only versions whose directory still exists count: metadata outlives a deleted
        version directory, and pointing at a deleted version would lose the push.

        Raises:
            PushError: as ``read_metadata``.
        """
        for version in reversed(self.versions()):
            metadata = self.read_metadata(version)
            if metadata is not None and metadata["content_hash"] == content_hash:
                return version
        return None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the base path's exclusive lock (``components.serving.lock``).

        Waits at most ``lock_timeout`` seconds for another holder. Once acquired, removes the
        temporaries of writers that died (``remove_stale_temporaries``): every entry point that
        writes takes this lock first, so a killed push or release is cleaned up by the next
        one, whichever it is. Re-entrant within a thread: code that holds the lock may call
        ``push``. Creates the base path if missing.

        Raises:
            LockTimeout: still held by another after ``lock_timeout`` s; names the holder.
        """
        with hold_lock(self.base_path, self.lock_timeout) as outermost:
            if outermost:
                self.remove_stale_temporaries()
            yield

    def remove_stale_temporaries(self) -> None:
        """Remove ``.tmp-*`` entries of the base path and of its hidden bookkeeping directories.

        Call only while holding ``lock()``: every writer holds it, so any temporary present
        then belongs to a writer that died.
        """
        try:
            hidden = [
                os.path.join(self.base_path, e.name)
                for e in os.scandir(self.base_path)
                if e.name.startswith(".") and not e.name.startswith(TMP_PREFIX) and e.is_dir()
            ]
        except FileNotFoundError:
            return
        for directory in (self.base_path, *hidden):
            with contextlib.suppress(FileNotFoundError):
                for name in os.listdir(directory):
                    if name.startswith(TMP_PREFIX):
                        _remove(os.path.join(directory, name))

    def push(self, model_dir: str) -> PushResult:
        """Publish the SavedModel in ``model_dir`` as a new version, or reuse an identical one.

        Under the base path's lock (taking it removes temporaries of killed writers): hash the
        model,
        and return the existing version with the same hash if there is one. Otherwise copy
        the model into ``<base>/.tmp-<N>-<random>``, fsync it, verify the copy's hash, record
        ``N`` in the counter and ``.versions/N.json``, then rename the copy to ``<base>/<N>``
        and fsync the base path. The metadata is written before the rename so that every
        visible version has it; metadata of a version that never appeared is harmless.

        Creates the base path if it is missing.

        Args:
            model_dir: a SavedModel directory (must contain ``saved_model.pb``).

        Returns:
            The version serving the model.

        Raises:
            PushError: ``model_dir`` is not a SavedModel, changed while being copied, or the
                copy failed. No numeric or temporary directory is left behind.
            LockTimeout: another operation held the lock for longer than ``lock_timeout``.
        """
        if not os.path.isfile(os.path.join(model_dir, SAVED_MODEL_FILE)):
            raise PushError(f"{model_dir} is not a SavedModel: it has no {SAVED_MODEL_FILE}")
        os.makedirs(self.base_path, exist_ok=True)
        with self.lock():  # which also removes the temporaries of killed writers
            dirs, files = _walk_model(model_dir)
            content_hash = _tree_hash(model_dir, files)
            existing = self.find_by_hash(content_hash)
            if existing is not None:
                return PushResult(
                    version=existing,
                    path=self.version_path(existing),
                    content_hash=content_hash,
                    reused=True,
                )
            version = self.next_version()
            final = self.version_path(version)
            tmp = os.path.join(self.base_path, f"{TMP_PREFIX}{version}-{secrets.token_hex(4)}")
            try:
                _copy_tree(model_dir, tmp, dirs, files)
                # What TF Serving will load is the copy: check its hash, so that a writer
                # changing the source between hashing and copying cannot go unnoticed.
                if _tree_hash(tmp, files) != content_hash:
                    raise PushError(f"{model_dir} changed while it was being pushed")
                self._record(version, content_hash)
                os.rename(tmp, final)
            except BaseException as e:
                self._abandon(tmp, version)
                if isinstance(e, OSError):
                    raise PushError(f"pushing {model_dir} to {final} failed: {e}") from e
                raise
            fsync_path(self.base_path)
        return PushResult(version=version, path=final, content_hash=content_hash, reused=False)

    def _record(self, version: int, content_hash: str) -> None:
        """Bump the counter to ``version`` and write its metadata, both durably."""
        write_atomically(os.path.join(self.base_path, COUNTER_FILE), f"{version}\n".encode())
        metadata = {
            "version": version,
            "content_hash": content_hash,
            "pushed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(self._metadata_path(version), metadata, sort_keys=False)

    def _abandon(self, tmp: str, version: int) -> None:
        """Undo a failed push: drop the copy and any metadata of a version that never appeared.

        The counter keeps its bump: a number that may have been seen is never handed out again.
        """
        if not os.path.exists(tmp):
            return  # the rename happened: the version is complete and its metadata is right
        _remove(tmp)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._metadata_path(version))

