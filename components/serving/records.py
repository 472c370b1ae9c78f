"""Release records: ``<base>/.releases/<version>.json``, one file per released version.

One file per release rather than a single ``releases.json`` rewritten on each release: a record
is written once and never rewritten, so a bug or a crash while writing one release cannot lose
or corrupt the others, and two releases never contend for one file (they are serialised by the
base path's lock anyway). Reading all records is a directory listing, cheap for the hundreds of
versions a model accumulates. The directory is hidden so that TF Serving, which lists the base
path, sees only numeric version directories; records outlive pruned versions, as history.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from components.serving.errors import ReleaseError, ReleaseRefused
from components.serving.files import TMP_PREFIX, read_json, write_json
from components.serving.labels import read_state

__all__ = [
    "RELEASES_DIR",
    "Release",
    "check_model_name",
    "find_release",
    "next_release_number",
    "read_releases",
    "record_path",
    "write_release_record",
]

RELEASES_DIR = ".releases"
_RECORD_NAME = re.compile(r"([0-9]+)\.json")
_STORED_FIELDS = (
    "tag", "version", "model_name", "content_hash", "channel", "release_number", "metrics",
    "spans", "git_commit", "mlmd_ids", "blessed", "pushed_at",
)


@dataclass(frozen=True)
class Release:
    """One released version, as recorded in ``.releases/<version>.json``.

    Attributes:
        tag: ``<channel>-v<N>-<YYYYMMDD>``.
        version: the TF Serving version number (directory name).
        model_name: the model's name in ``models.config``.
        content_hash: ``model_content_hash`` of the version directory.
        channel: the channel it was released to (``canary`` by default).
        release_number: N in the tag: this model's releases in this base path, counted from 1.
        metrics: evaluation metrics, name -> value.
        spans: the data spans it was trained on.
        git_commit: the commit of the code that produced it, if known.
        mlmd_ids: ML Metadata ids (e.g. ``{"model": 12, "pushed_model": 15}``).
        blessed: whether it passed validation; only blessed versions can be promoted.
        pushed_at: UTC time of the release, ISO 8601.
        path: absolute path of the version directory (not stored: it follows the base path).
        reused: True when the call found the release already done and wrote nothing (not
            stored).
    """

    tag: str
    version: int
    model_name: str
    content_hash: str
    channel: str
    release_number: int
    metrics: dict[str, float]
    spans: list[int]
    git_commit: str | None
    mlmd_ids: dict[str, int]
    blessed: bool
    pushed_at: str
    path: str = ""
    reused: bool = field(default=False, compare=False)
    # Free-form facts about the release, e.g. {"breaking_change_reason": "..."} when a
    # breaking change of the serving contract was allowed.
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The stored fields, as written to the record file."""
        data = asdict(self)
        return {**{k: data[k] for k in _STORED_FIELDS}, "notes": dict(self.notes)}


def _records_dir(base_path: str) -> str:
    return os.path.join(base_path, RELEASES_DIR)


def record_path(base_path: str, version: int) -> str:
    """Path of the release record of ``version``."""
    return os.path.join(_records_dir(base_path), f"{version}.json")


def _from_json(base_path: str, path: str, data: Any) -> Release:
    if not isinstance(data, dict) or not set(_STORED_FIELDS) <= set(data):
        missing = sorted(set(_STORED_FIELDS) - set(data)) if isinstance(data, dict) else []
        raise ReleaseError(f"{path}: not a release record (missing {', '.join(missing)})")
    try:
        version = int(data["version"])
        return Release(
            tag=str(data["tag"]),
            version=version,
            model_name=str(data["model_name"]),
            content_hash=str(data["content_hash"]),
            channel=str(data["channel"]),
            release_number=int(data["release_number"]),
            metrics={str(k): v for k, v in dict(data["metrics"]).items()},
            spans=[int(s) for s in data["spans"]],
            git_commit=None if data["git_commit"] is None else str(data["git_commit"]),
            mlmd_ids={str(k): int(v) for k, v in dict(data["mlmd_ids"]).items()},
            blessed=bool(data["blessed"]),
            pushed_at=str(data["pushed_at"]),
            path=os.path.join(base_path, str(version)),
            notes={str(k): str(v) for k, v in dict(data.get("notes") or {}).items()},
        )
    except (TypeError, ValueError) as e:
        raise ReleaseError(f"{path}: malformed release record ({e})") from e


def read_releases(base_path: str) -> list[Release]:
    """All release records of ``base_path``, by version. Takes no lock: records are renamed
    into place complete.

    Raises:
        ReleaseError: a record is unreadable or malformed (naming the file); a record is never
            skipped silently, as that would hide a release from ``list`` and ``promote``.
    """
    base_path = os.path.abspath(base_path)
    try:
        names = os.listdir(_records_dir(base_path))
    except FileNotFoundError:
        return []
    releases = []
    for name in names:
        if name.startswith(TMP_PREFIX) or not _RECORD_NAME.fullmatch(name):
            continue
        path = os.path.join(_records_dir(base_path), name)
        data = read_json(path)
        if data is None:
            continue  # pruned between listing and reading: not an error
        releases.append(_from_json(base_path, path, data))
    return sorted(releases, key=lambda r: r.version)


def find_release(base_path: str, version: int) -> Release | None:
    """The release record of ``version``, or None.

    Raises:
        ReleaseError: the record exists but is malformed.
    """
    base_path = os.path.abspath(base_path)
    path = record_path(base_path, version)
    data = read_json(path)
    return None if data is None else _from_json(base_path, path, data)


def next_release_number(releases: Iterable[Release], model_name: str) -> int:
    """N for the next tag of ``model_name``: one more than its highest release number."""
    return 1 + max((r.release_number for r in releases if r.model_name == model_name), default=0)


def check_model_name(base_path: str, model_name: str) -> None:
    """Refuse a model name that differs from the one this base path already serves.

    One base path is one model in TF Serving's config; a second name would silently replace
    the first model's ``models.config``.

    Raises:
        ReleaseRefused: naming both models.
    """
    known = read_state(base_path).model_name
    if known is None:
        known = next((r.model_name for r in read_releases(base_path)), None)
    if known is not None and known != model_name:
        raise ReleaseRefused(
            f"base path {base_path} serves model {known!r}; refusing to release {model_name!r} "
            "into it (use a base path per model)"
        )


def write_release_record(base_path: str, release: Release) -> None:
    """Write ``.releases/<version>.json`` atomically. Call under the lock, as the last write of
    a release: a version with a record is a finished release."""
    write_json(record_path(os.path.abspath(base_path), release.version), release.to_json())
