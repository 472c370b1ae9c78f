"""Training progress of local workers: each worker writes a small file, the launcher watches it.

A worker stopped by SIGSTOP, or stuck inside TensorFlow, keeps its process alive and its exit
code unknown; only the lack of progress shows it. The launcher hands every worker a file path
(`PROGRESS_FILE_VAR`); the worker rewrites it atomically as it starts training, finishes batches
(at most once per `interval` seconds), evaluates, ends epochs and exports. The launcher reads the
files every poll and times each worker from its last *change* with its own monotonic clock
(no wall clocks compared across processes).

Pure Python (no TensorFlow): the launcher imports it, and the worker's Keras callback calls it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

# The launcher sets it for each local worker; workers of a TF_CONFIG cluster write nothing.
PROGRESS_FILE_VAR = "TRAINER_PROGRESS_FILE"


class ProgressWriter:
    """What one worker reports: phase, epoch, batch; rewritten atomically, throttled."""

    def __init__(self, path: str, worker: int, epochs: int, *, interval: float = 1.0):
        self.path = path
        self.interval = interval
        self.state: dict = {"worker": worker, "epochs": epochs, "phase": "starting",
                            "epoch": 0, "batch": 0, "reports": 0}
        self._last_write = float("-inf")

    @classmethod
    def from_env(cls, worker: int, epochs: int) -> ProgressWriter | None:
        path = os.environ.get(PROGRESS_FILE_VAR)
        return cls(path, worker, epochs) if path else None

    def report(self, phase: str, *, epoch: int | None = None, batch: int | None = None,
               force: bool = False) -> None:
        """Records progress; writes it when `force`, on a new phase, or `interval` s after the
        last write (a batch every few ms must not cost a file each)."""
        new_phase = phase != self.state["phase"]
        self.state.update(phase=phase)
        if epoch is not None:
            self.state["epoch"] = epoch
        if batch is not None:
            self.state["batch"] = batch
        self.state["reports"] += 1
        now = time.monotonic()
        if force or new_phase or now - self._last_write >= self.interval:
            self._last_write = now
            tmp = f"{self.path}.tmp"
            with open(tmp, "w") as f:
                json.dump(self.state, f)
            os.replace(tmp, self.path)


@dataclass
class _Seen:
    text: str = ""
    since: float | None = None  # launcher's monotonic time of the last change


@dataclass
class ProgressWatch:
    """The launcher's side: which workers have been silent longer than `timeout` seconds.

    A worker's clock starts at its first report (the worker writes one as soon as every peer is
    reached: the start-up before that is bounded by the workers' start-up watchdog). A worker
    that has not reported yet is timed from the first report of any worker of the group: once
    one trains, all must.
    """

    files: list[str]
    timeout: float
    seen: list[_Seen] = field(default_factory=list)
    group_started: float | None = None

    def __post_init__(self) -> None:
        self.seen = [_Seen() for _ in self.files]

    def silent(self, now: float, running: list[bool]) -> list[tuple[int, float, dict]]:
        """(worker, seconds silent, its last report) of each running worker silent too long,
        the longest silence first."""
        for i, path in enumerate(self.files):
            try:
                with open(path) as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            if text and text != self.seen[i].text:
                self.seen[i] = _Seen(text, now)
                if self.group_started is None:
                    self.group_started = now
        if self.group_started is None:
            return []
        return [w for w in self.silences(now, running) if w[1] > self.timeout]

    def silences(self, now: float, running: list[bool]) -> list[tuple[int, float, dict]]:
        """Every running worker's (index, seconds since its last report, that report), the
        longest silence first, as of the last ``silent`` call; empty before any report.
        When one worker passes the bound the whole group stops: the message names them all."""
        if self.group_started is None:
            return []
        found = []
        for i, seen in enumerate(self.seen):
            since = seen.since if seen.since is not None else self.group_started
            if running[i]:
                found.append((i, now - since, json.loads(seen.text) if seen.text else {}))
        return sorted(found, key=lambda x: -x[1])


def describe_silence(silent: list[tuple[int, float, dict]], timeout: float,
                     states: dict[int, str]) -> str:
    """One line naming each silent worker, whether it is stopped, and its last report."""
    parts = []
    # A stopped process is the likely cause; the others wait for it in an all-reduce.
    for i, seconds, last in sorted(silent, key=lambda x: states.get(x[0]) != "T"):
        what = ["stopped"] if states.get(i) == "T" else []
        if last:
            where = f"{last['phase']}"
            if last.get("epoch"):
                where += f", epoch {last['epoch']}/{last['epochs']}, batch {last['batch']}"
            what.append(f"last report: {where}")
        else:
            what.append("never reported")
        parts.append(f"worker {i} silent for {seconds:.0f} s ({'; '.join(what)})")
    return f"no training progress within {timeout:g} s: " + ", ".join(parts)
