"""Pre-flight check of TFRecord input files, run before the pipeline starts.

A bad input file otherwise surfaces as a Beam traceback deep inside ExampleGen; here it is a
one-line ``DataCheckError`` naming the file and what is wrong with it: compression that does
not match the name (TFX picks it by name: ``compression.py``), broken framing, and first
records that are not ``tf.Example``s (``example_check.py``).

TFRecord framing, per record::

    uint64 length (little-endian) | uint32 masked_crc32c(the 8 length bytes)
    | data (length bytes) | uint32 masked_crc32c(data)

Pure standard library on purpose: the check runs in the CLI before TensorFlow is imported.
"""

from __future__ import annotations

import gzip
import lzma
import os
import struct
import zlib
from typing import BinaryIO

from components.data_check import compression as _compression
from components.data_check.example_check import example_problem
from components.data_check.gfile_glob import GLOB_CHARS, gfile_glob

__all__ = [
    "DATA_CRC_MAX_BYTES",
    "DATA_CRC_MAX_RECORDS",
    "DataCheckError",
    "EXAMPLE_CHECK_RECORDS",
    "check_input_files",
    "check_tfrecord_file",
    "crc32c",
    "find_input_files",
    "masked_crc32c",
]

# With google-crc32c's C code (always, from the lock) every record's data CRC is verified. The
# pure-Python fallback runs at ~10 MB/s, ~5 s on a 50 MB file: it verifies the data CRC of a
# prefix of the file (whichever limit comes first), which catches a wrong file format or a
# systematically broken writer; the length CRC and the framing are still verified for every
# record, so truncation and shifted framing anywhere are caught. ``full_data_crc=True``
# verifies every record either way.
DATA_CRC_MAX_RECORDS = 1000
DATA_CRC_MAX_BYTES = 4 * 1024 * 1024
# The first records of each file are parsed as tf.Example (a wrong record type is a property
# of the whole file, so a few suffice); records longer than the byte bound are not parsed.
EXAMPLE_CHECK_RECORDS = 8
_EXAMPLE_CHECK_MAX_BYTES = 64 * 1024 * 1024

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

try:  # C CRC-32C (a dependency of google-cloud-storage, in the lock): ~1 GB/s, not ~10 MB/s
    import google_crc32c as _FAST_CRC

    if _FAST_CRC.implementation != "c":
        _FAST_CRC = None
except ImportError:  # pragma: no cover (the lock has it)
    _FAST_CRC = None


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``; pass a previous result as ``crc`` to continue it."""
    if _FAST_CRC is not None:
        return _FAST_CRC.extend(crc, data if isinstance(data, bytes) else bytes(data))
    return _python_crc32c(data, crc)


def _python_crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
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
        for path in gfile_glob(os.path.join(data_root, pattern)):
            if os.path.isfile(path):
                matches.add(path)
            elif os.path.islink(path) and not os.path.exists(path):
                # Beam lists it too, and fails on it.
                raise DataCheckError(f"{path}: a broken symbolic link (or a loop of them)")
    if not matches:
        hint = (" (the data root itself holds glob characters, which TFX interprets too)"
                if any(c in GLOB_CHARS for c in data_root) else "")
        raise DataCheckError(f"no input files under {data_root} match {patterns}{hint}")
    return sorted(matches)


def _resolve_compression(path: str, compression: str) -> str:
    """The compression ``path`` is read with: "auto" is TFX's choice, by the file's name."""
    mode = compression.upper() or "NONE"  # "" is TensorFlow's spelling of "no compression"
    if mode == "AUTO":
        return _compression.by_name(path)
    if mode not in _compression.COMPRESSIONS:
        raise ValueError(f"compression must be 'auto' or one of "
                         f"{', '.join(_compression.COMPRESSIONS)}, got {compression!r}")
    return mode


def _content_compression(path: str) -> str | None:
    try:
        return _compression.by_content(path)
    except OSError as e:
        raise DataCheckError(f"{path}: cannot read file ({_one_line(e)})") from e


def _mismatch_hint(path: str, kind: str) -> str:
    """Why a file read as `kind` fails at once, when its content is compressed otherwise."""
    content = _content_compression(path)
    if content is None or content == kind:
        return ""
    named = f"its name ends in {_compression.suffix_of(kind)}" if kind != "NONE" else (
        f"its name does not end in {_compression.suffix_of(content)}")
    return (f"; the file starts with {content} magic bytes but {named}, and TFX picks the "
            f"compression from the name")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class _NotExampleError(Exception):
    """A record that does not parse as a tf.Example."""

    def __init__(self, message: str, record: int) -> None:
        super().__init__(message)
        self.record = record


class _FramingError(Exception):
    """A framing problem at a known record; turned into DataCheckError with the path."""

    def __init__(self, message: str, record: int) -> None:
        super().__init__(message)
        self.record = record


def _read_record_data(
    stream: BinaryIO, length: int, want_crc: bool, keep: list[bytes] | None = None,
    crc: int = 0,
) -> tuple[int, int]:
    """Read ``length`` data bytes (appending them to ``keep`` if given); return (bytes
    actually read, the crc32c continued from ``crc``, or 0)."""
    got = 0
    while got < length:
        chunk = stream.read(min(length - got, _READ_CHUNK))
        if not chunk:
            break
        if want_crc:
            crc = crc32c(chunk, crc)
        if keep is not None:
            keep.append(chunk)
        got += len(chunk)
    return got, crc if want_crc else 0


def _topped_up(stream: BinaryIO, buf: bytes, need: int) -> bytes:
    """``buf`` and the stream's next block(s): at least ``need`` bytes unless the stream ends."""
    parts = [buf]
    have = len(buf)
    while have < need:
        block = stream.read(_READ_CHUNK)
        if not block:
            break
        parts.append(block)
        have += len(block)
    return b"".join(parts)


