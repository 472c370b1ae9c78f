"""Data fingerprint benchmark: what it costs to notice any change of a span's input files.

Writes a synthetic span (`data/synthetic.py`; default 1,000,000 train examples in 8 GZIP files
and 100,000 eval examples in 2, as `span-1/Split-train|Split-eval`) unless --data-dir already
holds the same one, then times, over every file of the span:

  stat        (name, size, mtime_ns): what ImportExampleGen and the old up-to-date check used
  sampled     size + the first and last 64 KiB, sha256
  crc32       the whole content, zlib.crc32
  blake2b     the whole content, hashlib.blake2b
  sha256      the whole content, hashlib.sha256 (components/data_check/fingerprint.py)
  cached-miss content_fingerprint with an empty digest cache: sha256 of every file, cache written
  cached-hit  content_fingerprint with that cache: one stat per file, the cache read

each on a warm page cache and cold (each file written back and dropped from the page cache with
posix_fadvise(DONTNEED) before the pass; "cold" is only as cold as the kernel allows: pages
another process maps stay). Figures: median wall time of --repeats passes, process CPU time,
MB/s, and the ratio to `stat`. No verdict and no exit status from timings: timings on a shared
machine are not a test.

Run: `python bench/data_fingerprint.py [--data-dir DIR] [--examples N] [--repeats R]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from components.data_check import find_input_files  # noqa: E402
from components.data_check.fingerprint import CHUNK_BYTES, content_fingerprint  # noqa: E402

SAMPLE_BYTES = 64 << 10
PATTERNS = ["span-1/Split-train/*", "span-1/Split-eval/*"]


def ensure_data(data_dir: Path, examples: int) -> list[str]:
    """The span's files in `data_dir`, written unless a previous run left the same ones."""
    wanted = {"train": [examples, 8, 1], "eval": [examples // 10, 2, 2]}
    marker = data_dir / "bench.json"
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        print(f"data: reusing {data_dir}")
    else:
        from data.synthetic import write_synthetic

        for split, (n, files, seed) in wanted.items():
            write_synthetic(str(data_dir / "span-1" / f"Split-{split}"), n, n_files=files,
                            seed=seed)
        marker.write_text(json.dumps(wanted))
    files = find_input_files(str(data_dir), PATTERNS)
    size = sum(os.path.getsize(f) for f in files)
    print(f"data: {examples:,} train + {examples // 10:,} eval examples, {len(files)} files, "
          f"{size / 1e6:.1f} MB under {data_dir}")
    return files


def _whole(files: list[str], update: Callable[[memoryview], None]) -> None:
    buf = bytearray(CHUNK_BYTES)
    view = memoryview(buf)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                update(view[:n])


def stat_only(files: list[str]) -> str:
    rows = [[p, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def sampled(files: list[str]) -> str:
    h = hashlib.sha256()
    for path in files:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            h.update(size.to_bytes(8, "little") + f.read(SAMPLE_BYTES))
            if size > SAMPLE_BYTES:
                f.seek(max(SAMPLE_BYTES, size - SAMPLE_BYTES))
                h.update(f.read())
    return h.hexdigest()


def crc32(files: list[str]) -> str:
    crc = 0

    def update(chunk: memoryview) -> None:
        nonlocal crc
        crc = zlib.crc32(chunk, crc)

    _whole(files, update)
    return f"{crc:08x}"


def hashed(name: str) -> Callable[[list[str]], str]:
    def run(files: list[str]) -> str:
        h = hashlib.new(name)
        _whole(files, h.update)
        return h.hexdigest()

    return run


def drop_page_cache(files: list[str]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def measure(fn: Callable[[], object], files: list[str], cold: bool, repeats: int,
            before: Callable[[], None] = lambda: None) -> tuple[float, float]:
    """Median wall and CPU seconds of `repeats` passes."""
    walls, cpus = [], []
    for _ in range(repeats):
        before()
        if cold:
            drop_page_cache(files)
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", help="keep the synthetic span here (default: a temp dir)")
    p.add_argument("--examples", type=int, default=1_000_000, help="train examples")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="data_fingerprint_"))
    data_dir.mkdir(parents=True, exist_ok=True)
    files = ensure_data(data_dir, args.examples)
    size_mb = sum(os.path.getsize(f) for f in files) / 1e6
    cache = str(data_dir / "digests.json")

    def no_cache() -> None:
        if os.path.exists(cache):
            os.remove(cache)

    time.sleep(2.1)  # freshly written files are "racy" and never cached (fingerprint.py)
    content_fingerprint(files, str(data_dir), cache)  # the cache for cached-hit
    candidates: list[tuple[str, Callable[[], object], Callable[[], None]]] = [
        ("stat", lambda: stat_only(files), lambda: None),
        ("sampled", lambda: sampled(files), lambda: None),
        ("crc32", lambda: crc32(files), lambda: None),
        ("blake2b", lambda: hashed("blake2b")(files), lambda: None),
        ("sha256", lambda: hashed("sha256")(files), lambda: None),
        ("cached-miss", lambda: content_fingerprint(files, str(data_dir), cache), no_cache),
        ("cached-hit", lambda: content_fingerprint(files, str(data_dir), cache), lambda: None),
    ]
    hashed("sha256")(files)  # warm the page cache
    rows = []
    for cold in (False, True):
        for name, fn, before in candidates:
            wall, cpu = measure(fn, files, cold, args.repeats, before)
            rows.append((name, "cold" if cold else "warm", wall, cpu))
        content_fingerprint(files, str(data_dir), cache)  # cached-miss left no cache behind
    base = {temp: wall for name, temp, wall, _ in rows if name == "stat"}
    print(f"\n{len(files)} files, {size_mb:.1f} MB; median of {args.repeats} passes; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'fingerprint':<12} {'cache':<5} {'wall ms':>9} {'CPU ms':>8} {'MB/s':>8} "
          f"{'x stat':>8}")
    for name, temp, wall, cpu in rows:
        rate = f"{size_mb / wall:8.0f}" if name not in ("stat", "cached-hit") else f"{'-':>8}"
        print(f"{name:<12} {temp:<5} {wall * 1e3:9.1f} {cpu * 1e3:8.1f} {rate} "
              f"{wall / base[temp]:8.1f}")


if __name__ == "__main__":
    main()
