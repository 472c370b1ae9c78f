"""How a change of labels is committed to a base path, and what every operation shares.

A label change rewrites three files, in an order that never lets a reader see a dangling
reference: ``routing.json`` before the config's labels move when it only stops or keeps sending
to labels that exist (the canary's share drops to 0 before the canary label moves or goes), last
when it starts sending to a label that the config is about to create (the first ``stable``);
``models.config`` through the two-step label move (``apply_serving_state``); then
``labels.json``, the source of truth. ``routing.json`` is written after the wait between the
two steps, so that a move that stops there (TF Serving did not load the new version in time:
``ServerNotReady``) leaves routing and labels as they were; ``record_not_ready`` then notes the
failure in ``labels.json``'s history, the labels unchanged.

``locked_operation`` is the start of promote, rollback, traffic and prune: the base path's lock
(taking it removes a killed writer's temporaries), the label state before the change, and the
operation's ``Audit`` (who, why, when, where it is recorded). ``record_in_metadata`` writes the
operation's ``ReleaseOperation`` execution to ML Metadata when the audit names a store.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import getpass
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from components.metadata import (
    MetadataError,
    MySQLSettings,
    OperationRecord,
    RecordedOperation,
    record_operation,
)
from components.serving.errors import ReleaseError, ReleaseRefused
from components.serving.files import write_json
from components.serving.labels import LabelState, read_state, write_state
from components.serving.lock import DEFAULT_LOCK_TIMEOUT_SECONDS
from components.serving.models_config import BetweenSteps, ServingState, apply_serving_state
from components.serving.versions import ServingDir

__all__ = [
    "ROUTING_FILE",
    "Audit",
    "BetweenSteps",
    "OperationContext",
    "commit_labels",
    "current_actor",
    "history_entry",
    "locked_operation",
    "record_in_metadata",
    "record_not_ready",
    "utc",
]

ROUTING_FILE = "routing.json"


def utc(now: dt.datetime | None) -> dt.datetime:
    """``now`` (default: the current time) in UTC."""
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)


def current_actor() -> str:
    """Who runs this process: the login name, or the uid when there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid {os.getuid()}"


def _target(base_path: str, state: LabelState) -> ServingState | None:
    if not state.labels or state.model_name is None:
        return None
    return ServingState(state.model_name, base_path, tuple(state.labels.values()), state.labels)


def _write_routing(base_path: str, state: LabelState, when: str) -> None:
    write_json(
        os.path.join(base_path, ROUTING_FILE),
        {
            "model_name": state.model_name,
            "weights": state.routing_weights(),
            "versions": dict(sorted(state.labels.items())),
            "updated_at": when,
        },
    )


def commit_labels(
    base_path: str,
    before: LabelState,
    after: LabelState,
    *,
    between_steps: BetweenSteps | None,
    when: str,
) -> tuple[ServingState, ...]:
    """Write routing.json, models.config and labels.json in the order the module describes.

    Call under the lock.

    Returns:
        The ``models.config`` states written, in order.

    Raises:
        ServerNotReady: from ``between_steps``; ``models.config`` is left at the first step,
            ``routing.json`` and ``labels.json`` as they were.
    """
    routing_first = all(
        label in before.labels for label, weight in after.routing_weights().items() if weight > 0
    )
    written = False

    def routing_before_the_labels_move() -> None:
        nonlocal written
        _write_routing(base_path, after, when)
        written = True

    target = _target(base_path, after)
    steps = []
    if target:
        steps = apply_serving_state(
            base_path, target, between_steps,
            before_last=routing_before_the_labels_move if routing_first else None,
        )
    if routing_first and not written:
        _write_routing(base_path, after, when)
    write_state(base_path, after)
    if not routing_first:
        _write_routing(base_path, after, when)
    return tuple(steps)


def record_not_ready(base_path: str, before: LabelState, entry: dict[str, Any]) -> None:
    """After a label move stopped at its first step (``ServerNotReady``): ``labels.json`` keeps
    the labels of ``before`` and gets ``entry`` (the failed operation) in its history.

    Call under the lock.
    """
    state = copy.deepcopy(before)
    state.history.append(entry)
    write_state(base_path, state)


def history_entry(
    operation: str, state: LabelState, *, when: str, actor: str, reason: str | None, **extra: Any
) -> dict[str, Any]:
    """One entry of ``labels.json``'s history: the operation, who, when, why, labels after."""
    return {
        "operation": operation,
        "at": when,
        "actor": actor,
        "reason": reason or "",
        "labels": dict(sorted(state.labels.items())),
        "canary_percent": state.canary_percent,
        **extra,
    }


