"""End-to-end benchmark: a cold run and unchanged re-runs of `pipeline run` on data/.

`rerun` is the default re-run (the up-to-date check answers without starting TFX);
`rerun --full` goes through TFX, where every node meets TFX's own cache.

Prints wall time and peak RSS of each, with ratios to the targets and to TFX's own penguin
example on the same kind of machine (../shared/STACK.md). Run: `make bench` or
`python bench/e2e.py [--profile local] [--beam-mode in_memory|multi_processing]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = {"cold": 70.0, "rerun": 10.0, "rerun --full": 10.0}
TFX_ANCHOR = {"cold": 134.0, "rerun": 92.0, "rerun --full": 92.0}


def timed_run(args: list[str]) -> tuple[float, float, dict]:
    """Wall seconds, peak RSS (MiB, the largest process of the run) and the JSON result."""
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, rusage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    result = json.loads(out)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"run failed: {result.get('error')}")
    return seconds, rusage.ru_maxrss / 1024, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="local")
    p.add_argument("--beam-mode", choices=["in_memory", "multi_processing"], default=None)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        overlay = Path(tmp) / "overlay.yaml"
        lines = [f"work_dir: {tmp}/var", f"pusher: {{base_path: {tmp}/serving/model}}"]
        if args.beam_mode:
            workers = 2 if args.beam_mode == "multi_processing" else 1
            lines.append(f"beam: {{direct_running_mode: {args.beam_mode}, "
                         f"direct_num_workers: {workers}}}")
        overlay.write_text("\n".join(lines) + "\n")
        cmd = [sys.executable, "-m", "pipeline.cli", "run", "--json", "--profile", args.profile,
               "--config", str(overlay)]
        figures = {}
        for name in ("cold", "rerun", "rerun --full"):
            seconds, rss, result = timed_run(cmd + name.split()[1:])
            cached = sum(c["cached"] for c in result["components"])
            figures[name] = (seconds, rss, cached, len(result["components"]), result["pushed"])
    print(f"machine: {platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}"
          f", beam mode {args.beam_mode or 'profile default'}")
    print(f"{'run':<13}{'wall s':>8}{'peak RSS MiB':>14}{'cached':>9}{'target s':>10}"
          f"{'/target':>9}{'TFX s':>7}{'TFX/ours':>10}  pushed")
    for name, (seconds, rss, cached, total, pushed) in figures.items():
        version = pushed["version"] if pushed else None
        print(f"{name:<13}{seconds:8.1f}{rss:14.0f}{cached:>6}/{total:<2}{TARGET[name]:10.0f}"
              f"{seconds / TARGET[name]:9.2f}{TFX_ANCHOR[name]:7.0f}"
              f"{TFX_ANCHOR[name] / seconds:10.1f}  version {version}"
              f"{'' if not pushed or pushed.get('new') else ' (already there, nothing new)'}")


if __name__ == "__main__":
    main()
