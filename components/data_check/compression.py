"""An input file's compression as TFX reads it: by the file's name, never by its content.

ImportExampleGen reads with Beam's `ReadFromTFRecord(compression_type=AUTO)`, which picks the
compression from the name's suffix (`CompressionTypes.detect_compression_type`, case-blind):
a GZIP file without `.gz` is read as raw TFRecords and fails on its first record, a `.gz` file
that is not GZIP fails in zlib. Each file is judged alone, so a split may mix compressions.
Decompression reads concatenated streams, as Beam's `CompressedFile` does, and (stricter than
Beam) a stream cut short is an error rather than a silent end.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from collections.abc import Callable
from typing import BinaryIO

__all__ = ["COMPRESSIONS", "by_content", "by_name", "open_decompressed", "suffix_of"]

# Beam's suffixes, in its order (the first that ends the name wins).
_SUFFIXES = {".bz2": "BZIP2", ".deflate": "DEFLATE", ".gz": "GZIP", ".zst": "ZSTD",
             ".zstd": "ZSTD", ".xz": "LZMA", ".lzma": "LZMA"}
COMPRESSIONS = ("NONE", "GZIP", "BZIP2", "DEFLATE", "ZSTD", "LZMA")
# Magic bytes that say a file is compressed whatever its name (zlib and raw lzma have none
# reliable enough to tell from data).
_MAGIC = ((b"\x1f\x8b", "GZIP"), (b"BZh", "BZIP2"), (b"\xfd7zXZ\x00", "LZMA"),
          (b"\x28\xb5\x2f\xfd", "ZSTD"))
_READ_CHUNK = 1024 * 1024


def by_name(path: str) -> str:
    """The compression Beam reads `path` with: one of COMPRESSIONS."""
    lower = path.lower()
    return next((kind for suffix, kind in _SUFFIXES.items() if lower.endswith(suffix)), "NONE")


def suffix_of(kind: str) -> str:
    """The name ending that makes Beam read a file as `kind` (`.gz` for GZIP)."""
    return next((suffix for suffix, k in _SUFFIXES.items() if k == kind), "")


def by_content(path: str) -> str | None:
    """The compression `path`'s first bytes announce, or None; OSError if unreadable."""
    with open(path, "rb") as f:
        head = f.read(8)
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _new_decompressor(kind: str) -> Callable[[], object]:
    if kind == "BZIP2":
        return bz2.BZ2Decompressor
    if kind == "LZMA":
        return lzma.LZMADecompressor
    if kind == "DEFLATE":
        return zlib.decompressobj
    import zstandard  # Beam's own dependency for .zst; imported only when a file needs it

    return lambda: zstandard.ZstdDecompressor(max_window_size=2**31).decompressobj()


class _Decompressed(io.RawIOBase):
    """The decompressed bytes of a file of one or more concatenated streams."""

    def __init__(self, raw: BinaryIO, new_decompressor: Callable[[], object]) -> None:
        self._raw, self._new = raw, new_decompressor
        self._d = new_decompressor()
        self._pending = b""
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._pending:
            if self._d.eof and self._d.unused_data:
                rest, self._d = self._d.unused_data, self._new()
                self._pending = self._d.decompress(rest)
                continue
            chunk = self._raw.read(_READ_CHUNK)
            if not chunk:
                if self._started and not self._d.eof:
                    raise EOFError("the compressed stream ends before its end-of-stream marker")
                return 0
            self._started = True
            if self._d.eof:
                self._d = self._new()
            self._pending = self._d.decompress(chunk)
        n = min(len(b), len(self._pending))
        b[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_decompressed(path: str, kind: str) -> BinaryIO:
    """`path` opened for reading its decompressed bytes, buffered (small reads are cheap)."""
    if kind == "NONE":
        return open(path, "rb")
    if kind == "GZIP":
        return gzip.open(path, "rb")
    raw = open(path, "rb")
    return io.BufferedReader(_Decompressed(raw, _new_decompressor(kind)), _READ_CHUNK)
