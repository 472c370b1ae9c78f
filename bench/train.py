"""Training benchmark: examples per second with 1 and 2 local workers at the same global batch.

Each setup is a real worker group started by `run_local_workers` (the launcher the Trainer uses):
N processes of `python -m components.trainer.worker`, RING all-reduce on loopback, on seeded
synthetic data (default 200,000 training examples in 4 GZIP files, so each of 2 workers reads
its own 2 files). The per-worker batch is global / N, so every setup takes the same optimizer
steps on the same number of examples per step.

Only the fit is timed: from the "[worker 0] epoch 1/E done" line to the "epoch E/E done" line,
as seen by the launcher when they arrive; the first epoch (graph tracing, first all-reduce),
TensorFlow's import and the export are excluded. Each epoch also runs --eval-steps validation
step(s) (default 1). Run: `python bench/train.py [--data-dir DIR]`.

On a 2-core machine the two workers compete for the same two cores that one worker already
uses (TensorFlow's intra-op threads, tf.data's parallel reads and parse), and the all-reduce
over loopback adds a roughly fixed cost to every step (so a larger global batch amortises it):
expect two workers to be slower than one there. The figure
that matters on such a machine is that the all-reduce path works and what it costs; speed-up
needs workers on separate machines (or more cores than one worker can use).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from components.tf_process import prepare_tf_process  # noqa: E402

prepare_tf_process()  # before anything imports TensorFlow
EPOCH_LINE = re.compile(r"^\[worker 0\] epoch (\d+)/(\d+) done")


def ensure_data(root: Path, examples: int, files: int, seed: int):
    """Train files, eval file and schema under `root`, written unless already there."""
    from data.synthetic import shard_names, synthetic_schema, write_schema, write_synthetic

    marker = root / "bench-train.json"
    wanted = {"examples": examples, "files": files, "seed": seed}
    train = [str(root / "Split-train" / n) for n in shard_names(files)]
    evals = [str(root / "Split-eval" / n) for n in shard_names(1)]
    schema = str(root / "schema.pbtxt")
    if marker.is_file() and json.loads(marker.read_text()) == wanted and all(
        os.path.isfile(p) for p in [*train, *evals, schema]
    ):
        print(f"data: reusing {examples:,} training examples in {files} files under {root}")
        return train, evals, schema
    start = time.monotonic()
    train = write_synthetic(str(root / "Split-train"), examples, n_files=files, seed=seed)
    # Another seed, the same concept (data/synthetic.py): a real held-out split.
    evals = write_synthetic(str(root / "Split-eval"), 10_000, n_files=1, seed=[seed, 1])
    write_schema(schema, synthetic_schema())
    marker.write_text(json.dumps(wanted))
    print(f"data: wrote {examples:,} training examples in {files} files "
          f"in {time.monotonic() - start:.1f} s under {root}")
    return train, evals, schema


def run_setup(tmp: Path, workers: int, args, data) -> dict:
    from components.trainer.launcher import run_local_workers
    from components.trainer.settings import TrainJob
    from pipeline.config import load_config

    train, evals, schema = data
    if args.global_batch % workers:
        raise SystemExit(f"--global-batch {args.global_batch} is not divisible by {workers}")
    train_steps = args.epochs * args.steps_per_epoch
    cfg = load_config(overrides={
        "data": {"schema": schema},
        "model": {"label": "label", "task": "binary", "features": None},
        "evaluator": {"metrics": ["ExampleCount", "BinaryAccuracy"], "slices": [],
                      "thresholds": [{"metric": "binary_accuracy"}]},
        "trainer": {
            "batch_size": args.global_batch // workers, "epochs": args.epochs,
            "train_steps": train_steps, "eval_steps": args.eval_steps,
            "distribution": {"workers": workers, "communication": "ring", "max_restarts": 0},
        },
    })
    out = tmp / f"workers-{workers}"
    out.mkdir()
    job = out / "job.json"
    TrainJob(
        train_files=train, eval_files=evals, schema_path=schema,
        serving_model_dir=str(out / "serving"), model=cfg.model, trainer=cfg.trainer,
        train_steps=train_steps, eval_steps=args.eval_steps,
    ).write(str(job))

    epochs: dict[int, float] = {}
    last: list[str] = []
    lock = threading.Lock()

    def sink(line: str) -> None:
        now = time.monotonic()
        with lock:
            m = EPOCH_LINE.match(line)
            if m:
                epochs[int(m.group(1))] = now
                last[:] = [line]
            if args.verbose or line.startswith("[launcher]"):
                print(f"    {line}", flush=True)

    start = time.monotonic()
    run_local_workers(str(job), sink=sink)
    wall = time.monotonic() - start
    first, final = epochs.get(1), epochs.get(args.epochs)
    if first is None or final is None:
        raise SystemExit(f"{workers} worker(s): epoch lines missing: {sorted(epochs)}")
    fit = final - first
    examples = (args.epochs - 1) * args.steps_per_epoch * args.global_batch
    return {
        "workers": workers, "per_worker_batch": args.global_batch // workers,
        "fit_seconds": fit, "examples": examples, "examples_per_s": examples / fit,
        "ms_per_step": 1000 * fit / ((args.epochs - 1) * args.steps_per_epoch),
        "startup_and_first_epoch": first - start, "wall": wall,
        "last_epoch": last[0] if last else "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", help="cache the synthetic files here (default: a temp dir)")
    p.add_argument("--examples", type=int, default=200_000)
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--global-batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--steps-per-epoch", type=int, default=500)
    p.add_argument("--eval-steps", type=int, default=1)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", action="store_true", help="show every worker line")
    args = p.parse_args()
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (the first epoch is not timed)")

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f} at start")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(args.data_dir) if args.data_dir else Path(tmp) / "data"
        root.mkdir(parents=True, exist_ok=True)
        data = ensure_data(root, args.examples, args.files, args.seed)
        for workers in args.workers:
            print(f"  {workers} worker(s), batch {args.global_batch // workers} each, "
                  f"global {args.global_batch}: {args.epochs} epochs of "
                  f"{args.steps_per_epoch} steps ...", flush=True)
            results.append(run_setup(Path(tmp), workers, args, data))

    print(f"\nexamples/s of training at global batch {args.global_batch}, timed over epochs "
          f"2..{args.epochs} (first epoch, start-up and export excluded)")
    base = results[0]["examples_per_s"]
    for r in results:
        print(f"  {r['workers']} worker(s) x batch {r['per_worker_batch']:<4} "
              f"{r['examples_per_s']:>9,.0f} examples/s  ({r['examples']:,} in "
              f"{r['fit_seconds']:.1f} s, {r['ms_per_step']:.1f} ms/step; "
              f"start-up + epoch 1 {r['startup_and_first_epoch']:.1f} s, "
              f"wall {r['wall']:.1f} s)  ratio to {results[0]['workers']} worker(s) "
              f"{r['examples_per_s'] / base:.2f}")
        print(f"      {r['last_epoch']}")
    print(f"  note: {os.cpu_count()} cores here; the workers of one machine share them, so "
          "2 workers cannot beat 1 on 2 cores (see the module docstring).")


if __name__ == "__main__":
    main()
