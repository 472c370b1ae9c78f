"""What a base path holds, as ``pipeline release list`` shows it: versions, tags, labels,
blessing, metrics and push times; and a fingerprint of it, for the up-to-date check. Reads only,
without the lock: every file is renamed into place complete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

from components.serving.labels import read_state
from components.serving.lock import LOCK_FILE
from components.serving.records import read_releases
from components.serving.versions import ServingDir

__all__ = ["Listing", "VersionInfo", "fingerprint", "list_releases"]


@dataclass(frozen=True)
class VersionInfo:
    """One version of a base path, as ``list`` shows it."""

    version: int
    tag: str | None
    labels: tuple[str, ...]
    blessed: bool | None
    pushed_at: str | None
    metrics: dict[str, float]
    present: bool  # the directory exists (False: pruned or deleted)
    content_hash: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "tag": self.tag,
            "labels": list(self.labels),
            "blessed": self.blessed,
            "pushed_at": self.pushed_at,
            "metrics": self.metrics,
            "present": self.present,
            "content_hash": self.content_hash,
        }


@dataclass(frozen=True)
class Listing:
    """The releases of a base path, newest version first."""

    model_name: str | None
    base_path: str
    labels: dict[str, int]
    weights: dict[str, int]
    stable_history: list[int]
    versions: list[VersionInfo] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "base_path": self.base_path,
            "labels": self.labels,
            "weights": self.weights,
            "stable_history": self.stable_history,
            "versions": [v.to_json() for v in self.versions],
        }


def list_releases(base_path: str) -> Listing:
    """Versions, tags, labels, blessing, metrics and push times of a base path; no lock taken.

    Raises:
        ReleaseError: a state or record file is unreadable (naming it).
    """
    serving = ServingDir(base_path)
    base = serving.base_path
    state = read_state(base)
    releases = {r.version: r for r in read_releases(base)}
    present = set(serving.versions())
    labels_of: dict[int, list[str]] = {}
    for label, version in sorted(state.labels.items()):
        labels_of.setdefault(version, []).append(label)
    infos = []
    for version in sorted(present | set(releases), reverse=True):
        release = releases.get(version)
        if release is None:
            metadata = serving.read_metadata(version) or {}
            infos.append(
                VersionInfo(
                    version, None, tuple(labels_of.get(version, ())), None,
                    metadata.get("pushed_at"), {}, version in present,
                    metadata.get("content_hash"),
                )
            )
            continue
        infos.append(
            VersionInfo(
                version, release.tag, tuple(labels_of.get(version, ())), release.blessed,
                release.pushed_at, release.metrics, version in present, release.content_hash,
            )
        )
    return Listing(
        model_name=state.model_name or next((r.model_name for r in releases.values()), None),
        base_path=base,
        labels=dict(sorted(state.labels.items())),
        weights=state.routing_weights(),
        stable_history=list(state.stable_history),
        versions=infos,
    )


def _size_and_mtime(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def fingerprint(base_path: str) -> str:
    """A digest that changes whenever something in the base path changes: a version pushed or
    removed, labels, ``models.config``, records, contract, routing. ``"absent"`` if missing.

    A version directory counts by name and mtime (its files are written once, before the rename
    that publishes it); everything else by name, size and mtime, one level deep. The lock file
    does not count: every holder writes its name into it, even for an operation that changes
    nothing.
    """
    if not os.path.isdir(base_path):
        return "absent"
    entries: list[Any] = []
    for name in sorted(os.listdir(base_path)):
        if name == LOCK_FILE:
            continue
        path = os.path.join(base_path, name)
        if not os.path.isdir(path):
            entries.append([name, *_size_and_mtime(path)])
        elif name.isdigit():
            entries.append([name, os.stat(path).st_mtime_ns])
        else:
            inner = [[n, *_size_and_mtime(os.path.join(path, n))] for n in sorted(os.listdir(path))]
            entries.append([name, inner])
    return hashlib.sha256(json.dumps(entries, sort_keys=True).encode()).hexdigest()[:20]