def _walk_whole_records(buf: bytes, pos: int, count: int) -> tuple[int, int]:
    """The hot loop: walk the records that lie whole in ``buf`` from ``pos`` while every CRC
    matches (C CRC-32C); return where it stopped and the count. Whatever is not plainly right
    (a CRC, a record past the buffer) is left to the caller, which names the problem."""
    value, head_at, foot_at = _FAST_CRC.value, _HEADER.unpack_from, _FOOTER.unpack_from
    n, delta = len(buf), _MASK_DELTA
    while pos + 12 <= n:
        length, length_crc = head_at(buf, pos)
        end = pos + 12 + length
        if end + 4 > n:
            break
        crc = value(buf[pos:pos + 8])
        if (((crc >> 15) | (crc << 17)) + delta) & 0xFFFFFFFF != length_crc:
            break
        crc = value(buf[pos + 12:end])
        if (((crc >> 15) | (crc << 17)) + delta) & 0xFFFFFFFF != foot_at(buf, end)[0]:
            break
        pos = end + 4
        count += 1
    return pos, count


def _count_records(
    stream: BinaryIO, full_data_crc: bool, offset_note: str, examples: int
) -> int:
    """Walk the records of a decompressed stream; return the count or raise _FramingError
    (or _NotExampleError for one of the first ``examples`` records).

    The stream is read in blocks of ``_READ_CHUNK`` and records are cut from the block in
    place (a read per record cost ~4 us, most of the check at a million records); a record
    that does not fit in a block is read on its own, in pieces.
    """
    crc_all = full_data_crc or _FAST_CRC is not None  # the C CRC checks every record cheaply
    head, foot = _HEADER.size, _FOOTER.size
    count = 0
    base = 0  # stream offset of buf[0]
    buf = b""
    pos = 0
    crc_bytes_left = DATA_CRC_MAX_BYTES
    while True:
        if len(buf) - pos < head:
            base, buf, pos = base + pos, _topped_up(stream, buf[pos:], head), 0
            if not buf:
                return count
        if _FAST_CRC is not None and count >= examples:
            pos, walked = _walk_whole_records(buf, pos, count)
            if walked > count:  # on from the top: refill, walk; else this record, slowly
                count = walked
                continue
        offset = base + pos
        where = f"record #{count} at byte offset {offset}{offset_note}"
        if len(buf) - pos < head:
            raise _FramingError(
                f"truncated {where}: header needs {head} bytes, {len(buf) - pos} remain", count)
        length, length_crc = _HEADER.unpack_from(buf, pos)
        # Checked before reading the data: a garbage length must not drive the read below.
        if masked_crc32c(buf[pos:pos + 8]) != length_crc:
            raise _FramingError(f"corrupted {where}: length CRC mismatch", count)
        want_crc = crc_all or (count < DATA_CRC_MAX_RECORDS and length <= crc_bytes_left)
        parse = count < examples and length <= _EXAMPLE_CHECK_MAX_BYTES
        if len(buf) - pos < head + length + foot and head + length + foot <= _READ_CHUNK:
            # The record runs past the block: read on until the buffer holds it.
            base, buf, pos = base + pos, _topped_up(stream, buf[pos:], head + length + foot), 0
        start = pos + head
        if len(buf) - start >= length + foot:
            end = start + length
            data = buf[start:end]
            footer = buf[end:end + foot]
            pos = end + foot
            data_crc = crc32c(data) if want_crc else 0
        else:  # longer than a block, or the stream ends inside it: read it in pieces
            data = buf[start:start + length]
            rest = buf[start + len(data):]  # footer bytes already read, if any
            pieces = [data] if parse else None
            got, data_crc = _read_record_data(
                stream, length - len(data), want_crc, pieces, crc32c(data) if want_crc else 0)
            got += len(data)
            if got < length:
                raise _FramingError(
                    f"truncated {where}: length says {length} bytes of data, {got} remain",
                    count)
            footer = rest + stream.read(foot - len(rest))
            data = b"".join(pieces) if parse else b""
            base, buf, pos = offset + head + length + len(footer), b"", 0
        if len(footer) < foot:
            raise _FramingError(
                f"truncated {where}: data CRC missing after {length} data bytes", count)
        if want_crc:
            crc_bytes_left -= length
            masked = (((data_crc >> 15) | (data_crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF
            if masked != _FOOTER.unpack(footer)[0]:
                raise _FramingError(f"corrupted {where}: data CRC mismatch", count)
        if parse:
            problem = example_problem(data)
            if problem:
                raise _NotExampleError(f"record #{count} is not a tf.Example: {problem}", count)
        count += 1


def check_tfrecord_file(
    path: str,
    compression: str = "auto",
    *,
    full_data_crc: bool = False,
    examples: int | None = None,
) -> int:
    """Validate the TFRecord framing of one file, the first records as tf.Examples, and count
    its records.

    Reads the file once, streaming (compressed files are decompressed incrementally). The
    length CRC and the framing are verified for every record, and so is the data CRC with the
    C CRC-32C (the lock's); without it, for the first ``DATA_CRC_MAX_RECORDS`` records /
    ``DATA_CRC_MAX_BYTES`` of data, or for all records with ``full_data_crc``. Record numbers
    (``#i``) are 0-based; byte offsets are in the decompressed stream.

    Args:
        path: the file to check.
        compression: ``"auto"`` (as TFX: by the file's name, ``.gz`` is GZIP; see
            ``compression.by_name``), or one of ``compression.COMPRESSIONS``.
        full_data_crc: verify the data CRC of every record also without the C CRC-32C.
        examples: how many of the first records to parse as tf.Example (default
            ``EXAMPLE_CHECK_RECORDS``; 0: none).

    Returns:
        The number of records in the file (at least 1).

    Raises:
        DataCheckError: the file cannot be read, is not compressed as its name says, is
            truncated, has a corrupted record or a first record that is not a tf.Example, or
            contains no records. The message names ``path``.
        ValueError: ``compression`` is not one of the values above.
    """
    kind = _resolve_compression(path, compression)
    if examples is None:
        examples = EXAMPLE_CHECK_RECORDS
    note = " of the decompressed stream" if kind != "NONE" else ""
    try:
        # The stream decompresses as we read; nothing holds more than one read chunk (or one
        # record under the tf.Example check) in memory.
        with _compression.open_decompressed(path, kind) as stream:
            count = _count_records(stream, full_data_crc, note, examples)
    except _NotExampleError as e:
        raise DataCheckError(f"{path}: {e}") from None
    except _FramingError as e:
        hint = ""
        if e.record == 0:
            # Failing on the very first record usually means a wrong format, not damage.
            hint = _mismatch_hint(path, kind) or "; is this a TFRecord file?"
        raise DataCheckError(f"{path}: {e}{hint}") from None
    except EOFError as e:
        # The stream ends before its end-of-stream marker.
        raise DataCheckError(f"{path}: truncated {kind} stream ({_one_line(e)})") from e
    except (gzip.BadGzipFile, zlib.error, lzma.LZMAError) as e:
        raise _bad_compressed_data(path, kind, e) from e
    except OSError as e:
        if kind == "BZIP2" and "Invalid data stream" in str(e):
            raise _bad_compressed_data(path, kind, e) from e
        raise DataCheckError(f"{path}: cannot read file ({_one_line(e)})") from e
    except Exception as e:  # noqa: BLE001  (zstandard.ZstdError, imported only when needed)
        if type(e).__name__ != "ZstdError":
            raise
        raise _bad_compressed_data(path, kind, e) from e
    if count == 0:
        raise DataCheckError(f"{path}: contains no records")
    return count


def _bad_compressed_data(path: str, kind: str, e: BaseException) -> DataCheckError:
    """The error for a file that does not decompress as ``kind``."""
    what = "not a valid GZIP file" if kind == "GZIP" else f"not valid {kind} data"
    content = _content_compression(path)
    hint = ""
    if _compression.by_name(path) == kind:
        actual = f"{content}-compressed" if content else "not compressed (by its first bytes)"
        hint = (f"; TFX reads *{_compression.suffix_of(kind)} files as {kind}, and this one is "
                f"{actual}")
    return DataCheckError(f"{path}: {what} ({_one_line(e)}){hint}")


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
