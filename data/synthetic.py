"""Seeded synthetic tabular tf.Examples, for tests and benchmarks at any size.

The schema is deliberately different from the penguins' (see :func:`synthetic_schema`):

- ``f0`` .. ``f{num_floats-1}``: float, standard normal clipped to [-5, 5];
- ``color``: string categorical, 5 values (a ``string_domain``);
- ``city``: string categorical, 50 values ``city_00`` .. ``city_49``, Zipf-like frequencies;
- ``bucket``: int categorical 0..9;
- ``age``: int numeric 18..90;
- ``label``: int64 class id in ``0 .. num_classes-1``, drawn from a softmax over a fixed linear
  function of all the features above, so a model can learn it (with all features present the
  Bayes-optimal accuracy is about 0.88 for the default binary task; classes are near-balanced).
  The function depends only on ``num_classes`` and ``num_floats``, never on ``seed``: data
  written with different seeds (train and eval) share the same concept.

Every feature but ``label`` is independently missing with probability ``missing_rate``; a
missing value is an *absent* feature, never a sentinel. The label is computed before masking.

Examples are encoded straight to the protobuf wire format from numpy arrays (the bytes equal
``tf.train.Example.SerializeToString(deterministic=True)``: map keys sorted), which is what
makes a million examples cheap; files are written with ``tf.io.TFRecordWriter`` (GZIP).
The example content depends only on ``seed``, ``n_examples`` and the keyword arguments, not on
``n_files``: examples are generated once and cut into contiguous shards.

Command line (e.g. for benchmarks)::

    python -m data.synthetic OUT_DIR --examples 1000000 --files 8
"""

from __future__ import annotations

import argparse
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tensorflow_metadata.proto.v0 import schema_pb2

COLORS = ("red", "green", "blue", "yellow", "purple")
COLOR_P = (0.35, 0.25, 0.2, 0.12, 0.08)
NUM_CITIES = 50
CITIES = tuple(f"city_{i:02d}" for i in range(NUM_CITIES))
NUM_BUCKETS = 10
AGE_MIN, AGE_MAX = 18, 90
FLOAT_CLIP = 5.0
DEFAULT_NUM_FLOATS = 4
LABEL = "label"
# Fixed seed of the concept (the label's dependence on the features), independent of `seed`.
_CONCEPT_SEED = 20240601
# Strength of the features' effect on the label (higher: less label noise).
_SIGNAL = 2.0


def float_names(num_floats: int = DEFAULT_NUM_FLOATS) -> list[str]:
    return [f"f{i}" for i in range(num_floats)]


def feature_names(num_floats: int = DEFAULT_NUM_FLOATS) -> list[str]:
    """All feature names, label included, in serialization (sorted) order."""
    return sorted([*float_names(num_floats), "color", "city", "bucket", "age", LABEL])


# ---------------------------------------------------------------------------------------------
# Schema


def _min_fraction(missing_rate: float) -> float:
    """Presence bound for a feature missing with probability ``missing_rate``.

    Allows twice the expected missing share, so sampling noise in a split of a thousand or more
    examples never trips it (at 10% missing and 1000 examples that is a 10-sigma margin).
    """
    if missing_rate <= 0:
        return 1.0
    return round(max(0.0, 1.0 - 2.0 * missing_rate), 6)


