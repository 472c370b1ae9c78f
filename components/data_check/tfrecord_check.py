"""Pre-flight check of TFRecord input files, run before the pipeline starts.

A bad input file otherwise surfaces as a Beam traceback deep inside ExampleGen; here it is a
one-line ``DataCheckError`` naming the file and what is wrong with it.

TFRecord framing, per record::

    uint64 length (little-endian) | uint32 masked_crc32c(the 8 length bytes)
    | data (length bytes) | uint32 masked_crc32c(data)

Pure standard library on purpose: the check runs in the CLI before TensorFlow is imported.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import BinaryIO

from components.data_check.gfile_glob import GLOB_CHARS, gfile_glob

__all__ = [
    "DATA_CRC_MAX_BYTES",
    "DATA_CRC_MAX_RECORDS",
    "DataCheckError",
    "check_input_files",
    "check_tfrecord_file",
    "crc32c",
    "find_input_files",
    "masked_crc32c",
]

# Pure-Python CRC32C runs at ~10 MB/s, so checking the data CRC of every record would take
# ~5 s on a 50 MB file. By default the data CRC is verified for a prefix of the file (whichever
# limit comes first), which catches a wrong file format or a systematically broken writer; the
# length CRC and the framing are still verified for every record, so truncation and shifted
# framing anywhere in the file are caught. ``full_data_crc=True`` verifies every record.
DATA_CRC_MAX_RECORDS = 1000
DATA_CRC_MAX_BYTES = 4 * 1024 * 1024

_GZIP_MAGIC = b"\x1f\x8b"
_HEADER = struct.Struct("<QI")  # length, masked CRC of the 8 length bytes
_FOOTER = struct.Struct("<I")  # masked CRC of the data
_MASK_DELTA = 0xA282EAD8
# Records larger than this are read in pieces, so a huge (or lying) length never makes us
# allocate the whole record at once.
_READ_CHUNK = 1024 * 1024


class DataCheckError(ValueError):
    """An input file (or the input file set) is unusable; the one-line message names it."""


def _make_crc32c_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli polynomial, bit-reflected
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``; pass a previous result as ``crc`` to continue it."""
    table = _CRC32C_TABLE  # local name: the loop is the hot path
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The masked CRC-32C that TFRecord framing stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def find_input_files(data_root: str, patterns: list[str]) -> list[str]:
    """Return the sorted, de-duplicated files under ``data_root`` matching any of ``patterns``,
    listed as TFX lists them: ``tf.io.gfile.glob(os.path.join(data_root, pattern))`` (see
    ``gfile_glob``; dot-files included), regular files only (what Beam's reader reads).

    Args:
        data_root: directory the patterns are relative to.
        patterns: glob patterns (``*``, ``?``, ``[...]``; any ``{SPAN}`` already substituted).

    Returns:
        Full paths (``data_root`` joined with the match) of regular files, sorted.

    Raises:
        DataCheckError: ``data_root`` does not exist or is not a directory, or nothing matches.
    """
    if not os.path.exists(data_root):
        raise DataCheckError(f"data root {data_root} does not exist")
    if not os.path.isdir(data_root):
        raise DataCheckError(f"data root {data_root} is not a directory")
    matches: set[str] = set()
    for pattern in patterns:
        # Glob characters in data_root are interpreted too, as TFX does (ImportExampleGen joins
        # its input_base and the split pattern).
        matches.update(p for p in gfile_glob(os.path.join(data_root, pattern))
                       if os.path.isfile(p))
    if not matches:
        hint = (" (the data root itself holds glob characters, which TFX interprets too)"
                if any(c in GLOB_CHARS for c in data_root) else "")
        raise DataCheckError(f"no input files under {data_root} match {patterns}{hint}")
    return sorted(matches)


def _resolve_compression(path: str, compression: str) -> bool:
    """Return True when ``path`` is to be read as GZIP."""
    mode = compression.upper()
    if mode == "GZIP":
        return True
    if mode in ("NONE", ""):  # "" is TensorFlow's spelling of "no compression"
        return False
    if mode != "AUTO":
        raise ValueError(f"compression must be 'auto', 'GZIP' or 'NONE', got {compression!r}")
    return path.endswith(".gz") or _starts_with_gzip_magic(path)


def _starts_with_gzip_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == _GZIP_MAGIC
    except OSError as e:
        raise DataCheckError(f"{path}: cannot read file ({_one_line(e)})") from e


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _FramingError(Exception):
    """A framing problem at a known record; turned into DataCheckError with the path."""

    def __init__(self, message: str, record: int) -> None:
        super().__init__(message)
        self.record = record


def _read_record_data(stream: BinaryIO, length: int, want_crc: bool) -> tuple[int, int]:
    """Read ``length`` data bytes; return (bytes actually read, crc32c or 0)."""
    got = 0
    crc = 0
    while got < length:
        chunk = stream.read(min(length - got, _READ_CHUNK))
        if not chunk:
            break
        if want_crc:
            crc = crc32c(chunk, crc)
        got += len(chunk)
    return got, crc


