"""Input benchmark: the trainer's input function against the strongest plain tf.data reader.

Writes seeded synthetic tf.Examples (`data/synthetic.py`; default 1,000,000 in 8 GZIP TFRecord
files, as ImportExampleGen writes them) unless --data-dir already holds the same ones, then
counts examples per second *inside TensorFlow* (`Dataset.reduce`, no Python per element), at
the same batch size and with the trainer's parse spec, for:

  plain tf.data readers (the baselines; the ceiling is the best of them, measured in this run)
    sequential           TFRecordDataset(files, "GZIP").batch(B).map(parse_example)
    sequential-parallel  the same, parsed with num_parallel_calls=AUTOTUNE, then prefetch
    interleave           per-file TFRecordDataset(f, "GZIP").batch(B), interleaved with
                         cycle_length=len(files), num_parallel_calls=AUTOTUNE,
                         deterministic=False; parsed with AUTOTUNE; prefetch
    interleave-cores     the same with cycle_length=os.cpu_count()
    interleave-buffer    the same as interleave, files read with a 4 MiB buffer (default 256 KiB)
    interleave-parsedata the same as interleave, parsed by ParseExampleDataset
                         (tf.data.experimental.parse_example_dataset, AUTOTUNE)
    interleave-4x        the same as interleave, reading and parsing blocks of 4B, rebatch(B)
    parallel-reads       TFRecordDataset(files, "GZIP", num_parallel_reads=AUTOTUNE) then batch,
                         parse, prefetch: the usual advice; every record crosses threads
                         (~4x slower here), so it is measured in the first round only
  the trainer's input function (components/trainer/input_fn.py)
    eval                 make_dataset(files, ..., B, training=False): one deterministic pass
    train                make_dataset(files, ..., B, training=True): block shuffle, repeat;
                         the same number of batches as one pass

Readers are measured --repeats times round-robin (a burst of load elsewhere hits them all);
each figure is the median, with the best beside it. Ceiling: the highest median of the plain
readers. Target: eval and train >= 0.9 of the ceiling (PASS/FAIL). The exit status does not
depend on the verdict: timings on a shared machine are not a test. Each reader's process CPU
time per example is printed too: unlike examples/s it barely moves when other processes load
the machine, so it tells a slower reader from a noisy round (on 2 quiet cores a reader that
keeps both busy reads about 2 / (CPU s per example) examples/s).

Run: `python bench/input.py [--data-dir DIR] [--examples N] [--files F] [--readers a,b]`;
`--examples 100000` runs in well under a minute.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from components.tf_process import prepare_tf_process  # noqa: E402

prepare_tf_process()  # before anything imports TensorFlow
TARGET = 0.9


@dataclass(frozen=True)
class Reader:
    name: str
    label: str
    make: Callable[[], object]  # a fresh tf.data.Dataset for one counted pass
    baseline: bool = True  # a plain tf.data reader (a ceiling candidate), not make_dataset
    once: bool = False  # far below the others: measured in the first round only


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


def readers(files: list[str], batch: int, batches: int) -> tuple[list[Reader], str]:
    """Every reader of the benchmark, and the name of the label feature (to count examples)."""
    import tensorflow as tf

    from components.trainer.features import select_features
    from components.trainer.input_fn import make_dataset, parse_spec
    from data.synthetic import synthetic_schema

    features, label = select_features(synthetic_schema(), "label", None, "binary")
    spec = parse_spec(features, label)
    auto = tf.data.AUTOTUNE

    def parse(serialized):
        return tf.io.parse_example(serialized, spec)

    def sequential(parallel: bool):
        ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(batch)
        if not parallel:
            return ds.map(parse)
        return ds.map(parse, num_parallel_calls=auto, deterministic=False).prefetch(auto)

    def interleave(cycle: int = len(files), buffer: int | None = None, block: int = batch,
                   parse_dataset: bool = False):
        def read(path):
            return tf.data.TFRecordDataset(path, "GZIP", buffer_size=buffer).batch(block)

        ds = tf.data.Dataset.from_tensor_slices(files).interleave(
            read, cycle_length=cycle, num_parallel_calls=auto, deterministic=False)
        if parse_dataset:
            ds = ds.apply(tf.data.experimental.parse_example_dataset(
                spec, num_parallel_calls=auto, deterministic=False))
        else:
            ds = ds.map(parse, num_parallel_calls=auto, deterministic=False)
        if block != batch:
            ds = ds.rebatch(batch)  # the same batch size as every other reader
        return ds.prefetch(auto)

    def parallel_reads():
        ds = tf.data.TFRecordDataset(files, "GZIP", num_parallel_reads=auto).batch(batch)
        return ds.map(parse, num_parallel_calls=auto, deterministic=False).prefetch(auto)

    cores = os.cpu_count() or 2
    found = [
        Reader("sequential", "TFRecordDataset(files).batch.map(parse)",
               lambda: sequential(False)),
        Reader("sequential-parallel", "  + map(AUTOTUNE) + prefetch", lambda: sequential(True)),
        Reader("interleave", f"interleave per-file .batch, cycle {len(files)}, AUTOTUNE",
               interleave),
        Reader("interleave-cores", f"  the same, cycle {cores} (cores)",
               lambda: interleave(cycle=cores)),
        Reader("interleave-buffer", "  the same, 4 MiB read buffer",
               lambda: interleave(buffer=4 << 20)),
        Reader("interleave-parsedata", "  the same, parse_example_dataset",
               lambda: interleave(parse_dataset=True)),
        Reader("interleave-4x", f"  the same, blocks of {4 * batch}, rebatch({batch})",
               lambda: interleave(block=4 * batch)),
        Reader("parallel-reads", "TFRecordDataset(num_parallel_reads=AUTOTUNE)",
               parallel_reads, once=True),
        Reader("eval", "make_dataset(training=False)",
               lambda: make_dataset(files, features, label, batch, training=False),
               baseline=False),
        Reader("train", "make_dataset(training=True)",
               lambda: make_dataset(files, features, label, batch, training=True,
                                    seed=0).take(batches),
               baseline=False),
    ]
    return found, label.name


def count(dataset, label: str) -> int:
    """Examples in one pass of `dataset`, counted inside TensorFlow."""
    import tensorflow as tf

    def size_of(element):
        labels = element[label] if isinstance(element, dict) else element[1]
        return tf.cast(tf.shape(labels)[0], tf.int64)

    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, e: n + size_of(e)))


@dataclass
class Figures:
    rates: list[float] = field(default_factory=list)  # examples/s (wall clock), one per round
    cpu: list[float] = field(default_factory=list)  # process CPU seconds per 1M examples

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def measure(chosen: list[Reader], label: str, examples: int, repeats: int
            ) -> dict[str, Figures]:
    seen = {r.name: Figures() for r in chosen}
    for round_ in range(repeats):
        for reader in chosen:
            if reader.once and round_ > 0:
                continue
            ds = reader.make()
            start, cpu_start = time.perf_counter(), time.process_time()
            counted = count(ds, label)
            seconds = time.perf_counter() - start
            cpu = (time.process_time() - cpu_start) / counted * 1e6
            seen[reader.name].rates.append(counted / seconds)
            seen[reader.name].cpu.append(cpu)
            print(f"  round {round_ + 1} {reader.name:<21} {counted:>9,} examples in "
                  f"{seconds:6.2f} s: {counted / seconds:>9,.0f} examples/s, "
                  f"{cpu:5.2f} CPU s per 1M (load {os.getloadavg()[0]:.2f})", flush=True)
            # train repeats forever and takes whole batches: it may read a few more.
            if reader.name != "train" and counted != examples:
                raise SystemExit(f"{reader.name}: counted {counted:,} examples, "
                                 f"expected {examples:,}")
    return seen


def report(chosen: list[Reader], seen: dict[str, Figures], batch: int, repeats: int) -> None:
    baselines = [r for r in chosen if r.baseline]
    ceiling = max(baselines, key=lambda r: seen[r.name].rate) if baselines else None
    print(f"\nbatch {batch}; examples/s: median of {repeats} rounds (best); process CPU s per "
          f"1M examples: median; ceiling: the best plain reader"
          + (f" = {ceiling.name}" if ceiling else " (none measured)"))
    for r in chosen:
        f = seen[r.name]
        line = (f"  {r.name:<21} {r.label:<46} {f.rate:>9,.0f} ({max(f.rates):>9,.0f})  "
                f"{statistics.median(f.cpu):5.2f} CPU s")
        if ceiling:
            line += f"  {f.rate / seen[ceiling.name].rate:5.2f} of ceiling"
        if len(f.rates) != repeats:
            line += f"  [{len(f.rates)} round]"
        print(line)
    if not ceiling:
        return
    top = seen[ceiling.name]
    print(f"\ntarget: make_dataset >= {TARGET} of the ceiling ({ceiling.name}, "
          f"{top.rate:,.0f} examples/s)")
    for r in chosen:
        if not r.baseline:
            f = seen[r.name]
            ratio, best = f.rate / top.rate, max(f.rates) / max(top.rates)
            cpu = statistics.median(f.cpu) / statistics.median(top.cpu)
            print(f"  {r.label:<30} ratio {ratio:.2f}  {'PASS' if ratio >= TARGET else 'FAIL'}"
                  f"  (best to best {best:.2f}; CPU per example {cpu:.2f}x the ceiling's)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="cache the synthetic files here (default: a temp dir)")
    p.add_argument("--examples", type=int, default=1_000_000,
                   help="examples to write and count (size of the run; default 1,000,000)")
    p.add_argument("--files", type=int, default=8)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=5, help="rounds over all readers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--readers", help="comma-separated names to measure (default: all)")
    args = p.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        data_dir = Path(args.data_dir) if args.data_dir else Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        # The readers open their files only when measured: check --readers before writing data.
        from data.synthetic import shard_names

        files = [str(data_dir / name) for name in shard_names(args.files)]
        everything, label = readers(files, args.batch, math.ceil(args.examples / args.batch))
        chosen = everything
        if args.readers:
            wanted = args.readers.split(",")
            unknown = sorted(set(wanted) - {r.name for r in everything})
            if unknown:
                p.error(f"unknown reader(s) {unknown}; known: {[r.name for r in everything]}")
            chosen = [r for r in everything if r.name in wanted]
        if ensure_data(data_dir, args.examples, args.files, args.seed) != files:
            raise SystemExit(f"data/synthetic.py wrote other files than {files}")
        seen = measure(chosen, label, args.examples, args.repeats)
        report(chosen, seen, args.batch, args.repeats)
    print(f"load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
