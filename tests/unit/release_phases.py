"""Kills aimed at the phases of a release, for the SIGKILL fault tests.

The releasing child is instrumented (in its own process only, by wrapping the functions it is
about to call) to print a marker as each phase begins, flushed before the phase's first write:

    phase start    before the copy: lock, clean-up, checks, hashing the model
    phase copy     during the copy: copy, fsync, verify, push metadata, up to the rename
    phase renamed  after the rename (the version is visible) and before the release record:
                   contract.json, routing.json, the first models.config step
    phase step1    between the two models.config steps (the wait for TF Serving)
    phase moved    after the label move: the second step, labels.json, then the record
    done           the release returned

``aim_kill`` waits for the marker of the phase aimed at, sleeps a random part of that phase's
duration (measured on a full release), SIGKILLs the child and reads what it printed: the last
marker is the phase the kill landed in, whatever was aimed at. Counting landings, not aims,
keeps the per-phase counts honest.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

PHASES = {
    "start": "before the copy",
    "copy": "during the copy",
    "renamed": "after the rename, before the record",
    "step1": "between the two models.config steps",
    "moved": "after the label move",
}
ORDER = [*PHASES, "done"]

_INSTRUMENT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    import components.serving.versions as _versions

    def mark(name):
        print(f"phase {{name}} {{time.perf_counter():.6f}}", flush=True)

    _copy_tree = _versions._copy_tree
    def _marked_copy_tree(*args):
        mark("copy")
        return _copy_tree(*args)
    _versions._copy_tree = _marked_copy_tree

    _fsync_path = _versions.fsync_path
    def _marked_fsync_path(path):
        if path == {base!r}:  # push fsyncs the base path right after the rename, nothing else
            mark("renamed")
        return _fsync_path(path)
    _versions.fsync_path = _marked_fsync_path

    def between_steps(move):
        mark("step1")
        time.sleep({step_wait!r})
        mark("moved")
    """
)


def child_code(repo: str, base: str, step_wait: float, release: str) -> str:
    """Source of a child that prints ``ready``, then runs ``release`` (code that calls
    ``release_version(..., between_steps=between_steps)``) with markers, then ``done``."""
    return (
        _INSTRUMENT.format(repo=repo, base=base, step_wait=step_wait)
        + 'print("ready", flush=True)\nmark("start")\n'
        + textwrap.dedent(release)
        + '\nprint(f"done {time.perf_counter():.6f}", flush=True)\n'
    )


def start(code: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _marker(line: str) -> tuple[str, float]:
    parts = line.split()
    if parts[0] == "phase":
        return parts[1], float(parts[2])
    return parts[0], float(parts[1])


def run_to_the_end(proc: subprocess.Popen) -> dict[str, float]:
    """Let a started child finish; the duration of each phase it went through."""
    # Read through the text stream, not communicate(timeout=...): that reads the pipe itself
    # and would miss lines start() has already buffered.
    out = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(timeout=60) == 0
    times = dict(_marker(line) for line in out.splitlines() if line.strip())
    return {
        phase: times[ORDER[i + 1]] - times[phase]
        for i, phase in enumerate(ORDER[:-1]) if phase in times and ORDER[i + 1] in times
    }


def aim_kill(
    proc: subprocess.Popen, target: str, durations: dict[str, float], rng: random.Random
) -> str:
    """SIGKILL the child at a random point of phase ``target``; the phase it landed in (a key
    of ``PHASES``), or ``done`` when the release finished first."""
    seen = "start"
    for line in proc.stdout:
        seen = _marker(line)[0]
        if seen in (target, "done"):
            break
    if seen != "done":
        time.sleep(rng.uniform(0, durations.get(target, 0.01)))
        proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()  # to the end: the child is dead or done
    proc.wait(timeout=60)
    proc.stdout.close()
    for line in rest.splitlines():
        if line.strip():
            seen = _marker(line)[0]
    return seen