def _count_records(stream: BinaryIO, full_data_crc: bool, offset_note: str) -> int:
    """Walk the records of a decompressed stream; return the count or raise _FramingError."""
    count = 0
    offset = 0
    crc_bytes_left = DATA_CRC_MAX_BYTES
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return count
        where = f"record #{count} at byte offset {offset}{offset_note}"
        if len(header) < _HEADER.size:
            raise _FramingError(
                f"truncated {where}: header needs {_HEADER.size} bytes, {len(header)} remain",
                count,
            )
        length, length_crc = _HEADER.unpack(header)
        # Checked before reading the data: a garbage length must not drive the read below.
        if masked_crc32c(header[:8]) != length_crc:
            raise _FramingError(f"corrupted {where}: length CRC mismatch", count)
        want_crc = full_data_crc or (count < DATA_CRC_MAX_RECORDS and length <= crc_bytes_left)
        got, data_crc = _read_record_data(stream, length, want_crc)
        if got < length:
            raise _FramingError(
                f"truncated {where}: length says {length} bytes of data, {got} remain",
                count,
            )
        footer = stream.read(_FOOTER.size)
        if len(footer) < _FOOTER.size:
            raise _FramingError(
                f"truncated {where}: data CRC missing after {length} data bytes", count
            )
        if want_crc:
            crc_bytes_left -= length
            masked = (((data_crc >> 15) | (data_crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
            if masked != _FOOTER.unpack(footer)[0]:
                raise _FramingError(f"corrupted {where}: data CRC mismatch", count)
        count += 1
        offset += _HEADER.size + length + _FOOTER.size


def check_tfrecord_file(
    path: str, compression: str = "auto", *, full_data_crc: bool = False
) -> int:
    """Validate the TFRecord framing of one file and count its records.

    Reads the file once, streaming (GZIP is decompressed incrementally). The length CRC and the
    framing are verified for every record; the data CRC for the first ``DATA_CRC_MAX_RECORDS``
    records / ``DATA_CRC_MAX_BYTES`` of data, or for all records with ``full_data_crc``.
    Record numbers (``#i``) are 0-based; byte offsets are in the decompressed stream.

    Args:
        path: the file to check.
        compression: ``"auto"`` (GZIP if the file starts with the GZIP magic bytes or its name
            ends in ``.gz``), ``"GZIP"`` or ``"NONE"``.
        full_data_crc: verify the data CRC of every record (pure Python: ~10 MB/s).

    Returns:
        The number of records in the file (at least 1).

    Raises:
        DataCheckError: the file cannot be read, is not valid GZIP, is truncated, has a
            corrupted record, or contains no records. The message names ``path``.
        ValueError: ``compression`` is not one of the values above.
    """
    is_gzip = _resolve_compression(path, compression)
    try:
        # gzip.open returns a buffered reader that decompresses as we read; nothing holds
        # more than one read chunk of the file in memory.
        with gzip.open(path, "rb") if is_gzip else open(path, "rb") as stream:
            count = _count_records(
                stream, full_data_crc, " of the decompressed stream" if is_gzip else ""
            )
    except _FramingError as e:
        hint = ""
        if e.record == 0:
            # Failing on the very first record usually means a wrong format, not damage.
            hint = "; is this a TFRecord file?"
            if not is_gzip and _starts_with_gzip_magic(path):
                hint = "; the file starts with GZIP magic bytes but compression='NONE' was given"
        raise DataCheckError(f"{path}: {e}{hint}") from None
    except EOFError as e:
        # gzip raises EOFError when the stream ends before the end-of-stream marker.
        raise DataCheckError(f"{path}: truncated GZIP stream ({_one_line(e)})") from e
    except gzip.BadGzipFile as e:
        raise DataCheckError(f"{path}: not a valid GZIP file ({_one_line(e)})") from e
    except zlib.error as e:
        raise DataCheckError(f"{path}: corrupted GZIP data ({_one_line(e)})") from e
    except OSError as e:
        raise DataCheckError(f"{path}: cannot read file ({_one_line(e)})") from e
    if count == 0:
        raise DataCheckError(f"{path}: contains no records")
    return count


def check_input_files(
    data_root: str, patterns: list[str], compression: str = "auto"
) -> dict[str, int]:
    """Find the input files and check each one; stop at the first bad file.

    Args:
        data_root: directory the patterns are relative to.
        patterns: glob patterns, see ``find_input_files``.
        compression: see ``check_tfrecord_file``.

    Returns:
        Path -> record count, in sorted path order.

    Raises:
        DataCheckError: as ``find_input_files`` and ``check_tfrecord_file``.
    """
    return {
        path: check_tfrecord_file(path, compression)
        for path in find_input_files(data_root, patterns)
    }
