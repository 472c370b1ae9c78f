"""TFX's StatisticsGen executor with a faster reader for GZIP TFRecords of tf.Example.

TFX reads the examples with Beam's ``ReadFromTFRecord``, which frames and checks every record
in Python, one Beam element per record, before tfx_bsl batches and decodes them: at a million
examples that reading was most of StatisticsGen's ~25 s here. This executor reads each file
with ``tf.data`` (C++) in batches and decodes each batch with the decoder TFX's own source
uses (``ExamplesToRecordBatchDecoder``, without a schema as StatisticsGen asks), one Beam
element per batch of ``BATCH_SIZE`` examples. TFDV then computes exactly what it computes
from TFX's source: same generators, same options, same output files and properties.

Anything else (another payload or file format, a TFXIO with a schema) is read by TFX's source.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import apache_beam as beam
from absl import logging
from tfx.components.statistics_gen import executor as tfx_statistics_executor
from tfx.components.util import tfxio_utils

BATCH_SIZE = 10_000  # TFDV's own default batch is 1,000: larger costs nothing here


def _decode_file(path: str, batch_size: int):
    """The RecordBatches of one GZIP TFRecord file of tf.Examples, ``batch_size`` rows each."""
    import tensorflow as tf
    from tfx_bsl.coders import example_coder

    decoder = example_coder.ExamplesToRecordBatchDecoder()
    dataset = tf.data.TFRecordDataset(path, compression_type="GZIP").batch(batch_size)
    for batch in dataset.as_numpy_iterator():
        yield decoder.DecodeBatch(batch.tolist())


@beam.ptransform_fn
def _ReadRecordBatches(pipeline, files: list[str], batch_size: int):  # noqa: N802 (Beam style)
    return (pipeline
            | "Files" >> beam.Create(files)
            # One file per element, spread over the workers there are.
            | "Spread" >> beam.Reshuffle()
            | "Decode" >> beam.FlatMap(_decode_file, batch_size))


class _FastSource:
    """Stands in for a TFXIO whose only use here is ``BeamSource()``."""

    def __init__(self, files: list[str]) -> None:
        self.files = files

    def BeamSource(self, batch_size: int | None = None):  # noqa: N802 (TFXIO's name)
        return _ReadRecordBatches(self.files, batch_size or BATCH_SIZE)


def _files_if_fast(examples: list, split: str, schema: Any) -> list[str] | None:
    """The split's files when they can be read here (GZIP tf.Example, no schema to read with);
    None for TFX's own source."""
    import tensorflow as tf

    if schema is not None or len(examples) != 1:
        return None
    payload, _ = tfxio_utils.resolve_payload_format_and_data_view_uri(examples)
    patterns, formats = tfxio_utils.get_file_format_and_patterns(examples, split)
    from tfx.proto import example_gen_pb2

    if payload != example_gen_pb2.FORMAT_TF_EXAMPLE or set(formats) != {"tfrecords_gzip"}:
        return None
    return sorted(path for pattern in patterns for path in tf.io.gfile.glob(pattern))


class Executor(tfx_statistics_executor.Executor):
    """TFX's StatisticsGen executor, reading GZIP tf.Example files through ``tf.data``."""

    def Do(self, input_dict, output_dict, exec_properties):  # noqa: N802 (TFX's name)
        tfx_get_split_tfxio = tfxio_utils.get_split_tfxio

        def get_split_tfxio(examples, split, telemetry_descriptors, schema=None, **kwargs):
            files = None if kwargs else _files_if_fast(examples, split, schema)
            if not files:
                return tfx_get_split_tfxio(examples=examples, split=split,
                                           telemetry_descriptors=telemetry_descriptors,
                                           schema=schema, **kwargs)
            logging.info("StatisticsGen: split %s: %d files read through tf.data", split,
                         len(files))
            return _FastSource(files)

        # TFX's Do looks the function up on the module when it runs: in place for this call.
        with mock.patch.object(tfxio_utils, "get_split_tfxio", get_split_tfxio):
            return super().Do(input_dict, output_dict, exec_properties)
