"""The trainer's tf.data input: vectorised reading of GZIP TFRecords of tf.Examples.

Measured on this kind of machine (docs/BENCHMARKS.md): reading each file as its own batched
dataset and interleaving them, then parsing whole batches with `tf.io.parse_example`, is about
20x faster than `TFRecordDataset(..., num_parallel_reads=N)`, which hands every single record
across threads. So: batch first, always.
"""

from __future__ import annotations

from collections.abc import Sequence

from components.trainer.features import INT_MISSING, FeatureInfo, LabelInfo


def parse_spec(features: Sequence[FeatureInfo], label: LabelInfo | None = None) -> dict:
    """`tf.io.parse_example` spec: one value per feature, with a default meaning "missing"."""
    import tensorflow as tf

    spec = {}
    for f in features:
        if f.dtype == "float32":
            spec[f.name] = tf.io.FixedLenFeature([1], tf.float32, default_value=[float("nan")])
        elif f.dtype == "int64":
            spec[f.name] = tf.io.FixedLenFeature([1], tf.int64, default_value=[INT_MISSING])
        else:
            spec[f.name] = tf.io.FixedLenFeature([1], tf.string, default_value=[b""])
    if label is not None:
        # No default: an example without a label is an error, not a silent zero.
        dtype = tf.int64 if label.dtype == "int64" else tf.float32
        spec[label.name] = tf.io.FixedLenFeature([1], dtype)
    return spec


def list_files(patterns: Sequence[str]) -> list[str]:
    import tensorflow as tf

    files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
    if not files:
        raise FileNotFoundError(f"no input files match {list(patterns)}")
    return files


def make_dataset(
    file_patterns: Sequence[str],
    features: Sequence[FeatureInfo],
    label: LabelInfo,
    batch_size: int,
    *,
    training: bool,
    shuffle_buffer: int = 1000,
    seed: int | None = None,
    num_shards: int = 1,
    shard_index: int = 0,
    compression: str = "GZIP",
):
    """A dataset of `(features, label)` batches.

    Args:
      file_patterns: globs of TFRecord files (ImportExampleGen writes GZIP).
      batch_size: examples per batch (per worker).
      training: shuffle and repeat forever when True; one deterministic pass when False.
      shuffle_buffer: when training, records are shuffled in blocks of this many within each
        file, as one vectorised op per block (0: no shuffling). A per-record
        `Dataset.shuffle` costs ~20 us per record here and caps input at ~50k examples/s.
      num_shards, shard_index: this worker's share. Files are sharded when there are at least
        as many files as shards, records otherwise.
    """
    import tensorflow as tf

    files = list_files(file_patterns)
    spec = parse_spec(features, label)
    shard_files = len(files) >= num_shards
    if num_shards > 1 and shard_files:
        files = files[shard_index::num_shards]
    ds_files = tf.data.Dataset.from_tensor_slices(files)
    if training:
        ds_files = ds_files.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)

    shuffle_blocks = training and shuffle_buffer > 0
    block = max(batch_size, shuffle_buffer) if shuffle_blocks else batch_size

    def read(path):
        records = tf.data.TFRecordDataset(path, compression_type=compression)
        if num_shards > 1 and not shard_files:
            # Data-based sharding: whole batches of `num_shards` records, one record each,
            # so the per-record cost is paid once per batch.
            records = records.batch(num_shards).map(lambda b: b[shard_index:shard_index + 1])
            records = records.filter(lambda b: tf.size(b) > 0).rebatch(block)
        else:
            records = records.batch(block)
        if shuffle_blocks:
            records = records.map(lambda b: tf.random.shuffle(b, seed=seed))
        return records

    ds = ds_files.interleave(
        read,
        cycle_length=min(len(files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not training,
    )
    if training:
        ds = ds.repeat()
    if training or block != batch_size:
        # Full batches across file and pass boundaries (rebatch works on batches, not records).
        ds = ds.rebatch(batch_size)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        y = parsed.pop(label.name)
        return parsed, y

    ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    options = tf.data.Options()
    # Sharding is done above, by file or by record; tf.distribute must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def numeric_stats(
    file_patterns: Sequence[str], features: Sequence[FeatureInfo], max_examples: int
) -> dict[str, tuple[float, float]]:
    """Mean and variance of each numeric feature over up to `max_examples`, ignoring missing
    (absent, NaN or ±inf) values."""
    import numpy as np
    import tensorflow as tf

    numeric = [f for f in features if f.kind in ("float", "int")]
    if not numeric:
        return {}
    spec = parse_spec(numeric)
    ds = tf.data.TFRecordDataset(list_files(file_patterns), compression_type="GZIP")
    ds = ds.take(max_examples).batch(4096).map(lambda s: tf.io.parse_example(s, spec))
    cols: dict[str, list] = {f.name: [] for f in numeric}
    for batch in ds.as_numpy_iterator():
        for name, values in batch.items():
            cols[name].append(values.reshape(-1))
    stats = {}
    for f in numeric:
        v = np.concatenate(cols[f.name]).astype(np.float64) if cols[f.name] else np.array([])
        # Non-finite floats are missing, as the model treats them (model.py: _numeric).
        v = v[np.isfinite(v)] if f.kind == "float" else v[v != INT_MISSING]
        mean = float(v.mean()) if v.size else 0.0
        var = float(v.var()) if v.size else 1.0
        stats[f.name] = (mean, var if var > 0 else 1.0)
    return stats