@dataclass(frozen=True, kw_only=True)
class Audit:
    """Who runs an operation on released versions, why, when, and where it is recorded.

    Attributes:
        reason: why; kept in ``labels.json``'s history and in ML Metadata.
        actor: who, recorded likewise; None: the user running this process (``current_actor``).
        metadata_path: the ML Metadata store to record the operation in: a SQLite file, or
            ``components.metadata.MySQLSettings``; None: not recorded.
        pipeline_name: the pipeline whose MLMD context the execution joins, if present.
        now: the operation time; None: the current time (UTC).
    """

    reason: str | None = None
    actor: str | None = None
    metadata_path: str | MySQLSettings | None = None
    pipeline_name: str | None = None
    now: dt.datetime | None = None


@dataclass(frozen=True)
class OperationContext:
    """An operation under way, under the base path's lock.

    Attributes:
        serving: the base path's ``ServingDir``.
        operation: ``promote``, ``rollback``, ``traffic`` or ``prune``.
        before: the label state before the change.
        audit: who, why and where to record, as given.
        when: the operation time, UTC ISO 8601.
        actor: who runs it (``audit.actor``, or the user running this process).
    """

    serving: ServingDir
    operation: str
    before: LabelState
    audit: Audit
    when: str
    actor: str

    @property
    def base(self) -> str:
        """The absolute base path."""
        return self.serving.base_path

    def history_entry(self, after: LabelState, **extra: Any) -> dict[str, Any]:
        """``history_entry`` of this operation."""
        return history_entry(
            self.operation, after, when=self.when, actor=self.actor, reason=self.audit.reason,
            **extra,
        )

    def commit(
        self, after: LabelState, between_steps: BetweenSteps | None
    ) -> tuple[ServingState, ...]:
        """``commit_labels`` from the state before this operation to ``after``."""
        return commit_labels(
            self.base, self.before, after, between_steps=between_steps, when=self.when
        )


@contextlib.contextmanager
def locked_operation(
    base_path: str,
    operation: str,
    *,
    audit: Audit,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
) -> Iterator[OperationContext]:
    """Hold the base path's lock for ``operation`` on released versions.

    Args:
        base_path: the model base path.
        operation: ``promote``, ``rollback``, ``traffic`` or ``prune``.
        audit: who, why, when, and where to record.
        lock_timeout: how long to wait for another operation's lock.

    Raises:
        ReleaseRefused: the base path holds no release yet.
        LockTimeout: another operation held the lock longer than ``lock_timeout``.
    """
    serving = ServingDir(base_path, lock_timeout)
    base = serving.base_path
    when = utc(audit.now).isoformat(timespec="seconds")
    with serving.lock():  # which removes a killed writer's temporaries
        before = read_state(base)
        if before.model_name is None:
            raise ReleaseRefused(f"nothing has been released in {base}")
        yield OperationContext(
            serving, operation, before, audit, when, audit.actor or current_actor()
        )


def record_in_metadata(
    ctx: OperationContext,
    after: LabelState,
    *,
    version: int | None,
    tag: str,
    linked: Iterable[int],
    details: dict[str, Any],
) -> RecordedOperation | None:
    """Record the operation in ML Metadata, if its audit names a store.

    Args:
        ctx: the operation under way.
        after: the label state after the change.
        version: the version acted on (None: none, recorded as 0).
        tag: its tag ("" if none).
        linked: the versions whose ``PushedModel`` artifacts the execution links to.
        details: operation-specific facts, recorded as JSON.

    Raises:
        ReleaseError: recording failed (the change itself was applied).
    """
    audit = ctx.audit
    if audit.metadata_path is None:
        return None
    entry = OperationRecord(
        operation=ctx.operation,
        model_name=after.model_name or "",
        base_path=ctx.base,
        tag=tag,
        version=version or 0,
        actor=ctx.actor,
        reason=audit.reason or "",
        timestamp=ctx.when,
        linked_versions=tuple(linked),
        details=details,
    )
    try:
        return record_operation(audit.metadata_path, entry, audit.pipeline_name)
    except MetadataError as e:
        raise ReleaseError(
            f"{ctx.operation} was applied, but not recorded in ML Metadata: {e}"
        ) from e
