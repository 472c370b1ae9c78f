"""Content digests of a span's input files, so that any change of their bytes is noticed.

Size and mtime (what TFX's ImportExampleGen fingerprints) miss a file rewritten with the same
size whose mtime is restored (`cp -p`, `rsync -t`, `touch -r`, an unpacked archive). Each file
is hashed whole (sha256: ~1.4 GB/s warm here, see docs/BENCHMARKS.md "Data fingerprint"), and
the digest is remembered in a small JSON cache keyed on the file's path, size, mtime, ctime,
inode and device, so that an unchanged file costs one `stat` on the next run.

The cache can be trusted because the kernel sets a file's ctime to the current time on every
write, truncate, rename onto it and `utime` (restoring an mtime moves the ctime), and no call
sets it back. Two limits, both handled by hashing again rather than trusting the cache:

- timestamps have a coarse tick (a jiffy, 1-10 ms): a file changed just before it was hashed
  may change again within the same tick with the same size. Like git's "racily clean" index
  entries, a digest is only cached when the file's mtime and ctime are older than
  `RACY_SECONDS` at the time it is read;
- a file changed while it is read: its stat before and after differ, and it is not cached.

Not covered: filesystems that keep no change time (FAT/exFAT, some FUSE mounts) and a clock
set back by more than RACY_SECONDS. Deleting the cache file (pipeline_root/data_digests.json)
makes the next run hash every file.

Pure standard library (no TensorFlow): the CLI computes it before a run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence

ALGORITHM = "sha256"
CACHE_FILE = "data_digests.json"
CACHE_FORMAT = 1
CHUNK_BYTES = 1 << 20
# A file changed less than this long before it is read is hashed again next time (above).
RACY_SECONDS = 2.0


def file_digest(path: str) -> str:
    """sha256 of the file's bytes, hex."""
    h = hashlib.new(ALGORITHM)
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _load_cache(path: str | None) -> dict[str, list]:
    """Path -> [size, mtime_ns, ctime_ns, inode, device, digest]; empty when unreadable."""
    if path is None:
        return {}
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
        return {}
    files = data.get("files")
    return files if isinstance(files, dict) else {}


def _save_cache(path: str, entries: dict[str, list]) -> None:
    """Atomically (a reader sees the old or the new file); a failure only costs a re-hash."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump({"format": CACHE_FORMAT, "algorithm": ALGORITHM, "files": entries}, f)
        os.replace(tmp, path)
    except OSError:
        pass


def file_digests(
    files: Sequence[str], cache_file: str | None = None, *, update_cache: bool = True
) -> dict[str, str]:
    """Path -> content digest of each of `files`, hashing only those the cache cannot vouch for.

    Args:
      files: paths of regular files.
      cache_file: JSON cache of earlier digests (None: hash every file).
      update_cache: write the digests computed here back to `cache_file` (with the entries of
        other files that still exist).

    Raises:
      OSError: a file cannot be read.
    """
    cache = _load_cache(cache_file)
    digests: dict[str, str] = {}
    fresh: dict[str, list] = {}
    for path in files:
        path = os.path.abspath(path)
        key = _stat_key(os.stat(path))
        entry = cache.get(path)
        if isinstance(entry, list) and entry[:-1] == key:
            digests[path] = entry[-1]
            continue
        read_at = time.time_ns()
        digests[path] = file_digest(path)
        after = os.stat(path)
        settled = max(after.st_mtime_ns, after.st_ctime_ns) < read_at - RACY_SECONDS * 1e9
        if _stat_key(after) == key and settled:
            fresh[path] = [*key, digests[path]]
    if cache_file is not None and update_cache and fresh:
        kept = {p: e for p, e in cache.items() if p not in fresh and os.path.exists(p)}
        _save_cache(cache_file, {**kept, **fresh})
    return digests


def content_fingerprint(
    files: Sequence[str], root: str, cache_file: str | None = None, *,
    update_cache: bool = True,
) -> str:
    """20 hex digits over each file's name relative to `root` and content digest: changes when
    a file is added, removed, renamed or changes by a single byte.

    Raises:
      OSError: a file cannot be read.
    """
    digests = file_digests(files, cache_file, update_cache=update_cache)
    rows = [[os.path.relpath(p, root), d] for p, d in digests.items()]
    return hashlib.sha256(json.dumps(sorted(rows)).encode()).hexdigest()[:20]


def span_fingerprint(
    data_root: str, patterns: list[str], cache_file: str | None = None, *,
    update_cache: bool = True,
) -> str:
    """`content_fingerprint` of the files TFX reads for `patterns` under a local `data_root`.

    Raises:
      DataCheckError: `data_root` is not a directory or no file matches.
      OSError: a file cannot be read.
    """
    from components.data_check import find_input_files

    files = find_input_files(data_root, patterns)
    return content_fingerprint(files, data_root, cache_file, update_cache=update_cache)
