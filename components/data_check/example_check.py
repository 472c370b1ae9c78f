"""Is a record a serialized `tf.train.Example`? A walk of the protobuf wire format in pure
Python (no TensorFlow import), for the first records of each input file.

ImportExampleGen parses every record with `tf.train.Example.FromString`: text or JSON lines
fail there deep inside Beam, but a `tf.SequenceExample` (its `context` is field 1, like an
Example's `features`) and some text parse "successfully", the rest of the record kept as
unknown fields, and training then sees examples without their features. This check is
therefore stricter than FromString: a field tf.Example does not have is an error too.

    Example  { Features features = 1; }
    Features { map<string, Feature> feature = 1; }          // entry: key = 1, value = 2
    Feature  { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
                       Int64List int64_list = 3; } }
    BytesList { repeated bytes value = 1; }
    FloatList { repeated float value = 1; }                 // packed, or one fixed32 each
    Int64List { repeated int64 value = 1; }                 // packed, or one varint each
"""

from __future__ import annotations

import re

__all__ = ["example_problem"]

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
# A run of complete varints (at most 10 bytes each): a packed int64 list.
_PACKED_VARINTS = re.compile(rb"(?:[\x80-\xff]{0,9}[\x00-\x7f])*")


class _NotExample(Exception):
    pass


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _NotExample(f"a varint longer than 10 bytes at byte {pos}")
    raise _NotExample(f"truncated at byte {end} (inside a varint)")


def _fields(buf: bytes, start: int, end: int, where: str):
    """(field number, wire type, start, end) of each field; a varint's value is `start`."""
    pos = start
    while pos < end:
        at = pos
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
            continue
        if wire == _LEN:
            length, pos = _varint(buf, pos, end)
            value_start, pos = pos, pos + length
        elif wire in (_FIXED64, _FIXED32):
            value_start, pos = pos, pos + (8 if wire == _FIXED64 else 4)
        else:  # groups (3, 4) and the invalid 6, 7: nothing in tf.Example
            raise _NotExample(
                f"{where}: wire type {wire} at byte {at}, which tf.Example never uses")
        if pos > end:
            raise _NotExample(f"{where}: truncated at byte {end} (a field at byte {at} needs more)")
        yield field, wire, value_start, pos


def _unexpected(where: str, field: int, wire: int) -> _NotExample:
    return _NotExample(f"{where} has a field {field} (wire type {wire}), which tf.Example "
                       "does not have")


def _check_list(buf: bytes, start: int, end: int, kind: int, where: str) -> None:
    for field, wire, s, e in _fields(buf, start, end, where):
        if field != 1:
            raise _unexpected(where, field, wire)
        if kind == 1 and wire == _LEN:
            continue
        if kind == 2 and (wire == _FIXED32 or (wire == _LEN and (e - s) % 4 == 0)):
            continue
        if kind == 3 and (wire == _VARINT or (wire == _LEN and _PACKED_VARINTS.fullmatch(
                buf, s, e))):
            continue
        raise _NotExample(f"{where}: a malformed value (wire type {wire}) before byte {e}")


def _check_feature(buf: bytes, start: int, end: int, where: str) -> None:
    for field, wire, s, e in _fields(buf, start, end, where):
        if field not in (1, 2, 3) or wire != _LEN:
            raise _unexpected(where, field, wire)
        kind = ("bytes_list", "float_list", "int64_list")[field - 1]
        _check_list(buf, s, e, field, f"{where}, {kind}")


def _check_entry(buf: bytes, start: int, end: int) -> None:
    name, value = "", None
    for field, wire, s, e in _fields(buf, start, end, "a feature map entry"):
        if field == 1 and wire == _LEN:
            try:
                name = buf[s:e].decode("utf-8")
            except UnicodeDecodeError:
                raise _NotExample(f"the feature name at byte {s} is not valid UTF-8") from None
        elif field == 2 and wire == _LEN:
            value = (s, e)
        else:
            raise _unexpected("a feature map entry", field, wire)
    if value is not None:
        _check_feature(buf, *value, f"feature {name!r}")


def _check_example(buf: bytes) -> None:
    for field, wire, s, e in _fields(buf, 0, len(buf), "the record"):
        if field == 2 and wire == _LEN:
            raise _NotExample("it has a field 2: the feature_lists of a tf.SequenceExample?")
        if field != 1 or wire != _LEN:
            raise _unexpected("the record", field, wire)
        for f, w, fs, fe in _fields(buf, s, e, "features"):
            if f != 1 or w != _LEN:
                raise _unexpected("features", f, w)
            _check_entry(buf, fs, fe)


def _text_hint(record: bytes) -> str:
    """`; it is text: '...'` when the record reads as printable text."""
    try:
        text = record[:200].decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if not text or not all(c.isprintable() or c in "\t\r\n" for c in text):
        return ""
    shown = text if len(text) <= 40 else text[:40] + "..."
    return f"; it is text: {shown!r}"


def example_problem(record: bytes) -> str | None:
    """None when `record` is a serialized tf.train.Example (an empty one included), else what
    is wrong, in a few words."""
    try:
        _check_example(record)
    except _NotExample as e:
        return f"{e}{_text_hint(record)}"
    return None
