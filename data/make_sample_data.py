"""Turn the Palmer penguins data into the project's committed sample data.

Usage::

    python data/make_sample_data.py [--out DIR]      # default DIR: the folder of this file

Layout written under DIR (GZIP TFRecords of serialized ``tf.train.Example``)::

    penguins/span-1/Split-train/penguins-00000-of-00001.tfrecord.gz   years 2007-2008
    penguins/span-1/Split-eval/penguins-00000-of-00001.tfrecord.gz
    penguins/span-2/Split-train/penguins-00000-of-00001.tfrecord.gz   years 2007-2009
    penguins/span-2/Split-eval/penguins-00000-of-00001.tfrecord.gz

Span 1 is a snapshot of the study as of 2008, span 2 as of 2009 (so span 2 contains span 1).
A row goes to eval when ``crc32(str(row_index)) % 5 == 0`` (row_index = its position in the
344-row CSV), otherwise to train; so a row keeps its split from one span to the next. Rows keep
their CSV order.

Features: ``species`` int64 label (0 Adelie, 1 Chinstrap, 2 Gentoo), ``island`` and ``sex``
bytes, ``year`` int64, and the float measurements. A missing value (NaN) means the feature is
absent from that Example. Rows with missing values are kept on purpose.

The output is byte-for-byte reproducible: examples are serialized with
``SerializeToString(deterministic=True)``, records are framed in pure Python (the TFRecord
format: uint64 length, masked crc32c of the length, data, masked crc32c of the data) and the
whole file is compressed with :func:`gzip.compress` (level 9, ``mtime=0``, no file name in the
header), so neither time nor TensorFlow's writer enters the bytes.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import math
import os
import struct
import zlib
from collections.abc import Iterable, Sequence

import pandas as pd

from components.data_check import crc32c, masked_crc32c  # noqa: F401  (crc32c re-exported)

SPECIES = ("Adelie", "Chinstrap", "Gentoo")
FLOAT_FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
BYTES_FEATURES = ("island", "sex")
SPANS: dict[int, tuple[int, ...]] = {1: (2007, 2008), 2: (2007, 2008, 2009)}
SPLITS = ("train", "eval")
EVAL_MODULUS = 5
FILE_NAME = "penguins-00000-of-00001.tfrecord.gz"
GZIP_LEVEL = 9

DEFAULT_OUT = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------
# Source data


def load_penguins() -> pd.DataFrame:
    """The 344-row penguins dataframe shipped by the ``palmerpenguins`` package.

    ``palmerpenguins.load_penguins()`` is ``pd.read_csv`` of the packaged ``data/penguins.csv``,
    but version 0.1.4 imports ``pkg_resources``, which recent setuptools no longer ship. When
    that import fails, read the very same packaged CSV without importing the package.
    """
    try:
        from palmerpenguins import load_penguins as _load_penguins
    except ImportError:
        spec = importlib.util.find_spec("palmerpenguins")
        if spec is None or not spec.submodule_search_locations:
            raise
        package_dir = list(spec.submodule_search_locations)[0]
        return pd.read_csv(os.path.join(package_dir, "data", "penguins.csv"))
    return _load_penguins()


def is_eval_row(row_index: int) -> bool:
    """Stable split assignment: the same row index always lands in the same split."""
    return zlib.crc32(str(row_index).encode("ascii")) % EVAL_MODULUS == 0


def split_rows(df: pd.DataFrame, span: int) -> dict[str, pd.DataFrame]:
    """The rows of ``span``, split into train and eval, each in CSV order."""
    in_span = df[df["year"].isin(SPANS[span])]
    eval_mask = [is_eval_row(int(i)) for i in in_span.index]
    is_eval = pd.Series(eval_mask, index=in_span.index, dtype=bool)
    return {"train": in_span[~is_eval], "eval": in_span[is_eval]}


# ---------------------------------------------------------------------------------------------
# Examples


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(value)  # type: ignore[arg-type]
    except TypeError:
        return False


def row_to_example(row: pd.Series):
    """One dataframe row as a ``tf.train.Example``; NaN values become absent features."""
    import tensorflow as tf

    example = tf.train.Example()
    feature = example.features.feature
    feature["species"].int64_list.value.append(SPECIES.index(row["species"]))
    feature["year"].int64_list.value.append(int(row["year"]))
    for name in BYTES_FEATURES:
        if not _missing(row[name]):
            feature[name].bytes_list.value.append(str(row[name]).encode("utf-8"))
    for name in FLOAT_FEATURES:
        if not _missing(row[name]):
            feature[name].float_list.value.append(float(row[name]))
    return example


def serialize_rows(rows: pd.DataFrame) -> list[bytes]:
    return [row_to_example(row).SerializeToString(deterministic=True) for _, row in rows.iterrows()]


# ---------------------------------------------------------------------------------------------
# Deterministic TFRecord + GZIP framing


def tfrecord_frame(records: Iterable[bytes]) -> bytes:
    """Uncompressed TFRecord bytes for ``records``."""
    parts = []
    for data in records:
        length = struct.pack("<Q", len(data))
        parts.append(length)
        parts.append(struct.pack("<I", masked_crc32c(length)))
        parts.append(data)
        parts.append(struct.pack("<I", masked_crc32c(data)))
    return b"".join(parts)


def gzip_tfrecord_bytes(records: Sequence[bytes]) -> bytes:
    """GZIP-compressed TFRecord file content, identical for identical records."""
    return gzip.compress(tfrecord_frame(records), compresslevel=GZIP_LEVEL, mtime=0)


def _write_atomic(path: str, content: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(content)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# Entry points


def split_path(out_dir: str, span: int, split: str) -> str:
    return os.path.join(out_dir, "penguins", f"span-{span}", f"Split-{split}", FILE_NAME)


def generate(out_dir: str = DEFAULT_OUT) -> dict[tuple[int, str], tuple[str, int]]:
    """Write every span and split under ``out_dir``; return {(span, split): (path, count)}."""
    df = load_penguins()
    written: dict[tuple[int, str], tuple[str, int]] = {}
    for span in sorted(SPANS):
        for split, rows in split_rows(df, span).items():
            records = serialize_rows(rows)
            path = split_path(out_dir, span, split)
            _write_atomic(path, gzip_tfrecord_bytes(records))
            written[(span, split)] = (path, len(records))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for (span, split), (path, count) in generate(args.out).items():
        print(f"span-{span} {split:5s} {count:4d} examples  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
