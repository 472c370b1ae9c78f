"""Import of a span that is already split folders of GZIP TFRecords: the files themselves.

TFX's ImportExampleGen decodes every record and writes it again through Beam (~17k examples/s
here) to produce, for this input, files with the same records. When every input file of every
split is GZIP by its name (as TFX reads it) the Examples artifact can hold the files as they
are: placed into ``Split-<name>/`` by a reflink (copy-on-write, where the filesystem has it),
a byte copy, or, with ``data.import_mode: link``, a hard link. Each placed file is then read
through (``check_tfrecord_file``: framing, every CRC, the first records as tf.Example) before
the artifact is registered, so a corrupt file stops the import with one line naming it.

A hard link shares the input's inode: rewriting an input file in place afterwards would change
the artifact under every run that recorded it. ``copy`` (the default) is immune to that and
costs ~0.1 s per 35 MB here; ``link`` is for spans too big to copy, written once and never
rewritten in place. Pure standard library: no TensorFlow, no TFX.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
from dataclasses import dataclass, field

from components.data_check import DataCheckError, check_tfrecord_file, find_input_files
from components.data_check.compression import by_name

_FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)
# Errors that mean "this filesystem (pair) cannot do it": fall back to the next way.
_CANNOT = {errno.EXDEV, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL,
           errno.ENOSYS, errno.EMLINK, errno.EACCES}


@dataclass
class ImportedSplit:
    """One split's files as imported: target name -> (source path, how it was placed)."""

    name: str
    files: dict[str, tuple[str, str]] = field(default_factory=dict)
    records: int = 0


def why_not_copyable(input_base: str, split_patterns: dict[str, str],
                     hash_splits: bool, payload_is_example: bool) -> str | None:
    """Why this import must go through Beam, or None when its files can be taken as they are.

    Args:
      input_base: the data root (ImportExampleGen's ``input_base``).
      split_patterns: split name -> glob relative to ``input_base``, span already resolved.
      hash_splits: the output is split by hash buckets (records must be read to split).
      payload_is_example: the payload format is tf.Example (TFX's default).
    """
    if hash_splits:
        return "the output is split by hash buckets"
    if not payload_is_example:
        return "the payload is not tf.Example"
    if "://" in input_base:
        return f"{input_base} is not a local path"
    for split, pattern in split_patterns.items():
        try:
            paths = find_input_files(input_base, [pattern])
        except DataCheckError as e:
            return str(e)
        not_gzip = [p for p in paths if by_name(p) != "GZIP"]
        if not_gzip:
            return (f"{not_gzip[0]} (split {split}) is not GZIP by its name, and the Examples "
                    "artifact holds GZIP files")
    return None


def _target_names(paths: list[str]) -> list[str]:
    """The files' names in the split folder: their own names when distinct (lineage reads
    them), else numbered."""
    names = [os.path.basename(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    width = max(5, len(str(len(paths))))
    return [f"{i:0{width}d}-{name}" for i, name in enumerate(names)]


def _reflink(src: str, dst: str) -> bool:
    """Copy-on-write clone (btrfs, XFS, ...); False when the filesystem cannot."""
    with open(src, "rb") as fin:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(fd, _FICLONE, fin.fileno())
        except OSError as e:
            os.close(fd)
            os.unlink(dst)
            if e.errno in _CANNOT:
                return False
            raise
        os.close(fd)
    return True


def place_file(src: str, dst: str, mode: str) -> str:
    """Put ``src`` at ``dst`` (which must not exist); returns how: ``link``, ``reflink`` or
    ``copy``. ``link`` falls back to a copy across filesystems or where links are refused."""
    if mode == "link":
        try:
            os.link(src, dst)
            return "link"
        except OSError as e:
            if e.errno not in _CANNOT:
                raise
    if _reflink(src, dst):
        return "reflink"
    shutil.copyfile(src, dst)  # sendfile(2) on Linux: no copy through Python
    return "copy"


def import_splits(input_base: str, split_patterns: dict[str, str],
                  split_uris: dict[str, str], mode: str) -> list[ImportedSplit]:
    """Place every input file of each split into its split folder and read each one through.

    Raises:
      DataCheckError: an input is missing, or a placed file is not a sound TFRecord of
        tf.Examples (naming the input file). What was placed is removed first.
    """
    if mode not in ("copy", "link"):
        raise ValueError(f"mode must be copy or link, got {mode!r}")
    imported: list[ImportedSplit] = []
    for split, pattern in split_patterns.items():
        paths = find_input_files(input_base, [pattern])
        out = split_uris[split]
        os.makedirs(out, exist_ok=True)
        done = ImportedSplit(split)
        imported.append(done)
        for src, name in zip(paths, _target_names(paths), strict=True):
            dst = os.path.join(out, name)
            with contextlib.suppress(FileNotFoundError):  # a retried execution's leftovers
                os.unlink(dst)
            how = place_file(src, dst, mode)
            done.files[name] = (src, how)
            try:
                done.records += check_tfrecord_file(dst, "GZIP")
            except DataCheckError as e:
                for item in imported:
                    for placed in item.files:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(os.path.join(split_uris[item.name], placed))
                # Name the input, not the copy in the pipeline root: that is what to fix.
                raise DataCheckError(str(e).replace(dst, src, 1)) from None
    return imported