def synthetic_schema(
    num_classes: int = 2, missing_rate: float = 0.1, num_floats: int = DEFAULT_NUM_FLOATS
) -> schema_pb2.Schema:
    """The curated schema matching :func:`write_synthetic` with the same arguments."""
    _check_args(num_classes, missing_rate, num_floats)
    schema = schema_pb2.Schema()
    schema.default_environment.extend(["TRAINING", "SERVING"])
    optional = _min_fraction(missing_rate)

    def add(name: str, ftype: int, min_fraction: float) -> schema_pb2.Feature:
        feature = schema.feature.add(name=name, type=ftype)
        feature.presence.min_fraction = min_fraction
        feature.presence.min_count = 1
        feature.value_count.min = 1
        feature.value_count.max = 1
        return feature

    for name in feature_names(num_floats):
        if name == LABEL:
            feature = add(name, schema_pb2.INT, 1.0)
            feature.int_domain.min = 0
            feature.int_domain.max = num_classes - 1
            feature.int_domain.is_categorical = True
            feature.not_in_environment.append("SERVING")
        elif name == "age":
            feature = add(name, schema_pb2.INT, optional)
            feature.int_domain.min = AGE_MIN
            feature.int_domain.max = AGE_MAX
        elif name == "bucket":
            feature = add(name, schema_pb2.INT, optional)
            feature.int_domain.min = 0
            feature.int_domain.max = NUM_BUCKETS - 1
            feature.int_domain.is_categorical = True
        elif name in ("color", "city"):
            add(name, schema_pb2.BYTES, optional).domain = name
        else:
            feature = add(name, schema_pb2.FLOAT, optional)
            feature.float_domain.min = -FLOAT_CLIP
            feature.float_domain.max = FLOAT_CLIP
    schema.string_domain.add(name="color", value=list(COLORS))
    schema.string_domain.add(name="city", value=list(CITIES))
    return schema


def write_schema(path: str, schema: schema_pb2.Schema) -> str:
    from google.protobuf import text_format

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(
            "# Curated schema of the synthetic data (data/synthetic.py), not inferred.\n"
            + text_format.MessageToString(schema)
        )
    return path


# ---------------------------------------------------------------------------------------------
# Data


