"""The pre-flight check refuses, in one line naming the file, folder or key, what ImportExampleGen
or a later component would fail on (or read differently): on real TFRecords of real
tf.Examples written by TensorFlow, in real folders."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import sqlite3
import zlib

import pytest
import tensorflow as tf

from components.data_check import DataCheckError, example_problem
from pipeline.app.preflight import check_output_paths, preflight
from pipeline.config import ConfigError, load_config
from pipeline.spans import resolve_span

SPLITS = {"train": "span-{SPAN}/Split-train/*.tfrecord.gz",
          "eval": "span-{SPAN}/Split-eval/*.tfrecord.gz"}


def _example(i: int) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "species": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Adelie"])),
        "bill_length_mm": tf.train.Feature(float_list=tf.train.FloatList(value=[39.1 + i])),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[i % 3, -1])),
    })).SerializeToString()


def _sequence_example() -> bytes:
    return tf.train.SequenceExample(
        context=tf.train.Features(feature={
            "id": tf.train.Feature(int64_list=tf.train.Int64List(value=[7]))}),
        feature_lists=tf.train.FeatureLists(feature_list={
            "steps": tf.train.FeatureList(feature=[
                tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0]))])}),
    ).SerializeToString()


def _write(path, records=None, options: str | None = "GZIP"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), options=options) as writer:
        for record in records if records is not None else [_example(i) for i in range(5)]:
            writer.write(record)
    return path


def _span(root, span: int | str, splits=("train", "eval")):
    for split in splits:
        _write(root / f"span-{span}" / f"Split-{split}" / "part-0.tfrecord.gz")
    return root / f"span-{span}"


def _cfg(tmp_path, root, data=None, **top):
    overrides = {"work_dir": str(tmp_path / "var"),
                 "pusher": {"base_path": str(tmp_path / "serving")},
                 "data": {"root": str(root), **(data or {})}, **top}
    return load_config("local", None, overrides)


def _refused(cfg, error=DataCheckError) -> str:
    with pytest.raises(error) as e:
        preflight(cfg)
    message = str(e.value)
    assert "\n" not in message
    return message


# 1. Compression: TFX picks it from the file name, one file at a time.

def test_a_gzip_file_whose_name_has_no_gz_is_refused(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    bad = _write(root / "span-1" / "Split-train" / "part-1.tfrecord")
    message = _refused(_cfg(tmp_path, root, {"file_pattern": "*"}))
    assert message.startswith(f"{bad}: ")
    assert "GZIP magic bytes but its name does not end in .gz" in message


def test_a_gz_file_that_is_not_gzip_is_refused(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    bad = _write(root / "span-1" / "Split-eval" / "part-1.tfrecord.gz", options=None)
    message = _refused(_cfg(tmp_path, root))
    assert message.startswith(f"{bad}: not a valid GZIP file")
    assert "TFX reads *.gz files as GZIP, and this one is not compressed" in message


def test_a_split_mixing_compressions_named_as_they_are_passes(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    split = root / "span-1" / "Split-train"
    _write(split / "plain.tfrecord", options=None)
    raw = (_write(tmp_path / "raw.tfrecord", options=None)).read_bytes()
    (split / "b.tfrecord.bz2").write_bytes(bz2.compress(raw))
    (split / "x.tfrecord.xz").write_bytes(lzma.compress(raw))
    (split / "z.tfrecord.deflate").write_bytes(zlib.compress(raw))
    (split / "two.tfrecord.gz").write_bytes(gzip.compress(raw[:40]) + gzip.compress(raw[40:]))
    assert preflight(_cfg(tmp_path, root, {"file_pattern": "*"})) == 1


# 2. Records that are not tf.Examples.

@pytest.mark.parametrize("record,expected", [
    (_sequence_example(), "feature_lists of a tf.SequenceExample"),
    (b"hello world, a line of text", "it is text: 'hello world"),
    (json.dumps({"species": "Adelie", "bill": 39.1}).encode(), "it is text: '{\"species\""),
    (b"39.1,18.7,181,3750,Adelie", "it is text: '39.1,18.7"),
])
def test_a_tfrecord_of_other_records_is_refused_naming_file_and_record(
        tmp_path, record, expected):
    root = tmp_path / "data"
    _span(root, 1)
    bad = _write(root / "span-1" / "Split-train" / "part-1.tfrecord.gz", [record] * 3)
    message = _refused(_cfg(tmp_path, root))
    assert message.startswith(f"{bad}: record #0 is not a tf.Example: ")
    assert expected in message


def test_a_bad_record_after_good_ones_is_named_by_its_number(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    records = [_example(i) for i in range(3)] + [_sequence_example()]
    bad = _write(root / "span-1" / "Split-eval" / "more.tfrecord.gz", records)
    assert _refused(_cfg(tmp_path, root)).startswith(f"{bad}: record #3 is not a tf.Example")


def test_real_examples_pass_the_record_check():
    assert example_problem(_example(1)) is None
    assert example_problem(tf.train.Example().SerializeToString()) is None
    many = tf.train.Example(features=tf.train.Features(feature={
        "v": tf.train.Feature(int64_list=tf.train.Int64List(value=list(range(-300, 300)))),
        "": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"", b"\xff"])),
        "é": tf.train.Feature(float_list=tf.train.FloatList(value=[])),
    })).SerializeToString()
    assert example_problem(many) is None
    assert "not valid UTF-8" in example_problem(b"\n\x0b\n\x09\n\x01\xff\x12\x04\x1a\x02\x0a\x00")
    assert "truncated" in example_problem(_example(1)[:-3])


# 3. A span missing one of the configured splits.

@pytest.mark.parametrize("eval_folder", ["missing", "empty"])
def test_the_latest_span_without_eval_files_is_refused_naming_folder_and_split(
        tmp_path, eval_folder):
    root = tmp_path / "data"
    _span(root, 2)
    span3 = _span(root, 3, splits=("train",))
    if eval_folder == "empty":
        (span3 / "Split-eval").mkdir()
    message = _refused(_cfg(tmp_path, root))
    assert message == (f"{span3}: no input files for split 'eval' "
                       "(Split-eval/*.tfrecord.gz matches nothing)")


def test_the_configured_span_without_train_files_is_refused(tmp_path):
    root = tmp_path / "data"
    span1 = _span(root, 1, splits=("eval",))
    _span(root, 2)
    message = _refused(_cfg(tmp_path, root, {"span": 1}))
    assert message.startswith(f"{span1}: no input files for split 'train'")


# 4. Entries beside the spans that look like spans.

@pytest.mark.parametrize("name,expected", [
    ("span-2.bak", "'2.bak' is not a span number (TFX fails on the input files in it"),
    ("span-3-old", "'3-old' is not a span number"),
    ("span-02", "span 2 written '02', which TFX reads as span 2 but this pipeline reads from"),
])
def test_a_look_alike_span_folder_with_input_files_is_refused_naming_it(
        tmp_path, name, expected):
    root = tmp_path / "data"
    _span(root, 2)
    _span(root, name.removeprefix("span-"))
    message = _refused(_cfg(tmp_path, root))
    assert message.startswith(f"{root / name}: ")
    assert expected in message


def test_a_file_named_as_the_latest_span_is_refused(tmp_path):
    root = tmp_path / "data"
    _span(root, 2)
    (root / "span-4").write_text("not a folder")
    assert _refused(_cfg(tmp_path, root)) == f"{root / 'span-4'}: is a file, not a span folder"


def test_a_span_folder_that_is_a_symlink_loop_is_refused(tmp_path):
    root = tmp_path / "data"
    _span(root, 2)
    os.symlink(root / "span-3", root / "span-3")
    assert "symbolic link" in _refused(_cfg(tmp_path, root))


@pytest.mark.parametrize("extra", [{}, {"span-3.bak": None, "span-07-old": None},
                                   {"span-10": "span", "span-9": "span"}])
def test_the_latest_span_is_the_one_tfx_reads(tmp_path, extra):
    from tfx.components.example_gen import utils
    from tfx.proto import example_gen_pb2

    root = tmp_path / "data"
    _span(root, 1)
    _span(root, 2)
    for name, kind in extra.items():
        if kind == "span":
            _span(root, name.removeprefix("span-"))
        else:
            (root / name).mkdir()
    splits = [example_gen_pb2.Input.Split(name=n, pattern=p) for n, p in SPLITS.items()]
    _, tfx_span, _ = utils.calculate_splits_fingerprint_span_and_version(str(root), splits)
    assert resolve_span(str(root), SPLITS, None) == tfx_span


# 5. Characters of the data root that TFX reads as a pattern.

@pytest.mark.parametrize("name,char", [("in[put]", "'['"), ("a?b", "'?'")])
def test_a_data_root_tfx_would_glob_as_something_else_is_refused(tmp_path, name, char):
    root = tmp_path / name
    _span(root, 1)
    (tmp_path / "axb").mkdir()  # what `a?b` also matches
    message = _refused(_cfg(tmp_path, root))
    assert message.startswith(f"data root {root}: {char} is a glob character")


def test_a_data_root_matching_itself_alone_passes(tmp_path):
    root = tmp_path / "a*b"
    _span(root, 1)
    assert preflight(_cfg(tmp_path, root)) == 1


def test_a_data_root_with_a_regex_character_is_refused(tmp_path):
    root = tmp_path / "data$1"
    _span(root, 1)
    message = _refused(_cfg(tmp_path, root))
    assert message.startswith(f"data root {root}: TFX cannot read span numbers")
    assert "'$'" in message


def test_a_data_root_that_is_a_file_is_refused(tmp_path):
    root = tmp_path / "data"
    root.write_text("")
    assert _refused(_cfg(tmp_path, root)) == f"data root {root} is a file, not a directory"


def test_a_broken_symlink_among_the_input_files_is_refused(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    link = root / "span-1" / "Split-train" / "gone.tfrecord.gz"
    os.symlink(tmp_path / "nowhere", link)
    assert _refused(_cfg(tmp_path, root)).startswith(f"{link}: a broken symbolic link")


# 6. The paths the run writes.

@pytest.fixture
def data(tmp_path):
    root = tmp_path / "data"
    _span(root, 1)
    return root


def _config_error(cfg) -> str:
    with pytest.raises(ConfigError) as e:
        check_output_paths(cfg)
    message = str(e.value)
    assert "\n" not in message
    return message


def test_a_base_path_that_is_a_file_is_refused(tmp_path, data):
    base = tmp_path / "serving"
    base.write_text("")
    assert _config_error(_cfg(tmp_path, data)) == (
        f"pusher.base_path: {base} is a file, not a directory")


def test_a_base_path_under_a_file_is_refused(tmp_path, data):
    (tmp_path / "file").write_text("")
    base = tmp_path / "file" / "serving" / "model"
    assert _config_error(_cfg(tmp_path, data, pusher={"base_path": str(base)})) == (
        f"pusher.base_path: {base} cannot be created: {tmp_path / 'file'} is a file, "
        "not a directory")


def test_a_work_dir_that_is_a_file_is_refused(tmp_path, data):
    (tmp_path / "var").write_text("")
    assert _config_error(_cfg(tmp_path, data)).startswith(f"work_dir: {tmp_path / 'var'} is a file")


def test_a_pipeline_root_under_a_file_is_refused(tmp_path, data):
    (tmp_path / "file").write_text("")
    message = _config_error(_cfg(tmp_path, data, pipeline_root=str(tmp_path / "file" / "pr")))
    assert message.startswith(f"pipeline_root: {tmp_path / 'file' / 'pr'} cannot be created")


def test_a_metadata_path_that_is_a_directory_is_refused(tmp_path, data):
    store = tmp_path / "metadata.sqlite"
    store.mkdir()
    assert _config_error(_cfg(tmp_path, data, metadata_path=str(store))) == (
        f"metadata_path: {store} is a directory, not an SQLite database")


def test_a_metadata_path_that_is_not_sqlite_is_refused(tmp_path, data):
    store = tmp_path / "var" / "metadata.sqlite"
    store.parent.mkdir()
    store.write_text("key: value\n")
    assert _config_error(_cfg(tmp_path, data)).startswith(
        f"work_dir: {store} is not an SQLite database")


def test_an_sqlite_store_or_an_empty_file_passes(tmp_path, data):
    store = tmp_path / "m.sqlite"
    sqlite3.connect(store).execute("create table t (x)").connection.close()
    check_output_paths(_cfg(tmp_path, data, metadata_path=str(store)))
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    assert preflight(_cfg(tmp_path, data, metadata_path=str(empty))) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; see the tests above")
def test_a_base_path_parent_that_is_not_writable_is_refused(tmp_path, data):
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        message = _config_error(_cfg(tmp_path, data, pusher={"base_path": str(parent / "m")}))
    finally:
        parent.chmod(0o700)
    assert message == (
        f"pusher.base_path: {parent / 'm'} cannot be created: {parent} is not writable")
