"""Scale benchmark: the whole pipeline on synthetic binary data at 10k, 100k, 1M (10M) examples.

For each size N (train examples; eval = N/10), writes once under --data-dir (default
bench/out/scale/) the project's synthetic data (`data/synthetic.py`: 8 GZIP files per split in
`span-1/Split-{train,eval}/`, plus its schema), then runs `pipeline run --json --config OVERLAY`
as a whole process with a fresh work dir and serving base path (so no baseline: the first
release), 2,000 training steps at batch 256, label `label`, task binary, every feature,
evaluator slices [color] and [bucket] and a binary_accuracy threshold (Bayes-optimal ~0.88).

Prints per size: wall seconds; peak memory three ways: "max proc" is os.wait4's ru_maxrss
(the largest single process of the run), "tree" the largest sum of RSS over the whole process
tree, and the largest sum of PSS over it (shared pages counted once: what the run occupies),
both sampled from /proc every 0.1 s (they see Beam worker processes together); per-component
seconds (the --json result's components) and examples/s for the components that read the
data (ImportExampleGen, StatisticsGen: train + eval; Evaluator: eval; Trainer: steps x batch);
and each figure's ratio to the previous size's, per example (1.00: the cost per example is
flat; above 1: it grows faster than the data).

Run: `python bench/scale.py [--sizes 10k,100k,1M] [--beam-mode MODE --beam-workers N]
[--metrics ExampleCount,BinaryAccuracy]`
(`--sizes 10M` only when asked: ~350 MiB of data and many minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_STEPS, BATCH = 2000, 256
N_FILES, SEED = 8, 0
METRICS = ("ExampleCount", "BinaryAccuracy", "AUC")
# The components that read examples, and how many they read (train, eval examples).
EXAMPLES_READ = {
    "ImportExampleGen": lambda n_train, n_eval: n_train + n_eval,
    "StatisticsGen": lambda n_train, n_eval: n_train + n_eval,
    "Evaluator": lambda n_train, n_eval: n_eval,
    "Trainer": lambda n_train, n_eval: TRAIN_STEPS * BATCH,
}


def parse_size(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def size_label(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1_000}k"


def ensure_data(data_dir: Path, n_train: int) -> Path:
    """The span layout for `n_train` examples under `data_dir`, written unless already there."""
    from data.synthetic import write_split_layout

    root = data_dir / size_label(n_train)
    marker = root / "bench-scale.json"
    wanted = {"train": n_train, "eval": n_train // 10, "files": N_FILES, "seed": SEED}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return root
    start = time.monotonic()
    write_split_layout(str(root), n_train, n_train // 10, span=1, seed=SEED, n_files=N_FILES)
    marker.write_text(json.dumps(wanted))
    print(f"wrote {size_label(n_train)} in {time.monotonic() - start:.0f} s: {root}",
          file=sys.stderr)
    return root


def overlay_text(tmp: str, data_root: Path, mode: str | None, workers: int | None,
                 metrics: str = ",".join(METRICS)) -> str:
    lines = [
        "pipeline_name: scale",
        f"work_dir: {tmp}/var",
        f"data: {{root: {data_root}, span: 1, schema: {data_root}/schema.pbtxt}}",
        "model: {label: label, features: null, task: binary}",
        f"trainer: {{train_steps: {TRAIN_STEPS}, batch_size: {BATCH}}}",
        "evaluator:",
        f"  metrics: [{metrics}]",
        "  slices: [[color], [bucket]]",
        "  thresholds: [{metric: binary_accuracy, lower_bound: 0.8, max_regression: 0.02}]",
        f"pusher: {{base_path: {tmp}/serving/model}}",
    ]
    beam = []
    if mode:
        beam.append(f"direct_running_mode: {mode}")
    if workers:
        beam.append(f"direct_num_workers: {workers}")
    if beam:
        lines.append(f"beam: {{{', '.join(beam)}}}")
    return "\n".join(lines) + "\n"


def _pss(pid: int) -> int:
    """Proportional set size (bytes) of `pid`: shared pages divided among their sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _tree_memory(root_pid: int) -> tuple[int, int]:
    """Sums of VmRSS and of PSS (bytes) over `root_pid` and its descendants, from /proc. The
    RSS sum counts a page shared by N processes N times (TensorFlow's libraries in every
    Beam or trainer worker); the PSS sum counts it once: the memory the run occupies."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/statm") as f:
                pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total_rss = total_pss = 0
    todo = [root_pid]
    while todo:
        pid = todo.pop()
        total_rss += rss.get(pid, 0)
        total_pss += _pss(pid)
        todo.extend(children.get(pid, []))
        if pid in rss and rss[pid] > _PEAKS.get(pid, (0,))[0]:
            _PEAKS[pid] = (rss[pid], time.monotonic(), _cmdline(pid))
    return total_rss, total_pss


# pid -> (its largest RSS seen, when, its command line): which process the peak is.
_PEAKS: dict[int, tuple[int, float, str]] = {}


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().decode(errors="replace").split("\0")
    except OSError:
        return "?"
    return " ".join(w for w in words if w)[:120]


def timed_run(cmd: list[str], log: Path) -> tuple[float, float, float, float, dict]:
    """Wall s, largest-process peak RSS MiB, process-tree peak RSS and PSS MiB, the JSON
    result."""
    start = time.monotonic()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err)
    peak = [0, 0]
    done = threading.Event()
    _PEAKS.clear()

    def sample() -> None:
        while not done.wait(0.1):
            rss, pss = _tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    done.set()
    sampler.join()
    try:
        result = json.loads(out)
    except json.JSONDecodeError:
        raise SystemExit(f"error: run wrote no JSON result; see {log}") from None
    if _PEAKS:
        big, when, cmd = max(_PEAKS.values())
        print(f"  largest process seen: {big / 2**20:.0f} MiB RSS at {when - start:.0f} s: "
              f"{cmd}", file=sys.stderr)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: run failed ({result.get('error')}); see {log}")
    return seconds, rusage.ru_maxrss / 1024, peak[0] / 2**20, peak[1] / 2**20, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10k,100k,1M", help="train examples per run (eval: /10)")
    p.add_argument("--data-dir", type=Path, default=REPO / "bench" / "out" / "scale")
    p.add_argument("--beam-mode", choices=["in_memory", "multi_threading", "multi_processing"])
    p.add_argument("--beam-workers", type=int)
    p.add_argument("--metrics", default=",".join(METRICS),
                   help="evaluator.metrics, comma-separated (AUC is the costly one)")
    p.add_argument("--json-out", type=Path, help="also write the figures here")
    args = p.parse_args()
    sys.path.insert(0, str(REPO))
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    mode = args.beam_mode or "profile default"
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, beam {mode}, workers {args.beam_workers or 'default'}, "
          f"metrics {args.metrics}")
    rows = []
    for n_train in sizes:
        n_eval = n_train // 10
        data_root = ensure_data(args.data_dir, n_train)
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            overlay = Path(tmp) / "overlay.yaml"
            overlay.write_text(overlay_text(tmp, data_root, args.beam_mode, args.beam_workers,
                                            args.metrics))
            cmd = [sys.executable, "-m", "pipeline.cli", "run", "--json", "--config",
                   str(overlay)]
            log = args.data_dir / f"run-{size_label(n_train)}-{os.getpid()}.log"
            wall, rss, tree, pss, result = timed_run(cmd, log)
        comps = {c["name"]: c["seconds"] for c in result["components"]}
        rows.append({"size": size_label(n_train), "train": n_train, "eval": n_eval,
                     "wall": wall, "rss_max_proc": rss, "rss_tree": tree, "pss_tree": pss,
                     "components": comps, "evaluation": result.get("metrics"),
                     "beam_mode": args.beam_mode, "beam_workers": args.beam_workers,
                     "metrics": args.metrics})
        print_row(rows, n_train, n_eval)
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=1))


def print_row(rows: list[dict], n_train: int, n_eval: int) -> None:
    row, prev = rows[-1], rows[-2] if len(rows) > 1 else None
    # Ratio of cost per example to the previous size's: (t / n) / (t_prev / n_prev).
    growth = n_train / prev["train"] if prev else None

    def ratio(now: float, before: float | None) -> str:
        if not growth or not before:
            return ""
        return f"  x{now / before / growth:.2f}/ex"

    print(f"\n== {row['size']} train / {size_label(n_eval)} eval: wall {row['wall']:.1f} s"
          f"{ratio(row['wall'], prev and prev['wall'])}, peak RSS {row['rss_max_proc']:.0f} MiB"
          f" (max proc), {row['rss_tree']:.0f} MiB (tree); peak PSS {row['pss_tree']:.0f} MiB"
          " (tree)")
    print(f"  {'component':<22}{'seconds':>9}{'examples/s':>12}  cost/example vs previous")
    evaluation = row.get("evaluation") or {}
    if evaluation:
        print("  evaluation: " + ", ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in sorted(evaluation.items())))
    for name, secs in row["components"].items():
        rate = ""
        if name in EXAMPLES_READ and secs > 0:
            rate = f"{EXAMPLES_READ[name](n_train, n_eval) / secs:12.0f}"
        before = prev["components"].get(name) if prev else None
        print(f"  {name:<22}{secs:9.1f}{rate:>12}{ratio(secs, before)}")


if __name__ == "__main__":
    main()
