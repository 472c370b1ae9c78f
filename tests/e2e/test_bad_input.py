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


def assert_refused(tmp: Path, proc, payload: dict | None, *needles: str,
                   code: int | None = None) -> None:
    """One `error:` line (or the JSON `error`) holding every needle, no traceback, nothing
    pushed, and the exit code of the README's rule (`code`; any failure when None)."""
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    message = payload["error"] if payload is not None else proc.stderr.strip()
    if payload is None:
        lines = [ln for ln in message.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, message
        # Nothing else: no TensorFlow, Beam or TFDV warning passing for the error.
        assert all(ln.startswith(("error:", "full log:")) for ln in message.splitlines()), message
        message = lines[0]
    else:
        assert proc.stderr.strip() == "", proc.stderr[-2000:]
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message
    assert "Traceback" not in message
    serving = tmp / "serving" / "penguin"
    assert not serving.is_dir() or not any(p.name.isdigit() for p in serving.iterdir())


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
    assert_refused(tmp_path, proc, out, str(bad), code=1)


def test_truncated_tfrecord_file(tmp_path):
    root = copy_span(tmp_path)
    bad = train_file(root)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, str(bad), "truncated", code=1)


def test_truncated_record_inside_a_valid_gzip_stream(tmp_path):
    root = copy_span(tmp_path)
    bad = train_file(root)
    raw = gzip.decompress(bad.read_bytes())
    bad.write_bytes(gzip.compress(raw[:-7]))
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, str(bad), "truncated record", code=1)


def test_data_root_that_matches_no_files(tmp_path):
    empty = tmp_path / "nothing-here"
    (empty / "span-1" / "Split-train").mkdir(parents=True)
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(empty))
    assert_refused(tmp_path, proc, out, str(empty), "no input files", code=1)


def test_data_root_that_does_not_exist(tmp_path):
    missing = tmp_path / "no-such-dir"
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(missing))
    assert_refused(tmp_path, proc, out, str(missing), code=1)


def test_span_that_does_not_exist(tmp_path):
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--span", "9")
    assert_refused(tmp_path, proc, out, "span 9", "spans: 1, 2", code=1)


def test_missing_label_feature_stops_before_training(tmp_path):
    root = copy_span(tmp_path)
    rewrite_examples(train_file(root), lambda i, ex: i % 3 == 0 and ex.features.feature.pop(
        "species"))
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, "DataValidationGate", "'species'", "split 'train'",
                   code=1)
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
    assert_refused(tmp_path, proc, None, "'body_mass_g'", "Expected data of type: FLOAT",
                   code=1)


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
                   "nccl needs a GPU", code=2)
    assert out["components"] == [] or all(c["status"] == "not run" for c in out["components"])


# --- configurations refused when loaded (exit 2, the file and the dotted key named) -----------

CONFIG_REFUSALS = {
    "negative_seed": ("trainer:\n  seed: -1\n", ["trainer.seed", ">= 0"]),
    "no_threshold": ("evaluator:\n  thresholds: []\n",
                     ["evaluator.thresholds", "every model would be blessed"]),
    "slice_on_a_missing_feature": ("evaluator:\n  slices: [[islnd]]\n",
                                   ["evaluator.slices[0]", "'islnd'", "did you mean 'island'"]),
    "repeated_feature": ("model:\n  features: [island, island]\n",
                         ["model.features", "'island' is listed twice"]),
    "threshold_no_model_can_pass": (
        "evaluator:\n  thresholds:\n  - {lower_bound: 0.9, upper_bound: 0.5}\n",
        ["evaluator.thresholds[0]", "no model can pass"]),
    "threshold_every_model_passes": (
        "evaluator:\n  thresholds:\n  - {lower_bound: 0.0}\n",
        ["evaluator.thresholds[0].lower_bound", "lets every model pass"]),
    "zero_width_layer": ("model:\n  hidden_units: [16, 0]\n",
                         ["model.hidden_units[1]", "positive integer"]),
    "nan_learning_rate": ("trainer:\n  learning_rate: .nan\n",
                          ["trainer.learning_rate", "finite"]),
    "missing_schema": ("data:\n  schema: /no/such/schema.pbtxt\n",
                       ["data.schema", "/no/such/schema.pbtxt"]),
}


