"""FileImportExecutor, ImportExampleGen's executor here: on split folders of GZIP files its
Examples artifact holds the same records with the same properties as TFX's own executor's
(which decodes and writes every record through Beam), readable by TFX's readers; a corrupt
file fails the execution with one line; hash splits still go through Beam."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(REPO / "data" / "penguins" / "span-2", root / "span-2")
    return root


def _run(executor_class, data: Path, out: Path, hash_buckets: dict[str, int] | None = None):
    """One execution as a pipeline runs it: the component's exec properties, the span resolved
    as TFX's driver does; the output artifact."""
    from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
    from tfx.proto import example_gen_pb2
    from tfx.types import standard_artifacts

    from components.example_gen.executor import resolve_span

    if hash_buckets:
        splits = [example_gen_pb2.Input.Split(name="all", pattern="span-{SPAN}/*/*.gz")]
        output = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
            example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b)
            for n, b in hash_buckets.items()]))
    else:
        splits = [example_gen_pb2.Input.Split(name=n, pattern=f"span-{{SPAN}}/Split-{n}/*")
                  for n in ("train", "eval")]
        output = None
    component = ImportExampleGen(input_base=str(data),
                                 input_config=example_gen_pb2.Input(splits=splits),
                                 output_config=output)
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    props = resolve_span(dict(component.exec_properties), examples)
    executor_class().Do({}, {"examples": [examples]}, props)
    return examples


def _records(examples, split: str) -> list[bytes]:
    import tensorflow as tf
    from tfx.types import artifact_utils

    uri = artifact_utils.get_split_uri([examples], split)
    files = sorted(tf.io.gfile.glob(f"{uri}/*"))
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


def test_same_records_and_properties_as_tfxs_import(data, tmp_path):
    from tfx.components.example_gen.import_example_gen.executor import Executor

    from components.example_gen.executor import FileImportExecutor

    ours = _run(FileImportExecutor, data, tmp_path / "ours")
    tfx = _run(Executor, data, tmp_path / "tfx")
    assert ours.split_names == tfx.split_names == '["train", "eval"]'
    for key in ("span", "version", "input_fingerprint", "payload_format", "file_format"):
        assert ours.get_custom_property(key) == tfx.get_custom_property(key), key
    assert ours.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    assert ours.get_string_custom_property("file_format") == "tfrecords_gzip"
    assert ours.get_string_custom_property("import_mode") in ("copy", "reflink")
    total = 0
    for split in ("train", "eval"):
        # TFX's Beam import may reorder records: the same multiset.
        mine = _records(ours, split)
        assert sorted(mine) == sorted(_records(tfx, split)) and mine
        total += len(mine)
        source = next((data / "span-2" / f"Split-{split}").glob("*.gz"))
        assert (tmp_path / "ours" / f"Split-{split}" / source.name).read_bytes() == (
            source.read_bytes())
    assert ours.get_int_custom_property("record_count") == total


def test_tfx_readers_read_the_imported_examples(data, tmp_path):
    """TFXIO (what StatisticsGen, the Trainer and the Evaluator read through) on the artifact."""
    from tfx.components.util import tfxio_utils

    from components.example_gen.executor import LinkingImportExecutor

    examples = _run(LinkingImportExecutor, data, tmp_path / "out")
    assert examples.get_string_custom_property("import_mode") == "link"
    from tfx.types import artifact_utils
    from tfx_bsl.tfxio import dataset_options

    factory = tfxio_utils.get_tfxio_factory_from_artifact([examples], "test")
    tfxio = factory(f"{artifact_utils.get_split_uri([examples], 'eval')}/*")
    batches = list(tfxio.RecordBatches(
        dataset_options.RecordBatchesOptions(batch_size=64, num_epochs=1)))
    assert sum(b.num_rows for b in batches) == len(_records(examples, "eval")) > 0


def test_a_corrupt_file_fails_the_execution_with_one_line(data, tmp_path):
    from components.data_check import DataCheckError
    from components.example_gen.executor import FileImportExecutor

    bad = next((data / "span-2" / "Split-train").glob("*.gz"))
    with gzip.open(bad) as f:
        raw = bytearray(f.read())
    raw[200] ^= 0x40  # inside a record's data: only its CRC tells
    with gzip.open(bad, "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(DataCheckError) as e:
        _run(FileImportExecutor, data, tmp_path / "out")
    assert str(e.value).startswith(f"{bad}: corrupted record #") and "CRC mismatch" in str(e.value)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_hash_splits_still_go_through_beam(data, tmp_path):
    from components.example_gen.executor import FileImportExecutor

    examples = _run(FileImportExecutor, data, tmp_path / "out", {"train": 3, "eval": 1})
    assert examples.get_string_custom_property("import_mode") == "beam"
    assert examples.split_names == '["train", "eval"]'
    import tensorflow as tf

    every = sum(len(_records(examples, s)) for s in ("train", "eval"))
    inputs = [str(p) for p in (data / "span-2").glob("*/*.gz")]
    assert every == sum(1 for _ in tf.data.TFRecordDataset(inputs, compression_type="GZIP"))
