"""Pre-flight checks of the pipeline's input data (pure Python, no TensorFlow)."""

from components.data_check.example_check import example_problem
from components.data_check.gfile_glob import gfile_glob
from components.data_check.tfrecord_check import (
    DATA_CRC_MAX_BYTES,
    DATA_CRC_MAX_RECORDS,
    EXAMPLE_CHECK_RECORDS,
    DataCheckError,
    check_input_files,
    check_tfrecord_file,
    crc32c,
    find_input_files,
    masked_crc32c,
)

__all__ = [
    "DATA_CRC_MAX_BYTES",
    "DATA_CRC_MAX_RECORDS",
    "EXAMPLE_CHECK_RECORDS",
    "DataCheckError",
    "check_input_files",
    "check_tfrecord_file",
    "crc32c",
    "example_problem",
    "find_input_files",
    "gfile_glob",
    "masked_crc32c",
]
