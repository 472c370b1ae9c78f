"""Tests of the TFRecord pre-flight check, on real files written by TensorFlow."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys

import pytest
import tensorflow as tf

from components.data_check import (
    DataCheckError,
    check_input_files,
    check_tfrecord_file,
    crc32c,
    find_input_files,
    tfrecord_check,
)

N_RECORDS = 5
HEADER, FOOTER = 12, 4  # uint64 length + uint32 CRC; uint32 CRC


def _example(i: int) -> bytes:
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                "species": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Adelie"])),
                "bill_length_mm": tf.train.Feature(float_list=tf.train.FloatList(value=[39.1 + i])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3])),
            }
        )
    ).SerializeToString()


RECORDS = [_example(i) for i in range(N_RECORDS)]


def _write(path, records=RECORDS, options: str | None = None) -> str:
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _record_offset(records: list[bytes], index: int) -> int:
    return sum(HEADER + len(r) + FOOTER for r in records[:index])


def _check_error(path: str, **kwargs) -> str:
    with pytest.raises(DataCheckError) as exc_info:
        check_tfrecord_file(path, **kwargs)
    message = str(exc_info.value)
    assert path in message
    assert "\n" not in message
    return message


def test_crc32c_matches_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283


def test_good_uncompressed_file_passes_with_its_record_count(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    assert check_tfrecord_file(path) == N_RECORDS
    assert check_tfrecord_file(path, "NONE", full_data_crc=True) == N_RECORDS


def test_good_gzip_file_passes_with_its_record_count(tmp_path):
    path = _write(tmp_path / "data.tfrecord.gz", options="GZIP")
    assert check_tfrecord_file(path) == N_RECORDS
    assert check_tfrecord_file(path, "GZIP") == N_RECORDS


def test_gzip_without_gz_suffix_is_refused_as_tfx_reads_it_uncompressed(tmp_path):
    # Beam's ReadFromTFRecord picks the compression by the name: this file fails in TFX.
    path = _write(tmp_path / "data.tfrecord", options="GZIP")
    message = _check_error(path)
    assert "record #0" in message
    assert "GZIP magic bytes but its name does not end in .gz" in message
    assert check_tfrecord_file(path, "GZIP") == N_RECORDS


def test_gzip_file_read_as_uncompressed_says_so(tmp_path):
    path = _write(tmp_path / "data.tfrecord.gz", options="GZIP")
    message = _check_error(path, compression="NONE")
    assert "GZIP magic" in message


def test_large_record_is_read_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(tfrecord_check, "_READ_CHUNK", 7)
    records = [bytes(range(256)) * 40, b"x"]
    path = _write(tmp_path / "big.tfrecord", records)
    assert check_tfrecord_file(path, full_data_crc=True, examples=0) == 2


@pytest.mark.parametrize("name", ["garbage.tfrecord.gz", "garbage.tfrecord"])
def test_garbage_bytes_fail_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(random.Random(0).randbytes(4096))
    message = _check_error(str(path))
    if name.endswith(".gz"):
        assert "not a valid GZIP file" in message
    else:
        assert "record #0 at byte offset 0" in message


def test_truncated_gzip_file_fails_naming_the_file(tmp_path):
    # Enough records that half the compressed file still holds complete records.
    records = [_example(i) for i in range(200)]
    path = _write(tmp_path / "data.tfrecord.gz", records, options="GZIP")
    content = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(content[: len(content) // 2])
    assert "truncated GZIP stream" in _check_error(path)


def test_uncompressed_file_cut_mid_record_fails_naming_the_file(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    last = _record_offset(RECORDS, N_RECORDS - 1)
    os.truncate(path, last + HEADER + 3)
    message = _check_error(path)
    assert f"truncated record #{N_RECORDS - 1} at byte offset {last}" in message
    assert f"length says {len(RECORDS[-1])} bytes of data, 3 remain" in message


def test_uncompressed_file_cut_mid_header_fails(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    os.truncate(path, _record_offset(RECORDS, 2) + 5)
    assert "truncated record #2" in _check_error(path)


def test_gzip_file_with_truncated_record_inside_a_valid_stream_fails(tmp_path):
    raw = open(_write(tmp_path / "data.tfrecord"), "rb").read()
    path = tmp_path / "cut.tfrecord.gz"
    path.write_bytes(gzip.compress(raw[:-2]))
    message = _check_error(str(path))
    assert f"truncated record #{N_RECORDS - 1}" in message
    assert "decompressed stream" in message


def test_flipped_payload_byte_fails_with_crc_message(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    offset = _record_offset(RECORDS, 2)
    content = bytearray(open(path, "rb").read())
    content[offset + HEADER + 10] ^= 0xFF
    open(path, "wb").write(bytes(content))
    message = _check_error(path)
    assert f"corrupted record #2 at byte offset {offset}: data CRC mismatch" in message


def test_flipped_length_byte_fails_with_crc_message(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    offset = _record_offset(RECORDS, 3)
    content = bytearray(open(path, "rb").read())
    content[offset] ^= 0x01
    open(path, "wb").write(bytes(content))
    message = _check_error(path)
    assert f"corrupted record #3 at byte offset {offset}: length CRC mismatch" in message


def _damage_record_3s_data(tmp_path) -> tuple[str, int]:
    """A file whose record #3 has one data byte flipped (its framing intact); its offset."""
    path = _write(tmp_path / "data.tfrecord")
    offset = _record_offset(RECORDS, 3)
    content = bytearray(open(path, "rb").read())
    content[offset + HEADER + 1] ^= 0xFF
    open(path, "wb").write(bytes(content))
    return path, offset


