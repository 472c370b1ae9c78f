"""Input benchmark: the trainer's input function against the ceiling of plain tf.data.

Writes >= 1,000,000 seeded synthetic tf.Examples as GZIP TFRecords in 8 files (as
ImportExampleGen writes them), then counts examples per second *inside TensorFlow*
(`Dataset.reduce`, no Python per element) for:

  ceiling   TFRecordDataset(files, "GZIP").batch(B).map(parse_example), the trainer's parse spec
  eval      make_dataset(files, ..., B, training=False): one deterministic pass
  train     make_dataset(files, ..., B, training=True): block shuffle, repeat; the same number
            of batches as one pass

Each is measured --repeats times, round-robin (so a burst of load elsewhere hits all three);
the figure reported is the median, with the best beside it. Target: eval and train >= 0.9 of the
ceiling. Run: `python bench/input.py [--data-dir DIR]` (DIR caches the files between runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from components.tf_process import prepare_tf_process  # noqa: E402

prepare_tf_process()  # before anything imports TensorFlow
TARGET = 0.9


def ensure_data(data_dir: Path, examples: int, files: int, seed: int) -> list[str]:
    """The synthetic files in `data_dir`, written unless a previous run left the same ones."""
    from data.synthetic import shard_names, write_synthetic

    marker = data_dir / "bench-input.json"
    wanted = {"examples": examples, "files": files, "seed": seed}
    paths = [str(data_dir / name) for name in shard_names(files)]
    if marker.is_file() and json.loads(marker.read_text()) == wanted and all(
        os.path.isfile(p) for p in paths
    ):
        print(f"data: reusing {examples:,} examples in {files} files under {data_dir}")
        return paths
    start = time.monotonic()
    paths = write_synthetic(str(data_dir), examples, n_files=files, seed=seed)
    marker.write_text(json.dumps(wanted))
    size = sum(os.path.getsize(p) for p in paths) / 2**20
    print(f"data: wrote {examples:,} examples in {files} GZIP files ({size:.0f} MiB) "
          f"in {time.monotonic() - start:.1f} s under {data_dir}")
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="cache the synthetic files here (default: a temp dir)")
    p.add_argument("--examples", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        files = ensure_data(data_dir, args.examples, args.files, args.seed)
        run(files, args.examples, args.batch, args.repeats)


def run(files: list[str], examples: int, batch: int, repeats: int) -> None:
    import tensorflow as tf

    from components.trainer.features import select_features
    from components.trainer.input_fn import make_dataset, parse_spec
    from data.synthetic import synthetic_schema

    features, label = select_features(synthetic_schema(), "label", None, "binary")
    spec = parse_spec(features, label)
    batches = math.ceil(examples / batch)

    def ceiling():
        ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch)
        return ds.map(lambda s: tf.io.parse_example(s, spec))

    def eval_pass():
        return make_dataset(files, features, label, batch, training=False)

    def train_pass():
        return make_dataset(files, features, label, batch, training=True, seed=0).take(batches)

    def size_of(element):
        labels = element[label.name] if isinstance(element, dict) else element[1]
        return tf.cast(tf.shape(labels)[0], tf.int64)

    setups = {"ceiling": ceiling, "eval": eval_pass, "train": train_pass}
    seen: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(repeats):
        for name, make in setups.items():
            ds = make()
            start = time.perf_counter()
            counted = int(ds.reduce(tf.constant(0, tf.int64), lambda n, e: n + size_of(e)))
            seconds = time.perf_counter() - start
            seen[name].append(counted / seconds)
            print(f"  run {r + 1} {name:<8} {counted:>9,} examples in {seconds:6.2f} s: "
                  f"{counted / seconds:>9,.0f} examples/s")
            if name != "train" and counted != examples:
                raise SystemExit(f"{name}: counted {counted:,} examples, expected {examples:,}")

    base = statistics.median(seen["ceiling"])
    print(f"\nexamples/s at batch {batch}, median of {repeats} (best in brackets); "
          f"target >= {TARGET} of the ceiling")
    labels = {
        "ceiling": "ceiling: TFRecordDataset.batch.map(parse_example)",
        "eval": "make_dataset(training=False)",
        "train": "make_dataset(training=True)",
    }
    for name in setups:
        median, best = statistics.median(seen[name]), max(seen[name])
        ratio = median / base
        verdict = "" if name == "ceiling" else ("  ok" if ratio >= TARGET else "  BELOW TARGET")
        print(f"  {labels[name]:<52} {median:>9,.0f}  ({best:>9,.0f})  "
              f"ratio {ratio:.2f}{verdict}")


if __name__ == "__main__":
    main()
