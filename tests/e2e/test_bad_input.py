"""Bad input: one clear line naming the file, feature or key, a non-zero exit, nothing pushed."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, run_cli, run_json, write_overlay

pytestmark = pytest.mark.e2e

PENGUINS = REPO / "data" / "penguins"


def copy_span(tmp: Path) -> Path:
    """A data root with span 1 of the sample data, to be damaged by each test."""
    root = tmp / "data"
    shutil.copytree(PENGUINS / "span-1", root / "span-1")
    return root


def train_file(root: Path) -> Path:
    return next((root / "span-1" / "Split-train").glob("*.tfrecord.gz"))


def assert_refused(tmp: Path, proc, payload: dict | None, *needles: str) -> None:
    assert proc.returncode != 0
    message = payload["error"] if payload is not None else proc.stderr.strip()
    if payload is None:
        lines = [ln for ln in message.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, message
        message = lines[0]
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    serving = tmp / "serving" / "penguin"
    assert not serving.exists() or not any(p.name.isdigit() for p in serving.iterdir())


def rewrite_examples(path: Path, change) -> None:
    """Rewrites a GZIP TFRecord file of tf.Examples, passing each through `change`."""
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset([str(path)], "GZIP").as_numpy_iterator())
    with tf.io.TFRecordWriter(str(path), "GZIP") as w:
        for i, raw in enumerate(records):
            ex = tf.train.Example.FromString(raw)
            change(i, ex)
            w.write(ex.SerializeToString())


def test_garbage_tfrecord_file(tmp_path):
    root = copy_span(tmp_path)
    bad = train_file(root)
    bad.write_bytes(b"this is not a TFRecord file at all" * 10)
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, str(bad))


def test_truncated_tfrecord_file(tmp_path):
    root = copy_span(tmp_path)
    bad = train_file(root)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, str(bad), "truncated")


def test_truncated_record_inside_a_valid_gzip_stream(tmp_path):
    root = copy_span(tmp_path)
    bad = train_file(root)
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(raw[:-7]))
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, str(bad), "truncated record")


def test_data_root_that_matches_no_files(tmp_path):
    empty = tmp_path / "nothing-here"
    (empty / "span-1" / "Split-train").mkdir(parents=True)
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(empty))
    assert_refused(tmp_path, proc, out, str(empty), "no input files")


def test_data_root_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-dir"
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(missing))
    assert_refused(tmp_path, proc, out, str(missing))


def test_span_that_does_not_exist(tmp_path):
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--span", "9")
    assert_refused(tmp_path, proc, out, "span 9", "spans: 1, 2")


def test_missing_label_feature_stops_before_training(tmp_path):
    root = copy_span(tmp_path)
    rewrite_examples(train_file(root), lambda i, ex: i % 3 == 0 and ex.features.feature.pop(
        "species"))
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, "DataValidationGate", "'species'", "split 'train'")
    by_name = {c["name"]: c for c in out["components"]}
    assert by_name["DataValidationGate"]["status"] == "failed"
    assert by_name["Trainer"]["status"] == "not run"


def test_feature_type_contradicting_the_schema(tmp_path):
    root = copy_span(tmp_path)

    def to_bytes(i, ex):
        f = ex.features.feature["body_mass_g"]
        values = [str(v).encode() for v in f.float_list.value]
        f.ClearField("float_list")
        f.bytes_list.value.extend(values)

    rewrite_examples(train_file(root), to_bytes)
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, "'body_mass_g'", "Expected data of type: FLOAT")


def bad_overlay(tmp: Path, name: str, broken: str) -> Path:
    """The usual overlay (work dir and base path inside `tmp`, so "nothing pushed" and "nothing
    written" are checked where this run would write), followed by `broken` YAML."""
    bad = tmp / name
    bad.write_text(write_overlay(tmp).read_text() + broken)
    return bad


def assert_nothing_written(tmp: Path) -> None:
    assert not (tmp / "var").exists()
    assert not (tmp / "serving").exists()


def test_yaml_profile_that_does_not_parse(tmp_path):
    bad = bad_overlay(tmp_path, "bad.yaml", "beam:\n  extra_args: [1, 2\n")
    proc = run_cli("run", "--config", str(bad))
    assert_refused(tmp_path, proc, None, str(bad), "not valid YAML", "line")
    assert proc.returncode == 2
    assert_nothing_written(tmp_path)


def test_unknown_key(tmp_path):
    bad = bad_overlay(tmp_path, "typo.yaml", "model:\n  hiden_units: [4]\n")
    proc, out = run_json("--config", str(bad))
    assert_refused(tmp_path, proc, out, str(bad), "model.hiden_units", "hidden_units")
    assert proc.returncode == 2
    assert_nothing_written(tmp_path)


@pytest.mark.skipif(os.path.isdir("/proc/driver/nvidia/gpus"), reason="this machine has GPUs")
def test_nccl_without_a_gpu_is_refused_before_anything_starts(tmp_path):
    overlay = write_overlay(tmp_path, trainer={"distribution": {"communication": "nccl"}})
    proc, out = run_json("--config", str(overlay))
    assert_refused(tmp_path, proc, out, str(overlay), "trainer.distribution.communication",
                   "nccl needs a GPU")
    assert out["components"] == [] or all(c["status"] == "not run" for c in out["components"])