def test_with_the_c_crc_every_data_crc_is_checked(tmp_path, monkeypatch):
    assert tfrecord_check._FAST_CRC is not None  # google-crc32c's C code, from the lock
    monkeypatch.setattr(tfrecord_check, "DATA_CRC_MAX_RECORDS", 2)
    path, offset = _damage_record_3s_data(tmp_path)
    message = _check_error(path, examples=0)
    assert f"corrupted record #3 at byte offset {offset}: data CRC mismatch" in message


def test_c_and_python_crc32c_agree():
    data = bytes(range(256)) * 9 + b"tail"
    fast = tfrecord_check.crc32c(data)
    assert fast == tfrecord_check._python_crc32c(data)
    assert tfrecord_check.crc32c(data[100:], tfrecord_check.crc32c(data[:100])) == fast
    assert tfrecord_check.crc32c(memoryview(data)) == fast
    assert tfrecord_check.crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_without_the_c_crc_the_data_crc_is_checked_for_a_prefix_unless_full(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(tfrecord_check, "_FAST_CRC", None)
    monkeypatch.setattr(tfrecord_check, "DATA_CRC_MAX_RECORDS", 2)
    path, offset = _damage_record_3s_data(tmp_path)
    # Record #3 is past the sampled prefix: framing is intact, so the check passes (unless its
    # damaged payload is among the records parsed as tf.Example).
    assert check_tfrecord_file(path, examples=0) == N_RECORDS
    message = _check_error(path, full_data_crc=True)
    assert "corrupted record #3" in message


@pytest.mark.parametrize("name,options", [("empty.tfrecord", None), ("empty.tfrecord.gz", "GZIP")])
def test_file_without_records_fails(tmp_path, name, options):
    path = _write(tmp_path / name, records=[], options=options)
    assert "contains no records" in _check_error(path)


def test_missing_file_fails_naming_it(tmp_path):
    assert "cannot read file" in _check_error(str(tmp_path / "nope.tfrecord"))


def test_unknown_compression_is_a_caller_error(tmp_path):
    path = _write(tmp_path / "data.tfrecord")
    with pytest.raises(ValueError, match="compression must be"):
        check_tfrecord_file(path, "ZLIB")


def test_find_input_files_returns_sorted_matches(tmp_path):
    for split in ("Split-train", "Split-eval"):
        (tmp_path / "span-3" / split).mkdir(parents=True)
        for name in ("b.tfrecord.gz", "a.tfrecord.gz", "notes.txt"):
            (tmp_path / "span-3" / split / name).write_bytes(b"")
    found = find_input_files(
        str(tmp_path), ["span-3/Split-train/*.tfrecord.gz", "span-3/*/*.tfrecord.gz"]
    )
    assert found == sorted(
        str(tmp_path / "span-3" / split / name)
        for split in ("Split-eval", "Split-train")
        for name in ("a.tfrecord.gz", "b.tfrecord.gz")
    )


def test_glob_matching_nothing_fails(tmp_path):
    (tmp_path / "span-1").mkdir()
    with pytest.raises(DataCheckError) as exc_info:
        find_input_files(str(tmp_path), ["span-1/*.tfrecord.gz"])
    assert str(exc_info.value) == (
        f"no input files under {tmp_path} match ['span-1/*.tfrecord.gz']"
    )


def test_missing_data_root_fails(tmp_path):
    root = str(tmp_path / "missing")
    with pytest.raises(DataCheckError, match="does not exist") as exc_info:
        find_input_files(root, ["*.tfrecord.gz"])
    assert root in str(exc_info.value)


def test_check_input_files_counts_every_file(tmp_path):
    (tmp_path / "span-1").mkdir()
    a = _write(tmp_path / "span-1" / "a.tfrecord.gz", options="GZIP")
    b = _write(tmp_path / "span-1" / "b.tfrecord.gz", RECORDS[:2], options="GZIP")
    assert check_input_files(str(tmp_path), ["span-1/*.gz"]) == {a: N_RECORDS, b: 2}


def test_check_input_files_names_the_bad_file(tmp_path):
    (tmp_path / "span-1").mkdir()
    _write(tmp_path / "span-1" / "a.tfrecord.gz", options="GZIP")
    bad = tmp_path / "span-1" / "b.tfrecord.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataCheckError, match="not a valid GZIP file") as exc_info:
        check_input_files(str(tmp_path), ["span-1/*.gz"])
    assert str(exc_info.value).startswith(f"{bad}: ")


def test_module_does_not_import_tensorflow():
    code = (
        "import sys, components.data_check; "
        "assert 'tensorflow' not in sys.modules and 'tfx' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _outcome(path: str, **kwargs) -> str:
    try:
        return f"count {check_tfrecord_file(path, **kwargs)}"
    except DataCheckError as e:
        return str(e)


@pytest.mark.parametrize("options", [None, "GZIP"])
def test_fast_walk_gives_the_record_by_record_answer_on_every_damage(
    tmp_path, monkeypatch, options
):
    """The C-CRC walk over whole buffered records (after the parsed ones) stops at anything not
    plainly right and leaves it to the record-by-record path: every truncation point and
    every flipped byte gives the same count or the same message with and without it, also
    with blocks smaller than a record (refills in the middle of records)."""
    records = [_example(i) for i in range(40)]
    clean = _write(tmp_path / "clean.tfrecord", records)
    raw = open(clean, "rb").read()
    suffix = ".gz" if options else ""
    damaged = []
    for cut in range(0, len(raw), 37):
        damaged.append(raw[:cut])
    for flip in range(3, len(raw), 53):
        content = bytearray(raw)
        content[flip] ^= 0x10
        damaged.append(bytes(content))
    damaged.append(raw)
    for block in (1024 * 1024, 64):
        monkeypatch.setattr(tfrecord_check, "_READ_CHUNK", block)
        for i, content in enumerate(damaged):
            path = str(tmp_path / f"d{i}.tfrecord{suffix}")
            if options:
                import gzip

                with gzip.open(path, "wb") as f:
                    f.write(content)
            else:
                open(path, "wb").write(content)
            fast = _outcome(path, examples=2)
            with monkeypatch.context() as m:
                m.setattr(tfrecord_check, "_FAST_CRC", None)
                slow = _outcome(path, examples=2, full_data_crc=True)
            assert fast == slow, (block, i)
    assert _outcome(clean, examples=2) == "count 40"