@pytest.mark.parametrize("case", sorted(CONFIG_REFUSALS))
def test_a_config_that_would_fail_late_or_gate_nothing_is_refused_when_loaded(tmp_path, case):
    broken, needles = CONFIG_REFUSALS[case]
    bad = bad_overlay(tmp_path, "bad.yaml", broken)
    proc = run_cli("run", "--config", str(bad))
    assert_refused(tmp_path, proc, None, str(bad), *needles, code=2)
    assert_nothing_written(tmp_path)


# --- paths the run writes, checked before anything is (exit 2, the key and the path named) -----


def test_a_base_path_that_is_a_file_is_refused_before_training(tmp_path):
    overlay = write_overlay(tmp_path)
    (tmp_path / "serving").mkdir()
    base = tmp_path / "serving" / "penguin"
    base.write_text("not a folder")
    proc, out = run_json("--config", str(overlay))
    assert_refused(tmp_path, proc, out, "pusher.base_path", str(base), "is a file", code=2)
    assert out["components"] == [] or all(c["status"] == "not run" for c in out["components"])


def test_a_metadata_path_that_is_not_a_database_is_refused(tmp_path):
    store = tmp_path / "notes.txt"
    store.write_text("key: value\n")
    overlay = write_overlay(tmp_path, metadata_path=str(store))
    proc = run_cli("run", "--config", str(overlay))
    assert_refused(tmp_path, proc, None, "metadata_path", str(store),
                   "not an SQLite database", code=2)
    assert store.read_text() == "key: value\n"


def test_a_work_dir_that_is_a_file_is_refused_before_the_log_is_opened(tmp_path):
    (tmp_path / "var").write_text("")
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)))
    assert_refused(tmp_path, proc, None, "work_dir", str(tmp_path / "var"), "is a file",
                   code=2)


# --- input TFX would reject later, refused first naming the file or folder (exit 1) -----------


def write_records(path: Path, records: list[bytes], compression: str = "GZIP") -> None:
    import tensorflow as tf

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path), compression) as w:
        for r in records:
            w.write(r)


def test_gzip_content_in_a_file_tfx_reads_as_uncompressed(tmp_path):
    root = copy_span(tmp_path)
    bad = root / "span-1" / "Split-train" / "x.tfrecord"
    shutil.copy(train_file(root), bad)
    overlay = write_overlay(tmp_path, data={"file_pattern": "*"})
    proc, out = run_json("--config", str(overlay), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, str(bad), "does not end in .gz", code=1)


def test_uncompressed_content_in_a_gz_file(tmp_path):
    import tensorflow as tf

    root = copy_span(tmp_path)
    good = train_file(root)
    records = list(tf.data.TFRecordDataset([str(good)], "GZIP").as_numpy_iterator())
    bad = root / "span-1" / "Split-eval" / "y.tfrecord.gz"
    write_records(bad, records, compression="")
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, str(bad), "not a valid GZIP file", code=1)


def test_records_that_are_not_tf_examples(tmp_path):
    import tensorflow as tf

    root = copy_span(tmp_path)
    seq = tf.train.SequenceExample()
    seq.context.feature["island"].bytes_list.value.append(b"Biscoe")
    seq.feature_lists.feature_list["bill"].feature.add().float_list.value.append(39.1)
    bad = root / "span-1" / "Split-train" / "z.tfrecord.gz"
    write_records(bad, [seq.SerializeToString()] * 3)
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, str(bad), "record #0 is not a tf.Example",
                   "SequenceExample", code=1)


def test_a_span_without_its_eval_split(tmp_path):
    root = copy_span(tmp_path)
    (root / "span-2" / "Split-train").mkdir(parents=True)
    shutil.copy(train_file(root), root / "span-2" / "Split-train" / "part.tfrecord.gz")
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, "span-2", "no input files for split 'eval'", code=1)


def test_a_folder_beside_the_spans_that_looks_like_one(tmp_path):
    root = copy_span(tmp_path)
    shutil.copytree(root / "span-1", root / "span-1.bak")
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, "span-1.bak", "is not a span number", code=1)


def test_a_glob_character_in_the_data_root(tmp_path):
    root = tmp_path / "in[put]"
    shutil.copytree(PENGUINS / "span-1", root / "span-1")
    proc, out = run_json("--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, out, "'[' is a glob character", code=1)


def test_a_data_root_that_is_a_file(tmp_path):
    root = tmp_path / "data.tfrecord.gz"
    root.write_bytes(b"")
    proc = run_cli("run", "--config", str(write_overlay(tmp_path)), "--data-root", str(root))
    assert_refused(tmp_path, proc, None, str(root), "is a file, not a directory", code=1)