def _check_args(num_classes: int, missing_rate: float, num_floats: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if not 0.0 <= missing_rate < 1.0:
        raise ValueError(f"missing_rate must be in [0, 1), got {missing_rate}")
    if num_floats < 1:
        raise ValueError(f"num_floats must be >= 1, got {num_floats}")


def _concept(num_classes: int, num_floats: int) -> dict[str, np.ndarray]:
    """Weights of the label's logits; every table is centred so the classes stay balanced."""
    rng = np.random.default_rng([_CONCEPT_SEED, num_classes, num_floats])
    color = rng.normal(0.0, 1.0, size=(len(COLORS), num_classes))
    city = rng.normal(0.0, 0.6, size=(NUM_CITIES, num_classes))
    bucket = rng.normal(0.0, 0.8, size=(NUM_BUCKETS, num_classes))
    return {
        "floats": _SIGNAL * rng.normal(0.0, 2.0 / np.sqrt(num_floats), (num_floats, num_classes)),
        "color": _SIGNAL * (color - np.asarray(COLOR_P) @ color),
        "city": _SIGNAL * (city - _city_p() @ city),
        "bucket": _SIGNAL * (bucket - bucket.mean(axis=0)),
        "age": _SIGNAL * rng.normal(0.0, 1.0, size=(num_classes,)),
    }


def _city_p() -> np.ndarray:
    """Zipf-like city frequencies: city_00 is the most common."""
    weights = 1.0 / np.arange(1, NUM_CITIES + 1) ** 0.8
    return weights / weights.sum()


def generate_columns(
    n_examples: int,
    seed: int | Sequence[int] = 0,
    missing_rate: float = 0.1,
    num_classes: int = 2,
    num_floats: int = DEFAULT_NUM_FLOATS,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The raw data as numpy columns, and per feature a boolean "missing" mask.

    Floats are float32; ``color`` and ``city`` are indices into :data:`COLORS` and
    :data:`CITIES`; ``bucket``, ``age`` and ``label`` are int64. ``label`` is never missing.
    """
    _check_args(num_classes, missing_rate, num_floats)
    rng = np.random.default_rng(seed)
    n = int(n_examples)
    floats = np.clip(
        rng.standard_normal((n, num_floats), dtype=np.float32), -FLOAT_CLIP, FLOAT_CLIP
    )
    cols: dict[str, np.ndarray] = {f"f{i}": floats[:, i] for i in range(num_floats)}
    cols["color"] = rng.choice(len(COLORS), size=n, p=COLOR_P)
    cols["city"] = rng.choice(NUM_CITIES, size=n, p=_city_p())
    cols["bucket"] = rng.integers(0, NUM_BUCKETS, size=n)
    cols["age"] = rng.integers(AGE_MIN, AGE_MAX + 1, size=n)

    w = _concept(num_classes, num_floats)
    logits = (
        floats.astype(np.float64) @ w["floats"]
        + w["color"][cols["color"]]
        + w["city"][cols["city"]]
        + w["bucket"][cols["bucket"]]
        + np.outer((cols["age"] - 54.0) / 21.0, w["age"])
    )
    # Sampling from softmax(logits) = argmax of logits plus Gumbel noise.
    cols[LABEL] = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1).astype(np.int64)

    missing = {
        name: rng.random(n) < missing_rate for name in feature_names(num_floats) if name != LABEL
    }
    missing[LABEL] = np.zeros(n, dtype=bool)
    return cols, missing


# --- protobuf wire format -------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def _len_field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _map_entry(key: str, feature: bytes) -> bytes:
    """One ``Features.feature`` map entry (field 1 of Features) holding ``feature``."""
    return _len_field(0x0A, _len_field(0x0A, key.encode("utf-8")) + _len_field(0x12, feature))


def _bytes_feature(value: bytes) -> bytes:  # Feature.bytes_list = 1, BytesList.value = 1
    return _len_field(0x0A, _len_field(0x0A, value))


def _float_feature(value: float) -> bytes:  # Feature.float_list = 2, packed FloatList.value = 1
    return _len_field(0x12, _len_field(0x0A, np.float32(value).tobytes()))


def _int64_feature(value: int) -> bytes:  # Feature.int64_list = 3, packed Int64List.value = 1
    if value < 0:
        raise ValueError("only non-negative int64 values are encoded here")
    return _len_field(0x1A, _len_field(0x0A, _varint(value)))


def _table_column(table: list[bytes], codes: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Entries looked up by code; the extra last slot (b"") stands for a missing value."""
    lookup = np.empty(len(table) + 1, dtype=object)
    lookup[:-1] = table
    lookup[-1] = b""
    return lookup[np.where(missing, len(table), codes)]


def _float_column(key: str, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    prefix = _map_entry(key, _float_feature(0.0))[:-4]  # fixed width: 4 value bytes at the end
    width = len(prefix) + 4
    n = len(values)
    rows = np.empty((n, width), dtype=np.uint8)
    rows[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
    rows[:, len(prefix) :] = values.astype("<f4").view(np.uint8).reshape(n, 4)
    flat = rows.tobytes()
    column = np.empty(n, dtype=object)
    column[:] = [flat[i : i + width] for i in range(0, n * width, width)]
    column[missing] = b""
    return column


def encode_examples(
    cols: dict[str, np.ndarray], missing: dict[str, np.ndarray], start: int = 0, stop=None
) -> list[bytes]:
    """Serialized ``tf.train.Example`` s for rows ``start:stop`` of the columns."""
    parts = []
    for name in sorted(cols):
        values = cols[name][start:stop]
        mask = missing[name][start:stop]
        if name == "color":
            table = [_map_entry(name, _bytes_feature(c.encode())) for c in COLORS]
            parts.append(_table_column(table, values, mask))
        elif name == "city":
            table = [_map_entry(name, _bytes_feature(c.encode())) for c in CITIES]
            parts.append(_table_column(table, values, mask))
        elif values.dtype.kind in "iu":
            low = int(values.min()) if len(values) else 0
            high = int(values.max()) if len(values) else 0
            table = [_map_entry(name, _int64_feature(v)) for v in range(low, high + 1)]
            parts.append(_table_column(table, values - low, mask))
        else:
            parts.append(_float_column(name, values, mask))
    if not parts:
        return []
    body = parts[0]
    for part in parts[1:]:
        body = body + part  # elementwise bytes concatenation (object arrays)
    headers: dict[int, bytes] = {}
    out = []
    for features in body.tolist():
        size = len(features)
        header = headers.get(size)
        if header is None:
            header = headers[size] = b"\x0a" + _varint(size)  # Example.features = 1
        out.append(header + features)
    return out


# --- files ------------------------------------------------------------------------------------


def shard_names(n_files: int) -> list[str]:
    return [f"part-{i:05d}-of-{n_files:05d}.tfrecord.gz" for i in range(n_files)]


def write_synthetic(
    out_dir: str,
    n_examples: int,
    n_files: int = 1,
    seed: int | Sequence[int] = 0,
    missing_rate: float = 0.1,
    num_classes: int = 2,
    num_floats: int = DEFAULT_NUM_FLOATS,
) -> list[str]:
    """Write ``n_examples`` synthetic examples as GZIP TFRecords into ``out_dir``.

    Files are ``part-0000i-of-0000N.tfrecord.gz`` with contiguous, near-equal shards.
    Returns the file paths.
    """
    import tensorflow as tf

    if n_files < 1:
        raise ValueError(f"n_files must be >= 1, got {n_files}")
    cols, missing = generate_columns(n_examples, seed, missing_rate, num_classes, num_floats)
    os.makedirs(out_dir, exist_ok=True)
    bounds = np.linspace(0, int(n_examples), n_files + 1).round().astype(int)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    paths = []
    for i, name in enumerate(shard_names(n_files)):
        path = os.path.join(out_dir, name)
        records = encode_examples(cols, missing, int(bounds[i]), int(bounds[i + 1]))
        with tf.io.TFRecordWriter(path, options) as writer:
            for record in records:
                writer.write(record)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class SplitLayout:
    root: str
    span_dir: str
    train: list[str]
    eval: list[str]
    schema: str


def _split_seed(seed: int | Sequence[int], span: int, split: str) -> list[int]:
    base = [int(seed)] if isinstance(seed, (int, np.integer)) else [int(s) for s in seed]
    return [*base, int(span), zlib.crc32(split.encode())]


def write_split_layout(
    root: str,
    n_train: int,
    n_eval: int,
    span: int = 1,
    seed: int | Sequence[int] = 0,
    **kw,
) -> SplitLayout:
    """Write ``root/span-{span}/Split-{train,eval}/part-*.tfrecord.gz`` and ``root/schema.pbtxt``.

    ``kw`` goes to :func:`write_synthetic` (``n_files``, ``missing_rate``, ``num_classes``,
    ``num_floats``); train and eval get different seeds derived from ``seed`` and ``span``.
    """
    span_dir = os.path.join(root, f"span-{span}")
    splits = {}
    for split, n in (("train", n_train), ("eval", n_eval)):
        out = os.path.join(span_dir, f"Split-{split}")
        splits[split] = write_synthetic(out, n, seed=_split_seed(seed, span, split), **kw)
    schema_kw = {k: kw[k] for k in ("num_classes", "missing_rate", "num_floats") if k in kw}
    schema = write_schema(os.path.join(root, "schema.pbtxt"), synthetic_schema(**schema_kw))
    return SplitLayout(root, span_dir, splits["train"], splits["eval"], schema)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write synthetic GZIP TFRecord tf.Examples.")
    parser.add_argument("out_dir")
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--missing-rate", type=float, default=0.1)
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--num-floats", type=int, default=DEFAULT_NUM_FLOATS)
    parser.add_argument("--schema", help="also write the matching schema.pbtxt here")
    args = parser.parse_args(argv)
    paths = write_synthetic(
        args.out_dir,
        args.examples,
        n_files=args.files,
        seed=args.seed,
        missing_rate=args.missing_rate,
        num_classes=args.num_classes,
        num_floats=args.num_floats,
    )
    if args.schema:
        schema = synthetic_schema(args.num_classes, args.missing_rate, args.num_floats)
        write_schema(args.schema, schema)
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
