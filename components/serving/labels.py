"""``labels.json``: the source of truth for labels, traffic split and label history.

``models.config`` and ``routing.json`` are projections of this state for TF Serving and for the
router; every release operation changes the state and rewrites them. ``stable_history`` is the
list of versions that were labelled ``stable``, oldest first, its last entry the current stable:
``rollback`` pops it, so rolling back twice goes two promotions back. ``history`` is an audit
trail of every operation (who, when, why, labels after), kept next to the models so that it
survives a lost ML Metadata store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from components.serving.errors import ReleaseError
from components.serving.files import read_json, write_json

__all__ = ["LABELS", "LABELS_FILE", "LabelState", "read_state", "stable_version", "write_state"]

LABELS_FILE = "labels.json"
# TF Serving's version labels this project manages.
LABELS = ("stable", "canary")


@dataclass
class LabelState:
    """The labels of one base path.

    Attributes:
        model_name: the model served from this base path (None before the first release).
        labels: label -> version, labels among ``LABELS``.
        stable_history: versions that were stable, oldest first; the last is ``labels["stable"]``.
        canary_percent: share of requests the router sends to the canary (0..100).
        history: one dict per operation, oldest first.
    """

    model_name: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    stable_history: list[int] = field(default_factory=list)
    canary_percent: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    def previous_stable(self) -> int | None:
        """The version ``rollback`` would return to, or None."""
        return self.stable_history[-2] if len(self.stable_history) >= 2 else None

    def routing_weights(self) -> dict[str, int]:
        """Percent of requests per label for the router: only labels that exist.

        With no stable version there is nothing to route to yet (a first canary is not sent
        traffic until it is promoted): the weights are empty.
        """
        if "stable" not in self.labels:
            return {}
        if "canary" not in self.labels:
            return {"stable": 100}
        return {"stable": 100 - self.canary_percent, "canary": self.canary_percent}

    def to_json(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "labels": dict(sorted(self.labels.items())),
            "stable_history": list(self.stable_history),
            "canary_percent": self.canary_percent,
            "history": list(self.history),
        }


def _labels_path(base_path: str) -> str:
    return os.path.join(base_path, LABELS_FILE)


def read_state(base_path: str) -> LabelState:
    """The label state of ``base_path`` (an empty state if ``labels.json`` does not exist).

    Raises:
        ReleaseError: ``labels.json`` is unreadable or malformed (naming the file and key).
    """
    path = _labels_path(base_path)
    data = read_json(path)
    if data is None:
        return LabelState()

    def bad(key: str, expected: str) -> ReleaseError:
        return ReleaseError(f"{path}: {key}: expected {expected}")

    if not isinstance(data, dict):
        raise bad("<top>", "a JSON object")
    model_name = data.get("model_name")
    if model_name is not None and not isinstance(model_name, str):
        raise bad("model_name", "a string")
    labels = data.get("labels", {})
    if not isinstance(labels, dict) or any(
        k not in LABELS or not _is_version(v) for k, v in labels.items()
    ):
        raise bad("labels", f"an object mapping {' or '.join(LABELS)} to a version number")
    stable_history = data.get("stable_history", [])
    if not isinstance(stable_history, list) or not all(map(_is_version, stable_history)):
        raise bad("stable_history", "a list of version numbers")
    percent = data.get("canary_percent", 0)
    if not isinstance(percent, int) or isinstance(percent, bool) or not 0 <= percent <= 100:
        raise bad("canary_percent", "an integer from 0 to 100")
    history = data.get("history", [])
    if not isinstance(history, list):
        raise bad("history", "a list")
    return LabelState(model_name, dict(labels), list(stable_history), percent, history)


def stable_version(base_path: str) -> int | None:
    """The version labelled ``stable`` in ``base_path``, or None.

    Raises:
        ReleaseError: as ``read_state``.
    """
    return read_state(base_path).labels.get("stable")


def write_state(base_path: str, state: LabelState) -> None:
    """Write ``labels.json`` atomically."""
    write_json(_labels_path(base_path), state.to_json())


def _is_version(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
